"""The Scene and SceneObject records: what a generated scene IS, independent of how it was drawn."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

# Land-cover codes of `Scene.landcover` (one uint8 per pixel).
LANDCOVER = ("grass", "forest", "soil", "sand", "water", "road", "paved", "cropland")
LC = {name: code for code, name in enumerate(LANDCOVER)}


@dataclass
class SceneObject:
    """One annotated object. `mask` is the VISIBLE footprint cropped to `box` (x0, y0, x1, y1), half-open."""

    index: int
    category: str
    colour: str
    box: tuple[int, int, int, int]
    mask: np.ndarray
    attributes: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def area(self) -> int:
        return int(self.mask.sum())

    @cached_property
    def centre(self) -> tuple[float, float]:
        """Centroid (x, y) of the visible pixels, in image coordinates."""
        ys, xs = np.nonzero(self.mask)
        return float(xs.mean() + self.box[0] + 0.5), float(ys.mean() + self.box[1] + 0.5)

    def full_mask(self, width: int, height: int) -> np.ndarray:
        out = np.zeros((height, width), dtype=bool)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.mask
        return out


@dataclass
class Scene:
    """A generated scene with exact ground truth for every task.

    `referring` entries: {"expression", "object" (index into objects), "box", "mask" (cropped to box),
    "constraints"}; `gcg`: {"text", "phrases", "objects"} with one object index per [SEG];
    `vqa` entries: {"question", "answer", "type", "answer_type"}; `roc` entries: {"box", "class"}.
    """

    seed: int
    scene_type: str
    image: Image.Image
    objects: list[SceneObject]
    landcover: np.ndarray
    gsd: float  # metres per pixel
    captions: list[str] = field(default_factory=list)
    vqa: list[dict[str, Any]] = field(default_factory=list)
    referring: list[dict[str, Any]] = field(default_factory=list)
    roc: list[dict[str, Any]] = field(default_factory=list)
    gcg: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.scene_type

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def full_mask(self, index: int) -> np.ndarray:
        """Full-frame bool mask of object `index`."""
        return self.objects[index].full_mask(*self.image.size)

    def count(self, category: str) -> int:
        return sum(1 for o in self.objects if o.category == category)
