"""Vector outputs that GIS tools open without a warning, read back with Debian's `ogrinfo` (GDAL 3.6,
what QGIS 3.22 on Debian 12 uses) and geopandas, on real GeoTIFFs: RFC 7946 GeoJSON (WGS84,
counterclockwise exterior rings, no `crs` member), native-CRS GeoPackage 1.3, no pixel vectors taken
for WGS84, one batch layer per CRS with areas kept, and one file mode for every output."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely

from geomag.data.samples import mask_to_rle
from geomag.imaging import Box
from geomag.result import Result
from geomag.sources import open_source

OGRINFO = shutil.which("ogrinfo")


def ogrinfo_clean(path: Path) -> str:
    """ogrinfo's summary of `path`; it must open the file and print no warning."""
    if OGRINFO is None:
        if os.environ.get("CI"):
            pytest.fail("no ogrinfo: apt-get install gdal-bin (qgis installs it)")
        pytest.skip("no ogrinfo on this machine (apt-get install gdal-bin)")
    done = subprocess.run(
        [OGRINFO, "-ro", "-so", "-al", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "ERROR" not in done.stderr, done.stderr
    return done.stdout


def _result(source, mask: np.ndarray, box: Box) -> Result:
    return Result(text="Sure, it is [SEG].", granularity="pixel", image_size=source.size, masks=[mask],
                  scores=[0.8], boxes={"crop2": box}, source=source)  # fmt: skip


def _block_mask(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    mask = np.zeros((h, w), bool)
    mask[h // 4 : h // 2, w // 3 : w // 2] = True
    mask[h // 4 + 3 : h // 4 + 6, w // 3 + 3 : w // 3 + 6] = False  # a hole: an interior ring
    return mask


def _modes(folder: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


def test_a_geotiffs_vectors_open_cleanly_in_wgs84_and_in_their_own_crs(real_data, tmp_path):
    import geopandas

    from geomag.writing import OutputOptions, save

    tif = real_data / "neon-trees" / "OSBS_029.tif"
    source = open_source(tif)
    mask = _block_mask(source.size)
    out = tmp_path / "out"
    save(_result(source, mask, Box(10, 20, 200, 220)), out, OutputOptions(geojson=True, mask_geotiff=True))
    assert {"masks.geojson", "boxes.geojson", "vectors.gpkg", "mask_00.tif"} <= {
        p.name for p in out.iterdir()
    }

    for name in ("masks.geojson", "boxes.geojson"):
        fc = json.loads((out / name).read_text())
        assert set(fc) == {"type", "features"}, "RFC 7946: no crs member, no coordinate_system"
        assert "WGS 84" in ogrinfo_clean(out / name)
        frame = geopandas.read_file(out / name)
        assert frame.crs.to_epsg() == 4326
        lon, lat = frame.geometry.iloc[0].representative_point().coords[0]
        assert -83 < lon < -81 and 29 < lat < 30.5  # Florida, longitude first
        for geometry in frame.geometry:
            for polygon in getattr(geometry, "geoms", [geometry]):
                assert polygon.exterior.is_ccw and all(not ring.is_ccw for ring in polygon.interiors)

    info = ogrinfo_clean(out / "vectors.gpkg")
    assert "masks (Multi Polygon)" in info or "Layer name: masks" in info
    masks = geopandas.read_file(out / "vectors.gpkg", layer="masks")
    assert masks.crs.to_epsg() == 32617 and list(masks["mask"]) == [1]
    with rasterio.open(tif) as src:
        pixel_area = abs(src.transform.a * src.transform.e)
    assert masks.geometry.iloc[0].area == pytest.approx(mask.sum() * pixel_area)  # the mask's own area
    boxes = geopandas.read_file(out / "vectors.gpkg", layer="boxes")
    assert boxes.crs.to_epsg() == 32617 and boxes.geometry.iloc[0].exterior.is_ccw
    assert len(_modes(out)) == 1, "every output gets the same mode (mask GeoTIFFs were 0600)"


def test_a_plain_images_vectors_are_never_taken_for_wgs84(real_data, tmp_path):
    import geopandas

    from geomag.writing import OutputOptions, save

    png = real_data / "geopixel" / "data" / "GeoPixelD" / "train" / "P0224_0_800_0_800.png"
    source = open_source(png)
    mask = _block_mask(source.size)
    out = tmp_path / "png"
    save(_result(source, mask, Box(0, 0, 400, 400)), out, OutputOptions(geojson=True))
    assert not list(out.glob("*.geojson"))  # a .geojson of pixels reads as degrees (y = 800 as latitude)
    info = ogrinfo_clean(out / "vectors.gpkg")
    assert "Undefined" in info or "unknown" in info.lower()
    masks = geopandas.read_file(out / "vectors.gpkg", layer="masks")
    assert masks.crs is None or "4326" not in masks.crs.to_string()
    x0, y0, x1, y1 = masks.geometry.iloc[0].bounds  # x = column, y = -row: over the image as QGIS shows it
    ys, xs = np.nonzero(mask)
    assert (x0, x1, -y1, -y0) == (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1)
    assert len(_modes(out)) == 1


def _job(tif: Path, key: str, mask: np.ndarray) -> dict:
    with rasterio.open(tif) as src:
        crs, transform = src.crs.to_string(), list(src.transform)[:6]
        w, h = src.width, src.height
    return {"key": key * 16, "input": str(tif), "prompt": "Segment the trees.", "window": None, "crs": crs,
            "transform": transform, "text": "Sure, it is [SEG].", "display_text": "Sure, it is [mask 1].",
            "granularity": "pixel", "image_size": [w, h],
            "masks": [{"index": 0, "rle": mask_to_rle(mask), "phrase": "", "score": 0.7,
                       "bbox": [0, 0, 1, 1]}]}  # fmt: skip


def test_a_batch_over_two_utm_zones_keeps_each_zone_and_its_areas(real_data, tmp_path):
    import geopandas

    from geomag.batch.merge import write_vectors
    from geomag.batch.outputs import write_job_files

    scenes = [real_data / "neon-trees" / "OSBS_029.tif", real_data / "geotiff" / "rasterio_RGB.byte.tif"]
    records, areas = [], {}
    for key, tif in zip("ab", scenes, strict=True):
        with rasterio.open(tif) as src:
            mask = _block_mask((src.width, src.height))
            areas[src.crs.to_epsg()] = mask.sum() * abs(src.transform.a * src.transform.e)
        records.append(write_job_files(_job(tif, key, mask), tmp_path))
    assert set(areas) == {32617, 32618}  # UTM 17N (Florida) and 18N (the Bahamas)

    path = write_vectors(records, tmp_path, "gpkg")
    ogrinfo_clean(path)
    import pyogrio

    layers = [name for name, _ in pyogrio.list_layers(path)]
    # the first input's CRS (sorted by path: rasterio's, 18N) is "geomag", the other one names its CRS
    assert sorted(layers) == ["geomag", "geomag_epsg_32617"]
    for layer in layers:
        frame = geopandas.read_file(path, layer=layer)
        epsg = frame.crs.to_epsg()
        assert frame.geometry.area.sum() == pytest.approx(areas[epsg])  # not reprojected into another zone
        assert frame["text"].iloc[0] == "Sure, it is [mask 1]."

    path = write_vectors(records, tmp_path, "geojson")
    fc = json.loads(path.read_text())
    assert "crs" not in fc and len(fc["features"]) == 2
    ogrinfo_clean(path)
    frame = geopandas.read_file(path)
    assert frame.crs.to_epsg() == 4326
    for geometry in frame.geometry:
        assert all(p.exterior.is_ccw for p in getattr(geometry, "geoms", [geometry]))
    assert len(_modes(tmp_path)) == 1, "batch masks were 0600, everything else 0644"


def test_pixel_vectors_are_shapely_valid_and_exact(tmp_path):
    """The GeoPackage's polygons burn back to the mask exactly (plain image, no CRS)."""
    import geopandas
    import rasterio.features
    from affine import Affine

    from geomag.geoio import write_vectors

    mask = _block_mask((64, 48))
    write_vectors(tmp_path / "v.gpkg", [mask], {"crop1": Box(1, 2, 30, 40)}, None, None, ["a roof"], [0.5])
    frame = geopandas.read_file(tmp_path / "v.gpkg", layer="masks")
    assert frame.geometry.is_valid.all() and frame["phrase"].iloc[0] == "a roof"
    burnt = rasterio.features.rasterize(
        frame.geometry, out_shape=mask.shape, transform=Affine(1, 0, 0, 0, -1, 0)
    )
    assert np.array_equal(burnt.astype(bool), mask)
    assert shapely.get_num_interior_rings(frame.geometry.iloc[0].geoms[0]) == 1
