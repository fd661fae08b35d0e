"""Geospatial I/O: read GeoTIFF / COG rasters in windows, write georeferenced masks and GeoJSON.

Why a module of its own: remote-sensing users hold GeoTIFFs (often 16-bit, many bands, bigger than
memory) and want results a GIS opens. `RasterSource` is an `geomag.imaging.ImageSource`: MagCrop asks
it for a decimated global view and full-detail windows of its crops, and it never reads the whole
raster at full resolution. The writers put masks and boxes (original pixel coordinates, as in every
`Result`) back on the map with the input's CRS and transform; plain images get pixel-coordinate GeoJSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
import rasterio.features
import rasterio.warp
from affine import Affine
from PIL import Image
from rasterio.enums import Resampling
from rasterio.windows import Window

from geomag.errors import GeoMagError
from geomag.imaging import Box, ImageSource, PilSource, load_image, to_uint8

RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".jp2", ".img"}
STATS_SIZE = 1024  # longest side of the decimated read the percentile stretch is computed from
# GDAL's block cache defaults to 5% of RAM; a decimated read of a raster without overviews would fill
# it with tiles it never needs again. 256 MiB keeps a huge raster's reads small at no measured cost.
GDAL_CACHE_BYTES = 256 * 2**20
PIXEL_CRS_NOTE = "pixel coordinates of the original image: x = column, y = row, origin at the top-left corner"


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
        self.bands = self._choose_bands(parse_bands(bands))
        self.dtype = np.result_type(*(dtypes[b - 1] for b in self.bands))  # of the selected bands
        self.nodata = self.file_nodata if nodata is None else float(nodata)
        # GDAL honours the file's own nodata when it resamples, but not an override: then we resample
        # with nearest neighbour so nodata pixels never blend into valid ones.
        self._nodata_override = nodata is not None
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
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), rasterio.open(self.path) as src:
                return src.read(self.bands, window=window, out_shape=shape, resampling=resampling)

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


def open_source(
    path: str | Path, bands: str | Sequence[int] | None = None, nodata: float | None = None
) -> ImageSource:
    """The ImageSource for a file: RasterSource for rasters rasterio opens (.tif, .vrt, ...), else PIL."""
    p = Path(path)
    if not p.is_file():
        raise GeoMagError(f"image not found: {p}")
    if p.suffix.lower() in RASTER_SUFFIXES:
        try:
            return RasterSource(p, bands=bands, nodata=nodata)
        except GeoMagError as exc:
            if "cannot read" not in str(exc) or p.suffix.lower() not in {".tif", ".tiff"}:
                raise
            # a TIFF GDAL cannot open may still be one PIL reads (load_image raises if not)
    if bands is not None or nodata is not None:
        raise GeoMagError(f"{p.name}: --bands / --nodata apply to rasters such as GeoTIFF, not to this file")
    return PilSource(load_image(p))


# --------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------


def _georef(source_or_profile: Any) -> tuple[Any, Affine | None, tuple[int, int] | None]:
    """(crs, transform, (width, height)) of a RasterSource / PilSource / rasterio profile dict."""
    if isinstance(source_or_profile, Mapping):
        p = source_or_profile
        size = (p["width"], p["height"]) if "width" in p and "height" in p else None
        return p.get("crs"), p.get("transform"), size
    crs = getattr(source_or_profile, "crs", None)
    transform = getattr(source_or_profile, "transform", None)
    size = getattr(source_or_profile, "size", None)
    return crs, transform, (tuple(size) if size is not None else None)


def _mask_array(mask: np.ndarray) -> np.ndarray:
    """A bool mask or integer label image as the smallest unsigned type GDAL writes."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise GeoMagError(f"a mask must be 2-D (height, width), got shape {m.shape}")
    if m.dtype == bool:
        return m.astype(np.uint8)
    if not np.issubdtype(m.dtype, np.integer):
        if not np.array_equal(m, np.round(m)):
            raise GeoMagError("a mask must be boolean or integer labels, got fractional values")
        m = m.astype(np.int64)
    if m.size and m.min() < 0:
        raise GeoMagError("mask labels must be >= 0")
    return m.astype(np.uint8 if m.size == 0 or m.max() <= 255 else np.uint16)


def _same_file(a: Path, b: Any) -> bool:
    return b is not None and Path(b).exists() and a.exists() and os.path.samefile(a, b)


