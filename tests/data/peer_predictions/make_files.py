"""Writes the small prediction files in peers' output formats that tests/eval/test_score_predictions.py
scores, from REAL benchmark samples in ../shared/data/real. The predictions are made here by hand, not
by the peers' models (which this project cannot run): answers typed in GeoChat's answers JSONL, and
masks derived from the ground truth (kept, shifted, dropped, one added) in GLaMM's GCG prediction
files. They test that the formats are read and scored by GeoMag's scorer, not any model's quality.

    PYTHONPATH=src python tests/data/peer_predictions/make_files.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from geomag.data.loaders import load_benchmark
from geomag.data.samples import mask_to_rle
from geomag.eval.metrics import strip_gcg_markup
from geomag.model.answers import gcg_phrases
from geomag.sources import open_source

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[2] / ".." / "shared" / "data" / "real"

# (GeoChat answer) for the first ten AID samples, in the loader's order (one per class, alphabetical):
# Airport, BareLand, BaseballField, Beach, Bridge, Center, Church, Commercial, DenseResidential, Desert
AID_ANSWERS = [
    "Airport",
    "Bare land",
    "Baseball field.",
    "beach",
    "A bridge over a river.",
    "Center",
    "Park",
    "Commercial area",
    "Dense residential",
    "deserts",
]
# RSVQA-LR question id -> GeoChat answer (batch_geochat_vqa.py writes question_id, image_id, answer)
RSVQA_ANSWERS = {
    "23608": "rural",
    "23609": "yes",
    "23610": "0",
    "23611": "no",
    "23612": "Yes",
    "23613": "12",
    "23614": "more than 1000",
    "23615": "yes",
    "23616": "100",
    "23617": "150",
    "23618": "yes",
    "23619": "Yes.",
    "23620": "no",
    "23621": "30",
    "23622": "yes",
    "23623": "0",
    "23624": "yes",
    "23625": "no",
    "23626": "no",
    "23627": "no",
    "23628": "2",
    "23629": "yes",
    "23630": "5",
    "23631": "yes",
}


def geochat_aid() -> None:
    samples = load_benchmark("aid", REAL / "aid-150")[: len(AID_ANSWERS)]
    with (HERE / "geochat_aid_answers.jsonl").open("w") as f:
        for s, answer in zip(samples, AID_ANSWERS, strict=True):
            qid = s.meta["id"]  # GeoChat's scene question ids are "<class folder>/<file>"
            rec = {
                "question_id": qid,
                "image_id": Path(s.image).name,
                "answer": answer,
                "ground_truth": qid.split("/")[0],
            }
            f.write(json.dumps(rec) + "\n")


def geochat_rsvqa() -> None:
    samples = load_benchmark("rsvqa-lr", REAL / "rsvqa-lr" / "configilm_subset")
    by_id = {s.meta["id"]: s for s in samples}
    with (HERE / "geochat_rsvqa_lr_answers.jsonl").open("w") as f:
        for qid, answer in RSVQA_ANSWERS.items():
            rec = {"question_id": int(qid), "image_id": Path(by_id[qid].image).name, "answer": answer}
            f.write(json.dumps(rec) + "\n")


def glamm_nwpu() -> None:
    """GLaMM's infer.py output for the first three NWPU VHR-10 GCG samples: one {image_id}.json each."""
    out = HERE / "glamm_nwpu_gcg"
    out.mkdir(exist_ok=True)
    for k, s in enumerate(load_benchmark("nwpu-gcg", REAL / "nwpu-vhr10")[:3]):
        w, h = open_source(s.image).size
        gt = s.mask_arrays(w, h)
        phrases = gcg_phrases(s.answer)
        if k == 0:  # the one mask, exact
            masks = gt
        elif k == 1:  # shifted right by a fifth of its width: a partial overlap; a shorter caption
            cols = np.flatnonzero(gt[0].any(axis=0))
            masks = [np.roll(gt[0], max(1, (cols.max() - cols.min()) // 5), axis=1)]
            caption = "The bridge in the center."
        else:  # first exact, second dropped (with its phrase), third kept, plus a box nobody asked for
            extra = np.zeros((h, w), dtype=bool)
            extra[: h // 8, : w // 8] = True
            masks = [gt[0], gt[2], extra]
            phrases = [phrases[0], phrases[2], "parking lot"]
        rec = {
            "image_id": Path(s.image).stem,
            "caption": caption if k == 1 else strip_gcg_markup(s.answer),
            "phrases": phrases,
            "pred_masks": [mask_to_rle(m) for m in masks],
        }
        (out / f"{Path(s.image).stem}.json").write_text(json.dumps(rec) + "\n")


if __name__ == "__main__":
    geochat_aid()
    geochat_rsvqa()
    glamm_nwpu()
