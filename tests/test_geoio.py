"""Geospatial I/O: windowed GeoTIFF reads, band selection, stretch, nodata, georeferenced outputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
import rasterio.warp
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.enums import Resampling

from geomag.errors import GeoMagError
from geomag.geoio import (
    boxes_to_geojson,
    check_geo_outputs,
    mask_polygons,
    masks_to_geojson,
    save_geo_outputs,
    source_boxes_geojson,
    write_mask_geotiff,
)
from geomag.imaging import Box, PilSource
from geomag.result import Result
from geomag.sources import PilFileSource, RasterSource, load_image, open_source, parse_bands

UTM18 = CRS.from_epsg(32618)
T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4400000.0)  # 10 m pixels, top-left corner at (500000, 4400000)


def make_tif(path: Path, data: np.ndarray, crs=UTM18, transform=T, nodata=None, **kw) -> Path:
    """Write (bands, h, w) data as a GeoTIFF."""
    profile = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=crs,
        transform=transform,
        nodata=nodata,
        **kw,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
    return path


def rand(shape, dtype=np.uint8, seed=0, high=256):
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(dtype)


# ---------------------------------------------------------------- reading


def test_window_read_equals_region_of_full_read(tmp_path):
    src = RasterSource(make_tif(tmp_path / "a.tif", rand((3, 90, 120))))
    assert src.size == (120, 90) and src.is_georeferenced and src.crs == UTM18 and src.transform == T
    full = np.asarray(src.read())
    box = Box(17, 5, 83, 71)
    np.testing.assert_array_equal(np.asarray(src.read(box)), full[5:71, 17:83])
    # and the pixels are the file's own
    with rasterio.open(tmp_path / "a.tif") as ds:
        np.testing.assert_array_equal(full, np.moveaxis(ds.read(), 0, -1))


def test_uint16_windows_share_one_stretch(tmp_path):
    rng = np.random.default_rng(1)
    data = (rng.normal(3000, 600, size=(3, 100, 100)).clip(0, 65535)).astype(np.uint16)
    data[:, :50, :50] += 4000  # a bright quarter: a window of it alone would stretch differently
    src = RasterSource(make_tif(tmp_path / "u16.tif", data))
    assert src.limits is not None and src.limits.shape == (3, 2)
    for b in range(3):  # the stats read of a 100x100 raster is the whole raster
        np.testing.assert_allclose(src.limits[b], np.percentile(data[b], [2, 98]))
    full = np.asarray(src.read())
    assert full.dtype == np.uint8 and full.min() == 0 and full.max() == 255
    box = Box(60, 60, 100, 100)  # the dark part only
    win = np.asarray(src.read(box))
    np.testing.assert_array_equal(win, full[60:100, 60:100])
    assert win.mean() < full[:50, :50].mean()


def test_decimated_read_uses_out_size_and_overviews(tmp_path):
    path = make_tif(tmp_path / "ov.tif", np.full((3, 512, 512), 100, np.uint8), tiled=True)
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2, 4, 8], Resampling.average)
        ds.write(np.full((3, 512, 512), 200, np.uint8))  # base changed, overviews left stale (=100)
    src = RasterSource(path)
    small = np.asarray(src.read(out_size=(64, 64)))
    assert small.shape == (64, 64, 3) and (small == 100).all()  # served from the 8x overview
    assert (np.asarray(src.read(Box(0, 0, 64, 64))) == 200).all()  # full detail from the base


def test_decimated_read_matches_resampled_full_read(tmp_path):
    yy, xx = np.mgrid[0:200, 0:300]
    data = np.stack([xx * 255 // 299, yy * 255 // 199, (xx + yy) * 255 // 498]).astype(np.uint8)
    src = RasterSource(make_tif(tmp_path / "g.tif", data))
    box = Box(30, 40, 230, 190)
    small = np.asarray(src.read(box, out_size=(50, 30))).astype(float)
    ref = np.asarray(Image.fromarray(data.transpose(1, 2, 0)[40:190, 30:230]).resize((50, 30), Image.BOX))
    assert small.shape == (30, 50, 3)
    assert np.abs(small - ref).max() <= 3


def test_band_selection(tmp_path):
    data = np.stack([np.full((20, 30), 10 * (b + 1), np.uint8) for b in range(5)])
    path = make_tif(tmp_path / "five.tif", data)
    rgb = np.asarray(RasterSource(path, bands="3,2,1").read())
    assert rgb[0, 0].tolist() == [30, 20, 10]
    assert np.asarray(RasterSource(path, bands=(5,)).read())[0, 0].tolist() == [50, 50, 50]  # grey
    with pytest.raises(GeoMagError, match="--bands"):
        RasterSource(path)  # 5 bands, none chosen
    with pytest.raises(GeoMagError, match="has 5 band"):
        RasterSource(path, bands=(6, 2, 1))
    with pytest.raises(GeoMagError, match="one band"):
        parse_bands("3,2")
    with pytest.raises(GeoMagError, match="start at 1"):
        parse_bands("0,1,2")
    with pytest.raises(GeoMagError, match="band numbers"):
        parse_bands("red,green,blue")
    with pytest.warns(UserWarning, match="4 bands"):
        four = RasterSource(make_tif(tmp_path / "four.tif", data[:4]))
    assert four.bands == (1, 2, 3)
    two = make_tif(tmp_path / "two.tif", data[:2])
    with pytest.raises(GeoMagError, match="2 bands"):
        RasterSource(two)


def test_nodata_zeroed_and_left_out_of_stretch(tmp_path):
    data = np.random.default_rng(2).integers(1000, 2000, size=(1, 40, 40)).astype(np.uint16)
    data[0, :10, :] = 0  # nodata stripe
    src = RasterSource(make_tif(tmp_path / "nd.tif", data, nodata=0))
    assert src.limits[0, 0] >= 1000  # percentiles of valid pixels only
    img = np.asarray(src.read())
    assert (img[:10] == 0).all() and img[10:].max() == 255
    # a decimated read keeps nodata out of the valid pixels (GDAL knows the file's nodata)
    small = np.asarray(src.read(out_size=(20, 20)))
    assert (small[:5] == 0).all() and (small[5:] > 0).mean() > 0.9
    # override nodata for a file that does not declare it
    src2 = RasterSource(make_tif(tmp_path / "nd2.tif", data), nodata=0)
    np.testing.assert_array_equal(np.asarray(src2.read()), img)


def test_uint8_nodata_needs_every_band(tmp_path):
    data = np.full((3, 4, 4), 120, np.uint8)
    data[:, 0, 0] = 255  # nodata pixel
    data[0, 1, 1] = 255  # a saturated red pixel: valid
    img = np.asarray(RasterSource(make_tif(tmp_path / "nd8.tif", data, nodata=255)).read())
    assert img[0, 0].tolist() == [0, 0, 0] and img[1, 1].tolist() == [255, 120, 120]


def test_float_nan_is_nodata(tmp_path):
    data = np.linspace(0, 1, 400, dtype=np.float32).reshape(1, 20, 20)
    data[0, 0, :5] = np.nan
    img = np.asarray(RasterSource(make_tif(tmp_path / "f.tif", data)).read())
    assert (img[0, :5] == 0).all() and img.max() == 255


def test_bad_inputs(tmp_path):
    text = tmp_path / "notes.tif"
    text.write_text("this is not a raster")
    with pytest.raises(GeoMagError, match=r"cannot read .* as a raster"):
        RasterSource(text)
    with pytest.raises(GeoMagError, match="cannot read"):
        open_source(text)
    with pytest.raises(GeoMagError, match="not found"):
        open_source(tmp_path / "missing.tif")
    src = RasterSource(make_tif(tmp_path / "a.tif", rand((3, 50, 60))))
    with pytest.raises(GeoMagError, match="outside the raster"):
        src.read(Box(40, 40, 70, 60))
    with pytest.raises(GeoMagError, match="outside the raster"):
        src.read(Box(-5, 0, 10, 10))


def test_open_source_picks_the_reader(tmp_path):
    tif = make_tif(tmp_path / "a.tif", rand((3, 30, 40)))
    png = tmp_path / "a.png"
    Image.fromarray(rand((30, 40, 3))).save(png)
    assert isinstance(open_source(tif), RasterSource)
    assert isinstance(open_source(png), PilFileSource)
    with pytest.raises(GeoMagError, match="--bands"):
        open_source(png, bands="3,2,1")
    np.testing.assert_array_equal(np.asarray(open_source(tif).read()), np.asarray(load_image(tif)))


# ---------------------------------------------------------------- outputs


def two_blobs(h=40, w=50) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[5:10, 3:8] = True  # rows 5..9, cols 3..7
    m[20:30, 30:45] = True
    m[25:30, 30:35] = False  # a notch: not a rectangle
    return m


def test_polygons_land_on_mask_pixels():
    m = two_blobs()
    fc = masks_to_geojson([m], transform=T, crs=UTM18, properties=[{"phrase": "roofs"}])
    assert set(fc) == {"type", "features"}  # RFC 7946: no crs member, nothing non-standard
    (feat,) = fc["features"]
    assert feat["properties"] == {"index": 0, "area_px": int(m.sum()), "phrase": "roofs"}
    assert feat["geometry"]["type"] == "MultiPolygon"
    polys = mask_polygons(m, T)  # in the raster's own CRS (what vectors.gpkg holds)
    assert len(polys) == 2
    xs = [x for p in polys for x, _ in p[0]]
    ys = [y for p in polys for _, y in p[0]]
    # left edge of column 3 and top edge of row 5 in map coordinates
    assert min(xs) == 500000 + 3 * 10 and max(ys) == 4400000 - 5 * 10
    assert max(xs) == 500000 + 45 * 10 and min(ys) == 4400000 - 30 * 10
    # burning the polygons back onto the grid gives exactly the mask
    native = {"type": "MultiPolygon", "coordinates": polys}
    back = rasterio.features.rasterize([native], out_shape=m.shape, transform=T).astype(bool)
    np.testing.assert_array_equal(back, m)
    assert json.loads(json.dumps(fc)) == fc  # plain JSON


def test_polygons_wgs84():
    m = two_blobs()
    import shapely

    fc = masks_to_geojson([m], transform=T, crs=UTM18)
    assert "crs" not in fc and "coordinate_system" not in fc
    ring = fc["features"][0]["geometry"]["coordinates"][0][0]
    utm = mask_polygons(m, T)[0][0]
    lon, lat = rasterio.warp.transform(UTM18, "EPSG:4326", [p[0] for p in utm], [p[1] for p in utm])
    expected = shapely.Polygon(np.stack([lon, lat], axis=1))
    assert shapely.Polygon(ring).normalize().equals_exact(expected.normalize(), 1e-9)  # same ring, reoriented
    assert shapely.Polygon(ring).exterior.is_ccw  # RFC 7946 3.1.6: exterior rings counterclockwise
    assert all(-76 < x < -74 and 39 < y < 40 for x, y in ring)  # UTM 18N, 4400 km north


def test_boxes_geojson():
    import shapely

    fc = boxes_to_geojson({"crop1": Box(10, 20, 30, 25)}, transform=T, crs=UTM18)
    (feat,) = fc["features"]
    assert feat["properties"] == {"name": "crop1", "box_px": [10, 20, 30, 25]}
    ring = feat["geometry"]["coordinates"][0]
    assert shapely.LinearRing(ring).is_ccw  # the box's corners went round clockwise on the map before
    lon, lat = rasterio.warp.transform(UTM18, "EPSG:4326", [500100.0, 500300.0], [4399800.0, 4399750.0])
    np.testing.assert_allclose(ring[0], [lon[0], lat[0]])  # the top-left corner comes first
    assert [lon[1], lat[1]] in [pytest.approx(c) for c in ring]


def test_pixel_coordinates_without_crs():
    fc = masks_to_geojson([two_blobs()])
    assert fc["coordinate_system"] == "pixel" and "column" in fc["note"] and "crs" not in fc
    xs = [x for p in fc["features"][0]["geometry"]["coordinates"] for x, _ in p[0]]
    assert min(xs) == 3 and max(xs) == 45
    assert masks_to_geojson([np.zeros((4, 4), bool)])["features"] == []


def test_write_mask_geotiff(tmp_path):
    src = RasterSource(make_tif(tmp_path / "in.tif", rand((3, 40, 50))))
    m = two_blobs()
    out = write_mask_geotiff(m, tmp_path / "mask.tif", src)
    with rasterio.open(out) as ds:
        assert ds.crs == UTM18 and ds.transform == T and ds.dtypes[0] == "uint8"
        assert ds.compression.name.lower() == "lzw"
        np.testing.assert_array_equal(ds.read(1), m.astype(np.uint8))
    labels = m.astype(np.int64) * 300
    with rasterio.open(write_mask_geotiff(labels, tmp_path / "labels.tif", src.profile)) as ds:
        assert ds.dtypes[0] == "uint16" and ds.read(1).max() == 300
    with pytest.raises(GeoMagError, match="original pixel grid"):
        write_mask_geotiff(np.zeros((10, 10), bool), tmp_path / "x.tif", src)
    with pytest.raises(GeoMagError, match="refusing to overwrite the input"):
        write_mask_geotiff(m, tmp_path / "in.tif", src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "labels.tif", "mask.tif"]


def make_result(m: np.ndarray) -> Result:
    return Result(
        text="<p>roofs</p> [SEG]",
        granularity="pixel",
        image_size=(m.shape[1], m.shape[0]),
        boxes={"crop1": Box(2, 3, 20, 15)},
        masks=[m],
        phrases=["roofs"],
    )


def test_save_geo_outputs(tmp_path):
    src = RasterSource(make_tif(tmp_path / "in.tif", rand((3, 40, 50))))
    files = save_geo_outputs(make_result(two_blobs()), src, tmp_path / "out", wgs84=True)
    assert sorted(files) == ["boxes.geojson", "mask_00.tif", "masks.geojson", "vectors.gpkg"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(files)  # no temp leftovers
    masks = json.loads(files["masks.geojson"].read_text())
    assert masks["features"][0]["properties"]["phrase"] == "roofs"
    assert -76 < masks["features"][0]["geometry"]["coordinates"][0][0][0][0] < -74
    with rasterio.open(files["mask_00.tif"]) as ds:
        assert ds.crs == UTM18 and ds.transform == T
    with pytest.raises(GeoMagError, match="result is for a"):
        save_geo_outputs(make_result(np.zeros((10, 10), bool)), src, tmp_path / "bad")


def test_missing_crs_warns_and_writes_pixel_coordinates(tmp_path):
    path = make_tif(tmp_path / "plain.tif", rand((3, 40, 50)), crs=None, transform=None)
    src = RasterSource(path)
    assert not src.is_georeferenced
    with pytest.warns(UserWarning, match="no CRS: the vectors are written in pixel coordinates"):
        check_geo_outputs(src, masks=True)  # when the input is opened, before any model work
    files = save_geo_outputs(make_result(two_blobs()), src, tmp_path / "out", mask_geotiff=True)
    assert sorted(files) == ["vectors.gpkg"]  # no GeoJSON (it would read as degrees), no mask GeoTIFF
    import pyogrio

    assert pyogrio.read_info(files["vectors.gpkg"], layer="boxes")["crs"] is None
    _, _, geometry, _ = pyogrio.raw.read(files["vectors.gpkg"], layer="boxes")
    import shapely

    assert shapely.from_wkb(geometry[0]).bounds == (2.0, -15.0, 20.0, -3.0)  # x = column, y = -row
    with pytest.raises(GeoMagError, match="--wgs84"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_geo_outputs(make_result(two_blobs()), src, tmp_path / "out2", wgs84=True)
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())
    with pytest.warns(UserWarning, match=r"longitude / latitude\)$"):  # boxes only: no word on mask GeoTIFFs
        fc = source_boxes_geojson({"crop1": Box(2, 3, 20, 15)}, src)
    assert fc["coordinate_system"] == "pixel"
    geo = RasterSource(make_tif(tmp_path / "geo.tif", rand((3, 40, 50))))
    fc = source_boxes_geojson({"crop1": Box(10, 20, 30, 25)}, geo)
    lon, lat = rasterio.warp.transform(UTM18, "EPSG:4326", [500100.0], [4399800.0])
    assert fc["features"][0]["geometry"]["coordinates"][0][0] == pytest.approx([lon[0], lat[0]])


def test_plain_image_geojson(tmp_path):
    src = PilSource(Image.fromarray(rand((40, 50, 3))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a PNG has no CRS by nature: pixel coordinates, no warning
        files = save_geo_outputs(make_result(two_blobs()), src, tmp_path)
        boxes = source_boxes_geojson({"crop1": Box(1, 2, 3, 4)}, src)
    assert boxes["coordinate_system"] == "pixel"  # for a viewer of the image; never a .geojson file
    assert boxes["features"][0]["geometry"]["coordinates"][0][0] == [1.0, 2.0]
    assert sorted(files) == ["vectors.gpkg"]


# ---------------------------------------------------------------- real files


def real_tifs(real: Path) -> list[Path]:
    files = [*sorted((real / "geotiff").glob("*.tif")), real / "neon-trees" / "OSBS_029.tif"]
    files += sorted((real / "rsvqa-lr").rglob("*.tif"))[:3]
    return files


def test_real_geotiffs_window_reads(real_data):
    files = real_tifs(real_data)
    assert len(files) >= 7
    for f in files:
        src = RasterSource(f)
        assert src.is_georeferenced, f
        w, h = src.size
        full = np.asarray(src.read())
        box = Box(w // 5, h // 4, w // 5 + w // 2, h // 4 + h // 3)
        np.testing.assert_array_equal(np.asarray(src.read(box)), full[box.y0 : box.y1, box.x0 : box.x1])
        valid = full.any(axis=-1)  # nodata pixels are 0 here; elsewhere the same pixels as load_image
        np.testing.assert_array_equal(full[valid], np.asarray(load_image(f))[valid])
        assert np.asarray(src.read(out_size=(64, 48))).shape == (48, 64, 3)


def test_real_osbs_mask_lands_on_the_map(real_data, tmp_path):
    src = RasterSource(real_data / "neon-trees" / "OSBS_029.tif")
    assert src.crs.to_epsg() == 32617 and src.size == (400, 400)
    with rasterio.open(src.path) as ds:
        nodata_pixels = (ds.read() == 255).all(axis=0)
    assert nodata_pixels.any() and (np.asarray(src.read())[nodata_pixels] == 0).all()
    m = np.zeros((400, 400), bool)
    m[100:150, 200:260] = True
    import pyogrio
    import shapely

    files = save_geo_outputs(make_result(m), src, tmp_path, wgs84=False)
    assert pyogrio.read_info(files["vectors.gpkg"], layer="masks")["crs"] == "EPSG:32617"
    geometry = shapely.from_wkb(pyogrio.raw.read(files["vectors.gpkg"], layer="masks")[2][0])
    xs, ys = geometry.exterior.xy if geometry.geom_type == "Polygon" else geometry.geoms[0].exterior.xy
    x0, y0 = src.transform @ (200, 100)
    x1, y1 = src.transform @ (260, 150)
    assert (min(xs), max(xs), max(ys), min(ys)) == pytest.approx((x0, x1, y0, y1))
    assert max(xs) - min(xs) == pytest.approx(6.0)  # 60 pixels of 0.1 m
    with rasterio.open(files["mask_00.tif"]) as ds:
        assert ds.crs == src.crs and ds.transform == src.transform
        np.testing.assert_array_equal(ds.read(1).astype(bool), m)
    lonlat = json.loads(files["masks.geojson"].read_text())
    lon, lat = lonlat["features"][0]["geometry"]["coordinates"][0][0][0]
    assert -83 < lon < -81 and 29 < lat < 30.5  # Ordway-Swisher Biological Station, Florida


def test_real_rsvqa_and_world_wgs84(real_data):
    for f in [
        *sorted((real_data / "rsvqa-lr").rglob("*.tif"))[:2],
        real_data / "geotiff" / "rasterio_world.rgb.tif",
    ]:
        src = RasterSource(f)
        fc = boxes_to_geojson({"all": Box(0, 0, *src.size)}, src.transform, src.crs)
        ring = fc["features"][0]["geometry"]["coordinates"][0]
        lon, lat = rasterio.warp.transform(src.crs, "EPSG:4326", *zip(*[src.transform @ (0, 0)], strict=True))
        np.testing.assert_allclose(ring[0], [lon[0], lat[0]], atol=1e-9)
        assert all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in ring)


# ---------------------------------------------------------------- the API's geo outputs


def test_open_image_and_save_write_the_geo_outputs_asked_for(tmp_path):
    from geomag.api import OutputOptions, open_image, save

    five = make_tif(tmp_path / "five.tif", rand((5, 40, 50)))
    asked = OutputOptions(geojson=True, mask_geotiff=True)
    src = open_image(five, bands="3,2,1", outputs=asked)
    assert isinstance(src, RasterSource) and src.bands == (3, 2, 1)
    result = make_result(two_blobs())
    result.source = src
    save(result, tmp_path / "out", asked)
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".geomag-outputs.json")
    assert names == [
        "boxes.geojson",
        "mask_00.png",
        "mask_00.tif",
        "masks.geojson",
        "overlay.png",
        "result.json",
        "vectors.gpkg",
    ]
    save(result, tmp_path / "plain")
    assert sorted(p.name for p in (tmp_path / "plain").iterdir() if not p.name.startswith(".")) == [
        "mask_00.png",
        "overlay.png",
        "result.json",
    ]
    with pytest.raises(GeoMagError, match="--bands"):
        open_image(five)
    plain = make_tif(tmp_path / "plain.tif", rand((3, 40, 50)), crs=None, transform=None)
    with pytest.raises(GeoMagError, match="--wgs84 needs a georeferenced"):
        open_image(plain, outputs=OutputOptions(wgs84=True))  # before any model runs


# ---------------------------------------------------------------- geomag magcrop flags (real GeoTIFF)


def test_magcrop_cli_geojson(real_data, tmp_path, capsys):
    from geomag.cli import main

    tif = real_data / "neon-trees" / "OSBS_029.tif"
    out = tmp_path / "out"
    argv = ["magcrop", str(tif), "--prompt", "Where are the trees?", "--granularity", "region"]
    rc = main([*argv, "--box", "100,120,260,300", "--geojson", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    fc = json.loads((out / "boxes.geojson").read_text())
    assert "crs" not in fc  # RFC 7946: WGS84
    src = RasterSource(tif)
    lon, lat = rasterio.warp.transform(src.crs, "EPSG:4326", *zip(src.transform @ (100, 120), strict=True))
    assert fc["features"][0]["geometry"]["coordinates"][0][0] == pytest.approx([lon[0], lat[0]])
    rc = main([*argv, "--box", "100,120,260,300", "--wgs84", "--out", str(tmp_path / "wgs")])
    lon, lat = json.loads((tmp_path / "wgs" / "boxes.geojson").read_text())["features"][0]["geometry"][
        "coordinates"
    ][0][0]
    assert rc == 0 and -83 < lon < -81 and 29 < lat < 30.5


def test_magcrop_cli_bad_geo_inputs(tmp_path, capsys):
    from geomag.cli import main

    base = ["--prompt", "Where are the cars?", "--granularity", "region", "--box", "5,5,30,30"]
    plain = make_tif(tmp_path / "plain.tif", rand((3, 40, 50)), crs=None, transform=None)
    five = make_tif(tmp_path / "five.tif", rand((5, 40, 50)))
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    cases = [
        ([str(plain), *base, "--wgs84"], "--wgs84 needs a georeferenced"),
        ([str(five), *base], "choose three with --bands"),
        ([str(five), *base, "--bands", "7,2,1"], "has 5 band"),
        ([str(text), *base], "cannot read"),
    ]
    for i, (argv, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        assert main(["magcrop", *argv, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()  # no partial outputs
    # missing CRS: one warning line and pixel coordinates
    assert main(["magcrop", str(plain), *base, "--geojson", "--out", str(tmp_path / "px")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("geomag: warning:") and "no CRS" in err[0]
    import pyogrio
    import shapely

    assert not (tmp_path / "px" / "boxes.geojson").exists()  # pixels would read as degrees
    geometry = pyogrio.raw.read(tmp_path / "px" / "vectors.gpkg", layer="boxes")[2][0]
    assert shapely.from_wkb(geometry).bounds == (5.0, -30.0, 30.0, -5.0)
