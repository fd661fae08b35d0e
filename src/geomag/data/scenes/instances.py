"""A GeoScene as an `InstanceImage` (geomag.data.instances), so the one task builder
(geomag.data.instance_tasks) asks its object questions and writes its grounded description.

Every annotated object class of GeoScenes is drawn with exact ground truth, so a class without an
object is truly absent (presence "no", count 0). Colour words are kept (GeoScenes draws flat colours).
"""

from __future__ import annotations

from pathlib import Path

from geomag.data.instances import Instance, InstanceImage
from geomag.data.scenes.classes import CLASSES
from geomag.data.scenes.scene import Scene


def scene_instances(scene: Scene, image: str | Path = "") -> InstanceImage:
    """The scene's objects as instances (same order: instance i is scene.objects[i]); `image` is the
    path the scene's PNG was written to, where samples are made from it."""
    w, h = scene.size
    instances = tuple(
        Instance.from_crop(o.category, o.mask, o.box[:2], (w, h), o.colour) for o in scene.objects
    )
    present = {o.category for o in scene.objects}
    absent = tuple(c for c in CLASSES if c not in present)
    return InstanceImage(Path(image), w, h, instances, absent, "geoscenes")
