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

import contextlib
import functools
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from geomag.errors import GeoMagError
from geomag.imaging import ImageSource
from geomag.model.registry import DEFAULT_MODEL, create_model, model_key
from geomag.options import ParseOptions
from geomag.outputs import check_output
from geomag.predictor import GeoMagPredictor
from geomag.result import Result
from geomag.sources import ImageInput, PilFileSource, as_source, is_remote, redact

# written without torch (`geomag parse --server` writes with them too), re-exported here
from geomag.writing import (  # noqa: F401  (re-exported: the API a local run writes with)
    OVERLAY_MAX,
    OutputOptions,
    open_image,
    overlay,
    save,
    summary_line,
)

LIBRARIES = logging.getLogger("geomag.libraries")  # what transformers & co. say while a model loads


class _ToLibrariesLog(logging.Handler):
    """transformers' own log records (e.g. "new embeddings ... mean_resizing") to `geomag.libraries`."""

    def emit(self, record: logging.LogRecord) -> None:
        LIBRARIES.debug("%s: %s", record.name, record.getMessage())


@contextlib.contextmanager
def quiet_libraries(progress: bool = False) -> Iterator[None]:
    """Third-party noise while a model loads or runs (transformers' warnings and log lines, its
    "Loading weights" bars) routed to the `geomag.libraries` logger at DEBUG; `progress` keeps the bars."""
    import transformers

    bars = transformers.utils.logging.is_progress_bar_enabled()
    if not progress:
        transformers.utils.logging.disable_progress_bar()
    library_log = logging.getLogger("transformers")
    handlers, propagate = library_log.handlers[:], library_log.propagate
    library_log.handlers, library_log.propagate = [_ToLibrariesLog()], False
    shown = warnings.showwarning

    def to_log(
        message: Warning | str, category: type[Warning], filename: str, lineno: int, *_: object
    ) -> None:
        LIBRARIES.debug("%s: %s (%s:%d)", category.__name__, message, filename, lineno)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = to_log
            warnings.simplefilter("default", FutureWarning)
            yield
    finally:
        warnings.showwarning = shown
        library_log.handlers, library_log.propagate = handlers, propagate
        if bars:
            transformers.utils.logging.enable_progress_bar()


def load_predictor(
    model: str = DEFAULT_MODEL, device: str = "cpu", progress: bool = False
) -> GeoMagPredictor:
    """The predictor of `model` (a registered name, a checkpoint or VLM folder) on `device`, loaded
    once per process (a server keeps the last one); quiet unless `progress`."""
    with quiet_libraries(progress):
        return _predictor(model, device)


@functools.lru_cache(maxsize=1)
def _predictor(model: str, device: str) -> GeoMagPredictor:
    return GeoMagPredictor(create_model(model, device=device), model_name=str(model))


def check_pixels(source: ImageSource) -> ImageSource:
    """Decode a PNG / JPEG now (it is decoded once either way), so that a truncated file is one
    error before any model is built, not after. Windowed rasters were checked when opened."""
    if isinstance(source, PilFileSource):
        source.read(None, (1, 1))
    return source


def parse(
    image: ImageInput | ImageSource,
    prompt: str,
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    options: ParseOptions | None = None,
    progress: bool = False,
    **option_values: object,
) -> Result:
    """Parse one prompt about one image. `option_values` are `ParseOptions` fields (granularity,
    magcrop, pixel_saliency, candidates, zoom, max_new_tokens, device, ...). Quiet: the libraries'
    warnings go to the `geomag.libraries` logger; `progress=True` shows the model's loading bars."""
    options = (options or ParseOptions()).with_(**option_values)
    if not prompt.strip():
        raise GeoMagError("the prompt is empty")
    source = check_pixels(as_source(image))  # the input first: no model is built for a bad one
    predictor = load_predictor(model_key(model), options.device, progress)
    predictor.set_image(source)
    with quiet_libraries(progress=True):  # warnings only: no bars to hide once loaded
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
    source = check_pixels(open_image(image, bands, nodata, outputs))
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
