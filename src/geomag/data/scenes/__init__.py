"""GeoScenes: procedural nadir aerial scenes with exact ground truth for all six GeoMag tasks.

from geomag.data.scenes import generate_scene
scene = generate_scene(seed=3, size=(512, 512))
scene.image, scene.objects, scene.captions, scene.vqa, scene.referring, scene.gcg
"""

from geomag.data.scenes.classes import CLASSES
from geomag.data.scenes.generate import generate_scene, small_target_split
from geomag.data.scenes.layout import SCENE_TYPES
from geomag.data.scenes.scene import LANDCOVER, Scene, SceneObject

__all__ = [
    "CLASSES",
    "LANDCOVER",
    "SCENE_TYPES",
    "Scene",
    "SceneObject",
    "generate_scene",
    "small_target_split",
]
