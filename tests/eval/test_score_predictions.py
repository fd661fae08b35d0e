"""`geomag eval --predictions` (other models' output formats, no model run) and `geomag eval --compare`,
on REAL benchmark samples from ../shared/data/real with the small prediction files of
tests/data/peer_predictions (made by its make_files.py; hand-made predictions in the peers' formats)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geomag.cli import main
from geomag.errors import GeoMagError
from geomag.eval import metrics as M
from geomag.eval.compare import compare_runs
from geomag.eval.peer_predictions import UnscoredPredictionsWarning, detect_format
from geomag.eval.runner import score_predictions

FILES = Path(__file__).resolve().parents[1] / "data" / "peer_predictions"

# GeoChat's evaluation_metrics() (mbzuai-oryx/GeoChat @ 4850920e005a849bd224d0ce35aa9db031fa5155,
# geochat/eval/batch_geochat_scene.py) run on geochat_aid_answers.jsonl itself printed
# "correct: 6 incorrect: 4 Total: 10 Acc: 0.6".
GEOCHAT_AID_ACC = 0.6
# GLaMM's eval/gcg/evaluate.py main() (mbzuai-oryx/groundingLMM @ e74865f207d02c8cbb54795758b855acd6bb51bb)
# on the folder glamm_nwpu_gcg/ itself, with ground-truth files (test_gcg_coco_mask_gt.json,
# test_gcg_coco_caption_gt.json) written from the first three nwpu-gcg samples; get_bert_embedding
# stood in by GeoMag's default all-MiniLM-L6-v2 (bert-base-uncased is not available offline),
# COCOEvalCap by a no-op. compute_miou per image [1.0, 0.16546483678374815, 1.0]; find_best_matches
# [1, 0, 2] of [1, 1, 3] phrases.
GLAMM_NWPU = {"AP50": 0.3894389438943894, "mIoU": 0.7218216122612494, "recall": 0.6}


@pytest.fixture()
def no_java(monkeypatch):
    """METEOR / CIDEr need Java and ~12 s; they are tested in tests/test_metrics.py."""
    monkeypatch.setattr(M, "caption_metrics", lambda preds, refs, metrics: {"METEOR": 0.5, "CIDEr": 0.5})


def test_formats_are_told_apart(tmp_path):
    assert detect_format(FILES / "geochat_aid_answers.jsonl") == "geochat"
    assert detect_format(FILES / "glamm_nwpu_gcg") == "glamm"
    (tmp_path / "p.jsonl").write_text('{"id": "a", "text": "x"}\n')
    assert detect_format(tmp_path / "p.jsonl") == "geomag"
    (tmp_path / "m").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "m" / "x.png")
    assert detect_format(tmp_path / "m") == "masks"
    (tmp_path / "q.jsonl").write_text('{"foo": 1}\n')
    with pytest.raises(GeoMagError, match="neither a GeoMag prediction"):
        detect_format(tmp_path / "q.jsonl")


def test_geochat_scene_answers_score_as_geochat(real_data, tmp_path):
    with pytest.warns(UnscoredPredictionsWarning, match="6666 of the 6676"):
        r = score_predictions(
            "aid", real_data / "aid-150", FILES / "geochat_aid_answers.jsonl", tmp_path / "o"
        )
    assert r["n"] == 10 and r["format"] == "geochat" and r["missing_predictions"] == 6666
    assert r["metrics"]["accuracy"] == GEOCHAT_AID_ACC
    assert r["metrics"]["protocol"] == "geochat-scene"
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "predictions.jsonl",
        "results.json",
        "results.md",
        "run.json",
    ]
    md = (tmp_path / "o" / "results.md").read_text()
    assert "geochat_aid_answers (geochat predictions) | 60.00 |" in md and "no model run" in md


def test_geochat_vqa_answers_match_by_question_id(real_data, tmp_path):
    data = real_data / "rsvqa-lr" / "configilm_subset"
    with pytest.warns(UnscoredPredictionsWarning):
        r = score_predictions(
            "rsvqa-lr", data, FILES / "geochat_rsvqa_lr_answers.jsonl", tmp_path / "o", name="G"
        )
    m = r["metrics"]
    # the first 24 questions, hand-answered. presence 7 / 10 ("Yes" and "Yes." are yes); comp 3 / 4;
    # count 6 / 9 (LR bins: "12" is right for 47, "150" for 120, "100" wrong for 118, "more than 1000"
    # wrong for 136); rural_urban 1 / 1
    assert r["n"] == 24 and r["missing_predictions"] == 376
    assert (m["presence"], m["comp"], m["rural_urban"]) == (0.7, 0.75, 1.0)
    assert m["count"] == pytest.approx(6 / 9) and m["average"] == pytest.approx((0.7 + 0.75) / 2)


def test_glamm_gcg_folder_scores_as_glamm(real_data, tmp_path, no_java):
    r = score_predictions(
        "nwpu-gcg", real_data / "nwpu-vhr10", FILES / "glamm_nwpu_gcg", tmp_path / "o", limit=3, name="GLaMM"
    )
    assert r["n"] == 3 and r["format"] == "glamm" and r["missing_predictions"] == 0
    for key, value in GLAMM_NWPU.items():
        assert r["metrics"][key] == pytest.approx(value, abs=1e-9), key
    # the same records in one JSON file (a list), as a user may collect GLaMM's outputs
    records = [json.loads(p.read_text()) for p in sorted((FILES / "glamm_nwpu_gcg").glob("*.json"))]
    (tmp_path / "all.json").write_text(json.dumps(records))
    r2 = score_predictions(
        "nwpu-gcg", real_data / "nwpu-vhr10", tmp_path / "all.json", tmp_path / "o2", limit=3
    )
    assert {k: r2["metrics"][k] for k in GLAMM_NWPU} == {k: r["metrics"][k] for k in GLAMM_NWPU}


def test_mask_folder_scores_referring_segmentation(real_data, tmp_path):
    from collections import Counter

    from geomag.data.loaders import load_benchmark
    from geomag.sources import open_source

    data = real_data / "nwpu-vhr10"
    samples = load_benchmark("nwpu-refseg", data)
    stems = Counter(Path(s.image).stem for s in samples)
    lone = next(s for s in samples if stems[Path(s.image).stem] == 1)  # one expression: LISA's naming works
    chosen = [samples[0], samples[1], lone]
    folder = tmp_path / "masks"
    folder.mkdir()
    pairs = []
    for k, s in enumerate(chosen):
        w, h = open_source(s.image).size
        gt = np.logical_or.reduce(s.mask_arrays(w, h))
        pred = [gt, np.roll(gt, 7, axis=1), np.zeros_like(gt)][k]
        pairs.append((pred, gt))
        if k < 2:  # {sample id}.png, '/' as '__'
            Image.fromarray(pred.astype(np.uint8) * 255).save(
                folder / (s.meta["id"].replace("/", "__") + ".png")
            )
        else:  # LISA's chat.py: {image stem}_mask_0.jpg holding 0 / 100
            Image.fromarray(pred.astype(np.uint8) * 100).save(folder / f"{Path(s.image).stem}_mask_0.jpg")
    with pytest.warns(UnscoredPredictionsWarning, match="have no prediction"):
        r = score_predictions("nwpu-refseg", data, folder, tmp_path / "o")
    assert r["format"] == "masks" and r["n"] == 3
    expected = M.refseg_metrics(
        [pairs[[s.meta["id"] for s in chosen].index(s.meta["id"])] for s in samples if s in chosen]
    )
    for key in ("mIoU", "oIoU", "gIoU", "P@0.5"):
        assert r["metrics"][key] == pytest.approx(expected[key], abs=1e-12), key
    assert expected["P@0.5"] == pytest.approx(2 / 3)  # the exact mask and the 7-px shift; not the empty one
    # a mask of another size than its image is refused
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(
        folder / (samples[0].meta["id"].replace("/", "__") + ".png")
    )
    with pytest.raises(GeoMagError, match="a 5x5 mask for an image of"):
        score_predictions("nwpu-refseg", data, folder, tmp_path / "o2")


def test_bad_prediction_files_fail_in_one_line_and_write_nothing(real_data, tmp_path):
    data = real_data / "aid-150"
    out = tmp_path / "o"
    cases = {
        "none.jsonl": ('{"question_id": "X/y.jpg", "answer": "a"}\n', "none of its 1 geochat predictions"),
        "twice.jsonl": (
            '{"question_id": "Airport/airport_1.jpg", "answer": "a"}\n' * 2,
            "a second prediction of sample Airport/airport_1.jpg",
        ),
        "broken.jsonl": ('{"question_id": "Airport/airport_1.jpg", "answer": "a"}\n{oops\n', "not JSON"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(GeoMagError, match=message):
            score_predictions("aid", data, tmp_path / name, out)
    with pytest.raises(GeoMagError, match="GLaMM GCG predictions score the gcg task"):
        score_predictions("aid", data, FILES / "glamm_nwpu_gcg", out)
    with pytest.raises(GeoMagError, match="GeoChat answers are text"):
        score_predictions("nwpu-gcg", real_data / "nwpu-vhr10", FILES / "geochat_aid_answers.jsonl", out)
    with pytest.raises(GeoMagError, match="predictions not found"):
        score_predictions("aid", data, tmp_path / "missing.jsonl", out)
    assert not out.exists()


def test_compare_two_models_with_paired_intervals(real_data, tmp_path, capsys):
    """GeoChat-format answers vs a GeoMag predictions.jsonl on the same ten AID images (hand-made)."""
    data = real_data / "aid-150"
    geochat = tmp_path / "geochat"
    with pytest.warns(UnscoredPredictionsWarning):
        a = score_predictions(
            "aid", data, FILES / "geochat_aid_answers.jsonl", geochat, name="GeoChat-format"
        )
    answers = [json.loads(line) for line in (FILES / "geochat_aid_answers.jsonl").read_text().splitlines()]
    other = tmp_path / "other.jsonl"
    # every class folder name read out (all right under GeoChat's rule) but for the last two
    texts = [*(rec["question_id"].split("/")[0] for rec in answers[:8]), "forest", "beach"]
    other.write_text(
        "".join(
            json.dumps({"id": r["question_id"], "text": t}) + "\n"
            for r, t in zip(answers, texts, strict=True)
        )
    )
    with pytest.warns(UnscoredPredictionsWarning):
        b = score_predictions("aid", data, other, tmp_path / "mine", name="Mine")
    assert b["metrics"]["accuracy"] == 0.8 and a["metrics"]["accuracy"] == 0.6
    c = compare_runs([geochat, tmp_path / "mine"])
    assert c.n == 10 and c.labels == ["GeoChat-format (geochat predictions)", "Mine (geomag predictions)"]
    assert c.values[0]["accuracy"] == 0.6 and c.values[1]["accuracy"] == 0.8
    d = c.differences[0]["accuracy"]
    assert d.diff == pytest.approx(0.2) and d.low <= 0.2 <= d.high and d.n == 10
    # the CLI prints the same table, and writes it with --out
    assert (
        main(["eval", "--compare", str(geochat), str(tmp_path / "mine"), "--out", str(tmp_path / "cmp")]) == 0
    )
    printed = capsys.readouterr().out
    assert "| Mine (geomag predictions) - GeoChat-format (geochat predictions) | +20.00 [" in printed
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["n_shared"] == 10


def test_eval_forms_take_their_own_arguments(tmp_path, capsys):
    assert main(["eval", "aid", "--compare", str(tmp_path)]) == 2
    assert "--compare takes output folders only, not BENCHMARK" in capsys.readouterr().err
    assert main(["eval", "aid", "--out", str(tmp_path / "o")]) == 2
    assert "--data required" in capsys.readouterr().err
    assert main(["eval", "--compare", str(tmp_path)]) == 2
    assert "at least two output folders" in capsys.readouterr().err
    assert main(["eval", "--compare", str(tmp_path), str(tmp_path)]) == 2
    assert "not a `geomag eval` output folder" in capsys.readouterr().err


def test_glamm_masks_are_checked(real_data, tmp_path):
    rec = json.loads((FILES / "glamm_nwpu_gcg" / "620.json").read_text())
    rec["pred_masks"][0]["counts"] = "not an RLE"
    (tmp_path / "bad.json").write_text(json.dumps([rec]))
    with pytest.raises(GeoMagError, match=r"pred_masks\[0\] is not a COCO RLE mask"):
        score_predictions(
            "nwpu-gcg", real_data / "nwpu-vhr10", tmp_path / "bad.json", tmp_path / "o", limit=3
        )
    assert not (tmp_path / "o").exists()
