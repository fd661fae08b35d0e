"""TMRA plans (Eq. 2), MagCrop with PSC on a tiny LLaVA, and the `geomag magcrop` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from geomag.cli import main
from geomag.errors import GeoMagError
from geomag.imaging import Box, PilSource, crop, degrade
from geomag.magcrop import MagCrop, MagCropConfig, tmra
from geomag.model.vlm import VLM

PROMPT = "Segment the white ship near the pier."


def textured(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def smooth(width: int, height: int) -> Image.Image:
    """A large image that encodes fast: gradients plus a few bright rectangles."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    arr = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], -1).astype(np.uint8)
    arr[300:420, 3000:3200] = 255
    return Image.fromarray(arr)


class SpySource(PilSource):
    """A PilSource that records every read, to check what MagCrop asks for."""

    def __init__(self, image):
        super().__init__(image)
        self.reads = []

    def read(self, box=None, out_size=None):
        self.reads.append((box, None if out_size is None else tuple(out_size)))
        return super().read(box, out_size)


@pytest.fixture(scope="module")
def vlm(tiny_llava):
    return VLM.from_pretrained(tiny_llava)


# ------------------------------------------------------------------------------------ TMRA plans
def test_image_plan_is_100x100():
    img = textured(300, 200)
    adjusted, plan = tmra(PilSource(img), "image")
    assert adjusted.size == (100, 100) == plan.adjusted_size
    assert plan.full_detail_fraction == 0.0 and plan.scale == (100 / 300, 100 / 200)
    assert plan.box_to_original(Box(0, 0, 50, 50)).to_list() == [0, 0, 150, 100]
    assert plan.mask_to_original(np.ones((100, 100), bool)).shape == (200, 300)


def test_image_plans_never_shrink_below_the_vlm_input(vlm):
    """The paper's 100 px, unless the VLM's own input is larger: then its input side (a fixed-input
    VLM resizes to it anyway, so a smaller plan only blurs); `image_side` sets it."""
    img = textured(600, 400)
    side = max(vlm.input_size)
    assert MagCrop(vlm).adjust(img, PROMPT, "image")[1].adjusted_size == (max(100, side),) * 2
    assert MagCrop(vlm, MagCropConfig(image_side=100)).adjust(img, PROMPT, "image")[0].size == (100, 100)
    assert MagCrop().adjust(img, PROMPT, "image")[0].size == (100, 100)  # no VLM: the paper's plan
    with pytest.raises(GeoMagError, match="image_side"):
        MagCropConfig(image_side=0)


def test_region_plan_keeps_full_detail_only_inside_crop1():
    img = textured(320, 240)
    c1 = Box(40, 30, 200, 150)
    adjusted, plan = tmra(PilSource(img), "region", {"crop1": c1})
    a, o = np.asarray(adjusted), np.asarray(img)
    assert adjusted.size == img.size and plan.is_identity
    np.testing.assert_array_equal(a[30:150, 40:200], o[30:150, 40:200])
    outside = np.ones((240, 320), bool)
    outside[30:150, 40:200] = False
    np.testing.assert_array_equal(a[outside], np.asarray(degrade(img))[outside])
    assert (a[outside] != o[outside]).mean() > 0.9  # the rest lost its detail
    assert plan.full_detail_fraction == pytest.approx(c1.area / (320 * 240))
    mask = np.zeros((240, 320), bool)
    mask[50:60, 70:90] = True
    np.testing.assert_array_equal(plan.mask_to_original(mask), mask)  # identity


def test_pixel_plan_nests_three_levels_of_detail():
    img = textured(320, 240, seed=1)
    c1, c2 = Box(40, 40, 240, 200), Box(100, 80, 160, 140)
    adjusted, plan = tmra(PilSource(img), "pixel", {"crop1": c1, "crop2": c2})
    a, o = np.asarray(adjusted), np.asarray(img)
    np.testing.assert_array_equal(a[80:140, 100:160], o[80:140, 100:160])  # C2: full detail
    ring = np.zeros((240, 320), bool)
    ring[40:200, 40:240] = True
    ring[80:140, 100:160] = False
    d_c1 = np.zeros_like(o)
    d_c1[40:200, 40:240] = np.asarray(degrade(crop(img, c1)))
    np.testing.assert_array_equal(a[ring], d_c1[ring])  # D(C1)
    outside = np.ones((240, 320), bool)
    outside[40:200, 40:240] = False
    np.testing.assert_array_equal(a[outside], np.asarray(degrade(degrade(img)))[outside])  # D(D(I))
    assert (a[ring] != o[ring]).mean() > 0.9 and (a[outside] != o[outside]).mean() > 0.9
    assert plan.full_detail_fraction == pytest.approx(c2.area / (320 * 240))


