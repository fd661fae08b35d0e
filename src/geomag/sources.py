"""The one reader of image files: every surface, MagCrop, training and eval get their pixels here.

Why one: the same file must reach the model as the same pixels whether it is parsed, cropped,
trained on or evaluated (a test says so). `open_source(path)` gives an `ImageSource`:
- rasters rasterio opens (GeoTIFF, COG, VRT, ...) -> `RasterSource`, read by window and decimated
  by GDAL, so a raster larger than memory is never decoded whole;
- PNG / JPEG / other formats PIL reads -> `PilFileSource`: the header is read first and the image is
  decoded (once, on first read) only when its pixel count is within `ReadLimits.decoded_pixels`;
- remote rasters (`https://`, `s3://`, `/vsicurl/`, `/vsis3/`) -> `RasterSource` too: GDAL reads
  them with HTTP range requests, window by window like a local file (docs/batch.md, "Remote").
`as_source` also takes a PIL image, a numpy array or an existing ImageSource; `load_image(path)` is
the whole image as 8-bit RGB (training and eval read small images this way).
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine
from PIL import Image, UnidentifiedImageError
from rasterio.enums import Resampling
from rasterio.windows import Window

from geomag.errors import GeoMagError
from geomag.imaging import Box, ImageSource, PilSource, to_uint8

RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".jp2", ".img"}
STATS_SIZE = 1024  # longest side of the decimated read the percentile stretch is computed from
# GDAL's block cache defaults to 5% of RAM; a decimated read of a raster without overviews would fill
# it with tiles it never needs again. 256 MiB keeps a huge raster's reads small at no measured cost.
GDAL_CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class ReadLimits:
    """Sizes an image file may have, checked from its header before any pixel is decoded.

    decoded_pixels: formats decoded whole (PNG, JPEG, ...): 120 MP is ~360 MB as RGB; larger images
    should be a tiled GeoTIFF (read by window). raster_pixels: windowed rasters, a sanity bound.
    """

    decoded_pixels: int = 120_000_000
    raster_pixels: int = 40_000_000_000
    file_bytes: int | None = None  # None: any size on disk


DEFAULT_LIMITS = ReadLimits()


def _check_pixels(path: Path | str, width: int, height: int, limit: int, hint: str) -> None:
    if width < 1 or height < 1:
        raise GeoMagError(f"{path} has zero size ({width}x{height})")
    if width * height > limit:
        raise GeoMagError(
            f"{path} is {width}x{height} ({width * height / 1e6:.0f} MP), over the limit of "
            f"{limit / 1e6:.0f} MP for {hint}"
        )


# --- remote rasters ------------------------------------------------------------------------------
REMOTE_PREFIXES = ("http://", "https://", "s3://", "/vsicurl/", "/vsis3/")
# GDAL's settings for reading over HTTP, used where the user's environment does not set them: no
# directory listing at open (one request instead of a listing per file), retries with GDAL's
# exponential backoff for transient errors (429, 500, 502, 503, 504), a timeout instead of a hang,
# neighbouring tile ranges merged into one request.
REMOTE_DEFAULTS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_CONNECTTIMEOUT": "15",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "CPL_VSIL_CURL_CACHE_SIZE": str(64 * 2**20),  # the regions already fetched, kept per process
}
WHOLE_READ_SIDE = 2048  # a remote raster up to this side without overviews is fine to read whole
# query parameters that carry secrets (presigned S3, Azure SAS, API keys): never written or shown
SECRET_PARAMS = re.compile(r"(signature|credential|security-token|token|sig|key|secret|password|auth)", re.I)


def is_remote(path: object) -> bool:
    """True for an https:// / http:// / s3:// URL or a GDAL /vsicurl/ / /vsis3/ path."""
    return isinstance(path, str) and path.strip().lower().startswith(REMOTE_PREFIXES)


