"""Annotated object instances of a real image: the common form the task builders work on.

NWPU VHR-10 (COCO polygons), iSAID (instance-id PNGs) and copy-paste composites all reduce to a list
of `Instance`s (category, exact mask as COCO RLE, box, area, centroid) on an image of known size, so
referring expressions, questions, box classification and grounded descriptions are built once
(geomag.data.refexpr, geomag.data.instance_tasks). Masks are kept as RLE: an image with 100 vehicles
stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def plural(name: str) -> str:
    """'storage tank' -> 'storage tanks', 'bus' -> 'buses' (English enough for the object classes)."""
    return name + "es" if name.endswith(("s", "x", "ch", "sh")) else name + "s"


def article(name: str) -> str:
    return "an" if name[:1].lower() in "aeiou" else "a"


@dataclass(frozen=True)
class Instance:
    """One object: its class, exact mask (COCO RLE, counts as bytes), box x0,y0,x1,y1, area, centroid."""

    category: str
    rle: dict[str, Any]
    box: tuple[float, float, float, float]
    area: float
    centre: tuple[float, float]

    @classmethod
    def from_mask(
        cls, category: str, mask: np.ndarray, box: tuple[float, float, float, float] | None = None
    ) -> Instance:
        """From a boolean [H, W] mask; `box` defaults to the mask's pixel extent (x1, y1 exclusive)."""
        from pycocotools import mask as mask_utils

        m = np.asarray(mask, dtype=bool)
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if not len(rows):
            raise ValueError(f"empty mask for a {category}")
        y0, x0 = int(rows[0]), int(cols[0])
        ys, xs = np.nonzero(m[y0 : rows[-1] + 1, x0 : cols[-1] + 1])  # on the crop: fast for small objects
        if box is None:
            box = (float(x0), float(y0), float(cols[-1] + 1), float(rows[-1] + 1))
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        centre = (x0 + float(xs.mean()) + 0.5, y0 + float(ys.mean()) + 0.5)
        return cls(category, rle, box, float(len(xs)), centre)

    def mask(self) -> np.ndarray:
        from pycocotools import mask as mask_utils

        return mask_utils.decode(self.rle).astype(bool)

    def mask_spec(self) -> dict[str, Any]:
        """The `Sample` mask spec {"rle": ...} (JSON-safe counts)."""
        return rle_spec(self.rle)


def rle_spec(rle: dict[str, Any]) -> dict[str, Any]:
    """A pycocotools RLE as a `Sample` mask spec (counts as str, JSON-safe)."""
    counts = rle["counts"]
    return {
        "rle": {
            "size": [int(s) for s in rle["size"]],
            "counts": counts.decode() if isinstance(counts, bytes) else counts,
        }
    }


def union_spec(instances: Sequence[Instance]) -> dict[str, Any]:
    """The union of the instances' masks as a `Sample` mask spec."""
    from pycocotools import mask as mask_utils

    return rle_spec(mask_utils.merge([o.rle for o in instances]))


@dataclass(frozen=True)
class InstanceImage:
    """A real image and its instances. `absent`: classes known NOT to be in the image (so "no" to a
    presence question about them, and a count of 0, are true); classes neither present nor in
    `absent` are never asked about (the annotation may have missed them)."""

    image: Path
    width: int
    height: int
    instances: tuple[Instance, ...]
    absent: tuple[str, ...] = field(default_factory=tuple)
    source: str = ""  # dataset name, for sample ids and meta

    @property
    def stem(self) -> str:
        return self.image.stem

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.instances:
            out[o.category] = out.get(o.category, 0) + 1
        return out

    def count(self, category: str) -> int:
        return sum(o.category == category for o in self.instances)
