"""Text that refers to masks: every [SEG] of the model's answer becomes its phrase and a mask number
("Sure, it is [mask 1]."), in the CLI's line, result.json and the server's JSON; the raw token never
reaches a person."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from geomag.imaging import PilSource
from geomag.result import Result, mask_references
from geomag.writing import save, summary_line


def test_each_target_becomes_its_phrase_and_mask_number():
    assert mask_references("Sure, it is [SEG].", [], 1)[0] == "Sure, it is [mask 1]."
    assert mask_references("Sure, it is [SEG].", [], 0)[0] == "Sure, it is (no mask)."
    text, refs = mask_references(
        "<p> A road </p> [SEG] runs beside <p> houses </p> [SEG].", ["A road", "houses"], 2
    )
    assert text == "A road [mask 1] runs beside houses [mask 2]."
    assert [text[a:b] for a, b in (r["span"] for r in refs)] == ["A road [mask 1]", "houses [mask 2]"]
    assert [(r["mask"], r["phrase"]) for r in refs] == [(0, "A road"), (1, "houses")]
    assert mask_references("Yes", [], 0) == ("Yes", [])


def test_runs_duplicates_and_empty_masks_follow_the_predictors_mapping():
    # "[SEG] [SEG]" is one target (a run); the predictor merged its second [SEG] into mask 0 and the
    # last [SEG]'s mask was empty (extra.seg_masks = [0, 0, None])
    text, refs = mask_references(
        "<p>a court</p> [SEG] [SEG] and <p>a car</p> [SEG].", ["a court"], 1, [0, 0, None]
    )
    assert text == "a court [mask 1] and a car (no mask)."
    assert [r["mask"] for r in refs] == [0, None]
    # a phrase from the Result when the text has none next to its [SEG]; a second mask dropped before
    assert mask_references("It is [SEG] and [SEG].", ["a ship", "a car"], 2, [None, 0])[0] == (
        "It is (no mask) and a ship [mask 1]."
    )


def test_the_predictor_records_which_mask_each_seg_became(tiny_checkpoint, court_image):
    from geomag.api import load_predictor

    predictor = load_predictor(str(tiny_checkpoint))
    predictor.set_image(court_image)
    logits = torch.full((2, 16, 16), -6.0)
    logits[0, 4:8, 4:8] = 6.0  # target 0: a square; target 1: nothing above 0.5
    text = "<p>a court</p> [SEG] [SEG] <p>a car</p> [SEG]"
    answer = predictor._masks(predictor.geomag, text, logits, [[5, 6], [9]], None, 512)
    assert answer.notes["seg_masks"] == [0, 0, None]
    result = Result(text=text, granularity="pixel", image_size=(800, 800), masks=answer.masks,
                    phrases=answer.phrases, extra=dict(answer.notes))  # fmt: skip
    assert result.display_text == "a court [mask 1] a car (no mask)"


def test_result_json_and_the_printed_line_carry_the_references(tmp_path):
    mask = np.zeros((30, 40), bool)
    mask[5:10, 5:20] = True
    result = Result(text="Sure, it is [SEG].", granularity="pixel", image_size=(40, 30), masks=[mask],
                    scores=[0.9], source=PilSource(Image.new("RGB", (40, 30))))  # fmt: skip
    written = json.loads(save(result, tmp_path / "out").read_text())
    assert written["text"] == "Sure, it is [SEG]."  # the model's own text, for tools
    assert written["display_text"] == "Sure, it is [mask 1]."
    assert written["references"] == [{"mask": 0, "label": "[mask 1]", "phrase": "", "span": [12, 20]}]
    line = summary_line(result, tmp_path / "out")
    assert line.startswith("Sure, it is [mask 1].\n") and "[SEG]" not in line
