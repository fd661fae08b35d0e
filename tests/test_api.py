"""The Python API (`geomag.parse`, `create_model`, `GeoMagPredictor`) is the pipeline every surface
calls: the same result from Python, `geomag parse` and `geomag serve` for the same input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import geomag
from geomag.cli import main
from geomag.errors import GeoMagError
from geomag.imaging import PilSource

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tennis_courts_P0224.png"
PROMPT = "Segment the tennis court on the left."


def _written(folder: Path) -> tuple[dict, list[np.ndarray]]:
    result = json.loads((folder / "result.json").read_text())
    masks = [np.asarray(Image.open(folder / m["file"])) > 127 for m in result["masks"]]
    return result, masks


def test_parse_equals_the_cli_and_the_server(tmp_path, capsys):
    """The shipped nano: geomag.parse, `geomag parse`, an upload to `geomag serve`'s /v1/parse and
    `geomag parse --server` give the same text, boxes and masks."""
    from fastapi.testclient import TestClient

    from geomag.data.samples import decode_mask
    from geomag.serve.app import ServeSettings, create_app
    from geomag.serve.limits import ServeLimits
    from geomag.serve.runner import BackgroundServer
    from geomag.serve.worker import start_worker

    result = geomag.parse(str(EXAMPLE), PROMPT)
    # the arbiter weighed the whole image against MagCrop's crops (nano keeps it whole here)
    assert result.granularity == "pixel" and result.extra["candidates"][0]["whole"]
    assert main(["parse", str(EXAMPLE), PROMPT, "--out", str(tmp_path / "cli")]) == 0
    worker = start_worker("nano")
    try:
        app = create_app(ServeSettings(model="nano"), worker)
        paths = TestClient(app).get("/openapi.json").json()["paths"]
        assert {"/v1/parse", "/v1/classify"} <= set(paths)
        with open(EXAMPLE, "rb") as f:
            body = TestClient(app).post("/v1/parse", data={"prompt": PROMPT}, files={"image": f}).json()
        assert body["text"] == result.text and body["granularity"] == result.granularity
        assert body["boxes"] == {k: b.to_list() for k, b in result.boxes.items()}
        uploaded = [decode_mask({"rle": m["rle"]}, *result.image_size) for m in body["masks"]]
        assert all(np.array_equal(a, b) for a, b in zip(uploaded, result.masks, strict=True))
        with BackgroundServer(app, ServeLimits()) as url:
            served = ["parse", str(EXAMPLE), PROMPT, "--out", str(tmp_path / "served"), "--server", url]
            assert main(served) == 0
    finally:
        worker.stop()
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == printed[2] == result.display_text  # each [SEG] as its mask's reference
    for name in ("cli", "served"):
        written, masks = _written(tmp_path / name)
        assert written["text"] == result.text and written["granularity"] == result.granularity
        assert written["boxes"] == {k: b.to_list() for k, b in result.boxes.items()}
        assert len(masks) == len(result.masks)
        assert all(np.array_equal(a, b) for a, b in zip(masks, result.masks, strict=True))
        assert written["timings"]["total"] >= written["timings"]["classify"]


def test_every_kind_of_image_gives_the_same_result():
    image = Image.open(EXAMPLE).convert("RGB")
    results = [
        geomag.parse(source, "Are there tennis courts in this image?", granularity="region")
        for source in (str(EXAMPLE), EXAMPLE, image, np.asarray(image), PilSource(image))
    ]
    for r in results[1:]:
        assert (r.text, r.boxes) == (results[0].text, results[0].boxes)
    with pytest.raises(GeoMagError, match="uint8"):
        geomag.parse(np.zeros((8, 8, 3), np.float32), "Is there a ship?")


def test_a_second_prompt_reuses_the_image_state():
    """set_image keeps the reduced views and the saliency tiles' encoder features."""

    class Counting(PilSource):
        reads = 0

        def read(self, box=None, out_size=None):
            Counting.reads += 1
            return super().read(box, out_size)

    predictor = geomag.GeoMagPredictor(geomag.create_model("nano"))
    predictor.set_image(Counting(Image.open(EXAMPLE)))
    model = predictor.geomag
    encoded = []
    original = model.encode
    model.encode = lambda images: encoded.append(len(images)) or original(images)
    try:
        first = predictor.predict(PROMPT)
        reads, tiles = Counting.reads, sum(encoded)
        again = predictor.predict(PROMPT)
    finally:
        model.encode = original
    assert (again.text, again.boxes) == (first.text, first.boxes)
    assert all(np.array_equal(a, b) for a, b in zip(again.masks, first.masks, strict=True))
    assert Counting.reads - reads < reads  # the views came from the cache, only crops were read again
    assert sum(encoded) - tiles < tiles  # the saliency tiles were not encoded again


