"""End-to-end `geomag eval` with a tiny reloaded LLaVA (save_pretrained -> from_pretrained).

The splits are a few REAL RSVQA-LR questions and a small generated GeoScenes split (RefSegRS and
DIOR-RSVG formats, written by geomag.data.writers). The numbers are whatever the random model gives;
what is tested is that the pipeline predicts, resumes, scores and writes its table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geomag.cli import main
from geomag.errors import GeoMagError
from geomag.eval.runner import read_predictions, run_eval
from geomag.options import ParseOptions


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_eval_rsvqa_end_to_end_and_resume(real_data, tiny_llava, tmp_path, capsys):
    data = real_data / "rsvqa-lr" / "configilm_subset"
    out = tmp_path / "run"
    args = ["eval", "rsvqa-lr", "--data", str(data), "--model", str(tiny_llava), "--out", str(out)]
    assert main([*args, "--limit", "3", "--max-new-tokens", "4"]) == 0
    first = lines(out / "predictions.jsonl")
    assert len(first) == 3
    rec = json.loads(first[0])
    assert rec["id"] == "23608" and rec["image_size"] == [256, 256] and rec["masks"] == []
    table = (out / "results.md").read_text()
    assert table.startswith("## RSVQA-LR (test, 3 samples)")
    assert "| Method | Presence | Comparison | Average |" in table and "(MagCrop off)" in table
    assert table in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["n"] == 3 and results["task"] == "vqa"
    # the first three questions of image 236: rural_urban, presence, count (all four LR types listed)
    assert {t: v["n"] for t, v in results["metrics"]["per_type"].items()} == {
        "comp": 0,
        "count": 1,
        "presence": 1,
        "rural_urban": 1,
    }
    assert 0.0 <= results["metrics"]["OA"] <= 1.0
    assert results["metrics"]["AA"] is None  # no comparison question among the three
    assert results["metrics"]["protocol"] == "rsvqa-computestats" and results["metrics"]["dataset"] == "LR"

    # resume: the first three predictions are kept as they are, only the new ones are predicted
    assert main([*args, "--limit", "5", "--max-new-tokens", "4"]) == 0
    second = lines(out / "predictions.jsonl")
    assert second[:3] == first and len(second) == 5
    assert json.loads((out / "results.json").read_text())["n"] == 5

    # another benchmark into the same folder is refused, nothing is overwritten
    with pytest.raises(GeoMagError, match="another run"):
        run_eval("rsvqa-hr-test1", real_data / "rsvqa-hr" / "configilm_subset", tiny_llava, out, limit=1)
    assert lines(out / "predictions.jsonl") == second


@pytest.fixture(scope="module")
def geoscenes(tmp_path_factory) -> Path:
    """A small generated split: one 256x256 GeoScenes scene (index 0 = test) in the real formats."""
    out = tmp_path_factory.mktemp("gs") / "scenes"
    args = ["scenes", "generate", "--tasks", "refseg,roc", "--n", "1", "--size", "256x256", "--seed", "3"]
    assert main([*args, "--out", str(out)]) == 0
    return out


def test_eval_generated_refseg_split(geoscenes, tiny_llava, tmp_path):
    res = run_eval(
        "refsegrs",
        geoscenes / "refseg" / "refsegrs",
        tiny_llava,
        tmp_path / "o",
        limit=3,
        options=ParseOptions(magcrop=False, max_new_tokens=4),
        progress=False,
    )
    m = res["metrics"]
    # a plain VLM writes no masks: every IoU is 0 (scored on the 256x256 original grid)
    assert m["n"] == 3 and m["P@0.5"] == 0.0 and m["mIoU"] == 0.0 and m["oIoU"] == 0.0
    assert all(json.loads(x)["image_size"] == [256, 256] for x in lines(tmp_path / "o" / "predictions.jsonl"))
    md = (tmp_path / "o" / "results.md").read_text()
    assert "| Method | P@0.5 | oIoU | mIoU (RMSIN) | gIoU (LISA) |" in md
    assert (
        "Metrics: protocol `rmsin`, masks at original (docs/eval.md); also in results.json: `gIoU`, `cIoU`."
        in md
    )
    assert m["protocol"] == "rmsin" and m["resolution"] == "original"
    # rescoring at RMSIN's 480x480 reuses the predictions (nothing is predicted again)
    again = run_eval(
        "refsegrs",
        geoscenes / "refseg" / "refsegrs",
        tiny_llava,
        tmp_path / "o",
        limit=3,
        options=ParseOptions(magcrop=False, max_new_tokens=4),
        progress=False,
        refseg_resolution="480",
    )
    saved = json.loads((tmp_path / "o" / "results.json").read_text())["metrics"]
    assert again["metrics"]["resolution"] == saved["resolution"] == "480x480 nearest"


def test_eval_generated_roc_split(geoscenes, tiny_llava, tmp_path):
    res = run_eval(
        "dior-rsvg",
        geoscenes / "roc",
        tiny_llava,
        tmp_path / "o",
        limit=2,
        options=ParseOptions(magcrop=False, max_new_tokens=4),
        progress=False,
    )
    assert (
        res["metrics"]["n"] == 2 and -1.0 <= res["metrics"]["SS"] <= 1.0 and 0 <= res["metrics"]["SIoU"] <= 1
    )
    assert "| Method | SS | SIoU |" in (tmp_path / "o" / "results.md").read_text()


def test_eval_bad_inputs(real_data, tiny_llava, tmp_path, capsys):
    from test_loaders import make_refsegrs

    make_refsegrs(tmp_path / "d")
    (tmp_path / "d" / "images" / "40.tif").unlink()
    code = main(
        [
            "eval",
            "refsegrs",
            "--data",
            str(tmp_path / "d"),
            "--model",
            str(tiny_llava),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "image not found" in err and "40.tif" in err
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked
    code = main(
        [
            "eval",
            "refsegrs",
            "--data",
            str(tmp_path / "nowhere"),
            "--model",
            str(tiny_llava),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "not found" in capsys.readouterr().err


def test_truncated_last_prediction_is_dropped(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"id": "a", "text": "yes"}\n{"id": "b", "te')
    assert list(read_predictions(path)) == ["a"]
    assert path.read_text() == '{"id": "a", "text": "yes"}\n'


def test_magcrop_on_gives_psc_boxes(real_data, tiny_llava, tmp_path):
    data = real_data / "rsvqa-lr" / "configilm_subset"
    on = ParseOptions(
        max_new_tokens=2, region_skip_below=0.0, arbiter=False
    )  # a tiny random VLM's map is flat
    res = run_eval("rsvqa-lr", data, tiny_llava, tmp_path / "mc", options=on, limit=1)
    rec = json.loads(lines(tmp_path / "mc" / "predictions.jsonl")[0])
    assert res["magcrop"] is True and "crop1" in rec["boxes"]  # a region question: one PSC crop
    # the same folder with other MagCrop settings is another run: refused, not resumed
    with pytest.raises(GeoMagError, match="magcrop_layer: -1 there, 8 now"):
        run_eval("rsvqa-lr", data, tiny_llava, tmp_path / "mc", options=on.with_(layer=8), limit=2)
    with pytest.raises(GeoMagError, match="magcrop: True there, False now"):  # keys only the old run has
        run_eval("rsvqa-lr", data, tiny_llava, tmp_path / "mc", options=on.with_(magcrop=False), limit=2)
    assert len(lines(tmp_path / "mc" / "predictions.jsonl")) == 1


def test_score_gcg_keeps_empty_ground_truth_as_glamm_and_names_its_protocol(monkeypatch, tmp_path):
    """GCG scoring without a model: hand-made records; METEOR / CIDEr stubbed (Java is tested elsewhere)."""
    import numpy as np

    from geomag.data.samples import Sample, mask_to_rle
    from geomag.eval import metrics as M
    from geomag.eval.runner import gcg_ground_truth, score

    monkeypatch.setattr(M, "caption_metrics", lambda preds, refs, metrics: {"METEOR": 0.0, "CIDEr": 0.0})
    square = [[[0, 0], [9, 0], [9, 9], [0, 9]]]
    off_image = [[[40, 40], [50, 40], [50, 50]]]  # rasterises to nothing on a 20x20 grid
    samples = [
        Sample(
            image=str(tmp_path / f"{name}.png"),
            prompt="describe",
            answer="A <p> court </p> [SEG] and a <p> ghost </p> [SEG] .",
            task="gcg",
            masks=[{"polygons": square}, {"polygons": off_image}],
            meta={"id": f"s{k}", "phrases": ["court", "ghost"]},
        )
        for k, name in enumerate(["zeta", "alpha"])
    ]
    with pytest.warns(UserWarning, match=r"mask\(s\) \[1\] are empty"):
        masks, phrases = gcg_ground_truth(samples[0], 20, 20)
    assert len(masks) == 2 and not masks[1].any() and phrases == ["court", "ghost"]  # GLaMM keeps it

    square_mask = np.zeros((20, 20), dtype=bool)
    square_mask[0:10, 0:10] = True
    records = {
        "s0": {"text": "<p> court </p> [SEG]", "masks": [mask_to_rle(square_mask)], "image_size": [20, 20]},
        # an empty predicted mask is still submitted (a false positive), as GLaMM does
        "s1": {
            "text": "<p> court </p> [SEG]",
            "masks": [mask_to_rle(np.zeros_like(square_mask))],
            "image_size": [20, 20],
        },
    }
    with pytest.warns(UserWarning):
        m = score("gcg", samples, records)
    with pytest.warns(UserWarning):
        reversed_m = score("gcg", samples[::-1], records)
    assert m["protocol"] == "glamm-gcg" and m["encoder"] == "all-MiniLM-L6-v2"
    # s0: the court found (1 of 2 phrases), mIoU 1; s1: the empty ghost beside the empty prediction is
    # GLaMM's 0 / 0 (NaN): mIoU 0, and its match is taken first and fails the phrase test (ghost vs court)
    assert m["recall"] == 0.25 and m["mIoU"] == 0.5
    assert 0.0 < m["AP50"] < 1.0 and reversed_m["AP50"] == m["AP50"]


def test_bad_scoring_options_fail_before_predicting(tmp_path):
    with pytest.raises(GeoMagError, match="unknown refseg resolution"):
        run_eval("refsegrs", tmp_path / "d", "m", tmp_path / "o", refseg_resolution="960")
    with pytest.raises(GeoMagError, match="text encoder 'no/such-encoder'"):
        run_eval("dior-rsvg", tmp_path / "d", "m", tmp_path / "o", text_encoder="no/such-encoder")
    assert not (tmp_path / "o").exists()
