"""Geospatial outputs: georeferenced mask GeoTIFFs and GeoJSON of masks and boxes.

Why a module of its own: remote-sensing users want results a GIS opens. The writers put masks and
boxes (original pixel coordinates, as in every `Result`) back on the map with the input's CRS and
transform (a `geomag.sources.RasterSource`); plain images get pixel-coordinate GeoJSON. Reading
rasters is `geomag.sources`' job.
"""

from __future__ import annotations

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

from geomag.errors import GeoMagError
from geomag.imaging import Box
from geomag.sources import RasterSource

PIXEL_CRS_NOTE = "pixel coordinates of the original image: x = column, y = row, origin at the top-left corner"


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
    plain images (PNG, JPEG) are expected to have none: they get pixel coordinates without one, and
    a warning only when mask GeoTIFFs were asked for (`masks`), since none can be written.
    """
    crs, _, _ = _georef(source)
    _check_wgs84(crs, wgs84)
    if crs is None and warn and (masks or isinstance(source, RasterSource)):
        name = Path(getattr(source, "path", "the image")).name
        extra = " and no mask GeoTIFF is written" if masks else ""
        warnings.warn(f"{name} has no CRS: GeoJSON is written in pixel coordinates{extra}", stacklevel=2)
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
    georef = check_geo_outputs(source, wgs84, warn=False, masks=mask_geotiff)  # warned when opened
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
