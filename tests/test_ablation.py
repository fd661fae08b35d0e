"""The MagCrop ablation (geomag.eval.ablation, benchmarks/ablation.py): oracle crops, per-sample
scores, paired intervals, threshold simulation, and the arms end to end on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from geomag.data.samples import Sample, mask_to_rle
from geomag.eval.ablation import (
    ArmCache,
    SampleScore,
    by_bucket,
    compare_arms,
    oracle_boxes,
    predict_arm,
    record_of,
    score_record,
    seeded_subset,
    simulated,
    target_box_of,
)
from geomag.imaging import Box
from geomag.magcrop import crop_views
from geomag.options import ParseOptions


def _square(size: int, x: int, y: int, side: int) -> dict:
    return {"polygons": [[[x, y], [x + side, y], [x + side, y + side], [x, y + side]]]}


def _refseg(path: str, k: int, x: int, y: int, side: int) -> Sample:
    return Sample(
        path, "Segment the car.", "Sure, it is [SEG].", "refseg", [_square(0, x, y, side)], {"id": f"s{k}"}
    )


def test_the_oracle_crop_holds_a_tiny_target_and_shows_it_larger_at_the_model_input():
    size, target = (1024, 768), Box(600, 400, 612, 410)
    boxes = oracle_boxes(target, size, "pixel", 256)
    assert boxes["crop1"].contains(boxes["crop2"]) and boxes["crop2"].contains(target)
    assert boxes["crop2"].width == 256  # 3 x 12 px is below the model's input side
    whole, crop = crop_views(Image.new("RGB", size), boxes["crop2"])
    # at a 256 px model input the target spans 12 * 256 / 1024 = 3 px of the whole view, 12 px of the crop
    assert 256 / crop.width * target.width >= 3.9 * (256 / whole.width * target.width)
    region = oracle_boxes(target, size, "region", 256)
    assert set(region) == {"crop1"} and region["crop1"].contains(target)


def test_a_large_target_gets_an_oracle_crop_that_still_holds_it_whole():
    size, target = (800, 800), Box(100, 100, 500, 500)
    boxes = oracle_boxes(target, size, "pixel", 256)
    if boxes:
        assert boxes["crop2"].contains(target) or boxes["crop2"].width == 799
        assert boxes["crop1"].contains(boxes["crop2"])


def test_planted_oracle_wins_on_tiny_targets_with_an_interval_that_excludes_zero(tmp_path):
    """A planted reader that finds small targets only when it sees them enlarged: its whole-image arm
    misses every target under 0.5 % of the image, its oracle arm finds them; the ablation must call
    the oracle better overall and on the small bucket, and within noise on the large bucket."""
    path = tmp_path / "scene.png"
    Image.new("RGB", (400, 400)).save(path)
    rng = np.random.default_rng(0)
    samples, off, oracle = [], {}, {}
    for k in range(80):
        small = k % 2 == 0
        side = 20 if small else 150
        x, y = (int(v) for v in rng.integers(0, 400 - side, 2))
        s = _refseg(str(path), k, x, y, side)
        samples.append(s)
        gt = s.mask_arrays(400, 400)[0]
        empty = np.zeros_like(gt)
        for arm, found in (("off", not small), ("oracle", True)):
            rec = {
                "id": s.meta["id"],
                "image_size": [400, 400],
                "masks": [mask_to_rle(gt if found else empty)],
            }
            (off if arm == "off" else oracle)[s.meta["id"]] = rec
    by_arm = {
        "off": [score_record(s, off[s.meta["id"]], "refsegrs", "off") for s in samples],
        "oracle": [score_record(s, oracle[s.meta["id"]], "refsegrs", "oracle") for s in samples],
    }
    row = compare_arms("planted", "refseg", by_arm, resamples=500)
    d = row.diffs["oracle"]["P@0.5"]
    assert d.diff == pytest.approx(0.5) and d.low <= 0.5 <= d.high and d.verdict == "better"
    buckets = by_bucket(by_arm)
    assert set(buckets) == {"small", "large"}
    small = compare_arms("small", "refseg", buckets["small"], resamples=500)
    large = compare_arms("large", "refseg", buckets["large"], resamples=500)
    assert small.diffs["oracle"]["P@0.5"].diff == pytest.approx(1.0)
    assert large.diffs["oracle"]["P@0.5"].verdict == "within noise"


def test_vqa_records_are_scored_by_rsvqa_answer_classes():
    s = Sample("x.png", "Is there a ship?", "yes", "vqa", meta={"id": "q", "type": "presence"})
    rec = {"id": "q", "text": "Yes.", "image_size": [10, 10], "masks": []}
    assert score_record(s, rec, "rsvqa-hr-test1", "off").hit == 1.0
    assert score_record(s, {**rec, "text": "no"}, "rsvqa-hr-test1", "off").hit == 0.0


def test_a_larger_margin_or_skip_threshold_falls_back_to_the_whole_images_answer():
    off = {"id": "a", "text": "no"}
    crop = {
        "id": "a",
        "text": "yes",
        "boxes": {"crop1": [0, 0, 5, 5]},
        "candidates": [{"whole": True, "score": 0.6}, {"whole": False, "score": 0.7, "peakedness": 0.3}],
    }
    assert simulated(crop, off, margin=0.05) is crop
    assert simulated(crop, off, margin=0.2) is off
    assert simulated(crop, off, skip_below=0.5) is off
    kept = {"id": "a", "text": "no", "boxes": {}}
    assert simulated(kept, off, margin=0.5) is kept


def test_seeded_subset_is_random_not_the_first_n():
    samples = [Sample("x.png", "p", "a", "vqa", meta={"id": str(k)}) for k in range(100)]
    a, b = seeded_subset(samples, 10, 0), seeded_subset(samples, 10, 0)
    assert [s.meta["id"] for s in a] == [s.meta["id"] for s in b]
    assert [s.meta["id"] for s in a] != [str(k) for k in range(10)]


def test_the_three_arms_run_end_to_end_and_resume_from_the_cache(tiny_checkpoint, tmp_path):
    import geomag

    path = tmp_path / "scene.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (320, 320, 3), dtype=np.uint8)).save(path)
    sample = _refseg(str(path), 0, 200, 200, 16)
    predictor = geomag.GeoMagPredictor(geomag.create_model(str(tiny_checkpoint)))
    predictor.set_image(sample.image)
    cache = ArmCache(tmp_path / "oracle.jsonl")
    defaults = ParseOptions(max_new_tokens=8, pixel_skip_below=0.0)
    for arm in ("off", "magcrop", "oracle"):
        result, seconds = predict_arm(predictor, sample, arm, defaults)
        assert result is not None and seconds > 0
        rec = record_of(sample, result, seconds)
        if arm == "oracle":
            target = target_box_of(sample, (320, 320))
            assert Box(*rec["boxes"]["crop2"]).contains(target)
            cache.add(rec)
        score = score_record(sample, rec, "refsegrs", arm)
        assert isinstance(score, SampleScore) and score.bucket == "small"
    assert ArmCache(tmp_path / "oracle.jsonl").records.keys() == {"s0"}
