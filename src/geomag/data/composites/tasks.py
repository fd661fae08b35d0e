"""The questions a composite answers exactly: referring expressions, VQA, referring object
classification and a grounded description, all from the visible masks.

Referring expressions use the GeoScenes grammar and rules (`geomag.data.scenes.referring`: size,
isolation, colour, 3 x 3 position, closest-to anchor; exactly one referent). Colour words come from
the pasted pixels and are used only where one colour covers COLOUR_SHARE of the object and every
object of its class has a colour word (a real object is rarely one flat colour). Questions count
only the classes the background rules out, where every instance is a pasted, annotated one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from geomag.data.composites.paste import Pasted
from geomag.data.loaders.nwpu import plural
from geomag.data.scenes.referring import CELLS, MIN_AREA, Facts, cell_of, evaluate, near_border, phrase
from geomag.data.scenes.scene import SceneObject
from geomag.data.scenes.vqa import comparison_questions, question

COLOUR_SHARE = 0.6
NO_COLOUR = "-"


@dataclass
class Composite:
    """What the benchmark writers (geomag.data.writers) read from a scene, for a composite."""

    image: Image.Image
    objects: list[SceneObject]
    background: str
    scene_class: str | None
    known: tuple[str, ...]  # classes counted exactly (the background's ruled-out ones)
    vqa: list[dict[str, Any]] = field(default_factory=list)
    referring: list[dict[str, Any]] = field(default_factory=list)
    roc: list[dict[str, Any]] = field(default_factory=list)
    gcg: dict[str, Any] = field(default_factory=dict)
    captions: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    @property
    def label(self) -> str:
        return self.scene_class or "unlabelled"

    def full_mask(self, index: int) -> np.ndarray:
        return self.objects[index].full_mask(*self.image.size)

    def count(self, category: str) -> int:
        return sum(o.category == category for o in self.objects)


def colour_name(pixels: np.ndarray) -> str:
    """The colour word held by COLOUR_SHARE of the pixels ([n, 3] uint8), else NO_COLOUR."""
    hsv = np.asarray(Image.fromarray(pixels[None].astype(np.uint8)).convert("HSV"), np.float32)[0]
    h, s, v = hsv[:, 0] * 360 / 255, hsv[:, 1] / 255, hsv[:, 2] / 255
    names = np.full(len(h), "", dtype=object)
    grey = s < 0.2
    names[grey & (v >= 0.75)] = "white"
    names[grey & (v < 0.75) & (v >= 0.3)] = "gray"
    names[v < 0.2] = "black"
    hued = (names == "") & (v >= 0.2)
    for name, lo, hi in (
        ("red", -20, 15),
        ("orange", 15, 40),
        ("yellow", 40, 70),
        ("green", 70, 170),
        ("blue", 170, 260),
    ):
        hh = np.where(h > 340, h - 360, h)
        names[hued & (hh >= lo) & (hh < hi)] = name
    words, counts = np.unique(names[names != ""], return_counts=True)
    if not len(words) or counts.max() < COLOUR_SHARE * len(h):
        return NO_COLOUR
    return str(words[counts.argmax()])


def scene_objects(pasted: list[Pasted], canvas: np.ndarray) -> list[SceneObject]:
    out = []
    for p in pasted:
        assert p.visible is not None
        ys, xs = np.nonzero(p.visible)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        crop = p.visible[box[1] : box[3], box[0] : box[2]]
        colour = colour_name(canvas[p.visible])
        out.append(SceneObject(len(out), p.category, colour, box, crop, {"source": p.source}))
    return out


def _candidates(
    o: SceneObject, objects: list[SceneObject], w: int, h: int, counts: dict[str, int]
) -> list[dict[str, Any]]:
    base: dict[str, Any] = {"class": o.category}
    forms = [base, {**base, "size": "largest"}, {**base, "size": "smallest"}, {**base, "isolated": True}]
    if not near_border(*o.centre, w, h):
        forms.append({**base, "position": CELLS[cell_of(*o.centre, w, h)]})
    forms += [{**base, "anchor": a} for a, n in counts.items() if n == 1 and a != o.category]
    if all(x.colour != NO_COLOUR for x in objects if x.category == o.category):
        forms += [{**f, "colour": o.colour} for f in forms[:5]]
    return forms


def referring(
    objects: list[SceneObject], size: tuple[int, int], rng: np.random.Generator, max_refs: int = 8
) -> list[dict[str, Any]]:
    """Expressions that select exactly one object each (GeoScenes' rules), a few per class."""
    if not objects:
        return []
    w, h = size
    facts = Facts(objects, w, h)
    counts: dict[str, int] = {}
    for o in objects:
        counts[o.category] = counts.get(o.category, 0) + 1
    refs = []
    for i in rng.permutation(len(objects)):
        o = objects[int(i)]
        if len(refs) >= max_refs or o.area < MIN_AREA:
            continue
        valid = [c for c in _candidates(o, objects, w, h, counts) if evaluate(c, facts) == [o.index]]
        if valid:
            valid.sort(key=len)
            c = valid[int(rng.integers(min(3, len(valid))))]
            refs.append({"expression": phrase(c), "object": o.index, "box": list(o.box), "constraints": c})
    return refs


def vqa(objects: list[SceneObject], known: tuple[str, ...], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Presence, count and comparison questions over the exactly counted classes only."""
    counts = {c: sum(o.category == c for o in objects) for c in known}
    present = [c for c in known if counts[c]]
    missing = [c for c in known if not counts[c]]
    rng.shuffle(missing)
    out = []
    for c in present + missing[: max(1, len(present))]:
        form = int(rng.integers(3))
        q = (f"Is a {c} present?", f"Is there a {c}?", f"Are there {plural(c)}?")[form]
        out.append(question(q, "yes" if counts[c] else "no", "presence"))
    for c in present + missing[:1]:
        q = (
            f"How many {plural(c)} are there?"
            if rng.random() < 0.5
            else f"What is the amount of {plural(c)}?"
        )
        out.append(question(q, counts[c], "count"))
    pairs = [(a, b) for a in present for b in known if a != b]
    rng.shuffle(pairs)
    out += comparison_questions(pairs[:2], counts, plural, rng)
    return out


def gcg(
    objects: list[SceneObject], size: tuple[int, int], setting: str, per_class: int = 3
) -> dict[str, Any]:
    """GeoPixelD-style description: up to `per_class` objects per class, one [SEG] each."""
    w, h = size
    by_class: dict[str, list[SceneObject]] = {}
    for o in objects:
        if o.area >= MIN_AREA:
            by_class.setdefault(o.category, []).append(o)
    text = [f"The image is an aerial view of {setting}."]
    phrases: list[str] = []
    objs: list[int] = []
    for c in sorted(by_class, key=lambda c: -max(o.area for o in by_class[c])):
        chosen = sorted(by_class[c], key=lambda o: -o.area)[:per_class]
        parts = []
        for k, o in enumerate(chosen, 1):
            p = f"{c}-{k}" if len(chosen) > 1 else c
            phrases.append(p)
            objs.append(o.index)
            parts.append(f"<p> {p} </p> [SEG] {CELLS[cell_of(*o.centre, w, h)]}")
        n = len(by_class[c])
        if n == 1:
            text.append(f"There is a {parts[0]}.")
        elif n == len(chosen):
            text.append(f"There are {n} {plural(c)}: " + ", ".join(parts[:-1]) + f" and {parts[-1]}.")
        else:
            text.append(
                f"Among the {n} {plural(c)} are the " + ", the ".join(parts[:-1]) + f" and the {parts[-1]}."
            )
    return {"text": " ".join(text), "phrases": phrases, "objects": objs}


def annotate(comp: Composite, setting: str, rng: np.random.Generator) -> Composite:
    """Fill the composite's referring, vqa, roc and gcg entries."""
    comp.referring = referring(comp.objects, comp.size, rng)
    comp.vqa = vqa(comp.objects, comp.known, rng)
    comp.roc = [{"box": list(o.box), "class": o.category} for o in comp.objects if o.area >= MIN_AREA]
    comp.gcg = gcg(comp.objects, comp.size, setting)
    return comp
