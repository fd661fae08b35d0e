"""The MagCrop ablation (the paper's Table 7) on real held-out data: three arms per sample.

- off: the whole image (`ParseOptions(magcrop=False)`);
- magcrop: the shipped `geomag parse` defaults (saliency crops, skip rule, crop views, arbiter);
- oracle: the same plan with the ground-truth target as the crop (`oracle_boxes`: a square of
  ORACLE_FACTOR x the target's longer side, at least the model's input side, centred on it), the
  arbiter off: the upper bound of what a perfect crop gives this model.

Every figure is computed from per-sample values (`SampleScore`), so each on - off difference gets a
paired bootstrap interval (`geomag.eval.bootstrap`) and a row reads "better", "worse" or "within
noise". Predictions are cached per (row, arm, sample) in JSONL files: a run resumes where it stopped.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geomag.data.samples import TASK_GRANULARITY, Sample, decode_mask
from geomag.eval import metrics as M
from geomag.eval.bootstrap import PairedDifference, paired_bootstrap
from geomag.imaging import Box
from geomag.options import ParseOptions
from geomag.predictor import GeoMagPredictor
from geomag.result import Result

ARMS = ("off", "magcrop", "oracle")
ORACLE_FACTOR = 3.0  # oracle crop side / target side (the oracle: 3x, at least 256 px)
SIZE_BUCKETS = ((0.0, 0.005, "small"), (0.005, 0.05, "medium"), (0.05, 1.01, "large"))


@dataclass
class SampleScore:
    """One sample's values in one arm: enough to recompute every figure of its task on a subset."""

    sample_id: str
    task: str
    qtype: str = ""  # vqa: presence / count / comp ...
    hit: float = 0.0  # vqa: right answer; roc: SS; refseg: IoU >= 0.5
    inter: int = 0  # refseg
    union: int = 0
    siou: float = 0.0  # roc
    bucket: str = ""  # refseg / roc: the target's size bucket
    seconds: float = 0.0
    contains_centre: bool | None = None  # magcrop arm: its best crop holds the target's centre
    box_iou: float | None = None  # magcrop arm: IoU of its best crop and the target box
    chose_whole: bool | None = None  # magcrop arm: the arbiter kept the whole image

    @property
    def iou(self) -> float:
        return self.inter / self.union if self.union else 0.0


# ------------------------------------------------------------------------------------------------
def target_box_of(sample: Sample, size: tuple[int, int]) -> Box | None:
    """The sample's target (`Sample.target_box`) clipped to the image, as a Box."""
    box = sample.target_box(*size)
    return None if box is None else Box(*box).clamp(*size)


def square_around(box: Box, side: int, size: tuple[int, int]) -> Box:
    """A square of `side` (at most the image) centred on `box`, shifted inside the image."""
    w, h = size
    sw, sh = min(side, w), min(side, h)
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    x0 = int(min(max(0, round(cx - sw / 2)), w - sw))
    y0 = int(min(max(0, round(cy - sh / 2)), h - sh))
    return Box(x0, y0, x0 + sw, y0 + sh)


def oracle_boxes(target: Box, size: tuple[int, int], granularity: str, min_side: int) -> dict[str, Box]:
    """The oracle's MagCrop boxes: crop1 (region) or crop2 inside a twice larger crop1 (pixel)."""
    side = max(min_side, round(ORACLE_FACTOR * max(target.width, target.height)))
    inner = square_around(target, side, size)
    if granularity == "region":
        return {"crop1": inner}
    outer = square_around(target, 2 * side, size)
    if outer == inner or not outer.contains(inner):  # the inner crop is the whole image already
        inner = square_around(target, max(1, min(side, min(size) - 1)), size)
        outer = square_around(target, min(size), size)
        if not outer.contains(inner) or inner.area >= outer.area:
            return {}
    return {"crop1": outer, "crop2": inner}


def bucket_of(share: float) -> str:
    """The size bucket of a target covering `share` of the image."""
    return next(name for lo, hi, name in SIZE_BUCKETS if lo <= share < hi)


# ------------------------------------------------------------------------------------------------
def arm_options(arm: str, defaults: ParseOptions) -> ParseOptions:
    if arm == "off":
        return defaults.with_(magcrop=False)
    if arm == "oracle":
        return defaults.with_(magcrop=True, arbiter=False)
    return defaults.with_(magcrop=True)


def predict_arm(
    predictor: GeoMagPredictor, sample: Sample, arm: str, defaults: ParseOptions
) -> tuple[Result | None, float]:
    """One sample in one arm (the image is set by the caller); (None, 0) when the oracle has no box."""
    granularity = TASK_GRANULARITY[sample.task]
    options = arm_options(arm, defaults)
    boxes = None
    if arm == "oracle":
        target = target_box_of(sample, predictor.source.size)
        side = max(predictor.vlm.input_size)
        boxes = oracle_boxes(target, predictor.source.size, granularity, side) if target else None
        if not boxes:
            return None, 0.0
    t = time.perf_counter()
    result = predictor.predict(sample.prompt, options, boxes=boxes, granularity=granularity)
    return result, time.perf_counter() - t


