"""What a parse writes: result.json, one PNG per mask, overlay.png and the geo outputs.

A module of its own, below the predictor, so that writing a `Result` needs no torch: `geomag parse
--server URL` rebuilds the server's Result on the client and writes the same files a local run
writes, with the same code, in a process that starts in a fraction of a second. `geomag.api`
re-exports everything here (`geomag.api.save` is this `save`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from geomag.errors import GeoMagError
from geomag.geoio import check_geo_outputs, save_geo_outputs
from geomag.imaging import ImageSource, draw_boxes, nearest_mask, outline_masks, overlay_masks
from geomag.outputs import check_output, staged_output
from geomag.result import Result
from geomag.sources import open_source

# longest side of overlay.png: a 4K input keeps its overlay at full size; a 20000 px raster gets a
# 4096 px one (an 8192 px overlay took ~0.8 GB of RSS: benchmarks/parse_huge.py)
OVERLAY_MAX = 4096
LABEL_CHARS = 40  # a longer phrase is cut on the overlay (result.json keeps it whole)


@dataclass(frozen=True)
class OutputOptions:
    """What a parse writes besides result.json, the mask PNGs and overlay.png."""

    geojson: bool = False  # masks.geojson + boxes.geojson (pixel coordinates without a CRS)
    wgs84: bool = False  # GeoJSON in WGS84 (implies geojson; needs a georeferenced input)
    mask_geotiff: bool = False  # mask_XX.tif on the input's grid (georeferenced input only)
    overwrite: bool = False  # write into a non-empty output folder


def open_image(
    path: str | os.PathLike[str],
    bands: str | Sequence[int] | None = None,
    nodata: float | None = None,
    outputs: OutputOptions = OutputOptions(),
) -> ImageSource:
    """The source of an image file (the one reader); geo outputs that cannot work with it fail here,
    before any model work, and a missing CRS is warned about once (local and `--server` runs alike)."""
    source = open_source(path, bands=bands, nodata=nodata)
    if outputs.geojson or outputs.wgs84 or outputs.mask_geotiff:
        check_geo_outputs(source, wgs84=outputs.wgs84, masks=outputs.mask_geotiff)
    return source


def save(
    result: Result,
    out: str | os.PathLike[str],
    outputs: OutputOptions = OutputOptions(),
    t_start: float | None = None,
) -> Path:
    """Write result.json, one PNG per mask, overlay.png (the masks and MagCrop's boxes on the image)
    and the geo outputs `outputs` asks for into `out`, all or nothing (a staging folder)."""
    out = Path(out)
    if t_start is None:
        check_output(out, outputs.overwrite)
    with staged_output(out, prefix="geomag-parse-") as staged:
        overlay(result).save(staged / "overlay.png", compress_level=1)  # zlib 1: a 4K overlay in ~0.4 s
        if outputs.geojson or outputs.wgs84 or outputs.mask_geotiff:
            if result.source is None:
                raise GeoMagError("geo outputs need the result's image source (parse a file)")
            save_geo_outputs(
                result,
                result.source,
                staged,
                wgs84=outputs.wgs84,
                geojson=outputs.geojson or outputs.wgs84,
                mask_geotiff=outputs.mask_geotiff,
            )
        if t_start is not None:
            result.timings["total"] = time.perf_counter() - t_start
        result.save(staged)
    return out / "result.json"


def overlay(result: Result) -> Image.Image:
    """The picture of a result: the image with its masks tinted, outlined and labelled (index and
    phrase) and MagCrop's boxes drawn, at most `OVERLAY_MAX` px on its longer side. Lines and labels
    grow with the picture, so a small mask on a 4K image can be found (`geomag.imaging.outline_masks`)."""
    if result.source is None:
        raise GeoMagError("an overlay needs the result's image source")
    width, height = result.image_size
    scale = min(1.0, OVERLAY_MAX / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = result.source.read(None, size if scale < 1 else None)
    masks = result.masks if scale == 1 else [_shrunk(m, size) for m in result.masks]
    picture = overlay_masks(image, masks) if masks else image
    picture = draw_boxes(
        picture, result.boxes, (size[0] / width, size[1] / height) if scale < 1 else (1.0, 1.0)
    )
    return outline_masks(picture, masks, mask_labels(result)) if masks else picture


def mask_labels(result: Result) -> list[str]:
    """What the overlay writes by each mask: its number, as the text refers to it ("[mask 1]" is
    mask_00.png), and its phrase, if any."""
    phrases = result.phrases
    labels = []
    for i in range(len(result.masks)):
        phrase = phrases[i] if i < len(phrases) else ""
        phrase = phrase if len(phrase) <= LABEL_CHARS else phrase[: LABEL_CHARS - 1] + "…"
        labels.append(f"{i + 1}: {phrase}" if phrase else f"mask {i + 1}")
    return labels


def _shrunk(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A mask reduced to the overlay's size; one smaller than a pixel of it keeps its centre pixel
    (nearest neighbour alone would drop it, and the overlay would not show it at all)."""
    small = nearest_mask(mask, size)
    if not small.any():
        ys, xs = np.nonzero(mask)
        if ys.size:
            h, w = np.shape(mask)
            row = min(size[1] - 1, int(ys.mean() * size[1] / h))
            small[row, min(size[0] - 1, int(xs.mean() * size[0] / w))] = True
    return small


def mask_note(result: Result) -> str:
    """The masks in words: how many (and how many duplicates were merged into them), or, for a pixel
    prompt without any, why there is none (`extra["no_mask"]`, set by the predictor)."""
    n = len(result.masks)
    if n == 0 and result.extra.get("no_mask"):
        return f"no mask: {result.extra['no_mask']}"
    note = f"{n} mask" + ("" if n == 1 else "s")
    merged = int(result.extra.get("duplicates_merged", 0))
    if merged:
        note += f" ({merged} duplicate{'' if merged == 1 else 's'} merged)"
    return note


def summary_line(result: Result, out: str | os.PathLike[str]) -> str:
    """What `geomag parse` prints: the answer (each [SEG] as its phrase and mask number), then
    granularity, masks (or why none), wall time and folder."""
    total = result.timings.get("total", 0.0)
    return f"{result.display_text}\n[{result.granularity}] {mask_note(result)}, {total:.2f} s -> {out}\n"
