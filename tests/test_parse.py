"""`geomag parse`: classify -> MagCrop -> VLM -> masks, end to end on a tiny reloaded GeoMag checkpoint."""

from __future__ import annotations

import json

import pytest

from geomag.cli import main


def test_parse_region_with_magcrop_writes_result(tiny_checkpoint, court_image, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "parse",
            str(court_image),
            "Is there a tennis court?",
            "--model",
            str(tiny_checkpoint),
            "--out",
            str(out),
            "--max-new-tokens",
            "4",
            "--region-skip-below",
            "0",  # a random tiny model's saliency is flat: the skip rule would keep the whole image
            "--no-arbiter",  # and its confidence is noise: the crop is what is tested here
        ]
    )
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    assert result["granularity"] == "region"  # chosen by the shipped classifier
    assert result["image_size"] == [800, 800]
    x0, y0, x1, y1 = result["boxes"]["crop1"]
    assert 0 <= x0 < x1 <= 800 and 0 <= y0 < y1 <= 800
    assert {"classify", "magcrop", "generate", "total"} <= set(result["timings"])
    assert result["extra"]["magcrop"] is True
    assert (out / "overlay.png").is_file()
    assert "[region]" in capsys.readouterr().out


def test_parse_pixel_zoom_records_the_view(tiny_checkpoint, court_image, tmp_path):
    out = tmp_path / "zoom"
    argv = ["parse", str(court_image), "Segment the tennis court.", "--model", str(tiny_checkpoint)]
    argv += ["--pixel-skip-below", "0", "--no-arbiter"]  # a random tiny model: no skip rule, no arbiter
    rc = main([*argv, "--zoom", "crop2", "--out", str(out), "--max-new-tokens", "4"])
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    assert result["granularity"] == "pixel" and result["extra"]["zoom"] == "crop2"
    assert set(result["boxes"]) == {"crop1", "crop2"}


def test_parse_pixel_defaults_to_mask_saliency_candidates(tiny_checkpoint, court_image, tmp_path):
    argv = ["parse", str(court_image), "Segment the tennis court.", "--model", str(tiny_checkpoint)]
    argv += ["--pixel-skip-below", "0", "--no-arbiter"]  # a random tiny model: no skip rule, no arbiter
    assert main([*argv, "--out", str(tmp_path / "a"), "--max-new-tokens", "4"]) == 0
    result = json.loads((tmp_path / "a" / "result.json").read_text())
    extra = result["extra"]
    assert extra["pixel_saliency"] == "mask" and extra["zoom"] == "crop2"
    assert len(extra["candidates"]) == 2 and result["boxes"]["crop2"] in [
        c["boxes"]["crop2"] for c in extra["candidates"]
    ]
    rc = main([*argv, "--pixel-saliency", "attention", "--out", str(tmp_path / "b"), "--max-new-tokens", "4"])
    extra = json.loads((tmp_path / "b" / "result.json").read_text())["extra"]
    assert rc == 0 and extra["pixel_saliency"] == "attention" and extra["zoom"] is None
    assert "candidates" not in extra
    with pytest.raises(SystemExit) as refused:  # out of the option table's bounds: argparse's one line
        main([*argv, "--candidates", "0", "--out", str(tmp_path / "c")])
    assert refused.value.code == 2


def test_magcrop_command_with_mask_saliency(tiny_checkpoint, tiny_llava, court_image, tmp_path):
    argv = ["magcrop", str(court_image), "--prompt", "Segment the tennis court.", "--granularity", "pixel"]
    rc = main(
        [*argv, "--model", str(tiny_checkpoint), "--pixel-saliency", "mask", "--out", str(tmp_path / "a")]
    )
    record = json.loads((tmp_path / "a" / "magcrop.json").read_text())
    assert rc == 0 and record["box_source"] == "mask"
    assert (tmp_path / "a" / "heatmap_crop1.png").is_file()
    # a plain VLM has no pixel decoder to ask
    rc = main([*argv, "--model", str(tiny_llava), "--pixel-saliency", "mask", "--out", str(tmp_path / "b")])
    assert rc == 2 and not (tmp_path / "b").exists()


def test_parse_geotiff_without_magcrop_writes_geojson(tiny_checkpoint, real_data, tmp_path):
    out = tmp_path / "geo"
    tif = real_data / "neon-trees" / "OSBS_029.tif"
    rc = main(
        [
            "parse",
            str(tif),
            "Segment the largest tree crown.",
            "--model",
            str(tiny_checkpoint),
            "--out",
            str(out),
            "--no-magcrop",
            "--granularity",
            "pixel",
            "--geojson",
            "--max-new-tokens",
            "3",
        ]
    )
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    assert result["boxes"] == {} and result["extra"]["magcrop"] is False
    fc = json.loads((out / "masks.geojson").read_text())
    assert fc["type"] == "FeatureCollection"


def test_gcg_request_skips_magcrop():
    from geomag.data.loaders.geopixeld import GCG_PROMPT
    from geomag.data.writers import GCG_PROMPT as GEOSCENES_GCG_PROMPT
    from geomag.predictor import is_gcg_request

    assert is_gcg_request("Describe this image in detail with segmentation masks for each object.", "pixel")
    assert not is_gcg_request("Segment the white ship at the bottom right.", "pixel")
    assert not is_gcg_request("Describe this image in detail with segmentation masks.", "image")
    # eval decides nothing itself: the benchmarks' own GCG prompts are caught by the same rule
    assert is_gcg_request(GCG_PROMPT, "pixel") and is_gcg_request(GEOSCENES_GCG_PROMPT, "pixel")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.png", "Is there a ship?"], "not found"),
        (["{img}", "  "], "prompt is empty"),
        (["{img}", "Is there a ship?", "--model", "{tmp}/nope"], "model folder not found"),
        (["{img}", "Is there a ship?", "--model", "{tmp}"], "not a GeoMag checkpoint"),
    ],
)
def test_parse_bad_input_exits_2_without_output(argv, message, court_image, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [a.format(img=court_image, tmp=tmp_path) for a in argv]
    if "--model" not in argv:
        argv += ["--model", str(tmp_path)]
    rc = main(["parse", *argv, "--out", str(out)])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_parse_refuses_non_empty_out(tiny_checkpoint, court_image, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    rc = main(
        ["parse", str(court_image), "Is there a ship?", "--model", str(tiny_checkpoint), "--out", str(out)]
    )
    assert rc == 2 and "not empty" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "user data"
