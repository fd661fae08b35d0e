"""Grounded description (GeoPixelD style) of a GeoScene: the scene's setting, then its objects with
`<p> phrase </p> [SEG]`, one object per [SEG], written by the one GCG builder
(geomag.data.instance_tasks.gcg_description) that the real sources use too."""

from __future__ import annotations

from typing import Any

import numpy as np

from geomag.data.scenes.instances import scene_instances
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
    """Describe the scene; mention up to `per_class` objects of up to `max_classes` classes, each with
    [SEG] (phrases lead with the object's colour). `rng` is unused: the description is exact."""
    # imported here: instance_tasks imports geomag.data.scenes.referring (this package)
    from geomag.data.instance_tasks import gcg_description

    d = gcg_description(scene_instances(scene), SCENE_WORDS[scene.scene_type], max_classes, per_class, 4)
    assert d is not None  # a setting is always given
    return {"text": d.text, "phrases": d.phrases, "objects": d.objects}