def record_of(sample: Sample, result: Result, seconds: float) -> dict[str, Any]:
    """What the cache keeps of one prediction (masks as COCO RLE)."""
    from geomag.data.samples import mask_to_rle

    extra = result.extra
    return {
        "id": sample.meta["id"],
        "text": result.text,
        "masks": [mask_to_rle(np.asarray(m, dtype=bool)) for m in result.masks],
        "image_size": [int(v) for v in result.image_size],
        "boxes": {k: b.to_list() for k, b in result.boxes.items()},
        "candidates": extra.get("candidates", []),
        "magcrop": extra.get("magcrop"),
        "peakedness": extra.get("peakedness"),
        "seconds": round(seconds, 4),
    }


def score_record(sample: Sample, rec: dict[str, Any], benchmark: str, arm: str) -> SampleScore:
    """The per-sample values of one cached prediction (the peers' scoring: RSVQA's answer classes,
    RMSIN's IoU at the original resolution, Osprey's SS / SIoU through `roc_scores`)."""
    w, h = rec["image_size"]
    out = SampleScore(sample.meta["id"], sample.task, seconds=float(rec.get("seconds", 0.0)))
    target = target_box_of(sample, (w, h))
    if target is not None:
        out.bucket = bucket_of(target.area / float(w * h))
    if sample.task == "vqa":
        lr = benchmark == "rsvqa-lr"
        cls = M.rsvqa_answer_class(rec["text"], lr)
        out.qtype = str(sample.meta.get("type", ""))
        out.hit = float(cls is not None and cls == M.rsvqa_answer_class(sample.answer, lr))
    elif sample.task == "refseg":
        gt = np.zeros((h, w), dtype=bool)
        for m in sample.mask_arrays(w, h):
            gt |= m
        pred = np.zeros((h, w), dtype=bool)
        for m in rec["masks"]:
            pred |= decode_mask({"rle": m}, w, h)
        out.inter, out.union = M.mask_iou(pred, gt)
        out.hit = float(out.iou >= 0.5)
    if arm == "magcrop" and target is not None:
        crops = [c for c in rec.get("candidates", []) if not c.get("whole")]
        boxes = crops[0]["boxes"] if crops else rec.get("boxes", {})
        inner = boxes.get("crop2") or boxes.get("crop1")
        if inner:
            b = Box(*inner)
            cx, cy = (target.x0 + target.x1) / 2, (target.y0 + target.y1) / 2
            out.contains_centre = b.x0 <= cx <= b.x1 and b.y0 <= cy <= b.y1
            out.box_iou = b.iou(target)
        out.chose_whole = not rec.get("boxes")
    return out


def add_roc_scores(
    scores: Sequence[SampleScore], samples: Sequence[Sample], texts: Sequence[str], embedder: M.TextEmbedder
) -> None:
    """SS and SIoU of ROC samples (one batch through the sentence encoder)."""
    if not samples:
        return
    ss, siou = M.roc_scores(list(texts), [s.answer for s in samples], embedder)
    for sc, a, b in zip(scores, ss, siou, strict=True):
        sc.hit, sc.siou = float(a), float(b)


# ------------------------------------------------------------------------------------------------
Figure = Callable[[Sequence[SampleScore], np.ndarray], float]


def figures(task: str) -> dict[str, Figure]:
    """The row's figures, each computed on an index subset of its per-sample scores."""

    def mean(attr: str, qtype: str | None = None) -> Figure:
        def f(scores: Sequence[SampleScore], idx: np.ndarray) -> float:
            vals = [getattr(scores[i], attr) for i in idx if qtype is None or scores[i].qtype == qtype]
            return float(np.mean(vals)) if vals else float("nan")

        return f

    def oiou(scores: Sequence[SampleScore], idx: np.ndarray) -> float:
        u = sum(scores[i].union for i in idx)
        return sum(scores[i].inter for i in idx) / u if u else 0.0

    if task == "refseg":
        return {"P@0.5": mean("hit"), "oIoU": oiou, "mIoU": mean("iou")}
    if task == "roc":
        return {"SS": mean("hit"), "SIoU": mean("siou")}
    return {
        "presence": mean("hit", "presence"),
        "count": mean("hit", "count"),
        "comp": mean("hit", "comp"),
        "OA": mean("hit"),
    }


