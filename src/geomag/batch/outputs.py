"""Per-job mask files, written by the driver from what a job gave back (masks as COCO RLE).

masks/<key16>_<i>.tif for georeferenced inputs (the job's window placed on the map, so each opens
in QGIS on its own), masks/<key16>_<i>.png (0/255) for the rest; stac/<key16>.json, the job's
STAC Item (`geomag.batch.stac_items`). Files appear whole or not at all
(a temporary name, then a rename), and before the job's line in results.jsonl: a line always names
files that exist.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from geomag.batch.geometry import record_transform
from geomag.batch.jobs import BatchSettings
from geomag.batch.stac_items import write_result_item
from geomag.geoio import public_file, write_mask_geotiff

MASK_DIR = "masks"


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """A COCO RLE (counts as str) -> bool (h, w) mask."""
    return mask_utils.decode({"size": list(rle["size"]), "counts": rle["counts"].encode()}).astype(bool)


def _write_png(mask: np.ndarray, path: Path) -> None:
    grey = np.zeros(mask.shape, dtype=np.uint8)
    grey[mask] = 255
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(grey).save(tmp, format="PNG", compress_level=1)
        public_file(tmp)  # mkstemp's 0600 -> the mode of every other output
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_job_files(
    output: dict[str, Any],
    out_dir: Path,
    settings: BatchSettings | None = None,
    stac: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The results.jsonl record of a job's output: its masks written to files, named under "file",
    and its STAC Item (`stac`: the job's source item, if any), named under "stac_item"."""
    if "error" in output:
        return output
    folder = out_dir / MASK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    transform = record_transform(output)
    masks = []
    decoded = []
    for entry in output.get("masks", []):
        entry = dict(entry)
        mask = decode_rle(entry.pop("rle"))
        decoded.append(mask)
        stem = f"{output['key'][:16]}_{entry['index']:02d}"
        if transform is not None:
            path = folder / f"{stem}.tif"
            profile = {
                "crs": output["crs"],
                "transform": transform,
                "width": mask.shape[1],
                "height": mask.shape[0],
            }
            write_mask_geotiff(mask, path, profile)
        else:
            path = folder / f"{stem}.png"
            _write_png(mask, path)
        entry["file"] = f"{MASK_DIR}/{path.name}"
        masks.append(entry)
    record = {**output, "masks": masks}
    record["stac_item"] = write_result_item(record, decoded, out_dir, settings, stac)
    return record
