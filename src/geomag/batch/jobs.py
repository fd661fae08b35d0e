"""What a batch does: SOURCE (a folder, a glob, a JSONL/CSV of jobs, a remote raster's URL, a STAC
source: `geomag.batch.catalog`) and prompts -> `Job`s with keys.

A job is one prompt on one image, or on one window of a huge raster (`--tile`). Its key hashes what
its result depends on: the input (a local file's absolute path, size and modification time; a
remote raster's URL; a STAC asset's item id, asset key and href), the window, the prompt, the parse
options (the job's granularity included) and the model, so a rerun skips exactly the jobs whose
result is already in results.jsonl. The device is left out: a result does not depend on where it
ran. A remote input is never downloaded here: the worker that runs a job reads its window.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from geomag.errors import GeoMagError
from geomag.sources import is_remote

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".jp2", ".vrt", ".img"}
JOB_FILE_SUFFIXES = {".jsonl", ".csv"}
JOB_FIELDS = ("image", "prompt", "granularity")
GRANULARITIES = ("image", "region", "pixel")


@dataclass(frozen=True)
class StacRef:
    """The STAC asset a job's image is: its item (id, collection, the item's own href), the asset key,
    and the item's time (for the result's STAC item)."""

    item: str
    asset: str
    item_href: str | None = None
    collection: str | None = None
    datetime: str | None = None
    start_datetime: str | None = None
    end_datetime: str | None = None


@dataclass(frozen=True)
class Job:
    """One prompt on one image (or on the window [x0, y0, x1, y1] of it), and how to parse it."""

    key: str
    image: str  # absolute path, or a remote raster's URL
    prompt: str
    granularity: str | None = None  # the job's own; None: the batch's (or the classifier's)
    window: tuple[int, int, int, int] | None = None
    stac: StacRef | None = None  # the STAC asset the image is, for STAC sources

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["window"] = None if self.window is None else list(self.window)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        window = d.get("window")
        return cls(
            key=str(d["key"]),
            image=str(d["image"]),
            prompt=str(d["prompt"]),
            granularity=d.get("granularity"),
            window=None if window is None else tuple(int(v) for v in window),
            stac=StacRef(**d["stac"]) if d.get("stac") else None,
        )


ImageRef = Path | str  # a local file, or a remote raster's URL (https://, s3://, /vsicurl/, /vsis3/)


@dataclass(frozen=True)
class Request:
    """One line of the job list before keys and windows: an image, a prompt, maybe a granularity."""

    image: ImageRef
    prompt: str
    granularity: str | None = None
    stac: StacRef | None = None


def read_prompts(path: str | os.PathLike[str]) -> list[str]:
    """Prompts of a --prompts file: one per line; blank lines and lines starting with # are skipped."""
    p = Path(path)
    if not p.is_file():
        raise GeoMagError(f"--prompts {p}: no such file")
    prompts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    prompts = [t for t in prompts if t and not t.startswith("#")]
    if not prompts:
        raise GeoMagError(f"--prompts {p} holds no prompt (one per line)")
    return prompts


