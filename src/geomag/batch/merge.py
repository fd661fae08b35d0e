"""The merged outputs of a batch, rebuilt from results.jsonl and the mask files after every run.

- mosaics/<raster>_<prompt>.tif: for a raster parsed in windows (--tile), the masks of all its
  windows for one prompt on the raster's own grid (CRS, transform, size), OR-ed where windows
  overlap. Written chunk by chunk (each chunk ORs the windows that touch it, read by window from
  their mask files), so a 20000 px mosaic is never in memory.
- vectors.gpkg: the masks of georeferenced inputs as polygons (rasterio.features.shapes), one layer
  per CRS in that CRS (layer "geomag" for the first CRS, "geomag_<crs>" for each other one: a scene
  in another UTM zone is never reprojected into the first's, where its areas would be wrong), with
  image, prompt, phrase, score, text (the answer with its mask references); GeoPackage 1.3, which
  GDAL 3.6 reads without a warning. Or vectors.geojson (--vector geojson): RFC 7946, every input in
  WGS84 lon/lat, one collection. Polygons of a windowed raster's prompt are unioned across the
  windows (shapely), so an object in an overlap is one feature, with its best window's attributes.
- coco.json: the masks of the other images (no CRS) as COCO annotations with RLE masks
  (pycocotools); one category per prompt.
- stac/catalog.json: a static STAC Catalog of the results' STAC Items (`geomag.batch.stac_items`).
Everything is written to a temporary name and renamed, so an interrupted merge leaves the old files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import rasterio
import rasterio.errors
import rasterio.features
import rasterio.warp
import shapely
import shapely.geometry
from affine import Affine
from rasterio.windows import Window

from geomag.batch.geometry import mask_geometry, record_transform
from geomag.batch.stac_items import write_catalog
from geomag.data.samples import mask_to_rle
from geomag.geoio import GPKG_OPTIONS
from geomag.imaging import Box

MOSAIC_DIR = "mosaics"
CHUNK = 1024  # mosaic rows/columns combined at a time (1 MB of uint8)
VECTOR_DRIVERS = {"gpkg": ("GPKG", "vectors.gpkg"), "geojson": ("GeoJSON", "vectors.geojson")}
COCO_FILE = "coco.json"
Record = dict[str, Any]


@contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """A temporary path next to `path` (same suffix), renamed to `path` when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.remove(tmp)  # the writers create it themselves
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _read_mask(path: Path, window: Window | None = None) -> np.ndarray:
    """A mask file (GeoTIFF or PNG, both read by GDAL) or a window of it, as bool."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read(1, window=window) > 0


def mosaic_name(image: str, prompt: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", prompt).strip("-")[:40] or "prompt"
    return f"{Path(image).stem}_{slug}_{hashlib.sha256(prompt.encode()).hexdigest()[:6]}.tif"


def write_mosaic(image: str, records: Sequence[Record], out_dir: Path, path: Path) -> Path:
    """The masks of `records` (windows of raster `image`, one prompt) OR-ed on the raster's grid.

    The grid comes from the records (the raster's size, a window's transform moved back to the
    raster's corner), so a remote raster is not opened again here."""
    first = records[0]
    width, height = first["input_size"]
    crs = first.get("crs")
    x0, y0 = first["window"][:2]
    window_transform = record_transform(first)
    transform = (
        Affine.identity() if window_transform is None else window_transform @ Affine.translation(-x0, -y0)
    )
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "uint8",
        "crs": crs,
        "transform": transform,
        "compress": "lzw",
        "BIGTIFF": "IF_SAFER",
    }
    if width >= 256 and height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    windows = [(Box(*r["window"]), [out_dir / m["file"] for m in r.get("masks", [])]) for r in records]
    windows = [(box, files) for box, files in windows if files]
    with _staged(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            for cy in range(0, height, CHUNK):
                for cx in range(0, width, CHUNK):
                    cw, ch = min(CHUNK, width - cx), min(CHUNK, height - cy)
                    block = np.zeros((ch, cw), dtype=np.uint8)
                    for box, files in windows:
                        x0, y0 = max(box.x0, cx), max(box.y0, cy)
                        x1, y1 = min(box.x1, cx + cw), min(box.y1, cy + ch)
                        if x1 <= x0 or y1 <= y0:
                            continue
                        inner = Window(x0 - box.x0, y0 - box.y0, x1 - x0, y1 - y0)
                        for f in files:
                            block[y0 - cy : y1 - cy, x0 - cx : x1 - cx] |= _read_mask(f, inner)
                    dst.write(block, 1, window=Window(cx, cy, cw, ch))
    return path


def _polygons(geom: shapely.Geometry) -> list[shapely.Geometry]:
    parts = shapely.get_parts(geom)
    return [p for p in parts if isinstance(p, shapely.Polygon) and not p.is_empty]


def _features(
    records: Sequence[Record], out_dir: Path, crs: str
) -> tuple[list[shapely.Geometry], list[dict]]:
    """(geometries, attributes) of the masks of georeferenced `records`, in `crs`; windows of one
    raster and prompt unioned."""
    geoms: list[shapely.Geometry] = []
    attrs: list[dict] = []
    groups: dict[tuple[str, str], list[tuple[shapely.Geometry, dict]]] = defaultdict(list)
    for r in records:
        transform = record_transform(r)
        for m in r.get("masks", []):
            geom = mask_geometry(_read_mask(out_dir / m["file"]), transform)
            if geom is None:
                continue
            if r["crs"] != crs:
                geom = shapely.geometry.shape(
                    rasterio.warp.transform_geom(r["crs"], crs, shapely.geometry.mapping(geom))
                )
            props = {
                "image": r["input"],
                "prompt": r["prompt"],
                "phrase": m.get("phrase", ""),
                "score": float(m.get("score", float("nan"))),
                "text": r.get("display_text", r.get("text", "")),
                "granularity": r.get("granularity", ""),
                "mask_file": m["file"],
            }
            if r.get("window") is None:
                geoms.append(geom)
                attrs.append(props)
            else:
                groups[(r["input"], r["prompt"])].append((geom, props))
    for members in groups.values():
        pieces = [g for g, _ in members]
        tree = shapely.STRtree(pieces)
        for part in _polygons(shapely.union_all(pieces)):
            hits = [members[i][1] for i in tree.query(part, predicate="intersects")]
            best = max(hits, key=lambda p: np.nan_to_num(p["score"], nan=-1.0), default=members[0][1])
            geoms.append(part)
            attrs.append({**best, "score": max(p["score"] for p in hits) if hits else best["score"]})
    return geoms, attrs


def _layer_name(crs: str, first: str) -> str:
    return "geomag" if crs == first else "geomag_" + re.sub(r"[^A-Za-z0-9]+", "_", crs).strip("_").lower()


def write_vectors(records: Sequence[Record], out_dir: Path, vector: str = "gpkg") -> Path | None:
    """The vector layers of the georeferenced records (None when there is none): a GeoPackage layer
    per CRS, or one RFC 7946 GeoJSON in WGS84."""
    geo = sorted((r for r in records if r.get("crs")), key=lambda r: (r["input"], r.get("window") or []))
    if not geo:
        return None
    driver, name = VECTOR_DRIVERS[vector]
    crss = list(dict.fromkeys(r["crs"] for r in geo))  # in input order: the first names layer "geomag"
    fields = ["image", "prompt", "phrase", "score", "text", "granularity", "mask_file"]
    path = out_dir / name
    with _staged(path) as tmp:
        if vector == "geojson":
            geoms, attrs = [], []
            for crs in crss:
                g, a = _features([r for r in geo if r["crs"] == crs], out_dir, crs)
                geoms += [_lonlat(x, crs) for x in g]
                attrs += a
            _write_layer(tmp, geoms, attrs, fields, "geomag", driver, "EPSG:4326", {"RFC7946": "YES"})
            return path
        for i, crs in enumerate(crss):
            geoms, attrs = _features([r for r in geo if r["crs"] == crs], out_dir, crs)
            options = {"dataset_options": GPKG_OPTIONS} if i == 0 else {"append": True}
            _write_layer(tmp, geoms, attrs, fields, _layer_name(crs, crss[0]), driver, crs, {}, **options)
    return path


def _lonlat(geom: shapely.Geometry, crs: str) -> shapely.Geometry:
    lonlat = rasterio.warp.transform_geom(crs, "EPSG:4326", shapely.geometry.mapping(geom))
    return shapely.orient_polygons(shapely.geometry.shape(lonlat), exterior_cw=False)  # RFC 7946 3.1.6


def _write_layer(
    path: Path,
    geoms: list[shapely.Geometry],
    attrs: list[dict],
    fields: list[str],
    layer: str,
    driver: str,
    crs: str,
    layer_options: dict[str, str],
    **options: Any,
) -> None:
    data = [np.array([a[f] for a in attrs], dtype=np.float64 if f == "score" else object) for f in fields]
    wkb = np.array(
        [shapely.to_wkb(shapely.orient_polygons(g, exterior_cw=False)) for g in geoms], dtype=object
    )
    pyogrio.raw.write(
        str(path),
        wkb,
        data,
        fields,
        layer=layer,
        driver=driver,
        geometry_type="MultiPolygon",
        crs=crs,
        promote_to_multi=True,
        layer_options=layer_options or None,
        **options,
    )


def write_coco(records: Sequence[Record], out_dir: Path) -> Path | None:
    """COCO JSON of the records of images without a CRS, parsed whole (None when there is none)."""
    plain = [r for r in records if not r.get("crs") and r.get("window") is None]
    if not plain:
        return None
    images: dict[str, dict] = {}
    categories: dict[str, dict] = {}
    annotations = []
    for r in sorted(plain, key=lambda r: (r["input"], r["prompt"])):
        if r["input"] not in images:
            w, h = r["image_size"]
            images[r["input"]] = {"id": len(images) + 1, "file_name": r["input"], "width": w, "height": h}
        if r["prompt"] not in categories:
            categories[r["prompt"]] = {"id": len(categories) + 1, "name": r["prompt"]}
        for m in r.get("masks", []):
            mask = _read_mask(out_dir / m["file"])
            if m.get("bbox") is None:
                continue
            x0, y0, x1, y1 = m["bbox"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": images[r["input"]]["id"],
                    "category_id": categories[r["prompt"]]["id"],
                    "segmentation": mask_to_rle(mask),
                    "area": int(mask.sum()),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "iscrowd": 0,
                    "score": m.get("score"),
                    "phrase": m.get("phrase", ""),
                    "text": r.get("text", ""),
                }
            )
    coco = {
        "info": {"description": "geomag batch: masks of the images without a CRS"},
        "images": list(images.values()),
        "categories": list(categories.values()),
        "annotations": annotations,
    }
    path = out_dir / COCO_FILE
    with _staged(path) as tmp:
        tmp.write_text(json.dumps(coco))
    return path


def merge(records: Sequence[Record], out_dir: Path, vector: str = "gpkg") -> list[Path]:
    """Write the mosaics, the vector layer and the COCO JSON of the successful `records`."""
    ok = [r for r in records if "error" not in r]
    written: list[Path] = []
    windowed: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in ok:
        if r.get("window") is not None:
            windowed[(r["input"], r["prompt"])].append(r)
    for (image, prompt), group in sorted(windowed.items()):
        written.append(write_mosaic(image, group, out_dir, out_dir / MOSAIC_DIR / mosaic_name(image, prompt)))
    for path in (write_vectors(ok, out_dir, vector), write_coco(ok, out_dir), write_catalog(ok, out_dir)):
        if path is not None:
            written.append(path)
    return written
