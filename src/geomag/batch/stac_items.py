"""STAC out: one STAC Item per result (stac/<key16>.json), and stac/catalog.json linking them all, so
a batch's results can be catalogued, searched and opened again like the scenes they came from.

An item's geometry is the parsed window's footprint in WGS84 (none for images without a CRS); its
assets are the job's mask files and, for georeferenced inputs, its masks as polygons
(stac/<key16>.geojson, WGS84); its properties say what produced it: the prompt, the answer, the
granularity, the model and the parse (MagCrop) options, and the projection of the masks (proj:*).
A result of a STAC asset links its source item (rel derived_from) and keeps its time; other
results are dated when they were written. Written by the driver, whole or not at all, before the
job's line in results.jsonl.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio.warp
import shapely
import shapely.geometry

from geomag.batch.geometry import mask_geometry, record_transform
from geomag.batch.jobs import BatchSettings
from geomag.geoio import public_file

STAC_DIR = "stac"
CATALOG = "catalog.json"
GEOJSON = "application/geo+json"
MEDIA = {".tif": "image/tiff; application=geotiff", ".png": "image/png"}
Record = dict[str, Any]


def _write_json(data: dict[str, Any], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        public_file(tmp)  # mkstemp's 0600 -> the mode of every other output
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _wgs84(geom: shapely.Geometry, crs: str) -> shapely.Geometry:
    return shapely.geometry.shape(
        rasterio.warp.transform_geom(crs, "EPSG:4326", shapely.geometry.mapping(geom))
    )


def _footprint(record: Record) -> shapely.Geometry | None:
    """The parsed window (or image) as a WGS84 polygon; None without a CRS."""
    if not record.get("crs"):
        return None
    a, b, c, d, e, f = record["transform"]
    w, h = record["image_size"]
    corners = [(0, 0), (w, 0), (w, h), (0, h), (0, 0)]
    edge = np.linspace(0.0, 1.0, 16, endpoint=False)  # edges bend in WGS84: 16 points each
    ring = [
        (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
        for (x0, y0), (x1, y1) in itertools.pairwise(corners)
        for t in edge
    ]
    return _wgs84(shapely.Polygon([(a * x + b * y + c, d * x + e * y + f) for x, y in ring]), record["crs"])


def _times(stac: dict[str, Any] | None) -> dict[str, str | None]:
    """The source item's time (datetime, or its start and end), else now: when the result was written."""
    stac = stac or {}
    if stac.get("datetime") or (stac.get("start_datetime") and stac.get("end_datetime")):
        return {
            k: stac.get(k)
            for k in ("datetime", "start_datetime", "end_datetime")
            if stac.get(k) or k == "datetime"
        }
    return {"datetime": datetime.now(UTC).isoformat().replace("+00:00", "Z")}


def item_id(record: Record) -> str:
    return f"geomag-{record['key'][:16]}"