def gdal_path(url: str) -> str:
    """The GDAL path of a remote raster: https://h/k -> /vsicurl/https://h/k, s3://b/k -> /vsis3/b/k.
    GDAL then reads the credentials and endpoint itself (AWS_*, AWS_S3_ENDPOINT, GDAL_HTTP_*)."""
    url = url.strip()
    lower = url.lower()
    if lower.startswith(("http://", "https://")):
        return "/vsicurl/" + url
    if lower.startswith("s3://"):
        return "/vsis3/" + url[len("s3://") :]
    return url


def redact(url: str) -> str:
    """`url` without what may be a secret (user:password@, signature / token / key parameters): what
    results, errors and logs show of a remote input."""
    prefix = ""
    for vsi in ("/vsicurl/", "/vsis3/"):
        if url.startswith(vsi) and "://" in url:
            prefix, url = vsi, url[len(vsi) :]
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return prefix + url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = [(k, "REDACTED" if SECRET_PARAMS.search(k) else v) for k, v in parse_qsl(parts.query, True)]
    return prefix + urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/:"), ""))


def remote_options() -> dict[str, str]:
    """GDAL config options for remote reads: `REMOTE_DEFAULTS` the environment does not set, and the
    endpoint of boto's AWS_ENDPOINT_URL(_S3) as GDAL's AWS_S3_ENDPOINT / AWS_HTTPS."""
    options = {k: v for k, v in REMOTE_DEFAULTS.items() if k not in os.environ}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and "AWS_S3_ENDPOINT" not in os.environ:
        parts = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        options["AWS_S3_ENDPOINT"] = parts.netloc + parts.path.rstrip("/")
        options.setdefault("AWS_HTTPS", "YES" if parts.scheme == "https" else "NO")
        options.setdefault("AWS_VIRTUAL_HOSTING", "FALSE")
    return options


SECRET_VALUES = re.compile(
    r"((?:signature|credential|security-token|token|sig|key|secret|password|auth)[\w-]*=)[^&\s'\"]+", re.I
)


def remote_error(name: str, message: str, raw: Sequence[str] = ()) -> str:
    """One line that says what went wrong reading the remote raster `name` (GDAL's message, read);
    `raw`: the unredacted forms of its URL, cut out of GDAL's message with any secret value."""
    for form in sorted(raw, key=len, reverse=True):
        message = message.replace(form, name)
    message = SECRET_VALUES.sub(r"\1REDACTED", message)
    message = " ".join(message.replace(f"'{name}'", "").replace(name, "").split())
    lower = message.lower()
    code = re.search(r"http (?:response )?code:? (\d{3})", lower)
    status = int(code.group(1)) if code else None
    if status == 404 or "does not exist" in lower or "nosuchkey" in lower or "no such" in lower:
        return f"remote raster not found (HTTP 404): {name}"
    if (
        status in (401, 403)
        or "accessdenied" in lower
        or "access denied" in lower
        or "signaturedoesnotmatch" in lower
    ):
        return (
            f"access denied (HTTP {status or 403}) to {name}: check the credentials GDAL uses "
            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE for s3://, GDAL_HTTP_AUTH / "
            "GDAL_HTTP_HEADERS for https://) or the URL's signature"
        )
    if "range downloading not supported" in lower:
        return (
            f"the server of {name} ignores HTTP Range requests, so it cannot be read by window; "
            "download the file, or serve it from a server that honours Range (object storage, a CDN)"
        )
    if "timed out" in lower or "timeout" in lower:
        timeout = os.environ.get("GDAL_HTTP_TIMEOUT", REMOTE_DEFAULTS["GDAL_HTTP_TIMEOUT"])
        return f"reading {name} timed out ({timeout} s; set GDAL_HTTP_TIMEOUT to wait longer)"
    if status is not None and (status >= 500 or status == 429):
        retries = os.environ.get("GDAL_HTTP_MAX_RETRY", REMOTE_DEFAULTS["GDAL_HTTP_MAX_RETRY"])
        return f"the server of {name} answered HTTP {status} after {retries} retries; try again later"
    if "could not resolve" in lower or "couldn't connect" in lower or "connection refused" in lower:
        return f"cannot connect to the server of {name} ({message})"
    return f"cannot read {name} as a raster: {message}"


