"""A `Result` in the shapes the API answers with: JSON (COCO RLE masks), GeoJSON, PNG pictures.

The JSON is `Result.to_dict()` (what result.json holds) with each mask's pixels added as COCO RLE
(pycocotools' compressed counts, the format COCO and SAM tools read), so a client rebuilds the exact
masks (`geomag.client`) and writes the same files as a local run. Boxes and masks are on the
original image's pixel grid. The pictures (overlay, heatmap) are for people: the demo page shows
them, a client that wants the overlay file asks for `format=png`.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import rasterio.warp
from affine import Affine
from PIL import Image

from geomag.data.samples import mask_to_rle
from geomag.errors import GeoMagError
from geomag.geoio import boxes_to_geojson, masks_to_geojson
from geomag.imaging import Box, overlay_heatmap
from geomag.magcrop import MagCropPlan
from geomag.result import Result
from geomag.sources import RasterSource
from geomag.writing import overlay

MAP_MAX = 1600  # longest side of the map's base image (the input, warped to Web Mercator for a GeoTIFF)
PREVIEW_MAX = 1600  # longest side of the overlay the demo shows (a 4K PNG is ~15 MB of base64)
HEATMAP_MAX = 512


def result_json(result: Result, request_id: str) -> dict[str, Any]:
    """`Result.to_dict()` with each mask's COCO RLE and the request's id."""
    body = result.to_dict()
    for entry, mask in zip(body["masks"], result.masks, strict=True):
        entry["rle"] = mask_to_rle(np.asarray(mask, dtype=bool))
    body["request_id"] = request_id
    return body


def is_georeferenced(result: Result) -> bool:
    return isinstance(result.source, RasterSource) and result.source.is_georeferenced


def result_geojson(result: Result, wgs84: bool = True) -> dict[str, Any]:
    """One RFC 7946 FeatureCollection (WGS84 lon/lat, whatever `wgs84` says: the API's old
    `?wgs84=` is kept and is now the only form): a MultiPolygon per mask ("kind": "mask") and a
    Polygon per MagCrop box ("kind": "box")."""
    source = result.source
    if not isinstance(source, RasterSource) or not source.is_georeferenced:
        raise GeoMagError(
            "format=geojson needs a georeferenced image (a GeoTIFF with a CRS); use format=json for pixels"
        )
    properties = [
        {"kind": "mask", "mask": i + 1, **({"phrase": result.phrases[i]} if i < len(result.phrases) else {}),
         **({"score": round(float(result.scores[i]), 4)} if i < len(result.scores) else {})}
        for i in range(len(result.masks))
    ]  # fmt: skip
    masks = masks_to_geojson(result.masks, source.transform, source.crs, properties)
    boxes = boxes_to_geojson(result.boxes, source.transform, source.crs)
    for feature in boxes["features"]:
        feature["properties"] = {"kind": "box", **feature["properties"]}
    masks["features"] += boxes["features"]
    return masks


def png_bytes(image: Image.Image, compress_level: int = 1) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def data_url(image: Image.Image, kind: str = "png") -> str:
    buffer = io.BytesIO()
    if kind == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=88)
    else:
        image.save(buffer, format="PNG", compress_level=6)
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode()


def overlay_preview(result: Result) -> str:
    """The overlay (masks tinted, MagCrop's boxes drawn) at most PREVIEW_MAX px, as a data URL."""
    picture = overlay(result)
    picture.thumbnail((PREVIEW_MAX, PREVIEW_MAX), Image.Resampling.LANCZOS)
    return data_url(picture, "jpeg" if max(picture.size) > 800 else "png")


def heatmaps(result: Result, plan: MagCropPlan | None) -> list[dict[str, Any]]:
    """MagCrop's saliency maps (PSC attention or mask saliency) over the part of the image each one
    covers ("crop1": the whole image; "crop2": crop1), blended onto it, small."""
    if plan is None or result.source is None or not plan.heatmaps:
        return []
    width, height = result.image_size
    whole = Box(0, 0, width, height)
    out = []
    for name, grid in plan.heatmaps.items():
        covers = whole if name == "crop1" else plan.boxes.get("crop1", whole)
        scale = min(1.0, HEATMAP_MAX / max(covers.width, covers.height))
        size = (max(1, round(covers.width * scale)), max(1, round(covers.height * scale)))
        picture = overlay_heatmap(result.source.read(covers, size), np.asarray(grid), alpha=0.55)
        out.append({"name": name, "box": covers.to_list(), "source": plan.box_source,
                    "image": data_url(picture, "jpeg")})  # fmt: skip
    return out


def _mask_properties(result: Result) -> list[dict[str, Any]]:
    """Per mask: its number as the answer's text refers to it ("[mask 1]"), phrase and score."""
    return [
        {"mask": i + 1, "phrase": result.phrases[i] if i < len(result.phrases) else "",
         **({"score": round(float(result.scores[i]), 4)} if i < len(result.scores) else {})}
        for i in range(len(result.masks))
    ]  # fmt: skip


def map_view(result: Result) -> dict[str, Any]:
    """What the page's map shows: the input as its base image and the masks and MagCrop's boxes as
    GeoJSON over it. A georeferenced raster: the image warped to Web Mercator (the map's projection,
    so it lies exactly where it is) with its WGS84 bounds, vectors in WGS84 (RFC 7946); any other
    image: pixel coordinates (x = column, y = row), which the page shows on a flat pixel grid."""
    source = result.source
    if source is None:
        raise GeoMagError("a map needs the result's image source")
    width, height = result.image_size
    scale = min(1.0, MAP_MAX / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = source.read(None, size if scale < 1 else None)
    properties = _mask_properties(result)
    if not is_georeferenced(result):
        return {
            "kind": "pixel",
            "size": [width, height],
            "image": data_url(picture, "jpeg" if max(size) > 800 else "png"),
            "masks": masks_to_geojson(result.masks, properties=properties),
            "boxes": boxes_to_geojson(result.boxes),
        }
    assert isinstance(source, RasterSource)
    preview = source.transform * Affine.scale(width / size[0], height / size[1])
    left, top = preview * (0, 0)
    right, bottom = preview * size
    bounds = (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    dst, dw, dh = rasterio.warp.calculate_default_transform(
        source.crs, "EPSG:3857", size[0], size[1], *bounds
    )
    rgba = np.zeros((4, dh, dw), dtype=np.uint8)
    bands = np.concatenate(
        [np.moveaxis(np.asarray(picture), -1, 0), np.full((1, size[1], size[0]), 255, np.uint8)]
    )
    for i in range(4):
        rasterio.warp.reproject(bands[i], rgba[i], src_transform=preview, src_crs=source.crs, dst_transform=dst,
                                dst_crs="EPSG:3857", resampling=rasterio.warp.Resampling.bilinear)  # fmt: skip
    x0, y0 = dst * (0, 0)
    x1, y1 = dst * (dw, dh)
    lons, lats = rasterio.warp.transform("EPSG:3857", "EPSG:4326", [x0, x1], [y0, y1])
    return {
        "kind": "geo",
        "crs": source.crs.to_string(),
        "size": [width, height],
        "image": data_url(Image.fromarray(np.moveaxis(rgba, 0, -1), "RGBA")),
        "bounds": [[min(lats), min(lons)], [max(lats), max(lons)]],  # [[south, west], [north, east]]
        "masks": masks_to_geojson(result.masks, source.transform, source.crs, properties),
        "boxes": boxes_to_geojson(result.boxes, source.transform, source.crs),
    }
