"""Image operations MagCrop is built from: D(), crop, paste, Box, sources, loading, pictures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from geomag.errors import GeoMagError
from geomag.imaging import (
    MASK_COLORS,
    Box,
    PilSource,
    crop,
    degrade,
    degraded_read,
    draw_boxes,
    overlay_heatmap,
    overlay_masks,
    paste,
    paste_mask,
    reduced_size,
    resize,
    tile_boxes,
)
from geomag.sources import load_image


def rgb(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "RGB")


def blocks(rows: int, cols: int, block: int = 4, seed: int = 0) -> tuple[Image.Image, np.ndarray]:
    """An image of block x block constant tiles, and the (rows, cols, 3) tile values."""
    values = np.random.default_rng(seed).integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    return rgb(values.repeat(block, 0).repeat(block, 1)), values


# ------------------------------------------------------------------------------------------- D()
def test_degrade_keeps_size_and_constant_images():
    img = rgb(np.full((37, 53, 3), (12, 200, 77)))
    out = degrade(img)
    assert out.size == img.size
    assert (np.asarray(out) == (12, 200, 77)).all()


def test_degrade_is_the_eq3_composition_and_its_small_image_is_exact_on_blocks():
    img, values = blocks(10, 15)  # 60 x 40 px made of 4x4 tiles
    small = img.resize(reduced_size(img.size, 4), Image.Resampling.BOX)
    np.testing.assert_array_equal(np.asarray(small), values)  # area average of a constant tile is exact
    expected = small.resize(img.size, Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(np.asarray(degrade(img)), np.asarray(expected))


def test_degrade_removes_single_pixel_detail():
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    out = np.asarray(degrade(rgb(np.repeat(checker[..., None], 3, -1)))).astype(int)
    assert np.abs(out - 127.5).max() <= 1  # a 1-px checkerboard averages to grey


def test_degraded_read_equals_degrade_of_the_crop():
    img = rgb(np.random.default_rng(1).integers(0, 256, (90, 130, 3)))
    box = Box(10, 7, 91, 70)
    out = degraded_read(PilSource(img), box, (box.width, box.height))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(degrade(crop(img, box))))
    whole = degraded_read(PilSource(img), None, img.size)
    np.testing.assert_array_equal(np.asarray(whole), np.asarray(degrade(img)))


# ---------------------------------------------------------------------------------- crop / paste
def test_crop_and_paste_are_exact():
    rng = np.random.default_rng(2)
    canvas_a = rng.integers(0, 256, (50, 80, 3))
    patch_a = rng.integers(0, 256, (20, 30, 3))
    canvas, patch = rgb(canvas_a), rgb(patch_a)
    box = Box(45, 25, 75, 45)
    out = np.asarray(paste(canvas, patch, box))
    np.testing.assert_array_equal(out[25:45, 45:75], patch_a)
    mask = np.ones((50, 80), bool)
    mask[25:45, 45:75] = False
    np.testing.assert_array_equal(out[mask], canvas_a[mask])
    np.testing.assert_array_equal(np.asarray(canvas), canvas_a)  # the canvas is not modified
    np.testing.assert_array_equal(np.asarray(crop(canvas, box)), canvas_a[25:45, 45:75])
    # crop then paste back is the identity
    np.testing.assert_array_equal(np.asarray(paste(canvas, crop(canvas, box), box)), canvas_a)


def test_paste_and_crop_refuse_bad_boxes():
    canvas = rgb(np.zeros((20, 30, 3)))
    with pytest.raises(GeoMagError, match="outside"):
        paste(canvas, rgb(np.zeros((10, 10, 3))), Box(25, 0, 35, 10))
    with pytest.raises(GeoMagError, match="does not match"):
        paste(canvas, rgb(np.zeros((10, 10, 3))), Box(0, 0, 5, 5))
    with pytest.raises(GeoMagError, match="outside"):
        crop(canvas, Box(-1, 0, 5, 5))


# -------------------------------------------------------------------------------------------- Box
def test_box_helpers():
    b = Box.parse("10, 20,110,70")
    assert b.to_list() == [10, 20, 110, 70] and (b.width, b.height, b.area) == (100, 50, 5000)
    assert b.shift(5, -5).to_list() == [15, 15, 115, 65]
    assert Box(1, 1, 3, 3).scale(0.5, 0.5).to_list() == [0, 0, 2, 2]  # outward rounding
    assert Box(10, 10, 20, 20).scale(2.0, 3.0).to_list() == [20, 30, 40, 60]
    assert Box(-5, -5, 10, 10).clamp(8, 8).to_list() == [0, 0, 8, 8]
    assert Box(0, 0, 10, 10).contains(Box(2, 2, 5, 5)) and not Box(2, 2, 5, 5).contains(Box(0, 0, 10, 10))
    with pytest.raises(GeoMagError, match="four integers"):
        Box.parse("1,2,3")
    with pytest.raises(GeoMagError, match="empty box"):
        Box.parse("5,5,5,9")
    with pytest.raises(GeoMagError, match="outside"):
        Box(100, 100, 120, 120).clamp(50, 50)


# -------------------------------------------------------------------------------------- sources
def test_pil_source_reads_windows_and_shrinks_by_area_average():
    img, values = blocks(6, 9)
    src = PilSource(img)
    assert src.size == (36, 24)
    np.testing.assert_array_equal(np.asarray(src.read(Box(4, 8, 16, 20))), np.asarray(img)[8:20, 4:16])
    np.testing.assert_array_equal(np.asarray(src.read(None, (9, 6))), values)  # 4x area average: exact
    assert src.read(Box(0, 0, 4, 4), (10, 10)).size == (10, 10)
    with pytest.raises(GeoMagError, match="outside"):
        src.read(Box(30, 0, 40, 10))


# -------------------------------------------------------------------------------------- loading
def test_load_formats(tmp_path):
    arr = np.random.default_rng(3).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    rgb(arr).save(tmp_path / "a.png")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "a.png")), arr)
    rgb(arr).save(tmp_path / "a.jpg")
    assert load_image(tmp_path / "a.jpg").size == (40, 30)
    sixteen = (np.arange(30 * 40).reshape(30, 40) * 50).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "g16.png")
    g = np.asarray(load_image(tmp_path / "g16.png"))
    assert g.dtype == np.uint8 and g.shape == (30, 40, 3) and g.min() == 0 and g.max() == 255


def test_load_refuses_bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(GeoMagError, match="cannot read"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(GeoMagError, match="cannot read"):
        load_image(tmp_path / "text.jpg")
    with pytest.raises(GeoMagError, match="not found"):
        load_image(tmp_path / "missing.png")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_load_many_band_tiff_is_refused(tmp_path):
    import rasterio

    path = tmp_path / "five.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=6, count=5, dtype="uint16") as dst:
        dst.write(np.arange(5 * 6 * 8, dtype=np.uint16).reshape(5, 6, 8))
    with pytest.raises(GeoMagError, match="5 bands"):
        load_image(path)


def test_load_real_tiff_and_png(real_data):
    ucm = load_image(real_data / "ucm-captions" / "images" / "1.tif")
    assert ucm.mode == "RGB" and ucm.size == (256, 256)
    dota = load_image(real_data / "dota" / "images" / "P1888.png")
    assert dota.size == (712, 557)
    assert degrade(dota).size == dota.size


# -------------------------------------------------------------------------------------- pictures
def test_pictures():
    img = rgb(np.zeros((40, 60, 3)))
    drawn = np.asarray(draw_boxes(img, {"crop1": Box(10, 5, 50, 35)}))
    assert drawn.shape == (40, 60, 3) and drawn[5, 10:50].any() and not drawn[20, 30].any()
    heat = np.arange(12, dtype=float).reshape(3, 4)
    over = overlay_heatmap(img, heat)
    assert over.size == img.size and np.asarray(over)[-1, -1].sum() > np.asarray(over)[0, 0].sum()
    assert resize(img, (6, 4)).size == (6, 4)


def test_overlay_masks_tints_mask_pixels_only():
    base = np.random.default_rng(0).integers(0, 256, (40, 60, 3)).astype(np.uint8)
    a, b, empty = (np.zeros((40, 60), dtype=bool) for _ in range(3))
    a[5:9, 10:12] = True
    a[30, 50] = True  # a mask of two parts: its bounding box holds unmasked pixels too
    b[20:25, 0:60] = True
    out = np.asarray(overlay_masks(rgb(base), [a, empty, b]))
    for mask, color in ((a, MASK_COLORS[0]), (b, MASK_COLORS[2])):
        expected = np.rint(0.5 * base[mask].astype(np.float32) + 0.5 * np.array(color, np.float32))
        assert np.array_equal(out[mask], expected.astype(np.uint8))
    untouched = ~(a | b)
    assert np.array_equal(out[untouched], base[untouched])
    with pytest.raises(GeoMagError, match="shape"):
        overlay_masks(rgb(base), [np.zeros((40, 59), dtype=bool)])


def test_paste_mask_places_a_crop_mask_on_the_whole_grid():
    crop_mask = np.zeros((3, 4), dtype=bool)
    crop_mask[1, 2] = True
    full = paste_mask((10, 6), Box(5, 2, 9, 5), crop_mask)
    assert full.shape == (6, 10) and full.sum() == 1 and full[3, 7]
    with pytest.raises(GeoMagError, match="does not match box"):
        paste_mask((10, 6), Box(5, 2, 9, 5), np.zeros((4, 4), dtype=bool))
    with pytest.raises(GeoMagError):
        paste_mask((8, 6), Box(5, 2, 9, 5), crop_mask)  # box outside the image


def test_tile_boxes_cover_the_image_with_full_size_tiles():
    boxes = tile_boxes(1000, 500, 256, overlap=0.2)
    assert all(b.width == 256 and b.height == 256 for b in boxes)
    cover = np.zeros((500, 1000), bool)
    for b in boxes:
        cover[b.y0 : b.y1, b.x0 : b.x1] = True
    assert cover.all()
    assert boxes[-1].to_tuple() == (744, 244, 1000, 500)  # the last tile shifted inward
    assert [b.to_tuple() for b in tile_boxes(100, 80, 256)] == [(0, 0, 100, 80)]
    with pytest.raises(GeoMagError, match="overlap"):
        tile_boxes(100, 100, 32, overlap=1.0)
