"""RSVQA-style questions with exact answers: presence, comparison, count, rural/urban.

Counts are numbers of annotated objects (each with visible pixels). Land-cover presence means at
least LC_PRESENT of the image. Urban means built-up (roads, pavement and building roofs) covers at
least URBAN of the image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from geomag.data.scenes.classes import CLASSES, PLURAL
from geomag.data.scenes.scene import LC, Scene

LC_PRESENT = 0.005
URBAN = 0.15
LC_NAMES = {"water": "water area", "road": "road", "forest": "forest", "cropland": "farmland"}


def is_urban(scene: Scene) -> bool:
    lc = scene.landcover
    built = float(np.isin(lc, [LC["road"], LC["paved"]]).mean())
    roofs = sum(o.area for o in scene.objects if o.category == "building") / lc.size
    return built + roofs >= URBAN


def question(text: str, answer: Any, qtype: str) -> dict[str, Any]:
    """One RSVQA-style question record (answer as text, RSVQA's answer type)."""
    atype = "yes/no" if answer in ("yes", "no") else ("number" if qtype == "count" else "other")
    return {"question": text, "answer": str(answer), "type": qtype, "answer_type": atype}


def comparison_questions(
    pairs: list[tuple[str, str]],
    counts: dict[str, int],
    plural: Callable[[str], str],
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """One comparison question per (a, b) pair, in one of three forms drawn from `rng`: more, less,
    equal (their answers from the exact `counts`)."""
    out = []
    for a, b in pairs:
        form = int(rng.integers(3))
        if form == 0:
            out.append(
                question(
                    f"Are there more {plural(a)} than {plural(b)}?",
                    "yes" if counts[a] > counts[b] else "no",
                    "comp",
                )
            )
        elif form == 1:
            out.append(
                question(
                    f"Are there less {plural(a)} than {plural(b)}?",
                    "yes" if counts[a] < counts[b] else "no",
                    "comp",
                )
            )
        else:
            q = f"Is the number of {plural(a)} equal to the number of {plural(b)}?"
            out.append(question(q, "yes" if counts[a] == counts[b] else "no", "comp"))
    return out


def vqa(scene: Scene, rng: np.random.Generator) -> list[dict[str, Any]]:
    counts = {c: scene.count(c) for c in CLASSES}
    present = [c for c in CLASSES if counts[c]]
    absent = [c for c in CLASSES if not counts[c]]
    rng.shuffle(absent)
    out = [question("Is it a rural or an urban area", "urban" if is_urban(scene) else "rural", "rural_urban")]
    for c in present + absent[:2]:
        form = int(rng.integers(3))
        q = (f"Is a {c} present?", f"Is there a {c}?", f"Are there {PLURAL[c]}?")[form]
        out.append(question(q, "yes" if counts[c] else "no", "presence"))
    for name, label in LC_NAMES.items():
        frac = float((scene.landcover == LC[name]).mean())
        out.append(question(f"Is a {label} present?", "yes" if frac >= LC_PRESENT else "no", "presence"))
    for c in present + absent[:1]:
        q = (
            f"How many {PLURAL[c]} are there?"
            if rng.random() < 0.5
            else f"What is the amount of {PLURAL[c]}?"
        )
        out.append(question(q, counts[c], "count"))
    pairs = [(a, b) for a in present for b in CLASSES if a != b]
    rng.shuffle(pairs)
    out += comparison_questions(pairs[:3], counts, PLURAL.__getitem__, rng)
    return out
