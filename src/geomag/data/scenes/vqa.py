"""RSVQA-style questions with exact answers: presence, comparison, count, rural/urban.

Counts are numbers of annotated objects (each with visible pixels). Land-cover presence means at
least LC_PRESENT of the image. Urban means built-up (roads, pavement and building roofs) covers at
least URBAN of the image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geomag.data.scenes.instances import scene_instances
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


def vqa(scene: Scene, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Rural / urban, object presence (every present class and 2 absent ones), land-cover presence,
    exact counts (present classes and 1 absent) and 3 comparisons. The object questions come from
    the one builder (geomag.data.instance_tasks) on the scene's instances, with varied wordings."""
    # imported here: instance_tasks imports geomag.data.scenes.referring (this package)
    from geomag.data.instance_tasks import comparison_questions, count_questions, presence_questions

    img = scene_instances(scene)

    def typed(qs: list[dict[str, str]]) -> list[dict[str, Any]]:
        return [{**question(q["question"], q["answer"], q["type"]), **q} for q in qs]

    out = [question("Is it a rural or an urban area", "urban" if is_urban(scene) else "rural", "rural_urban")]
    out += typed(presence_questions(img, rng, varied=True, n_no=2))
    for name, label in LC_NAMES.items():
        frac = float((scene.landcover == LC[name]).mean())
        out.append(question(f"Is a {label} present?", "yes" if frac >= LC_PRESENT else "no", "presence"))
    out += typed(count_questions(img, rng, cap=None, zeros=1, varied=True))
    out += typed(comparison_questions(img, rng, n=3))
    return out
