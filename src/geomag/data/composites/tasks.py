"""The questions a composite answers exactly: referring expressions, VQA, referring object
classification and a grounded description, all from the visible masks. VQA and the description
come from the one builder (geomag.data.instance_tasks) on the composite's instances
(`composite_instances`); the referring expressions keep the colour-aware GeoScenes grammar.

Referring expressions use the GeoScenes grammar and rules (`geomag.data.scenes.referring`: size,
isolation, colour, 3 x 3 position, closest-to anchor; exactly one referent). Colour words come from
the pasted pixels and are used only where one colour covers COLOUR_SHARE of the object and every
object of its class has a colour word (a real object is rarely one flat colour). Questions count
only the classes the background rules out, where every instance is a pasted, annotated one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from geomag.data.composites.paste import Pasted
from geomag.data.instance_tasks import (
    comparison_questions,
    count_questions,
    gcg_description,
    presence_questions,
)
from geomag.data.instances import Instance, InstanceImage
from geomag.data.scenes.referring import CELLS, MIN_AREA, Facts, cell_of, evaluate, near_border, phrase
from geomag.data.scenes.scene import SceneObject

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


def composite_instances(comp: Composite, image: str | Path = "") -> InstanceImage:
    """The composite as an `InstanceImage` (instance i is comp.objects[i]): its known-absent classes
    are the background's ruled-out ones without a pasted object (every instance of them is pasted and
    annotated, so their counts are exact); `image` is where its PNG was written, if it was."""
    w, h = comp.size
    instances = tuple(Instance.from_crop(o.category, o.mask, o.box[:2], (w, h)) for o in comp.objects)
    present = {o.category for o in comp.objects}
    absent = tuple(c for c in comp.known if c not in present)
    return InstanceImage(Path(image), w, h, instances, absent, "composites")


def vqa(img: InstanceImage, rng: np.random.Generator) -> list[dict[str, str]]:
    """Presence (balanced), exact counts (present classes and 1 absent) and 2 comparisons, through
    the one builder (geomag.data.instance_tasks), varied wordings."""
    qs = presence_questions(img, rng, varied=True)
    qs += count_questions(img, rng, cap=None, zeros=1, varied=True)
    return qs + comparison_questions(img, rng, n=2)


def gcg(img: InstanceImage, setting: str) -> dict[str, Any]:
    """GeoPixelD-style description through the one GCG builder: every class, up to 3 objects each."""
    d = gcg_description(img, setting, max_classes=None, per_class=3, min_area=MIN_AREA)
    assert d is not None  # a setting is always given
    return {"text": d.text, "phrases": d.phrases, "objects": d.objects}


def annotate(comp: Composite, setting: str, rng: np.random.Generator) -> Composite:
    """Fill the composite's referring, vqa, roc and gcg entries."""
    img = composite_instances(comp)
    comp.referring = referring(comp.objects, comp.size, rng)
    comp.vqa = vqa(img, rng)
    comp.roc = [{"box": list(o.box), "class": o.category} for o in comp.objects if o.area >= MIN_AREA]
    comp.gcg = gcg(img, setting)
    return comp
