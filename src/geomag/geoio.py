"""Geospatial outputs: georeferenced mask GeoTIFFs, GeoJSON and GeoPackage of masks and boxes.

Why a module of its own: remote-sensing users want results a GIS opens without a warning. The
writers put masks and boxes (original pixel coordinates, as in every `Result`) back on the map with
the input's CRS and transform (a `geomag.sources.RasterSource`):
- GeoJSON is RFC 7946: WGS84 longitude / latitude, exterior rings counterclockwise, no `crs` member;
- the input's own CRS goes into a GeoPackage (vectors.gpkg, layers "masks" and "boxes"), version 1.3
  so that GDAL 3.6 (Debian 12, QGIS 3.22) reads it without a warning;
- a plain image (no CRS) gets no GeoJSON (a GIS would take its pixels for degrees) but a GeoPackage
  without a CRS ("Undefined SRS"), placed as QGIS places an image without georeferencing: x = column,
  y = -row, so it lies over the image.
Reading rasters is `geomag.sources`' job.
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
import shapely
import shapely.geometry
from affine import Affine

from geomag.errors import GeoMagError
from geomag.imaging import Box
from geomag.sources import RasterSource

PIXEL_CRS_NOTE = "pixel coordinates of the original image: x = column, y = row, origin at the top-left corner"
VECTORS_FILE = "vectors.gpkg"
# GDAL >= 3.7 writes GeoPackage 1.4 by default, which GDAL 3.6 warns about ("may only be partially supported")
GPKG_OPTIONS = {"VERSION": "1.3"}
# a plain image's vectors in the GeoPackage: where QGIS draws an image without georeferencing (y = -row)
PIXEL_PLACEMENT = Affine(1, 0, 0, 0, -1, 0)


def public_file(path: str | Path) -> None:
    """Give a file written through mkstemp (mode 0600) the mode every other output has (0666 - umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


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
        public_file(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def _collection(features: list[dict], georeferenced: bool) -> dict[str, Any]:
    """A FeatureCollection: RFC 7946 as it is (WGS84) when georeferenced; in pixels it says so (such a
    collection is for a viewer of the image, e.g. the page's map, never for a .geojson file)."""
    fc: dict[str, Any] = {"type": "FeatureCollection"}
    if not georeferenced:
        fc["coordinate_system"] = "pixel"
        fc["note"] = PIXEL_CRS_NOTE
    fc["features"] = features
    return fc


def _check_wgs84(crs: Any, to_wgs84: bool) -> None:
    if to_wgs84 and crs is None:
        raise GeoMagError("--wgs84 needs a georeferenced input (a raster with a CRS); this one has none")


def _rfc7946(geom: dict, crs: Any) -> dict:
    """A geometry in `crs` as RFC 7946 wants it: WGS84 lon/lat, exterior rings counterclockwise and
    holes clockwise (section 3.1.6)."""
    lonlat = rasterio.warp.transform_geom(crs, "EPSG:4326", geom)
    return shapely.geometry.mapping(
        shapely.orient_polygons(shapely.geometry.shape(lonlat), exterior_cw=False)
    )


def mask_polygons(mask: np.ndarray, transform: Affine) -> list[Any]:
    """The pixels of a mask as polygon coordinate lists (rasterio.features.shapes, 4-connected) in the
    coordinates of `transform`; their edges are the pixel edges."""
    m = _mask_array(mask) > 0
    shapes = rasterio.features.shapes(m.astype(np.uint8), mask=m, connectivity=4, transform=transform)
    return [g["coordinates"] for g, _ in shapes]


def masks_to_geojson(
    masks: Sequence[np.ndarray],
    transform: Affine | None = None,
    crs: Any = None,
    properties: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """FeatureCollection with one MultiPolygon per non-empty mask, outlining its pixels.

    With a transform and a CRS: RFC 7946 (WGS84 lon/lat, counterclockwise exterior rings); without
    them: pixel coordinates (x = column, y = row), and the collection says so. Empty masks get no
    feature; each feature keeps its mask index in properties["index"].
    """
    if properties is not None and len(properties) != len(masks):
        raise GeoMagError(f"{len(properties)} property dicts for {len(masks)} masks")
    georeferenced = transform is not None and crs is not None
    t = transform if georeferenced else Affine.identity()
    features = []
    for i, mask in enumerate(masks):
        m = _mask_array(mask) > 0
        if not m.any():
            continue
        geom: dict = {"type": "MultiPolygon", "coordinates": mask_polygons(m, t)}
        if georeferenced:
            geom = _rfc7946(geom, crs)
        props = {"index": i, "area_px": int(m.sum())}
        if properties is not None:
            props.update(properties[i])
        features.append({"type": "Feature", "geometry": _plain(geom), "properties": props})
    return _collection(features, georeferenced)


def _box_ring(box: Box, t: Affine) -> list[tuple[float, float]]:
    corners = [(box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1), (box.x0, box.y0)]
    return [tuple(float(v) for v in t @ c) for c in corners]


def boxes_to_geojson(
    boxes: Mapping[str, Box],
    transform: Affine | None = None,
    crs: Any = None,
) -> dict[str, Any]:
    """FeatureCollection with one Polygon per named box (its pixel box kept in properties["box_px"]),
    RFC 7946 with a transform and a CRS, else in pixels (as `masks_to_geojson`)."""
    georeferenced = transform is not None and crs is not None
    t = transform if georeferenced else Affine.identity()
    features = []
    for name, box in boxes.items():
        geom: dict = {"type": "Polygon", "coordinates": [_box_ring(box, t)]}
        if georeferenced:
            geom = _rfc7946(geom, crs)
        props = {"name": name, "box_px": box.to_list()}
        features.append({"type": "Feature", "geometry": _plain(geom), "properties": props})
    return _collection(features, georeferenced)


def write_vectors(
    path: str | Path,
    masks: Sequence[np.ndarray],
    boxes: Mapping[str, Box],
    transform: Affine | None,
    crs: Any,
    phrases: Sequence[str] = (),
    scores: Sequence[float] = (),
) -> Path:
    """A GeoPackage with the layers "masks" (mask = the number the text refers to, index, phrase,
    score, area_px) and "boxes" (name, box_px) in the input's CRS; without a CRS in pixels placed as
    QGIS places an image without georeferencing (`PIXEL_PLACEMENT`), with an undefined CRS."""
    import pyogrio.raw

    georeferenced = transform is not None and crs is not None
    t = transform if georeferenced else PIXEL_PLACEMENT
    out_crs = (
        crs.to_wkt() if georeferenced and hasattr(crs, "to_wkt") else (str(crs) if georeferenced else None)
    )
    rows = []
    for i, mask in enumerate(masks):
        polygons = mask_polygons(mask, t)
        if polygons:
            multi = shapely.geometry.shape({"type": "MultiPolygon", "coordinates": polygons})
            rows.append((i, shapely.orient_polygons(multi, exterior_cw=False)))  # as GeoJSON: exteriors CCW
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyogrio: "'crs' was not provided" (on purpose)
        pyogrio.raw.write(
            str(path),
            np.array([shapely.to_wkb(g) for _, g in rows], dtype=object),
            [
                np.array([i + 1 for i, _ in rows], dtype=np.int32),
                np.array([i for i, _ in rows], dtype=np.int32),
                np.array([phrases[i] if i < len(phrases) else "" for i, _ in rows], dtype=object),
                np.array(
                    [float(scores[i]) if i < len(scores) else np.nan for i, _ in rows], dtype=np.float64
                ),
                np.array([int(np.count_nonzero(masks[i])) for i, _ in rows], dtype=np.int64),
            ],
            ["mask", "index", "phrase", "score", "area_px"],
            layer="masks",
            driver="GPKG",
            geometry_type="MultiPolygon",
            crs=out_crs,
            promote_to_multi=True,
            dataset_options=GPKG_OPTIONS,
        )
        names = list(boxes)
        pyogrio.raw.write(
            str(path),
            np.array(
                [
                    shapely.to_wkb(shapely.orient_polygons(shapely.Polygon(_box_ring(boxes[n], t))))
                    for n in names
                ],
                dtype=object,
            ),
            [
                np.array(names, dtype=object),
                np.array([json.dumps(boxes[n].to_list()) for n in names], dtype=object),
            ],
            ["name", "box_px"],
            layer="boxes",
            driver="GPKG",
            geometry_type="Polygon",
            crs=out_crs,
            append=True,
        )
    return path


def _plain(obj: Any) -> Any:
    """rasterio geometries (tuples, GeoJSON-like objects) -> plain JSON lists and dicts."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def check_geo_outputs(source: Any, wgs84: bool = False, warn: bool = True, masks: bool = True) -> bool:
    """Is the input georeferenced? Errors for --wgs84 without a CRS (call it before a long run).

    A raster file without a CRS gets a warning (vectors in pixel coordinates, no GeoJSON, no mask
    GeoTIFF); plain images (PNG, JPEG) are expected to have none: they get pixel coordinates without
    one, and a warning only when mask GeoTIFFs were asked for (`masks`), since none can be written.
    """
    crs, _, _ = _georef(source)
    _check_wgs84(crs, wgs84)
    if crs is None and warn and (masks or isinstance(source, RasterSource)):
        name = Path(getattr(source, "path", "the image")).name
        extra = " and no mask GeoTIFF is written" if masks else ""
        warnings.warn(
            f"{name} has no CRS: the vectors are written in pixel coordinates to {VECTORS_FILE} "
            f"(no GeoJSON, which GIS tools read as longitude / latitude){extra}",
            stacklevel=2,
        )
    return crs is not None


def source_boxes_geojson(boxes: Mapping[str, Box], source: Any, wgs84: bool = False) -> dict[str, Any]:
    """boxes_to_geojson placed with the source's CRS and transform (RFC 7946; pixel coordinates
    without a CRS, for viewers only: write those with `write_source_boxes`)."""
    georef = check_geo_outputs(source, wgs84, masks=False)
    crs, transform, _ = _georef(source)
    return boxes_to_geojson(boxes, transform if georef else None, crs if georef else None)


def write_source_boxes(boxes: Mapping[str, Box], source: Any, out_dir: Path, wgs84: bool = False) -> str:
    """MagCrop's boxes as a file a GIS opens: boxes.geojson (RFC 7946) for a georeferenced source,
    vectors.gpkg in pixels without a CRS for the rest; returns the file's name."""
    georef = check_geo_outputs(source, wgs84, masks=False)
    crs, transform, _ = _georef(source)
    if georef:
        (Path(out_dir) / "boxes.geojson").write_text(json.dumps(boxes_to_geojson(boxes, transform, crs)))
        return "boxes.geojson"
    write_vectors(Path(out_dir) / VECTORS_FILE, [], boxes, None, None)
    return VECTORS_FILE


def save_geo_outputs(
    result: Any,
    source: Any,
    out_dir: str | Path,
    wgs84: bool = False,
    geojson: bool = True,
    mask_geotiff: bool = True,
) -> dict[str, Path]:
    """Write the vectors and mask_XX.tif (georeferenced input only) for a Result.

    Vectors (`geojson`): georeferenced input: masks.geojson and boxes.geojson (RFC 7946, WGS84) and
    vectors.gpkg in the input's CRS; any other input: vectors.gpkg in pixels without a CRS. `wgs84`
    only insists on a CRS (GeoJSON is always WGS84). Masks and boxes of a Result are in original pixel
    coordinates; the source's transform places them on the map. Everything is built in a temporary
    folder first, so a failure leaves no partial outputs. Returns {file name: path}.
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
            if georef:
                props = [
                    {"mask": i + 1, **({"phrase": result.phrases[i]} if i < len(result.phrases) else {})}
                    for i in range(len(result.masks))
                ]
                for name, fc in (
                    ("masks.geojson", masks_to_geojson(result.masks, transform, crs, props)),
                    ("boxes.geojson", boxes_to_geojson(result.boxes, transform, crs)),
                ):
                    (Path(tmp) / name).write_text(json.dumps(fc))
                    staged.append(name)
            write_vectors(Path(tmp) / VECTORS_FILE, result.masks, result.boxes, transform, crs,
                          result.phrases, result.scores)  # fmt: skip
            staged.append(VECTORS_FILE)
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
