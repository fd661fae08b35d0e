"""The Python API: `geomag.parse(image, prompt)` and what the CLI and the server write with it.

    import geomag
    result = geomag.parse("examples/tennis_courts_P0224.png", "Segment the tennis court on the left.")
    print(result.text, result.boxes, len(result.masks))
    geomag.save(result, "out")

`parse` loads the model once per process (`load_predictor`), opens the image with the one reader
(`geomag.sources`) and predicts with `GeoMagPredictor`; `parse_to_folder` is the whole `geomag parse`
job (checks the output folder before any model work, writes everything through a staging folder),
shared by the CLI and `geomag serve`, so the two give the same files for the same input.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from geomag.errors import GeoMagError
from geomag.geoio import check_geo_outputs, save_geo_outputs
from geomag.imaging import ImageSource, draw_boxes, nearest_mask, overlay_masks
from geomag.model.registry import DEFAULT_MODEL, create_model, model_key
from geomag.options import ParseOptions
from geomag.outputs import check_out_dir, staged_output
from geomag.predictor import GeoMagPredictor
from geomag.result import Result
from geomag.sources import ImageInput, open_source

# longest side of overlay.png: a 4K input keeps its overlay at full size; a 20000 px raster gets a
# 4096 px one (an 8192 px overlay took ~0.8 GB of RSS: benchmarks/parse_huge.py)
OVERLAY_MAX = 4096
RESULT_FILES = ("result.json", "overlay.png")


@dataclass(frozen=True)
class OutputOptions:
    """What a parse writes besides result.json, the mask PNGs and overlay.png."""

    geojson: bool = False  # masks.geojson + boxes.geojson (pixel coordinates without a CRS)
    wgs84: bool = False  # GeoJSON in WGS84 (implies geojson; needs a georeferenced input)
    mask_geotiff: bool = False  # mask_XX.tif on the input's grid (georeferenced input only)
    overwrite: bool = False  # write into a non-empty output folder


@functools.lru_cache(maxsize=1)
def load_predictor(model: str = DEFAULT_MODEL, device: str = "cpu") -> GeoMagPredictor:
    """The predictor of `model` (a registered name, a checkpoint or VLM folder) on `device`, loaded
    once per process (a server keeps the last one)."""
    return GeoMagPredictor(create_model(model, device=device), model_name=str(model))


def parse(
    image: ImageInput | ImageSource,
    prompt: str,
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    options: ParseOptions | None = None,
    **option_values: object,
) -> Result:
    """Parse one prompt about one image. `option_values` are `ParseOptions` fields (granularity,
    magcrop, pixel_saliency, candidates, zoom, max_new_tokens, device, ...)."""
    options = (options or ParseOptions()).with_(**option_values)
    predictor = load_predictor(model_key(model), options.device)
    predictor.set_image(image)
    return predictor.predict(prompt, options)


def open_image(
    path: str | os.PathLike[str],
    bands: str | Sequence[int] | None = None,
    nodata: float | None = None,
    outputs: OutputOptions = OutputOptions(),
) -> ImageSource:
    """The source of an image file; geo outputs that cannot work with it fail here, before any model."""
    source = open_source(path, bands=bands, nodata=nodata)
    if outputs.geojson or outputs.wgs84 or outputs.mask_geotiff:
        check_geo_outputs(source, wgs84=outputs.wgs84, masks=outputs.mask_geotiff)
    return source


def parse_to_folder(
    image: str | os.PathLike[str],
    prompt: str,
    out: str | os.PathLike[str],
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    options: ParseOptions | None = None,
    outputs: OutputOptions = OutputOptions(),
    bands: str | Sequence[int] | None = None,
    nodata: float | None = None,
    t_start: float | None = None,
) -> Result:
    """The `geomag parse` job: check `out`, parse, write result.json, masks, overlay and geo outputs.
    `t_start` (perf_counter) is when the command started: `timings["total"]` is its wall time."""
    t_start = time.perf_counter() if t_start is None else t_start
    options = options or ParseOptions()
    if not prompt.strip():
        raise GeoMagError("the prompt is empty")
    out = Path(out)
    check_out_dir(out, outputs.overwrite, [Path(image)], RESULT_FILES)
    source = open_image(image, bands, nodata, outputs)
    t = time.perf_counter()
    predictor = load_predictor(model_key(model), options.device)
    load = time.perf_counter() - t
    predictor.set_image(source)
    result = predictor.predict(prompt, options)
    result.timings = {"load": load, **result.timings}
    result.extra = {"image": str(image), **result.extra, "model": str(model)}
    save(result, out, outputs, t_start=t_start)
    return result


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
        check_out_dir(out, outputs.overwrite)
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
    """The picture of a result: the image with its masks tinted and MagCrop's boxes drawn, at most
    `OVERLAY_MAX` px on its longer side."""
    if result.source is None:
        raise GeoMagError("an overlay needs the result's image source")
    width, height = result.image_size
    scale = min(1.0, OVERLAY_MAX / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = result.source.read(None, size if scale < 1 else None)
    masks = result.masks if scale == 1 else [nearest_mask(m, size) for m in result.masks]
    picture = overlay_masks(image, masks) if masks else image
    return draw_boxes(picture, result.boxes, (size[0] / width, size[1] / height) if scale < 1 else (1.0, 1.0))


def summary_line(result: Result, out: str | os.PathLike[str]) -> str:
    """What `geomag parse` prints: the answer, then granularity, masks, wall time and folder."""
    total = result.timings.get("total", 0.0)
    return f"{result.text}\n[{result.granularity}] {len(result.masks)} mask(s), {total:.2f} s -> {out}\n"