def test_plan_refuses_bad_boxes():
    src = PilSource(textured(100, 80))
    with pytest.raises(GeoMagError, match="outside"):
        tmra(src, "region", {"crop1": Box(50, 50, 120, 70)})
    with pytest.raises(GeoMagError, match="inside crop1"):
        tmra(src, "pixel", {"crop1": Box(0, 0, 50, 50), "crop2": Box(40, 40, 60, 60)})
    with pytest.raises(GeoMagError, match="needs"):
        tmra(src, "pixel", {"crop1": Box(0, 0, 50, 50)})
    with pytest.raises(GeoMagError, match="granularity"):
        tmra(src, "scene")


def test_working_cap_builds_a_smaller_canvas_from_windows():
    img = textured(600, 360, seed=2)
    src = SpySource(img)
    c1, c2 = Box(100, 60, 400, 300), Box(200, 100, 300, 200)
    adjusted, plan = tmra(src, "pixel", {"crop1": c1, "crop2": c2}, working_cap=300)
    assert adjusted.size == (300, 180) == plan.adjusted_size and plan.working_scale == 0.5
    assert not plan.is_identity
    # no read returns the whole image at full resolution
    assert all(out is not None and out[0] * out[1] < 600 * 360 for _, out in src.reads)
    inner = plan.box_to_adjusted(c2)
    assert inner.to_list() == [100, 50, 150, 100]
    np.testing.assert_array_equal(
        np.asarray(adjusted)[50:100, 100:150], np.asarray(PilSource(img).read(c2, (50, 50)))
    )
    assert plan.box_to_original(inner) == c2
    assert plan.mask_to_original(np.zeros((180, 300), bool)).shape == (360, 600)


@pytest.mark.parametrize("cap", [4096, 300])
def test_only_one_crop_equals_that_crop_of_the_whole_plan(cap):
    img = textured(600, 360, seed=3)
    boxes = {"crop1": Box(100, 60, 400, 300), "crop2": Box(203, 101, 297, 203)}
    whole, plan = tmra(PilSource(img), "pixel", boxes, working_cap=cap)
    for name in ("crop1", "crop2"):
        part, part_plan = tmra(PilSource(img), "pixel", boxes, working_cap=cap, only=name)
        expected = whole.crop(plan.box_to_adjusted(boxes[name]).to_tuple())
        np.testing.assert_array_equal(np.asarray(part), np.asarray(expected))
        assert part_plan.only == name and part_plan.adjusted_size == plan.adjusted_size
    with pytest.raises(GeoMagError, match="pixel plan"):
        tmra(PilSource(img), "region", {"crop1": boxes["crop1"]}, only="crop1")


# -------------------------------------------------------------------------------- MagCrop + PSC
def test_magcrop_finds_nested_crops_with_psc(vlm, real_data):
    img = Image.open(real_data / "dota" / "images" / "P1888.png").convert("RGB")  # 712 x 557, vehicles
    src = SpySource(img)
    magcrop = MagCrop(vlm, MagCropConfig(min_crop=48))
    adjusted, plan = magcrop.adjust(src, PROMPT, "pixel")
    c1, c2 = plan.boxes["crop1"], plan.boxes["crop2"]
    assert adjusted.size == img.size and plan.box_source == "psc"
    assert Box(0, 0, *img.size).contains(c1) and c1.contains(c2) and c2.area < c1.area
    assert min(c1.width, c1.height) >= 48
    assert plan.heatmaps["crop1"].shape == plan.heatmaps["crop2"].shape == (4, 4)
    assert {"heatmap_crop1", "search_crop1", "heatmap_crop2", "search_crop2", "compose", "total"} <= set(
        plan.timings
    )
    # the VLM saw only its native input size: the global view and crop1, never the full image
    assert (None, vlm.input_size) in src.reads and (c1, vlm.input_size) in src.reads
    np.testing.assert_array_equal(
        np.asarray(adjusted)[c2.y0 : c2.y1, c2.x0 : c2.x1], np.asarray(img)[c2.y0 : c2.y1, c2.x0 : c2.x1]
    )
    json.dumps(plan.to_dict())
    # same input, same result
    _, again = magcrop.adjust(img, PROMPT, "pixel")
    assert again.boxes == plan.boxes