def _remote_layout_problem(src: Any) -> str | None:
    """Why an open remote raster would be read whole ('striped', 'no overviews'), None for a COG."""
    if src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT", "").upper() == "COG":
        return None
    problems = []
    block_h, block_w = src.block_shapes[0]
    if block_w >= src.width and src.height > block_h:
        problems.append("striped, not tiled")
    if max(src.width, src.height) > WHOLE_READ_SIDE and not src.overviews(1):
        problems.append("no overviews")
    return ", ".join(problems) or None


def parse_bands(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """'3,2,1' (CLI) or (3, 2, 1) -> (3, 2, 1); 1-based like GDAL. One band (grey) or three (RGB)."""
    if text is None:
        return None
    if isinstance(text, str):
        try:
            bands = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
        except ValueError:
            raise GeoMagError(f"--bands {text!r}: give 1-based band numbers like 3,2,1") from None
    else:
        bands = tuple(int(b) for b in text)
    if len(bands) not in (1, 3):
        raise GeoMagError(f"--bands {text!r}: choose one band (grey) or three (red,green,blue), e.g. 3,2,1")
    if min(bands) < 1:
        raise GeoMagError(f"--bands {text!r}: band numbers start at 1 (like GDAL)")
    return bands


class RasterSource:
    """ImageSource over a raster file (GeoTIFF, COG, ...) read with rasterio, window by window.

    `read(box, out_size)` reads only the window of `box`, decimated to `out_size` by GDAL (which uses
    the file's overviews when it has them). Non-8-bit data is stretched with per-band percentiles that
    are computed ONCE from a decimated read of the whole raster, so all windows share one stretch.
    Nodata pixels (every selected band equal to nodata, or not finite) become 0 and are left out of
    the percentiles.
    """

    def __init__(
        self,
        path: str | Path,
        bands: str | Sequence[int] | None = None,
        nodata: float | None = None,
        stretch: tuple[float, float] = (2.0, 98.0),
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> None:
        self.remote = is_remote(path)
        if self.remote:  # the URL as given; `name` (what messages and results show) is redacted
            self.path: Path | str = str(path).strip()
            self._gdal_path, self.name = gdal_path(self.path), redact(self.path)
        else:
            self.path = Path(path)
            if not self.path.is_file():
                raise GeoMagError(f"raster not found: {self.path}")
            self._gdal_path, self.name = str(self.path), str(self.path)
        self._short = PurePosixPath(self.name.split("?", 1)[0]).name
        layout_problem = None
        # a remote raster stays open: GDAL's block cache then serves the tiles a later read of the
        # same parse needs again (its /vsicurl/ cache does not outlive a handle); a local file is
        # opened per read
        self._dataset: Any = None
        self._lock = threading.Lock()
        try:
            with warnings.catch_warnings():  # we report a missing CRS ourselves, where it matters
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with self._env(), self._open() as src:
                    self._width, self._height, self.count = src.width, src.height, src.count
                    dtypes = src.dtypes
                    self.crs = src.crs
                    self.transform: Affine = src.transform
                    self.file_nodata = src.nodata
                    if self.remote:
                        layout_problem = _remote_layout_problem(src)
        except rasterio.errors.RasterioIOError as exc:
            if self.remote:
                raise GeoMagError(remote_error(self.name, str(exc), self._raw_names())) from None
            raise GeoMagError(f"cannot read {self.path} as a raster: {exc}") from None
        _check_pixels(self.name, self._width, self._height, limits.raster_pixels, "rasters")
        if layout_problem is not None:
            # a window read of a striped file fetches whole rows; a view without overviews, everything
            what = f"{self.name} is not a Cloud-Optimized GeoTIFF ({layout_problem})"
            if self._width * self._height > limits.decoded_pixels:
                raise GeoMagError(
                    f"{what}: parsing it would fetch all of it, and at {self._width}x{self._height} it is "
                    f"over the limit of {limits.decoded_pixels / 1e6:.0f} MP for images read whole; "
                    "convert it (gdal_translate -of COG, rio cogeo create) or download it"
                )
            warnings.warn(f"{what}: it will be read whole over the network", stacklevel=3)
        self.bands = self._choose_bands(parse_bands(bands))
        self.dtype = np.result_type(*(dtypes[b - 1] for b in self.bands))  # of the selected bands
        self.nodata = self.file_nodata if nodata is None else float(nodata)
        # GDAL honours the file's own nodata when it resamples, but not an override: then we resample
        # with nearest neighbour so nodata pixels never blend into valid ones.
        self._nodata_override = nodata is not None
        # the last pixel's block: a truncated file fails here, at open, not in the middle of a job
        self._read_array(
            Box(self._width - 1, self._height - 1, self._width, self._height), (1, 1), Resampling.nearest
        )
        self.stretch = (float(stretch[0]), float(stretch[1]))
        if not 0 <= self.stretch[0] < self.stretch[1] <= 100:
            raise GeoMagError(f"stretch {stretch}: need 0 <= low < high <= 100 (percentiles)")
        self.limits: np.ndarray | None = None if self.dtype == np.uint8 else self._stretch_limits()

    # ImageSource protocol -------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        return (self._width, self._height)

    def read(self, box: Box | None = None, out_size: tuple[int, int] | None = None) -> Image.Image:
        """The pixels of `box` (default: whole raster) resampled to `out_size` (w, h), as 8-bit RGB."""
        box = Box(0, 0, self._width, self._height) if box is None else box
        if box.x0 < 0 or box.y0 < 0 or box.x1 > self._width or box.y1 > self._height:
            raise GeoMagError(
                f"{self._short}: window {box.to_list()} lies outside the raster "
                f"({self._width}x{self._height} pixels)"
            )
        out_w, out_h = (box.width, box.height) if out_size is None else (int(out_size[0]), int(out_size[1]))
        if out_w < 1 or out_h < 1:
            raise GeoMagError(f"output size {out_size} must be at least 1x1")
        if self._nodata_override:
            resampling = Resampling.nearest
        elif out_w < box.width or out_h < box.height:
            resampling = Resampling.average  # area average when shrinking: no aliasing, exact nodata edges
        else:
            resampling = Resampling.bilinear
        data = self._read_array(box, (out_w, out_h), resampling)
        return Image.fromarray(self._to_rgb(data), "RGB")

    # georeferencing -------------------------------------------------------------------------------
    @property
    def is_georeferenced(self) -> bool:
        """True when the file has a CRS, so outputs can be placed on the map."""
        return self.crs is not None

    @property
    def profile(self) -> dict[str, Any]:
        return {"crs": self.crs, "transform": self.transform, "width": self._width, "height": self._height}

    def __repr__(self) -> str:
        return (
            f"RasterSource({self.name!r}, size={self.size}, bands={self.bands}, dtype={self.dtype}, "
            f"crs={self.crs.to_string() if self.crs else None})"
        )

    # internals ------------------------------------------------------------------------------------
    def _choose_bands(self, bands: tuple[int, ...] | None) -> tuple[int, ...]:
        n = self.count
        if bands is not None:
            if max(bands) > n:
                raise GeoMagError(
                    f"{self.name}: --bands {','.join(map(str, bands))} but the file has {n} band(s)"
                )
            return bands
        if n in (1, 3):
            return tuple(range(1, n + 1))
        if n == 4:
            warnings.warn(
                f"{self._short}: 4 bands, using bands 1-3 as RGB (choose with --bands)", stacklevel=3
            )
            return (1, 2, 3)
        raise GeoMagError(
            f"{self.name}: {n} bands; choose three with --bands (e.g. --bands 4,3,2) or one for grey (--bands 1)"
        )

    def _read_array(self, box: Box, out_size: tuple[int, int], resampling: Resampling) -> np.ndarray:
        """(bands, h, w) array of the window, decimated/resampled by GDAL."""
        window = Window(box.x0, box.y0, box.width, box.height)
        shape = (len(self.bands), out_size[1], out_size[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            try:
                with self._env(), self._lock, self._open() as src:
                    return src.read(self.bands, window=window, out_shape=shape, resampling=resampling)
            except (rasterio.errors.RasterioError, OSError) as exc:  # a truncated or damaged file
                if self.remote:
                    raise GeoMagError(
                        f"{remote_error(self.name, str(exc))} (window {box.to_list()})"
                    ) from None
                raise GeoMagError(f"cannot read {self.path} (window {box.to_list()}): {exc}") from None

    @contextmanager
    def _open(self) -> Iterator[Any]:
        """The open dataset: a remote raster's one handle (opened on first use), or the local file
        opened for this read."""
        if not self.remote:
            with rasterio.open(self._gdal_path) as src:
                yield src
            return
        if self._dataset is None:
            self._dataset = rasterio.open(self._gdal_path)
        yield self._dataset

    def _raw_names(self) -> tuple[str, str]:
        return (str(self.path), self._gdal_path)

    def close(self) -> None:
        """Close a remote raster's handle (a later read opens it again)."""
        if self._dataset is not None:
            self._dataset.close()
            self._dataset = None

    def _env(self) -> rasterio.Env:
        """GDAL's settings for a read: the block cache, and for remote rasters `remote_options()`."""
        return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES, **(remote_options() if self.remote else {}))

    def _invalid(self, data: np.ndarray) -> np.ndarray:
        """(h, w) bool: nodata in every selected band, or any band not finite."""
        invalid = np.zeros(data.shape[1:], dtype=bool)
        if np.issubdtype(data.dtype, np.floating):
            invalid |= ~np.isfinite(data).all(axis=0)
        if self.nodata is not None:
            invalid |= (data == self.nodata).all(axis=0)  # compared exactly, no cast of nodata
        return invalid

    def _stretch_limits(self) -> np.ndarray:
        """Per-band (low, high) percentiles of the valid pixels of a decimated read of the whole raster."""
        scale = min(1.0, STATS_SIZE / max(self._width, self._height))
        out = (max(1, round(self._width * scale)), max(1, round(self._height * scale)))
        data = self._read_array(Box(0, 0, self._width, self._height), out, Resampling.nearest)
        valid = ~self._invalid(data)
        limits = np.zeros((len(self.bands), 2), dtype=np.float64)
        for i, band in enumerate(data):
            values = band[valid]
            values = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
            if values.size:
                limits[i] = np.percentile(values, self.stretch)
        return limits

    def _to_rgb(self, data: np.ndarray) -> np.ndarray:
        invalid = self._invalid(data)
        bands_last = np.moveaxis(data, 0, -1)
        if self.limits is not None:
            if invalid.any():
                bands_last = np.where(invalid[..., None], 0, bands_last)
            bands_last = to_uint8(np.nan_to_num(bands_last, nan=0.0), limits=self.limits)
        rgb = np.repeat(bands_last, 3, axis=-1) if bands_last.shape[-1] == 1 else bands_last
        if invalid.any():
            rgb = rgb.copy()
            rgb[invalid] = 0
        return np.ascontiguousarray(rgb, dtype=np.uint8)


class PilFileSource:
    """ImageSource over an image file PIL reads (PNG, JPEG, ...): size from the header, pixels decoded
    once on the first read (after the pixel limit was checked), 16-bit grey stretched like rasters."""

    def __init__(self, path: str | Path, limits: ReadLimits = DEFAULT_LIMITS) -> None:
        self.path = Path(path)
        try:
            with Image.open(self.path) as im:  # reads the header only
                self._size = im.size
        except Image.DecompressionBombError:
            self._size = _header_size(self.path)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise GeoMagError(f"cannot read {self.path} as an image: {exc}") from None
        _check_pixels(
            self.path,
            *self._size,
            limits.decoded_pixels,
            "images decoded whole (convert it to a tiled GeoTIFF)",
        )
        self._image: PilSource | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def read(self, box: Box | None = None, out_size: tuple[int, int] | None = None) -> Image.Image:
        return self._decoded().read(box, out_size)

    def _decoded(self) -> PilSource:
        if self._image is None:
            try:
                with _pil_bomb_check_off(), Image.open(self.path) as im:
                    im.load()
                    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                        grey = to_uint8(np.asarray(im))
                        image = Image.fromarray(np.repeat(grey[..., None], 3, axis=-1), "RGB")
                    else:
                        image = im.convert("RGB")
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                raise GeoMagError(f"cannot read {self.path} as an image: {exc}") from None
            self._image = PilSource(image)
        return self._image

    def __repr__(self) -> str:
        return f"PilFileSource({str(self.path)!r}, size={self.size})"


@contextmanager
def _pil_bomb_check_off() -> Iterator[None]:
    """PIL's own decompression-bomb check off: our `ReadLimits` were checked from the header."""
    max_pixels = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _header_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image PIL refuses to open as a decompression bomb, without decoding it."""
    with _pil_bomb_check_off(), Image.open(path) as im:
        return im.size


def open_source(
    path: str | Path,
    bands: str | Sequence[int] | None = None,
    nodata: float | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> ImageSource:
    """The ImageSource of a file: RasterSource for rasters rasterio opens (.tif, .vrt, ...) and for
    every remote raster (a URL or a GDAL /vsi path, read by GDAL), else PIL."""
    if is_remote(path):
        return RasterSource(str(path), bands=bands, nodata=nodata, limits=limits)
    p = Path(path)
    if not p.is_file():
        raise GeoMagError(f"image not found: {p}")
    if limits.file_bytes is not None and p.stat().st_size > limits.file_bytes:
        raise GeoMagError(f"{p} has {p.stat().st_size} bytes, over the limit of {limits.file_bytes}")
    if p.suffix.lower() in RASTER_SUFFIXES:
        try:
            return RasterSource(p, bands=bands, nodata=nodata, limits=limits)
        except GeoMagError as exc:
            if "cannot read" not in str(exc) or p.suffix.lower() not in {".tif", ".tiff"}:
                raise
            # a TIFF GDAL cannot open may still be one PIL reads (PilFileSource raises if not)
    if bands is not None or nodata is not None:
        raise GeoMagError(f"{p.name}: --bands / --nodata apply to rasters such as GeoTIFF, not to this file")
    return PilFileSource(p, limits)


ImageInput = str | Path | Image.Image | np.ndarray  # or an ImageSource


def as_source(image: ImageInput | ImageSource, limits: ReadLimits = DEFAULT_LIMITS) -> ImageSource:
    """A path, a PIL image, an (H, W[, 3]) uint8 array or an ImageSource -> an ImageSource."""
    if isinstance(image, str | Path):
        return open_source(image, limits=limits)
    if isinstance(image, Image.Image):
        return PilSource(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise GeoMagError(
                f"an image array must be uint8 (H, W) or (H, W, 3), not {image.dtype} {image.shape}"
            )
        return PilSource(Image.fromarray(image))
    if hasattr(image, "read") and hasattr(image, "size"):
        return image
    raise GeoMagError(f"cannot use a {type(image).__name__} as an image")


def load_image(path: str | Path, limits: ReadLimits = DEFAULT_LIMITS) -> Image.Image:
    """The whole image file as 8-bit RGB, read by `open_source` (so the same pixels as a parse)."""
    return open_source(path, limits=limits).read()