@dataclass
class RowResult:
    """One row of the ablation: per arm its figures, and each arm minus off with its interval."""

    name: str
    task: str
    n: int
    arms: dict[str, dict[str, float]] = field(default_factory=dict)
    diffs: dict[str, dict[str, PairedDifference]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    crop_stats: dict[str, float | int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "n": self.n,
            "arms": self.arms,
            "diffs": {arm: {k: d.to_dict() for k, d in v.items()} for arm, v in self.diffs.items()},
            "seconds": self.seconds,
            "crop_stats": self.crop_stats,
        }


def compare_arms(
    name: str, task: str, by_arm: dict[str, list[SampleScore]], resamples: int = 2000, seed: int = 0
) -> RowResult:
    """Figures per arm and paired bootstrap intervals of each arm minus "off", on the samples every
    compared arm has (the oracle skips samples without a target box: its difference is on those)."""
    figs = figures(task)
    off = {s.sample_id: s for s in by_arm.get("off", [])}
    row = RowResult(name, task, len(off))
    for arm, scores in by_arm.items():
        row.arms[arm] = {k: f(scores, np.arange(len(scores))) for k, f in figs.items()}
        row.arms[arm]["n"] = len(scores)
        row.seconds[arm] = float(np.mean([s.seconds for s in scores])) if scores else float("nan")
        if arm == "off":
            continue
        shared = [s for s in scores if s.sample_id in off]
        base = [off[s.sample_id] for s in shared]
        row.diffs[arm] = {
            k: paired_bootstrap(
                lambda idx, f=f, a=shared: f(a, idx),
                lambda idx, f=f, b=base: f(b, idx),
                len(shared),
                resamples=resamples,
                seed=seed,
            )
            for k, f in figs.items()
        }
    crops = [s for s in by_arm.get("magcrop", []) if s.contains_centre is not None]
    if crops:
        row.crop_stats = {
            "cropped": len(crops),
            "contains_centre": float(np.mean([s.contains_centre for s in crops])),
            "box_iou": float(np.mean([s.box_iou or 0.0 for s in crops])),
        }
    chose = [s.chose_whole for s in by_arm.get("magcrop", []) if s.chose_whole is not None]
    if chose:
        row.crop_stats["kept_whole"] = float(np.mean(chose))
    return row


def by_bucket(by_arm: dict[str, list[SampleScore]]) -> dict[str, dict[str, list[SampleScore]]]:
    """The same arms split by the target's size bucket."""
    out: dict[str, dict[str, list[SampleScore]]] = {}
    for arm, scores in by_arm.items():
        for s in scores:
            if s.bucket:
                out.setdefault(s.bucket, {}).setdefault(arm, []).append(s)
    return {b: out[b] for _, _, b in SIZE_BUCKETS if b in out}


# ------------------------------------------------------------------------------------------------
def seeded_subset(samples: Sequence[Sample], limit: int | None, seed: int) -> list[Sample]:
    """`limit` samples drawn at random with `seed` (all of them, shuffled the same way, without)."""
    order = list(samples)
    random.Random(seed).shuffle(order)
    return order if limit is None else order[:limit]


class ArmCache:
    """Predictions of one (row, arm) as JSONL, one record per sample id: a rerun skips what it has."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by an interrupted write
                    continue
                self.records[str(rec["id"])] = rec

    def add(self, rec: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        self.records[str(rec["id"])] = rec


def simulated(
    magcrop: dict[str, Any], off: dict[str, Any], margin: float = 0.0, skip_below: float = 0.0
) -> dict[str, Any]:
    """The magcrop arm's record as a larger arbiter margin (>= the run's) or a higher skip threshold
    would have made it, without running the model again: where the crop would lose, the answer is the
    whole image's, which is exactly the off arm's input (the same read, the same prompt). Thresholds
    are chosen this way on validation rows (`choose_thresholds`)."""
    if not magcrop.get("boxes"):  # the run kept the whole image already
        return magcrop
    crops = [c for c in magcrop.get("candidates", []) if not c.get("whole")]
    whole = [c for c in magcrop.get("candidates", []) if c.get("whole")]
    best = max(crops, key=lambda c: c["score"]) if crops else None
    if best is not None and whole and best["score"] - whole[0]["score"] < margin:
        return off
    peak = best.get("peakedness") if best else None
    if peak is not None and skip_below > 0 and peak < skip_below:
        return off
    return magcrop


def choose_threshold(
    samples: Sequence[Sample],
    magcrop: dict[str, dict[str, Any]],
    off: dict[str, dict[str, Any]],
    benchmark: str,
    figure: str,
    margins: Sequence[float] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 1.0),
) -> list[tuple[float, float]]:
    """(margin, figure) on a validation row for each candidate margin: the figure of the simulated
    magcrop arm (`simulated`), so the margin that maximises it can be read off."""
    out = []
    for m in margins:
        scores = [
            score_record(s, simulated(magcrop[s.meta["id"]], off[s.meta["id"]], m), benchmark, "sim")
            for s in samples
            if s.meta["id"] in magcrop and s.meta["id"] in off
        ]
        f = figures(samples[0].task)[figure]
        out.append((m, f(scores, np.arange(len(scores))) if scores else float("nan")))
    return out