def test_magcrop_input_errors(vlm):
    img = textured(64, 48)
    with pytest.raises(GeoMagError, match="prompt is empty"):
        MagCrop(vlm).adjust(img, "   ", "region")
    with pytest.raises(GeoMagError, match="--model"):
        MagCrop(None).adjust(img, PROMPT, "region")
    with pytest.raises(GeoMagError, match="granularity"):
        MagCrop(vlm).adjust(img, PROMPT, "scene")
    adjusted, plan = MagCrop(None).adjust(img, PROMPT, "region", boxes={"crop1": Box(0, 0, 20, 20)})
    assert plan.box_source == "given" and adjusted.size == (64, 48)


class PlantedSegmenter:
    """A stand-in for the GeoMag model behind `geomag.saliency.ReferringSegmenter`: its "encoder"
    features are the tile's redness and its mask logits follow them, so the mask saliency peaks where
    red squares are planted (MagCrop's geometry only; the real saliency is tested on a trained model
    in test_train_loop)."""

    encoder_input_size = 400

    def __init__(self) -> None:
        self.prompts, self.encoded = 0, 0

    def referring_prompts(self, image, prompt):
        self.prompts += 1
        return torch.zeros(1, 4)

    def encode(self, images):
        self.encoded += len(images)
        red = [torch.from_numpy(np.asarray(im, dtype=np.float32)) for im in images]
        return [torch.stack([(r[..., 0] - (r[..., 1] + r[..., 2]) / 2) / 255 for r in red])[:, None]]

    def tile_mask_logits(self, prompts, features):
        return 20 * (features[0][:, 0] - 0.25)


def planted(width: int, height: int, spots: list[tuple[int, int, float]]) -> Image.Image:
    """A grey image with red 16x16 squares of redness v at (x, y) centres."""
    arr = np.full((height, width, 3), 128, np.uint8)
    for x, y, v in spots:
        arr[y - 8 : y + 8, x - 8 : x + 8] = (round(128 + 127 * v), round(128 - 128 * v), round(128 - 128 * v))
    return Image.fromarray(arr)


def test_mask_saliency_candidates_nest_around_the_peaks(vlm):
    spots = [(900, 600, 0.9), (200, 150, 0.6)]
    img = planted(1200, 800, spots)
    segmenter = PlantedSegmenter()
    magcrop = MagCrop(vlm, MagCropConfig(pixel_saliency="mask", candidates=2), segmenter=segmenter)
    plans = magcrop.plans(img, PROMPT, "pixel")
    assert len(plans) == 2 and segmenter.prompts == 1  # one saliency pass for all candidates
    side = max(vlm.input_size)  # the default mask_crop with crop views: the model's input side
    for (adjusted, plan), (x, y, _) in zip(plans, spots, strict=True):
        c1, c2 = plan.boxes["crop1"], plan.boxes["crop2"]
        assert plan.box_source == "mask" and adjusted.size == (1200, 800)
        assert c2.contains(Box(x - 4, y - 4, x + 4, y + 4)) and c2.width == c2.height == side
        assert c1.contains(c2) and c1.width == 2 * side
        json.dumps(plan.to_dict())
    # the encoder's features are kept for the next prompt on the same image
    encoded = segmenter.encoded
    assert magcrop.adjust(img, PROMPT, "pixel")[1].boxes == plans[0][1].boxes
    assert segmenter.encoded == encoded and segmenter.prompts == 2
    # "auto" means mask saliency with a segmenter, Eq. 4 attention without one
    assert MagCrop(vlm, MagCropConfig(), segmenter=segmenter).pixel_saliency == "mask"
    assert MagCrop(vlm, MagCropConfig()).pixel_saliency == "attention"
    # region plans: Eq. 4's attention search a flag away
    assert (
        MagCrop(vlm, MagCropConfig(region_saliency="attention"), segmenter=segmenter)
        .adjust(img, PROMPT, "region")[1]
        .box_source
        == "psc"
    )