def write_mask_geotiff(mask: np.ndarray, path: str | Path, source_or_profile: Any) -> Path:
    """Write a 0/1 mask or label image as a GeoTIFF with the input's CRS and transform (LZW).

    The file appears complete or not at all (written to a temporary name, then renamed); the input
    raster itself is never overwritten.
    """
    out = Path(path)
    crs, transform, size = _georef(source_or_profile)
    data = _mask_array(mask)
    if size is not None and (data.shape[1], data.shape[0]) != tuple(size):
        raise GeoMagError(
            f"mask is {data.shape[1]}x{data.shape[0]} but the raster is {size[0]}x{size[1]}: "
            "masks must be on the original pixel grid"
        )
    if _same_file(out, getattr(source_or_profile, "path", None)):
        raise GeoMagError(f"refusing to overwrite the input raster {out}")
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform if transform is not None else Affine.identity(),
        "compress": "lzw",
    }
    if data.shape[0] >= 256 and data.shape[1] >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".tif", dir=out.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(data, 1)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def _crs_member(crs: Any) -> dict[str, Any]:
    """GeoJSON (2008) 'crs' member that GDAL/QGIS read, for data not in WGS84."""
    epsg = crs.to_epsg()
    name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else crs.to_wkt()
    return {"type": "name", "properties": {"name": name}}


def _collection(features: list[dict], crs: Any, to_wgs84: bool) -> dict[str, Any]:
    fc: dict[str, Any] = {"type": "FeatureCollection"}
    if to_wgs84:
        fc["coordinate_system"] = "EPSG:4326 (longitude, latitude)"
    elif crs is not None:
        fc["crs"] = _crs_member(crs)
        fc["coordinate_system"] = crs.to_string()
    else:
        fc["coordinate_system"] = "pixel"
        fc["note"] = PIXEL_CRS_NOTE
    fc["features"] = features
    return fc


def _check_wgs84(crs: Any, to_wgs84: bool) -> None:
    if to_wgs84 and crs is None:
        raise GeoMagError("--wgs84 needs a georeferenced input (a raster with a CRS); this one has none")


def _to_output_crs(geom: dict, crs: Any, to_wgs84: bool) -> dict:
    return rasterio.warp.transform_geom(crs, "EPSG:4326", geom) if to_wgs84 else geom


