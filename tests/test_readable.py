"""Results a person can read (issue 23, part 4): a pixel prompt without a mask says why, overlays
outline and label every mask at a size that grows with the image, and duplicate masks are one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from geomag.imaging import (
    BOX_COLORS,
    MASK_COLORS,
    SPECK_LINES,
    Box,
    PilSource,
    draw_boxes,
    label_px,
    outline_px,
)
from geomag.model.answers import seg_phrases
from geomag.predictor import DUPLICATE_IOU, mask_iou, merge_duplicates
from geomag.result import Result
from geomag.writing import overlay, summary_line


def _result(size: tuple[int, int], masks: list[np.ndarray], **fields: object) -> Result:
    grey = Image.new("RGB", size, (90, 90, 90))
    return Result(
        text="Sure, it is [SEG].", granularity="pixel", image_size=size, masks=masks,
        scores=[0.8] * len(masks), source=PilSource(grey), **fields,
    )  # fmt: skip


# ------------------------------------------------------------------------------- duplicate masks
def test_seg_phrases_give_each_seg_the_phrase_before_its_run():
    assert seg_phrases("Sure, it is [SEG].") == [""]
    assert seg_phrases("<p> a ship </p> [SEG] [SEG] and <p>two cars</p>[SEG]") == [
        "a ship",
        "a ship",
        "two cars",
    ]
    assert seg_phrases("[SEG] then <p>a car</p> [SEG]") == ["", "a car"]
    assert seg_phrases("<p>a car</p> is here [SEG]") == [""]  # words between: the phrase is not its


def test_mask_iou_in_the_common_box():
    a = np.zeros((50, 80), dtype=bool)
    b = np.zeros_like(a)
    a[10:20, 10:20] = True
    b[15:25, 10:20] = True
    assert mask_iou(a, b) == pytest.approx(50 / 150)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, np.zeros_like(a)) == 0.0
    far = np.zeros_like(a)
    far[40:45, 70:75] = True
    assert mask_iou(a, far) == 0.0


def test_merge_duplicates_keeps_the_first_with_its_phrase_and_score():
    a = np.zeros((60, 60), dtype=bool)
    a[10:30, 10:30] = True  # 400 px
    near = a.copy()
    near[30, 10:20] = True  # 10 px more: IoU 400 / 410 = 0.976, the same object to the eye
    other = np.zeros_like(a)
    other[10:30, 12:30] = True  # IoU 360 / 400 = 0.9: overlapping but not the same, kept
    b = np.zeros_like(a)
    b[40:50, 40:50] = True
    masks, scores, phrases, merged = merge_duplicates(
        [a, near, b, a.copy(), other], [0.7, 0.9, 0.6, 0.7, 0.5], ["roof", "the roof", "car", "roof", "yard"]
    )
    assert [m.sum() for m in masks] == [400, 100, 360]
    assert scores == [0.7, 0.6, 0.5] and phrases == ["roof", "car", "yard"]
    assert merged == [
        {"seg": 1, "same_as": 0, "iou": round(400 / 410, 4), "phrase": "the roof"},
        {"seg": 3, "same_as": 0, "iou": 1.0, "phrase": "roof"},
    ]
    assert 400 / 410 >= DUPLICATE_IOU > 0.9


def test_predictor_merges_the_masks_of_one_run_and_says_why_an_empty_one_is_dropped(
    tiny_checkpoint, court_image
):
    """The predictor's own mask step on planted decoder logits: a run of two [SEG] (one target) gives
    one mask, not two; logits below the threshold everywhere give no mask and the reason."""
    from geomag.api import load_predictor

    predictor = load_predictor(str(tiny_checkpoint))
    predictor.set_image(court_image)
    model = predictor.geomag
    logits = torch.full((2, 16, 16), -6.0)
    logits[0, 4:8, 4:8] = 6.0  # target 0: a square; target 1: nothing above 0.5
    answer = predictor._masks(
        model, "<p>a court</p> [SEG] [SEG] <p>a car</p> [SEG]", logits, [[5, 6], [9]], None, 512
    )
    assert len(answer.masks) == 1 and answer.phrases == ["a court"] and len(answer.scores) == 1
    assert answer.notes["duplicates_merged"] == 1 and answer.notes["empty_masks"] == 1
    assert answer.notes["duplicates"] == [{"seg": 1, "same_as": 0, "iou": 1.0, "phrase": "a court"}]
    assert "no_mask" not in answer.notes
    none = predictor._masks(model, "Sure, it is [SEG].", torch.full((1, 16, 16), -3.0), [[5]], None, 512)
    assert none.masks == [] and none.notes["empty_masks"] == 1
    assert none.notes["no_mask"] == (
        "its [SEG] decoded to an empty mask (no pixel above probability 0.5; the decoder's highest is 0.05)"
    )


# ------------------------------------------------------------------------------- what is printed
def test_summary_line_says_why_there_is_no_mask_and_how_many_were_merged():
    why = 'the model wrote no [SEG] token (it answered "yes")'
    line = summary_line(_result((40, 30), [], extra={"no_mask": why}), "out")
    assert line.splitlines()[1] == f"[pixel] no mask: {why}, 0.00 s -> out"
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:9, 5:9] = True
    line = summary_line(_result((40, 30), [mask], extra={"duplicates_merged": 1}), "out")
    assert "[pixel] 1 mask (1 duplicate merged), " in line
    assert "[pixel] 2 masks, " in summary_line(_result((40, 30), [mask, ~mask]), "out")


def test_parse_pixel_prompt_without_seg_says_why(tiny_checkpoint, court_image, tmp_path, capsys):
    """The tiny random model writes no [SEG] in 4 tokens: the line and result.json say so, quoting it."""
    from geomag.cli import main

    out = tmp_path / "out"
    argv = ["parse", str(court_image), "Segment the tennis court.", "--model", str(tiny_checkpoint)]
    assert main([*argv, "--out", str(out), "--max-new-tokens", "4"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["masks"] == [] and "[SEG]" not in result["text"]
    why = result["extra"]["no_mask"]
    answered = " ".join(result["text"].split())
    assert why.startswith("the model wrote no [SEG] token (it answered ") and answered[:50] in why
    assert why.endswith("cut at max_new_tokens=4)")
    assert f"[pixel] no mask: {why}, " in capsys.readouterr().out


# ------------------------------------------------------------------------------- overlays
def test_overlay_outlines_a_30_pixel_mask_on_a_4k_image():
    mask = np.zeros((3000, 4000), dtype=bool)
    mask[1500:1506, 2000:2005] = True  # 30 px: a speck at this size
    picture = np.asarray(overlay(_result((4000, 3000), [mask])))
    color = np.array(MASK_COLORS[0])
    line = outline_px((4000, 3000))
    assert line >= 8
    # the ring: the mask's colour all round it, `line` px wide, outside the tinted mask
    ring = np.zeros_like(mask)
    ring[1500 - line : 1506 + line, 2000 - line : 2005 + line] = True
    ring &= ~mask
    assert (picture[ring] == color).all(axis=1).sum() == ring.sum()
    assert (picture[1500 - line - 1, 2000:2005] != color).any(axis=-1).all()  # and no further
    assert not (picture[mask] == color).all(axis=1).any()  # the fill stays translucent
    # a circle of SPECK_LINES line widths round it, and its label "mask 0" below that, in the same
    # colour, in letters that grow with the image
    r = SPECK_LINES * line
    cy, cx = (1500 - line + 1506 + line) // 2, (2000 - line + 2005 + line) // 2
    assert (picture[cy, cx - r : cx - r + line] == color).all(axis=-1).any()
    assert (picture[cy - r : cy - r + line, cx] == color).all(axis=-1).any()
    below = (picture[cy + r + 1 :, cx - r : cx + 600] == color).all(axis=-1)
    rows = np.flatnonzero(below.any(axis=1))
    assert rows.size and rows[0] < label_px((4000, 3000))
    assert rows[-1] - rows[0] >= 0.6 * label_px((4000, 3000)) >= 0.6 * 60


def test_box_labels_grow_with_the_image():
    def label_height(side: int) -> int:
        image = Image.new("RGB", (side, side), (90, 90, 90))
        box = Box(side // 4, side // 2, side // 2, side - 10)
        drawn = np.asarray(draw_boxes(image, {"crop1": box}))
        assert (drawn[: box.y0] == BOX_COLORS[0]).all(axis=-1).any()  # in the box's colour, above it
        above = (drawn[: box.y0] != (90, 90, 90)).any(axis=-1)  # the label and its dark rim
        rows = np.flatnonzero(above.any(axis=1))
        return int(rows[-1] - rows[0] + 1)

    small, large = label_height(800), label_height(4000)
    assert small >= 8 and large >= 4 * small


def test_overlay_labels_masks_with_their_phrases_and_keeps_a_shrunk_speck(monkeypatch):
    """A mask smaller than one overlay pixel (a huge raster shrunk to OVERLAY_MAX) is still drawn."""
    import geomag.writing as writing

    monkeypatch.setattr(writing, "OVERLAY_MAX", 500)
    speck = np.zeros((2000, 2000), dtype=bool)
    speck[1000:1002, 1000:1002] = True  # 4 px: 1/16 of an overlay pixel
    picture = np.asarray(overlay(_result((2000, 2000), [speck], phrases=["a small car"])))
    assert picture.shape == (500, 500, 3)
    assert (picture[245:255, 245:255] == MASK_COLORS[0]).all(axis=-1).any()
    assert writing.mask_labels(_result((20, 20), [speck[:20, :20]] * 2, phrases=["a small car", ""])) == [
        "1: a small car",  # the numbers the answer's text uses ("[mask 1]" is mask_00.png)
        "mask 2",
    ]


def test_shipped_nano_writes_one_mask_per_object_on_a_landsat_scene(real_data):
    """The case of the issue: nano answered "[SEG] [SEG]" (one target) to this prompt and wrote two
    identical 731-pixel masks. Whatever the model answers, no two masks of a result are one object,
    and every [SEG] is accounted for: a mask, a merged duplicate or a dropped empty mask."""
    from geomag.api import parse

    image = real_data / "geotiff" / "rasterio_RGB.byte.tif"
    result = parse(image, "Please segment the water area.")
    segs = result.text.count("[SEG]")
    merged, empty = result.extra.get("duplicates_merged", 0), result.extra.get("empty_masks", 0)
    assert len(result.masks) + merged + empty == segs
    assert len(result.scores) == len(result.masks)
    for i, a in enumerate(result.masks):
        assert a.any()
        assert all(mask_iou(a, b) < DUPLICATE_IOU for b in result.masks[i + 1 :])
    assert result.masks or result.extra["no_mask"]
