"""Image operations MagCrop is built from: load, Box, crop, paste (stitch), degrade D(), resize.

Pure functions on PIL images; no model code. Every Box is in the ORIGINAL image's pixel coordinates,
half-open: x0 <= x < x1, y0 <= y < y1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from geomag.errors import GeoMagError

Image.MAX_IMAGE_PIXELS = 1_000_000_000  # RS scenes are large; 1 gigapixel still refuses decompression bombs

TIFF_SUFFIXES = {".tif", ".tiff"}


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels, half-open [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "x1", "y1"):
            object.__setattr__(self, name, int(np.rint(getattr(self, name))))
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise GeoMagError(f"empty box {self.to_list()}: need x0 < x1 and y0 < y1")

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    def to_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    def to_tuple(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    def contains(self, other: Box) -> bool:
        return self.x0 <= other.x0 and self.y0 <= other.y0 and other.x1 <= self.x1 and other.y1 <= self.y1

    def iou(self, other: Box) -> float:
        ix = max(0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        return inter / float(self.area + other.area - inter)

    def clamp(self, width: int, height: int) -> Box:
        """Clip to an image of the given size; an error if nothing is left."""
        x0, y0 = max(0, self.x0), max(0, self.y0)
        x1, y1 = min(width, self.x1), min(height, self.y1)
        if x1 <= x0 or y1 <= y0:
            raise GeoMagError(f"box {self.to_list()} lies outside the {width}x{height} image")
        return Box(x0, y0, x1, y1)

    def check_inside(self, width: int, height: int) -> Box:
        """Return self if it lies inside a width x height image, else a clear error."""
        if self.x0 < 0 or self.y0 < 0 or self.x1 > width or self.y1 > height:
            raise GeoMagError(f"box {self.to_list()} is outside the {width}x{height} image")
        return self


def to_uint8(
    array: np.ndarray,
    low_pct: float = 2.0,
    high_pct: float = 98.0,
    nodata: float | None = None,
    limits: np.ndarray | None = None,
) -> np.ndarray:
    """Stretch any numeric array (bands last) to uint8 by per-band percentiles.

    uint8 input is returned as is. For 16-bit and float rasters the 2nd..98th percentile of the valid
    pixels of each band maps linearly to 0..255 (the usual "percentile stretch" of GIS viewers).
    `limits` (bands x 2: low, high) replaces the percentiles, so windows of one raster share a stretch.
    """
    if array.dtype == np.uint8:
        return array
    a = array.astype(np.float32)
    if a.ndim == 2:
        a = a[..., None]
    out = np.zeros(a.shape, dtype=np.uint8)
    for b in range(a.shape[-1]):
        band = a[..., b]
        if limits is not None:
            lo, hi = limits[b]
        else:
            valid = np.isfinite(band) if nodata is None else (np.isfinite(band) & (band != nodata))
            if not valid.any():
                continue
            lo, hi = np.percentile(band[valid], [low_pct, high_pct])
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        out[..., b] = np.clip((band - lo) * scale, 0, 255).astype(np.uint8)
    return out if array.ndim == 3 else out[..., 0]


def _rgb_from_bands(array: np.ndarray, path: Path) -> np.ndarray:
    """Bands-last array -> H x W x 3 uint8. 1 band: grey; 3: RGB; 4: RGBA/RGBN -> first three; else refuse."""
    n = array.shape[-1]
    if n == 1:
        array = np.repeat(array, 3, axis=-1)
    elif n == 4:
        warnings.warn(f"{path.name}: 4 bands, using bands 1-3 as RGB", stacklevel=3)
        array = array[..., :3]
    elif n != 3:
        raise GeoMagError(
            f"{path}: {n} bands; choose three with --bands (e.g. --bands 4,3,2), or convert it to RGB"
        )
    return to_uint8(array)


def load_image(path: str | Path) -> Image.Image:
    """Load PNG / JPEG / TIFF (incl. 16-bit and GeoTIFF) as an 8-bit RGB PIL image.

    16-bit or float data: per-band 2-98 percentile stretch. 1 band: grey to RGB. 4 bands: first three.
    More bands: refused with a message (pick bands with geomag.geoio.read_raster(bands=...)).
    """
    p = Path(path)
    if not p.is_file():
        raise GeoMagError(f"image not found: {p}")
    if p.suffix.lower() in TIFF_SUFFIXES:
        try:
            import rasterio

            with rasterio.open(p) as src:
                arr = np.moveaxis(src.read(), 0, -1)
                nodata = src.nodata
            if arr.dtype != np.uint8:
                arr = to_uint8(arr, nodata=nodata)
            rgb = _rgb_from_bands(arr, p)
            img = Image.fromarray(rgb, "RGB")
        except ImportError:  # pragma: no cover - rasterio is a hard dependency
            img = None
        except Exception as exc:  # rasterio raises RasterioIOError for non-rasters
            if isinstance(exc, GeoMagError):
                raise
            img = None
        if img is not None:
            _check_size(img, p)
            return img
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                img = Image.fromarray(np.repeat(to_uint8(np.asarray(im))[..., None], 3, axis=-1), "RGB")
            else:
                img = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise GeoMagError(f"cannot read {p} as an image: {exc}") from None
    _check_size(img, p)
    return img


def _check_size(img: Image.Image, path: Path) -> None:
    if img.width == 0 or img.height == 0:
        raise GeoMagError(f"{path} has zero size ({img.width}x{img.height})")


def crop(image: Image.Image, box: Box) -> Image.Image:
    """The pixels of `box` (which must lie inside the image)."""
    box.check_inside(*image.size)
    return image.crop(box.to_tuple())


def paste(canvas: Image.Image, patch: Image.Image, box: Box) -> Image.Image:
    """Stitching operator (+): a copy of `canvas` with `patch` pasted at the box's own position."""
    box.check_inside(*canvas.size)
    if patch.size != (box.width, box.height):
        raise GeoMagError(f"patch size {patch.size} does not match box {box.to_list()}")
    out = canvas.copy()
    out.paste(patch, (box.x0, box.y0))
    return out


def degrade(image: Image.Image, factor: int = 4) -> Image.Image:
    """D(X) (Eq. 3): resize to H/factor x W/factor (area average) and back (bilinear). Same size, less detail."""
    w, h = image.size
    small = image.resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.Resampling.BOX)
    return small.resize((w, h), Image.Resampling.BILINEAR)


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to (width, height) with bilinear filtering (antialiased when shrinking)."""
    return image.resize(size, Image.Resampling.BILINEAR)


class ImageSource(Protocol):
    """Where MagCrop reads pixels from: a PIL image in memory or a huge raster read in windows.

    `size` is the ORIGINAL (width, height). `read(box, out_size)` returns the pixels of `box` (default:
    the whole image) resampled to `out_size` (default: the box's own size), as 8-bit RGB. A raster
    implementation (geomag.geoio.RasterSource) reads only that window, decimated, never the whole file.
    """

    @property
    def size(self) -> tuple[int, int]: ...

    def read(self, box: Box | None = None, out_size: tuple[int, int] | None = None) -> Image.Image: ...


class PilSource:
    """ImageSource over an in-memory PIL image."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image.convert("RGB")

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def read(self, box: Box | None = None, out_size: tuple[int, int] | None = None) -> Image.Image:
        region = self.image if box is None else crop(self.image, box)
        if out_size is not None and region.size != tuple(out_size):
            region = resize(region, tuple(out_size))
        return region