def test_region_plans_crop_where_the_mask_saliency_peaks(vlm):
    """With a segmenter, region plans crop around the decoder's peaks too ("auto"), best first."""
    spots = [(300, 500, 0.9), (1000, 200, 0.6)]
    img = planted(1200, 800, spots)
    config = MagCropConfig(candidates=2, region_skip_below=0.0)  # the skip rule is tested below
    magcrop = MagCrop(vlm, config, segmenter=PlantedSegmenter())
    assert magcrop.region_saliency == "mask" and MagCrop(vlm).region_saliency == "attention"
    plans = magcrop.plans(img, "Is there a red car?", "region")
    assert len(plans) == 2
    for (adjusted, plan), (x, y, _) in zip(plans, spots, strict=True):
        assert plan.box_source == "mask" and set(plan.boxes) == {"crop1"}
        assert plan.boxes["crop1"].contains(Box(x - 4, y - 4, x + 4, y + 4))
        # two spots share the heat: each crop holds about half of it, minus its area share (0.27)
        assert plan.peakedness is not None and plan.peakedness > 0.2 and plan.skipped is None
        # full detail inside crop1, D() outside
        c1 = plan.boxes["crop1"]
        assert np.array_equal(np.asarray(adjusted.crop(c1.to_tuple())), np.asarray(img.crop(c1.to_tuple())))


def test_skip_rule_a_flat_map_skips_a_peaked_map_crops(vlm):
    """The skip rule on planted saliency: no red spot (the decoder finds nothing: a flat map) -> the
    plan says it is skipped; one spot -> it crops."""
    config = MagCropConfig(region_skip_below=0.3, pixel_skip_below=0.3)
    for granularity in ("region", "pixel"):
        # one MagCrop per image: it keeps the tiles' encoder features of the image it last saw
        flat = MagCrop(vlm, config, PlantedSegmenter()).plans(planted(1200, 800, []), PROMPT, granularity)
        assert all(p.skipped and "peakedness" in p.skipped for _, p in flat)
        assert all(abs(p.peakedness) < 0.05 for _, p in flat)
        spot = planted(1200, 800, [(600, 400, 0.9)])
        peaked = MagCrop(vlm, config, PlantedSegmenter()).plans(spot, PROMPT, granularity)
        assert peaked[0][1].skipped is None and peaked[0][1].peakedness > 0.3
    # 0 never skips
    never = MagCrop(vlm, MagCropConfig(region_skip_below=0.0), segmenter=PlantedSegmenter())
    assert never.plans(planted(1200, 800, []), PROMPT, "region")[0][1].skipped is None
    with pytest.raises(GeoMagError, match="pixel_skip_below"):
        MagCropConfig(pixel_skip_below=1.5)


def test_mask_saliency_needs_a_segmenter(vlm):
    with pytest.raises(GeoMagError, match="needs a GeoMag checkpoint"):
        MagCrop(vlm, MagCropConfig(pixel_saliency="mask")).adjust(textured(300, 200), PROMPT, "pixel")
    with pytest.raises(GeoMagError, match="pixel_saliency"):
        MagCropConfig(pixel_saliency="gradcam")
    with pytest.raises(GeoMagError, match="candidates"):
        MagCropConfig(candidates=0)


# --------------------------------------------------------------------------------------- the CLI
def test_cli_writes_all_outputs_for_a_4k_image(tmp_path, tiny_llava, capsys):
    smooth(4096, 2160).save(tmp_path / "4k.png")
    out = tmp_path / "out"
    args = ["magcrop", str(tmp_path / "4k.png"), "--prompt", PROMPT, "--granularity", "pixel"]
    code = main([*args, "--model", str(tiny_llava), "--out", str(out)])
    assert code == 0
    names = {p.name for p in out.iterdir()} - {".geomag-outputs.json"}  # the manifest of what GeoMag wrote
    assert names == {"adjusted.png", "boxes.png", "heatmap_crop1.png", "heatmap_crop2.png", "magcrop.json"}
    record = json.loads((out / "magcrop.json").read_text())
    assert record["original_size"] == record["adjusted_size"] == [4096, 2160]
    c1, c2 = Box(*record["boxes"]["crop1"]), Box(*record["boxes"]["crop2"])
    assert Box(0, 0, 4096, 2160).contains(c1) and c1.contains(c2) and c2.area < c1.area
    assert Image.open(out / "adjusted.png").size == (4096, 2160)
    assert max(Image.open(out / "boxes.png").size) == 2048  # downscaled preview
    assert "heatmap_crop1" in record["timings"] and record["prompt"] == PROMPT


