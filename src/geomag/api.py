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
from pathlib import Path

from geomag.errors import GeoMagError
from geomag.imaging import ImageSource
from geomag.model.registry import DEFAULT_MODEL, create_model, model_key
from geomag.options import ParseOptions
from geomag.outputs import check_output
from geomag.predictor import GeoMagPredictor
from geomag.result import Result
from geomag.sources import ImageInput, is_remote, redact

# written without torch (`geomag parse --server` writes with them too), re-exported here
from geomag.writing import (  # noqa: F401  (re-exported: the API a local run writes with)
    OVERLAY_MAX,
    OutputOptions,
    open_image,
    overlay,
    save,
    summary_line,
)


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
    check_output(out, outputs.overwrite, [] if is_remote(image) else [Path(image)])
    source = open_image(image, bands, nodata, outputs)
    t = time.perf_counter()
    predictor = load_predictor(model_key(model), options.device)
    load = time.perf_counter() - t
    predictor.set_image(source)
    result = predictor.predict(prompt, options)
    result.timings = {"load": load, **result.timings}
    shown = redact(str(image)) if is_remote(image) else str(image)  # no secret of a URL in result.json
    result.extra = {"image": shown, **result.extra, "model": str(model)}
    save(result, out, outputs, t_start=t_start)
    return result