def find_images(source: str) -> list[ImageRef]:
    """The images of a folder (its files with an image suffix, sorted; not recursive), a glob pattern,
    a single image file or a remote raster's URL (not listed: it is the one image)."""
    if is_remote(source):
        return [source.strip()]
    p = Path(source)
    if p.is_dir():
        images: list[ImageRef] = sorted(
            f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
        what = f"folder {p}"
    elif p.is_file():
        images = [p]
        what = str(p)
    elif glob.has_magic(source):
        images = sorted(Path(f) for f in glob.glob(source, recursive=True) if Path(f).is_file())
        what = f"pattern {source!r}"
    else:
        raise GeoMagError(f"SOURCE {source}: no such file or folder (give a folder, a glob or a JSONL/CSV)")
    if not images:
        raise GeoMagError(f"no images in {what} (suffixes: {', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def _granularity(value: object, where: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in GRANULARITIES:
        raise GeoMagError(f"{where}: granularity must be one of {', '.join(GRANULARITIES)}, not {value!r}")
    return str(value)


def read_job_file(path: Path, prompts: Sequence[str]) -> list[Request]:
    """Requests of a JSONL (one object a line) or CSV (a header row) with the fields image, prompt and
    optionally granularity. Image paths are relative to the file's folder. A row without a prompt
    takes each of `prompts` (--prompt / --prompts)."""
    rows: list[tuple[str, dict]] = []
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or "image" not in reader.fieldnames:
            raise GeoMagError(f"{path}: a job CSV needs a header row with image,prompt[,granularity]")
        rows = [(f"{path.name} row {i}", row) for i, row in enumerate(reader, 2)]
    else:
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise GeoMagError(f"{path.name} line {i}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise GeoMagError(
                    f"{path.name} line {i}: a job is an object with image, prompt[, granularity]"
                )
            rows.append((f"{path.name} line {i}", row))
    requests = []
    for where, row in rows:
        unknown = sorted(k for k in row if k not in JOB_FIELDS and k is not None)
        if unknown:
            raise GeoMagError(
                f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(JOB_FIELDS)}"
            )
        image = str(row.get("image") or "").strip()
        if not image:
            raise GeoMagError(f"{where}: no image")
        if is_remote(image):
            image_path: ImageRef = image
        else:
            image_path = Path(image) if Path(image).is_absolute() else path.parent / image
        prompt = str(row.get("prompt") or "").strip()
        row_prompts = [prompt] if prompt else list(prompts)
        if not row_prompts:
            raise GeoMagError(f"{where}: no prompt (give one in the file, or --prompt / --prompts)")
        granularity = _granularity(row.get("granularity"), where)
        requests += [Request(image_path, t, granularity) for t in row_prompts]
    if not requests:
        raise GeoMagError(f"{path} holds no job")
    return requests


def requests_from(source: str, prompts: Sequence[str]) -> list[Request]:
    """Requests of SOURCE: a JSONL/CSV job list, or images (folder, glob, file) times `prompts`."""
    p = Path(source)
    if p.is_file() and p.suffix.lower() in JOB_FILE_SUFFIXES:
        return read_job_file(p, prompts)
    if not prompts:
        raise GeoMagError("give --prompt TEXT or --prompts FILE (or a JSONL/CSV of jobs as SOURCE)")
    return [Request(image, prompt) for image in find_images(source) for prompt in prompts]


def file_identity(path: ImageRef, stac: StacRef | None = None) -> dict[str, object]:
    """What identifies an input's content cheaply: its absolute path, size and modification time (a
    missing file has none: its job fails when it runs and is keyed by its path alone); a remote
    raster's URL (no request is made); a STAC asset's item id and asset key besides."""
    item = {} if stac is None else {"item": stac.item, "asset": stac.asset}
    if isinstance(path, str):
        return {"input": path, **item}
    absolute = str(path.absolute())
    try:
        st = path.stat()
    except OSError:
        return {"input": absolute, **item}
    return {"input": absolute, "size": st.st_size, "mtime_ns": st.st_mtime_ns, **item}


def job_key(identity: dict[str, object], window: Sequence[int] | None, prompt: str, settings: dict) -> str:
    """The hash of everything a job's result depends on (`settings`: options, model, bands, nodata)."""
    payload = {
        **identity,
        "window": None if window is None else [int(v) for v in window],
        "prompt": prompt,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class BatchSettings:
    """What every job of a batch shares: the model, the parse options and how inputs are read."""

    model: str
    options: dict  # ParseOptions.to_dict() of the batch (a job's granularity overrides its own)
    tile: int | None = None  # windows of huge rasters (None: every image whole)
    overlap: int = 0
    bands: str | None = None
    nodata: float | None = None

    def fingerprint(self) -> dict[str, object]:
        """What a rerun must share with the first run (batch.json); the device may change."""
        d = asdict(self)
        d["options"] = {k: v for k, v in self.options.items() if k != "device"}
        return d

    def job_options(self, granularity: str | None) -> dict:
        """The ParseOptions dict of a job with this granularity."""
        return {**self.options, **({"granularity": granularity} if granularity else {})}

    def key_settings(self, granularity: str | None) -> dict[str, object]:
        d = self.fingerprint()
        d["options"] = {k: v for k, v in self.job_options(granularity).items() if k != "device"}
        return d


def raster_windows(path: ImageRef, settings: BatchSettings) -> list[tuple[int, int, int, int] | None]:
    """The windows of a raster larger than --tile; [None] (the whole image) for anything else,
    including files that cannot be opened: their jobs fail when they run, as error lines. A remote
    raster's header is read here (a few KB), never its pixels."""
    from geomag.sources import RasterSource, open_source

    if settings.tile is None:
        return [None]
    try:
        source = open_source(path, bands=settings.bands, nodata=settings.nodata)
    except GeoMagError:
        return [None]
    w, h = source.size
    if not isinstance(source, RasterSource) or (w <= settings.tile and h <= settings.tile):
        return [None]
    from geomag.batch.window import tile_grid

    return [b.to_tuple() for b in tile_grid(source.size, settings.tile, settings.overlap)]


def make_jobs(requests: Sequence[Request], settings: BatchSettings) -> list[Job]:
    """The jobs of `requests` in order (an image's windows, then the next prompt on it), with keys;
    a request that repeats an earlier one (same image, prompt and granularity) is one job."""
    windows: dict[ImageRef, list[tuple[int, int, int, int] | None]] = {}
    identities: dict[tuple[ImageRef, StacRef | None], dict[str, object]] = {}
    jobs: dict[str, Job] = {}
    for r in requests:
        if r.image not in windows:
            windows[r.image] = raster_windows(r.image, settings)
        if (r.image, r.stac) not in identities:
            identities[r.image, r.stac] = file_identity(r.image, r.stac)
        key_settings = settings.key_settings(r.granularity)
        image = r.image if isinstance(r.image, str) else str(r.image.absolute())
        for window in windows[r.image]:
            key = job_key(identities[r.image, r.stac], window, r.prompt, key_settings)
            jobs.setdefault(key, Job(key, image, r.prompt, r.granularity, window, r.stac))
    return list(jobs.values())
