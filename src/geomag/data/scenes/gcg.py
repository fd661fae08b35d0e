"""Grounded description (GeoPixelD style): text with `<p> phrase </p> [SEG]`, one object per [SEG]."""

from __future__ import annotations

from typing import Any

import numpy as np

from geomag.data.scenes.classes import PLURAL
from geomag.data.scenes.referring import CELLS, cell_of
from geomag.data.scenes.scene import Scene

SCENE_WORDS = {
    "airport": "an airport with a runway, taxiway and apron",
    "harbor": "a harbor where piers reach into the sea",
    "residential": "a residential area with houses along a grid of streets",
    "industrial": "an industrial area with factories and storage tanks",
    "parking lot": "a parking lot next to a road",
    "farmland": "farmland divided into fields",
    "forest": "a forested area",
    "sports ground": "a sports ground with courts",
    "river bridge": "a river crossed by a bridge",
    "beach": "a beach along the sea",
}


def gcg(scene: Scene, rng: np.random.Generator, max_classes: int = 4, per_class: int = 3) -> dict[str, Any]:
    """Describe the scene; mention up to `per_class` objects of up to `max_classes` classes, each with [SEG]."""
    w, h = scene.size
    by_class: dict[str, list[int]] = {}
    for o in scene.objects:
        if o.area >= 4:
            by_class.setdefault(o.category, []).append(o.index)
    text = [f"The image is an aerial view of {SCENE_WORDS[scene.scene_type]}."]
    phrases: list[str] = []
    objs: list[int] = []
    classes = sorted(by_class, key=lambda c: -max(scene.objects[i].area for i in by_class[c]))[:max_classes]
    for c in classes:
        idx = sorted(by_class[c], key=lambda i: -scene.objects[i].area)[:per_class]
        parts = []
        for k, i in enumerate(idx, 1):
            o = scene.objects[i]
            p = f"{o.colour} {c}-{k}" if len(idx) > 1 else f"{o.colour} {c}"
            phrases.append(p)
            objs.append(i)
            parts.append(f"<p> {p} </p> [SEG] {CELLS[cell_of(*o.centre, w, h)]}")
        n = len(by_class[c])
        if n == 1:
            text.append(f"There is a {parts[0]}.")
        elif n == len(idx):
            text.append(f"There are {n} {PLURAL[c]}: " + ", ".join(parts[:-1]) + f" and {parts[-1]}.")
        else:
            text.append(
                f"Among the {n} {PLURAL[c]} are the " + ", the ".join(parts[:-1]) + f" and the {parts[-1]}."
            )
    if not objs:
        text.append("No distinct objects stand out.")
    return {"text": " ".join(text), "phrases": phrases, "objects": objs}
