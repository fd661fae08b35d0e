"""Where a job's masks lie: the transform of a record's window and a mask's pixels as polygons
(shared by the per-job outputs, the merged vector layer and the STAC items)."""

from __future__ import annotations

from typing import Any

import numpy as np
import rasterio.features
import shapely
import shapely.geometry
from affine import Affine


def record_transform(record: dict[str, Any]) -> Affine | None:
    """The transform of a job's image (a window's, for windows), None when not georeferenced."""
    t = record.get("transform")
    return None if t is None else Affine(*t)


def mask_geometry(mask: np.ndarray, transform: Any) -> shapely.Geometry | None:
    """The pixels of `mask` as one (multi)polygon in the coordinates of `transform`."""
    if not mask.any():
        return None
    shapes = rasterio.features.shapes(mask.astype(np.uint8), mask=mask, connectivity=4, transform=transform)
    return shapely.make_valid(shapely.union_all([shapely.geometry.shape(g) for g, _ in shapes]))