def test_cli_image_plan_without_model_and_given_box(tmp_path):
    textured(300, 200).save(tmp_path / "a.png")
    assert main(["magcrop", str(tmp_path / "a.png"), "--prompt", "Describe the scene.",
                 "--granularity", "image", "--out", str(tmp_path / "o1")]) == 0  # fmt: skip
    assert Image.open(tmp_path / "o1" / "adjusted.png").size == (100, 100)
    assert main(["magcrop", str(tmp_path / "a.png"), "--prompt", "Is there a ship?", "--granularity",
                 "region", "--box", "10,10,110,90", "--out", str(tmp_path / "o2")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "o2" / "magcrop.json").read_text())["boxes"] == {"crop1": [10, 10, 110, 90]}


@pytest.mark.parametrize(
    "case, message",
    [
        ("unreadable", "cannot read"),
        ("zero_size", "cannot read"),
        ("missing", "not found"),
        ("empty_prompt", "prompt is empty"),
        ("box_outside", "outside"),
        ("bad_box", "four integers"),
        ("no_model", "ships no 'nano' weights"),
        ("missing_model", "folder not found"),
        ("crop2_outside_crop1", "inside crop1"),
    ],
)
def test_cli_bad_input_exits_2_without_output(tmp_path, capsys, monkeypatch, case, message):
    good = tmp_path / "good.png"
    textured(120, 90).save(good)
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "zero.png").write_bytes(b"")
    image, prompt, extra = str(good), PROMPT, ["--granularity", "region", "--box", "0,0,50,50"]
    if case == "unreadable":
        image = str(tmp_path / "text.png")
    elif case == "zero_size":
        image = str(tmp_path / "zero.png")
    elif case == "missing":
        image = str(tmp_path / "nope.png")
    elif case == "empty_prompt":
        prompt = "  "
    elif case == "box_outside":
        extra = ["--granularity", "region", "--box", "100,50,200,80"]
    elif case == "bad_box":
        extra = ["--granularity", "region", "--box", "1,2,3"]
    elif case == "no_model":  # no --model and no shipped nano weights
        from geomag.model import registry

        missing = registry.RegisteredModel("nano", "absent", checkpoint=tmp_path / "no_weights")
        monkeypatch.setitem(registry.REGISTRY, "nano", missing)
        extra = ["--granularity", "pixel"]
    elif case == "missing_model":
        extra = ["--granularity", "pixel", "--model", str(tmp_path / "no_such_model")]
    elif case == "crop2_outside_crop1":
        extra = ["--granularity", "pixel", "--box", "0,0,50,50", "--box", "40,40,70,70"]
    out = tmp_path / "out"
    assert main(["magcrop", image, "--prompt", prompt, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("geomag: error:") and message in err and "Traceback" not in err
    assert not out.exists()


def test_cli_never_clobbers_a_non_empty_out(tmp_path, capsys):
    textured(120, 90).save(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "adjusted.png").write_text("user data")
    args = [
        "magcrop",
        str(tmp_path / "a.png"),
        "--prompt",
        PROMPT,
        "--granularity",
        "image",
        "--out",
        str(out),
    ]
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "adjusted.png").read_text() == "user data"
    # --overwrite replaces only what GeoMag wrote (its manifest): never a user's file
    assert main([*args, "--overwrite"]) == 2 and "did not write" in capsys.readouterr().err
    assert (out / "adjusted.png").read_text() == "user data"
    (out / "adjusted.png").unlink()
    assert main(args) == 0 and main([*args, "--overwrite"]) == 0
    assert Image.open(out / "adjusted.png").size == (100, 100)


def test_magcrop_reads_a_real_geotiff_by_window(vlm, real_data):
    from geomag.sources import RasterSource

    path = real_data / "geotiff" / "rasterio_RGB.byte.tif"
    adjusted, plan = MagCrop(vlm, MagCropConfig(min_crop=64)).adjust(path, PROMPT, "region")
    source = RasterSource(path)
    c1 = plan.boxes["crop1"]
    assert adjusted.size == source.size == plan.original_size
    np.testing.assert_array_equal(
        np.asarray(adjusted)[c1.y0 : c1.y1, c1.x0 : c1.x1], np.asarray(source.read(c1))
    )
