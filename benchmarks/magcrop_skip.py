"""The skip rule's threshold, chosen on a validation split: MagCrop on, off, and on with the rule.

For each validation sample the pipeline answers twice, with MagCrop (no skipping) and without; the
plan's peakedness (`geomag.boxsearch.peakedness`: the share of the saliency's heat above its median
inside the crop minus the crop's area share) is recorded. The rule "skip when peakedness < t" then
scores, per sample, the MagCrop-off answer below t and the MagCrop answer above it, so every t of
the grid is scored from the same two runs. The printed table gives per task the score of off, on
and each t; per granularity (region: the VQA tasks, pixel: refseg) the chosen t is the one with the
best mean over its tasks (ties: the smallest t), the values `MagCropConfig.region_skip_below` and
`pixel_skip_below` ship with.

Validation split (never in the held-out tables): GeoScenes from the decoder stage's validation
seeds (geomag.train.nano.DECODER_VAL_SEED) and real-texture composites of the train pool drawn
with seed 1 (the mixture's are seed 0), region (VQA) and pixel (refseg) prompts.

    python benchmarks/magcrop_skip.py [--model CKPT] [--scenes 20] [--composites 20] [--records FILE]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


def validation_samples(work: Path, n_scenes: int, n_composites: int, real: Path) -> list:
    from geomag.data.composites import generate_composites
    from geomag.data.samples import read_jsonl
    from geomag.train.nano import DECODER_VAL_SEED
    from geomag.train.nano_data import scene_samples

    out = []
    image_dir = work / "scenes"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for k in range(n_scenes):
        out += [
            s
            for s in scene_samples(DECODER_VAL_SEED + 1000 + k, (512, 512), image_dir, rng)
            if s.task in ("vqa", "refseg")
        ]
    comp = generate_composites(n_composites, 1, "train", work / "composites", real, progress=False)
    picked = [s for s in read_jsonl(comp["samples"]) if s.task in ("vqa", "refseg")]
    return out + random.Random(1).sample(picked, min(len(picked), 4 * n_composites))


def score(sample, result) -> float:
    """VQA: 1 if the answer class is right (the strict rule); refseg: the mask IoU."""
    from geomag.eval.metrics import mask_iou, rsvqa_answer_class

    if sample.task == "vqa":
        got = rsvqa_answer_class(result.text, False)
        return float(got is not None and got == rsvqa_answer_class(sample.answer, False))
    gt = sample.mask_arrays(*result.image_size)[0]
    pred = result.masks[0] if result.masks else np.zeros_like(gt)
    inter, union = mask_iou(pred, gt)
    return inter / union if union else 0.0


def main() -> None:
    from geomag.data.samples import TASK_GRANULARITY
    from geomag.model.registry import create_model
    from geomag.options import ParseOptions
    from geomag.predictor import GeoMagPredictor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nano")
    ap.add_argument("--real", default=str(REPO / ".." / "shared" / "data" / "real"))
    ap.add_argument("--work", default=str(REPO / "runs" / "magcrop-skip"))
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--composites", type=int, default=20)
    ap.add_argument("--records", help="print the table of an earlier run's records.json (no predictions)")
    args = ap.parse_args()
    if args.records:
        report(json.loads(Path(args.records).read_text()), args.model)
        return
    work = Path(args.work)
    samples = validation_samples(work, args.scenes, args.composites, Path(args.real))
    predictor = GeoMagPredictor(create_model(args.model))
    on = ParseOptions(region_skip_below=0.0, pixel_skip_below=0.0, max_new_tokens=48)
    off = ParseOptions(magcrop=False, max_new_tokens=48)
    rows = []
    for s in tqdm(samples, desc="validation", unit="sample"):
        predictor.set_image(s.image)
        g = TASK_GRANULARITY[s.task]
        with_crop = predictor.predict(s.prompt, on, granularity=g)
        peak = predictor.last_plan.peakedness if predictor.last_plan is not None else None
        without = predictor.predict(s.prompt, off, granularity=g)
        source = s.meta.get("source", "composites")
        rows.append((f"{source} {s.task}", score(s, with_crop), score(s, without), peak))
    (work / "records.json").write_text(json.dumps(rows))
    report(rows, args.model)


def report(rows: list, model: str) -> None:
    from geomag.magcrop import skips  # the rule as the pipeline applies it

    tasks = sorted({r[0] for r in rows})
    print(f"\nmodel {model}: {len(rows)} validation samples; VQA: accuracy, refseg: mIoU (x100)\n")
    print("| task | n | off | on | " + " | ".join(f"t={t}" for t in GRID) + " |")
    print("|---|---|---|---|" + "---|" * len(GRID))
    means = {t: [] for t in GRID}
    for task in tasks:
        rs = [r for r in rows if r[0] == task]
        cells = []
        for t in GRID:
            v = np.mean([r[2] if skips(r[3], t) else r[1] for r in rs])
            means[t].append(v)
            cells.append(f"{100 * v:.1f}")
        n_on, n_off = np.mean([r[1] for r in rs]), np.mean([r[2] for r in rs])
        print(f"| {task} | {len(rs)} | {100 * n_off:.1f} | {100 * n_on:.1f} | " + " | ".join(cells) + " |")
    for granularity, task in (("region", "vqa"), ("pixel", "refseg")):
        rs = [r for r in rows if r[0].endswith(task)]
        skipped = [np.mean([skips(r[3], t) for r in rs]) for t in GRID]
        print(
            f"| {granularity}: share skipped | | | | "
            + " | ".join(f"{100 * v:.0f} %" for v in skipped)
            + " |"
        )
    print()
    for granularity, task in (("region", "vqa"), ("pixel", "refseg")):
        mine = [k for k, name in enumerate(tasks) if name.endswith(task)]
        best = max(GRID, key=lambda t: (round(float(np.mean([means[t][k] for k in mine])), 6), -t))
        print(f"chosen ({granularity} tasks' best mean, ties: smallest): {granularity}_skip_below = {best}")


if __name__ == "__main__":
    main()