def masks_to_geojson(
    masks: Sequence[np.ndarray],
    transform: Affine | None = None,
    crs: Any = None,
    to_wgs84: bool = False,
    properties: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """FeatureCollection with one MultiPolygon per non-empty mask, outlining its pixels.

    With a transform the coordinates are map coordinates in `crs` (or WGS84 lon/lat with to_wgs84);
    without one they are pixel coordinates (x = column, y = row), and the collection says so.
    Empty masks get no feature; each feature keeps its mask index in properties["index"].
    """
    _check_wgs84(crs, to_wgs84)
    if properties is not None and len(properties) != len(masks):
        raise GeoMagError(f"{len(properties)} property dicts for {len(masks)} masks")
    t = transform if transform is not None else Affine.identity()
    features = []
    for i, mask in enumerate(masks):
        m = _mask_array(mask) > 0
        if not m.any():
            continue
        polygons = [
            g["coordinates"]
            for g, _ in rasterio.features.shapes(m.astype(np.uint8), mask=m, connectivity=4, transform=t)
        ]
        geom = _to_output_crs({"type": "MultiPolygon", "coordinates": polygons}, crs, to_wgs84)
        props = {"index": i, "area_px": int(m.sum())}
        if properties is not None:
            props.update(properties[i])
        features.append({"type": "Feature", "geometry": _plain(geom), "properties": props})
    return _collection(features, None if transform is None else crs, to_wgs84)


def boxes_to_geojson(
    boxes: Mapping[str, Box],
    transform: Affine | None = None,
    crs: Any = None,
    to_wgs84: bool = False,
) -> dict[str, Any]:
    """FeatureCollection with one Polygon per named box (its pixel box kept in properties["box_px"])."""
    _check_wgs84(crs, to_wgs84)
    t = transform if transform is not None else Affine.identity()
    features = []
    for name, box in boxes.items():
        corners = [(box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1), (box.x0, box.y0)]
        ring = [tuple(float(v) for v in t @ c) for c in corners]
        geom = _to_output_crs({"type": "Polygon", "coordinates": [ring]}, crs, to_wgs84)
        props = {"name": name, "box_px": box.to_list()}
        features.append({"type": "Feature", "geometry": _plain(geom), "properties": props})
    return _collection(features, None if transform is None else crs, to_wgs84)


def _plain(obj: Any) -> Any:
    """rasterio geometries (tuples, GeoJSON-like objects) -> plain JSON lists and dicts."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def check_geo_outputs(source: Any, wgs84: bool = False, warn: bool = True, masks: bool = True) -> bool:
    """Is the input georeferenced? Errors for --wgs84 without a CRS (call it before a long run).

    A raster file without a CRS gets a warning (GeoJSON in pixel coordinates, no mask GeoTIFF);
    plain images (PNG, JPEG) are expected to have none and get pixel coordinates without one.
    """
    crs, _, _ = _georef(source)
    _check_wgs84(crs, wgs84)
    if crs is None and warn and isinstance(source, RasterSource):
        extra = " and no mask GeoTIFF is written" if masks else ""
        warnings.warn(
            f"{source.path.name} has no CRS: GeoJSON is written in pixel coordinates{extra}", stacklevel=2
        )
    return crs is not None


def source_boxes_geojson(boxes: Mapping[str, Box], source: Any, wgs84: bool = False) -> dict[str, Any]:
    """boxes_to_geojson placed with the source's CRS and transform (pixel coordinates without a CRS)."""
    georef = check_geo_outputs(source, wgs84, masks=False)
    crs, transform, _ = _georef(source)
    return boxes_to_geojson(boxes, transform if georef else None, crs if georef else None, wgs84)


def save_geo_outputs(
    result: Any,
    source: Any,
    out_dir: str | Path,
    wgs84: bool = False,
    geojson: bool = True,
    mask_geotiff: bool = True,
) -> dict[str, Path]:
    """Write masks.geojson, boxes.geojson and mask_XX.tif (georeferenced input only) for a Result.

    Masks and boxes of a Result are in original pixel coordinates; the source's transform places
    them on the map. Everything is built in a temporary folder first, so a failure leaves no partial
    outputs. Returns {file name: path}.
    """
    georef = check_geo_outputs(source, wgs84, masks=mask_geotiff)
    crs, transform, size = _georef(source)
    transform = transform if georef else None
    crs = crs if georef else None
    if size is not None and tuple(result.image_size) != tuple(size):
        raise GeoMagError(f"result is for a {result.image_size} image but the source is {size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix=".geomag-geo-", dir=out) as tmp:
        staged: list[str] = []
        if geojson:
            props = [
                {"phrase": result.phrases[i]} if i < len(result.phrases) else {}
                for i in range(len(result.masks))
            ]
            for name, fc in (
                ("masks.geojson", masks_to_geojson(result.masks, transform, crs, wgs84, props)),
                ("boxes.geojson", boxes_to_geojson(result.boxes, transform, crs, wgs84)),
            ):
                (Path(tmp) / name).write_text(json.dumps(fc))
                staged.append(name)
        if mask_geotiff and georef:
            for i, m in enumerate(result.masks):
                name = f"mask_{i:02d}.tif"
                write_mask_geotiff(m, Path(tmp) / name, source)
                staged.append(name)
        for name in staged:
            target = out / name
            if _same_file(target, getattr(source, "path", None)):
                raise GeoMagError(f"refusing to overwrite the input raster {target}")
        for name in staged:
            shutil.move(str(Path(tmp) / name), out / name)
            written[name] = out / name
    return written


# --------------------------------------------------------------------------------------------------
# CLI helpers: `parse` and `magcrop` add the flags (geomag.commands.geo_options) and call these.
# --------------------------------------------------------------------------------------------------


def source_from_args(args: argparse.Namespace, path: str | Path) -> ImageSource:
    """open_source with the CLI's --bands/--nodata; checks --wgs84/--geojson against the input early."""
    source = open_source(path, bands=getattr(args, "bands", None), nodata=getattr(args, "nodata", None))
    if (
        getattr(args, "geojson", False)
        or getattr(args, "mask_geotiff", False)
        or getattr(args, "wgs84", False)
    ):
        check_geo_outputs(source, wgs84=getattr(args, "wgs84", False), warn=False)
    return source


def save_geo_outputs_from_args(
    args: argparse.Namespace, result: Any, source: Any, out_dir: str | Path
) -> dict:
    """save_geo_outputs as the CLI flags ask (nothing when neither --geojson nor --mask-geotiff)."""
    geojson = getattr(args, "geojson", False) or getattr(args, "wgs84", False)
    mask_geotiff = getattr(args, "mask_geotiff", False)
    if not (geojson or mask_geotiff):
        return {}
    return save_geo_outputs(
        result,
        source,
        out_dir,
        wgs84=getattr(args, "wgs84", False),
        geojson=geojson,
        mask_geotiff=mask_geotiff,
    )
