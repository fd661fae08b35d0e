"""The one reader of image files: every surface, MagCrop, training and eval get their pixels here.

Why one: the same file must reach the model as the same pixels whether it is parsed, cropped,
trained on or evaluated (a test says so). `open_source(path)` gives an `ImageSource`:
- rasters rasterio opens (GeoTIFF, COG, VRT, ...) -> `RasterSource`, read by window and decimated
  by GDAL, so a raster larger than memory is never decoded whole;
- PNG / JPEG / other formats PIL reads -> `PilFileSource`: the header is read first and the image is
  decoded (once, on first read) only when its pixel count is within `ReadLimits.decoded_pixels`.
`as_source` also takes a PIL image, a numpy array or an existing ImageSource; `load_image(path)` is
the whole image as 8-bit RGB (training and eval read small images this way).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _check_pixels(path: Path, width: int, height: int, limit: int, hint: str) -> None:
    if width < 1 or height < 1:
        raise GeoMagError(f"{path} has zero size ({width}x{height})")
    if width * height > limit:
        raise GeoMagError(
            f"{path} is {width}x{height} ({width * height / 1e6:.0f} MP), over the limit of "
            f"{limit / 1e6:.0f} MP for {hint}"
        )


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
        self.path = Path(path)
        if not self.path.is_file():
            raise GeoMagError(f"raster not found: {self.path}")
        try:
            with warnings.catch_warnings():  # we report a missing CRS ourselves, where it matters
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(self.path) as src:
                    self._width, self._height, self.count = src.width, src.height, src.count
                    dtypes = src.dtypes
                    self.crs = src.crs
                    self.transform: Affine = src.transform
                    self.file_nodata = src.nodata
        except rasterio.errors.RasterioIOError as exc:
            raise GeoMagError(f"cannot read {self.path} as a raster: {exc}") from None
        _check_pixels(self.path, self._width, self._height, limits.raster_pixels, "rasters")
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
                f"{self.path.name}: window {box.to_list()} lies outside the raster "
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
            f"RasterSource({str(self.path)!r}, size={self.size}, bands={self.bands}, dtype={self.dtype}, "
            f"crs={self.crs.to_string() if self.crs else None})"
        )

    # internals ------------------------------------------------------------------------------------
    def _choose_bands(self, bands: tuple[int, ...] | None) -> tuple[int, ...]:
        n = self.count
        if bands is not None:
            if max(bands) > n:
                raise GeoMagError(
                    f"{self.path}: --bands {','.join(map(str, bands))} but the file has {n} band(s)"
                )
            return bands
        if n in (1, 3):
            return tuple(range(1, n + 1))
        if n == 4:
            warnings.warn(
                f"{self.path.name}: 4 bands, using bands 1-3 as RGB (choose with --bands)", stacklevel=3
            )
            return (1, 2, 3)
        raise GeoMagError(
            f"{self.path}: {n} bands; choose three with --bands (e.g. --bands 4,3,2) or one for grey (--bands 1)"
        )

    def _read_array(self, box: Box, out_size: tuple[int, int], resampling: Resampling) -> np.ndarray:
        """(bands, h, w) array of the window, decimated/resampled by GDAL."""
        window = Window(box.x0, box.y0, box.width, box.height)
        shape = (len(self.bands), out_size[1], out_size[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            try:
                with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), rasterio.open(self.path) as src:
                    return src.read(self.bands, window=window, out_shape=shape, resampling=resampling)
            except (rasterio.errors.RasterioError, OSError) as exc:  # a truncated or damaged file
                raise GeoMagError(f"cannot read {self.path} (window {box.to_list()}): {exc}") from None

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
    """The ImageSource of a file: RasterSource for rasters rasterio opens (.tif, .vrt, ...), else PIL."""
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