def test_the_registry_names_the_models():
    assert {"nano", "paper", "tiny-cnn", "tiny-sam2"} <= set(geomag.list_models())
    with pytest.raises(GeoMagError, match="names no base model folders"):
        geomag.create_model("tiny-cnn")
    with pytest.raises(GeoMagError, match="folder not found"):
        geomag.create_model("./no/such/model")


def test_options_are_checked_before_any_work():
    for bad, message in (
        ({"candidates": 0}, "candidates"),
        ({"zoom": "crop3"}, "zoom"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"granularity": "scene"}, "granularity"),
        ({"pixel_saliency": "gradcam"}, "pixel_saliency"),
    ):
        with pytest.raises(GeoMagError, match=message):
            geomag.ParseOptions(**bad)
    from dataclasses import fields

    from geomag.options import FIELD_TYPES

    assert set(FIELD_TYPES) == {f.name for f in fields(geomag.ParseOptions)}  # from_dict's table is complete
    with pytest.raises(GeoMagError, match="unknown option"):
        geomag.ParseOptions.from_dict({"candidate": 2})
    with pytest.raises(GeoMagError, match="must be an integer"):
        geomag.ParseOptions.from_dict({"candidates": "2"})


def test_the_same_defaults_everywhere():
    """`geomag parse`, `geomag magcrop`, `geomag eval --magcrop on` and MagCrop() share one default."""
    from geomag.cli import build_parser
    from geomag.commands.parse_options import option_values
    from geomag.magcrop import MagCropConfig

    parser = build_parser()
    for argv in (
        ["parse", "x.png", "p"],
        ["magcrop", "x.png", "--prompt", "p", "--out", "o"],
        ["eval", "aid", "--data", "d", "--out", "o"],
    ):
        args = parser.parse_args(argv)
        options = geomag.ParseOptions().with_(**option_values(args))
        assert options.magcrop_config() == MagCropConfig()
        assert args.model in ("nano", None)


def test_a_skipped_plan_keeps_the_whole_image_and_says_so(tiny_checkpoint):
    """The skip rule end to end: with a threshold no saliency reaches, the model sees the whole image
    (the same answer as without MagCrop), the result has no boxes and says why."""
    predictor = geomag.GeoMagPredictor(geomag.create_model(str(tiny_checkpoint)))
    predictor.set_image(Image.open(EXAMPLE))
    for granularity in ("region", "pixel"):
        never, always = {f"{granularity}_skip_below": 1.0}, {f"{granularity}_skip_below": 0.0}
        skipped = predictor.predict(PROMPT, granularity=granularity, max_new_tokens=8, **never)
        assert predictor.last_plan is not None and predictor.last_plan.skipped  # its heatmaps, for a demo
        whole = predictor.predict(PROMPT, granularity=granularity, magcrop=False, max_new_tokens=8)
        assert skipped.boxes == {} and skipped.text == whole.text
        assert str(skipped.extra["magcrop"]).startswith("skipped: the saliency does not single out")
        cropped = predictor.predict(
            PROMPT, granularity=granularity, max_new_tokens=8, arbiter=False, **always
        )
        assert cropped.boxes and cropped.extra["magcrop"] is True
    with pytest.raises(GeoMagError, match="must be a number"):
        geomag.ParseOptions.from_dict({"pixel_skip_below": "high"})
    assert geomag.ParseOptions.from_dict({"region_skip_below": 1}).region_skip_below == 1.0
