"""One job on one predictor: open (a window of) the image, predict, and return plain data.

What a job gives back is JSON-ready (masks as COCO RLE), so the local engine and Ray's actors hand
the same thing to the driver, which alone writes files (a cluster's workers need no shared disk).
A job that fails (an unreadable image, a refused option) gives an error record; the batch goes on.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from affine import Affine

from geomag.batch.jobs import BatchSettings, Job
from geomag.batch.window import WindowSource
from geomag.data.samples import mask_to_rle
from geomag.errors import GeoMagError
from geomag.imaging import Box, ImageSource
from geomag.options import ParseOptions
from geomag.predictor import GeoMagPredictor
from geomag.result import Result
from geomag.sources import RasterSource, is_remote, open_source, redact

Output = dict[str, Any]  # one results.jsonl record, masks still as RLE under "masks"[i]["rle"]


def job_header(job: Job) -> Output:
    """What every record of `job` starts with; a remote input's URL without its secrets, and for a
    STAC asset the item id, asset key and the item's href (`input` is the asset's href)."""
    header: Output = {
        "key": job.key,
        "input": redact(job.image) if is_remote(job.image) else job.image,
        "window": None if job.window is None else list(job.window),
        "prompt": job.prompt,
    }
    if job.stac is not None:
        header.update(item=job.stac.item, asset=job.stac.asset, item_href=job.stac.item_href)
    return header


def error_output(job: Job, exc: BaseException) -> Output:
    message = str(exc) if isinstance(exc, GeoMagError) else f"{type(exc).__name__}: {exc}"
    return {**job_header(job), "granularity": job.granularity, "error": message}


class JobRunner:
    """Runs jobs on one predictor, keeping the last opened input (the windows of one raster share it)."""

    def __init__(self, predictor: GeoMagPredictor, settings: BatchSettings) -> None:
        self.predictor = predictor
        self.settings = settings
        self._options: dict[str | None, ParseOptions] = {}
        self._opened: tuple[str, ImageSource] | None = None
        self._current: tuple[str, tuple[int, int, int, int] | None] | None = None

    def options(self, granularity: str | None) -> ParseOptions:
        if granularity not in self._options:
            self._options[granularity] = ParseOptions.from_dict(self.settings.job_options(granularity))
        return self._options[granularity]

    def _source(self, image: str) -> ImageSource:
        if self._opened is None or self._opened[0] != image:
            self._opened = None
            self._opened = (image, open_source(image, bands=self.settings.bands, nodata=self.settings.nodata))
        return self._opened[1]

    def run(self, job: Job) -> Output:
        """The record of `job`: its result, or its error."""
        try:
            return self._run(job)
        except Exception as exc:  # a bad input is an error line, not the end of the batch
            self._current = None
            return error_output(job, exc)

    def _run(self, job: Job) -> Output:
        t_start = time.perf_counter()
        options = self.options(job.granularity)
        parent = self._source(job.image)
        source: ImageSource = parent
        offset = (0, 0)
        if job.window is not None:
            box = Box(*job.window)
            source, offset = WindowSource(parent, box), (box.x0, box.y0)
        if self._current != (job.image, job.window):
            self._current = None
            self.predictor.set_image(source)  # views and tile features are kept for the next prompt
            self._current = (job.image, job.window)
        t = time.perf_counter()
        result = self.predictor.predict(job.prompt, options)
        timings = {"read": t - t_start, **result.timings, "job": time.perf_counter() - t_start}
        dx, dy = offset
        masks = []
        for i, m in enumerate(result.masks):
            entry = _mask_entry(result, i, dx, dy)
            entry["rle"] = mask_to_rle(m)
            masks.append(entry)
        record: Output = {
            **job_header(job),
            "granularity": result.granularity,
            "text": result.text,
            "display_text": result.display_text,  # each [SEG] as "[mask N]" (the vectors' text field)
            "boxes": {k: [b.x0 + dx, b.y0 + dy, b.x1 + dx, b.y1 + dy] for k, b in result.boxes.items()},
            "masks": masks,
            "scores": [round(float(s), 4) for s in result.scores],
            # why a pixel prompt gave no mask, and how many duplicate masks were merged (the predictor's)
            **{k: result.extra[k] for k in ("no_mask", "duplicates_merged") if k in result.extra},
            "image_size": list(result.image_size),
            "input_size": list(parent.size),
        }
        if isinstance(parent, RasterSource) and parent.is_georeferenced:
            transform = parent.transform @ Affine.translation(dx, dy)
            record["crs"] = parent.crs.to_string()
            record["transform"] = [float(v) for v in list(transform)[:6]]
        record["timings"] = {k: round(float(v), 4) for k, v in timings.items()}
        return record


def _mask_entry(result: Result, i: int, dx: int, dy: int) -> dict[str, Any]:
    """index, phrase, score, area and bbox (in the input's pixels) of mask `i`."""
    m = result.masks[i]
    ys, xs = np.nonzero(m)
    bbox = (
        None
        if xs.size == 0
        else [int(xs.min()) + dx, int(ys.min()) + dy, int(xs.max()) + 1 + dx, int(ys.max()) + 1 + dy]
    )
    entry: dict[str, Any] = {"index": i, "area": int(m.sum()), "bbox": bbox}
    if i < len(result.phrases):
        entry["phrase"] = result.phrases[i]
    if i < len(result.scores):
        entry["score"] = round(float(result.scores[i]), 4)
    return entry