def result_item(
    record: Record,
    masks: Sequence[np.ndarray],
    settings: BatchSettings | None,
    stac: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the STAC Item of a job's record whose mask files are written, its masks as GeoJSON or None).
    `masks` are the decoded masks of record["masks"], in order."""
    key16 = record["key"][:16]
    footprint = _footprint(record)
    features = []
    transform = record_transform(record)
    if transform is not None:
        for entry, mask in zip(record["masks"], masks, strict=True):
            geom = mask_geometry(mask, transform)
            if geom is None:
                continue
            props = {k: entry.get(k) for k in ("index", "phrase", "score", "area")}
            features.append(
                {
                    "type": "Feature",
                    "geometry": shapely.geometry.mapping(_wgs84(geom, record["crs"])),
                    "properties": {**props, "prompt": record["prompt"]},
                }
            )
    assets: dict[str, Any] = {}
    for entry in record["masks"]:
        name = f"mask_{entry['index']:02d}"
        assets[name] = {
            "href": f"../{entry['file']}",
            "type": MEDIA.get(Path(entry["file"]).suffix, "application/octet-stream"),
            "roles": ["data"],
            "title": entry.get("phrase") or f"mask {entry['index']}",
            "geomag:score": entry.get("score"),
            "geomag:area": entry.get("area"),
        }
    vectors = None
    if transform is not None:
        vectors = {"type": "FeatureCollection", "features": features}
        assets["vectors"] = {
            "href": f"./{key16}.geojson",
            "type": GEOJSON,
            "roles": ["data"],
            "title": "masks as polygons (WGS84)",
        }
    options = {} if settings is None else settings.job_options(record.get("granularity"))
    properties: dict[str, Any] = {
        **_times(stac),
        "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "geomag:prompt": record["prompt"],
        "geomag:text": record.get("text", ""),
        "geomag:granularity": record.get("granularity"),
        "geomag:scores": record.get("scores", []),
        "geomag:input": record["input"],
        "geomag:window": record.get("window"),
    }
    if settings is not None:
        properties["geomag:model"] = settings.model
        properties["geomag:options"] = {k: v for k, v in options.items() if k != "device"}
        if settings.bands is not None or settings.nodata is not None:
            properties["geomag:bands"], properties["geomag:nodata"] = settings.bands, settings.nodata
    extensions = []
    if record.get("crs"):
        w, h = record["image_size"]
        properties.update(
            {"proj:code": record["crs"], "proj:shape": [h, w], "proj:transform": record["transform"]}
        )
        extensions.append("https://stac-extensions.github.io/projection/v2.0.0/schema.json")
    links = [
        {"rel": "root", "href": f"./{CATALOG}", "type": "application/json"},
        {"rel": "parent", "href": f"./{CATALOG}", "type": "application/json"},
    ]
    if stac is not None:
        properties["geomag:source_item"] = stac["item"]
        properties["geomag:source_asset"] = stac["asset"]
        if stac.get("collection"):
            properties["geomag:source_collection"] = stac["collection"]
        if stac.get("item_href"):
            links.append(
                {"rel": "derived_from", "href": stac["item_href"], "type": GEOJSON, "title": stac["item"]}
            )
    item = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": extensions,
        "id": item_id(record),
        "geometry": None if footprint is None else shapely.geometry.mapping(footprint),
        "properties": properties,
        "links": links,
        "assets": assets,
    }
    if footprint is not None:
        item["bbox"] = [round(v, 9) for v in footprint.bounds]
    return json.loads(json.dumps(item)), vectors  # tuples -> lists, as read back


def write_result_item(
    record: Record,
    masks: Sequence[np.ndarray],
    out_dir: Path,
    settings: BatchSettings | None,
    stac: dict[str, Any] | None = None,
) -> str:
    """Write the STAC Item (and GeoJSON) of a job's record; its path relative to `out_dir`."""
    folder = out_dir / STAC_DIR
    folder.mkdir(parents=True, exist_ok=True)
    item, vectors = result_item(record, masks, settings, stac)
    key16 = record["key"][:16]
    if vectors is not None:
        _write_json(vectors, folder / f"{key16}.geojson")
    _write_json(item, folder / f"{key16}.json")
    return f"{STAC_DIR}/{key16}.json"


def write_catalog(records: Sequence[Record], out_dir: Path) -> Path | None:
    """stac/catalog.json: a static STAC Catalog of the items of the successful `records`."""
    named = sorted(r["stac_item"] for r in records if "error" not in r and r.get("stac_item"))
    if not named:
        return None
    catalog = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "geomag-results",
        "description": "geomag batch: one item per result (masks and polygons as assets)",
        "links": [
            {"rel": "root", "href": f"./{CATALOG}", "type": "application/json"},
            *({"rel": "item", "href": f"./{Path(n).name}", "type": GEOJSON} for n in named),
        ],
    }
    path = out_dir / STAC_DIR / CATALOG
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(catalog, path)
    return path
