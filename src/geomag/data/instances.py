"""Annotated object instances of a real image: the common form the task builders work on.

NWPU VHR-10 (COCO polygons), iSAID (instance-id PNGs), DOTA (oriented boxes), copy-paste composites
and GeoScenes all reduce to a list of `Instance`s (category, exact mask as COCO RLE, box, area,
centroid, optional colour word) on an image of known size, so referring expressions, questions, box
classification and grounded descriptions are built once (geomag.data.refexpr,
geomag.data.instance_tasks). Masks are kept as RLE: an image with 100 vehicles stays small.
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
    """One object: its class, exact mask (COCO RLE, counts as bytes), box x0,y0,x1,y1, area, centroid;
    `colour`: a colour word where the source knows one (GeoScenes), else ""."""

    category: str
    rle: dict[str, Any]
    box: tuple[float, float, float, float]
    area: float
    centre: tuple[float, float]
    colour: str = ""

    @classmethod
    def from_crop(
        cls,
        category: str,
        crop: np.ndarray,
        offset: tuple[int, int],
        size: tuple[int, int],
        colour: str = "",
    ) -> Instance:
        """From a boolean mask cropped to the object (`offset` x0, y0 of the crop in an image of
        `size` w, h): the same Instance as `from_mask` of the full mask, without building the full
        frame (a 4K scene's hundreds of small objects)."""
        from pycocotools import mask as mask_utils

        m = np.asarray(crop, dtype=bool)
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if not len(rows):
            raise ValueError(f"empty mask for a {category}")
        m = m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        x0, y0 = int(offset[0] + cols[0]), int(offset[1] + rows[0])
        w, h = size
        x1, y1 = x0 + m.shape[1], y0 + m.shape[0]
        if x1 > w or y1 > h or x0 < 0 or y0 < 0:
            raise ValueError(f"the {category}'s mask lies outside the {w}x{h} image")
        # Column-major (COCO) runs from the crop alone: per column, where the mask switches on / off,
        # as positions in the full frame; a run that ends at the bottom of a column and goes on at
        # the top of the next is one run.
        edges = np.diff(np.pad(m.astype(np.int8), ((1, 1), (0, 0))), axis=0).T  # [cols, rows + 1]
        col_on, row_on = np.nonzero(edges == 1)
        col_off, row_off = np.nonzero(edges == -1)
        starts = (x0 + col_on) * h + y0 + row_on
        ends = (x0 + col_off) * h + y0 + row_off
        joined = starts[1:] == ends[:-1]
        starts, ends = starts[np.r_[True, ~joined]], ends[np.r_[~joined, True]]
        runs = np.stack([starts - np.r_[0, ends[:-1]], ends - starts], 1).ravel().tolist()
        if ends[-1] < w * h:
            runs.append(int(w * h - ends[-1]))
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": runs}, h, w)
        ys, xs = np.nonzero(m)
        centre = (x0 + float(xs.mean()) + 0.5, y0 + float(ys.mean()) + 0.5)
        box = (float(x0), float(y0), float(x1), float(y1))
        return cls(category, rle, box, float(len(xs)), centre, colour)

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
