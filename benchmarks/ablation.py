"""MagCrop's ablation (the paper's Table 7) on real held-out data: off / MagCrop / oracle, with intervals.

Arms (geomag.eval.ablation): **off** = the whole image (`--no-magcrop`); **magcrop** = the shipped
`geomag parse` defaults; **oracle** = the same plan with the ground-truth target as its crop (3x
the target's side, at least the model's input side), the arbiter off: what a perfect crop gives.
Each row prints every arm's figures, arm - off with a paired bootstrap 95 % interval and a verdict,
the magcrop arm's crop statistics (how often its best crop holds the target's centre, its IoU with
the target box, how often the arbiter kept the whole image) and seconds per sample per arm.
Referring rows are also split by target size (area share < 0.5 %, 0.5-5 %, > 5 %).

Rows: NWPU VHR-10 test refseg / ROC / VQA, RSVQA-HR test1, RSVQA-LR test, AID presence on the
held-out 20 %, real-texture composites (held-out objects and backgrounds) refseg / VQA, iSAID val
refseg (images no nano mixture uses). Validation rows (for thresholds; never test images):
isaid-val-refseg, composites-val-refseg / composites-val-vqa (composites of seed 1); rsvqa-*-val
exist but their images are RSVQA train images (left out as trained for nano).
Samples the model was trained on (its manifest) are left out; `--limit N` draws N at random
(seeded); predictions are cached under --work per row and arm, so a run resumes.

    python benchmarks/ablation.py [--model nano] [--limit 300] [--rows nwpu-refseg rsvqa-hr-test1 ...]
        [--arms off magcrop oracle] [--work runs/ablation] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

TEST_ROWS = (
    "nwpu-refseg",
    "nwpu-roc",
    "nwpu-vqa",
    "rsvqa-hr-test1",
    "rsvqa-lr",
    "aid-presence",
    "composites-refseg",
    "composites-vqa",
)
# RSVQA's val questions ask about images its train split has (the nano mixture trains on them: they are
# left out as trained), so real validation for region prompts comes from the composites of seed 1
VAL_ROWS = ("isaid-val-refseg", "composites-val-refseg", "composites-val-vqa", "rsvqa-hr-val", "rsvqa-lr-val")


def row_loaders(real: Path, work: Path, composites: int) -> dict[str, tuple[str, Callable[[], list]]]:
    """name -> (benchmark whose conventions score it, a function that loads its samples)."""
    from geomag.data.loaders import load_benchmark

    def bench(name: str, data: Path | Callable[[], Path], split: str | None = None) -> Callable[[], list]:
        def load() -> list:
            folder = data() if callable(data) else data
            return load_benchmark(name, folder, split) if split else load_benchmark(name, folder)

        return load

    def composites_dir(seed: int, split: str) -> Callable[[], Path]:
        def make() -> Path:
            from geomag.data.composites import generate_composites

            out = work / f"composites-{split}-s{seed}-{composites}"
            return generate_composites(composites, seed, split, out, real)["benchmark"]

        return make

    def isaid_val() -> list:
        from geomag.data.loaders.isaid import isaid_samples, read_isaid

        rng = np.random.default_rng(0)
        return [s for img in read_isaid(real / "isaid-samples", "val") for s in isaid_samples(img, rng)]

    def aid_dir() -> Path:
        from nano_eval import heldout_aid

        return heldout_aid(real, work)

    nwpu, hr, lr = (
        real / "nwpu-vhr10",
        real / "rsvqa-hr" / "configilm_subset",
        real / "rsvqa-lr" / "configilm_subset",
    )
    test_comp, val_comp = composites_dir(0, "heldout"), composites_dir(1, "heldout")
    return {
        "nwpu-refseg": ("nwpu-refseg", bench("nwpu-refseg", nwpu)),
        "nwpu-roc": ("nwpu-roc", bench("nwpu-roc", nwpu)),
        "nwpu-vqa": ("nwpu-vqa", bench("nwpu-vqa", nwpu)),
        "rsvqa-hr-test1": ("rsvqa-hr-test1", bench("rsvqa-hr-test1", hr)),
        "rsvqa-lr": ("rsvqa-lr", bench("rsvqa-lr", lr)),
        "aid-presence": ("aid-presence", bench("aid-presence", aid_dir)),
        "composites-refseg": ("refsegrs", bench("refsegrs", lambda: test_comp() / "refseg" / "refsegrs")),
        "composites-vqa": ("rsvqa-lr", bench("rsvqa-lr", lambda: test_comp() / "vqa")),
        "rsvqa-hr-val": ("rsvqa-hr-test1", bench("rsvqa-hr-test1", hr, "val")),
        "rsvqa-lr-val": ("rsvqa-lr", bench("rsvqa-lr", lr, "val")),
        "isaid-val-refseg": ("refsegrs", lambda: [s for s in isaid_val() if s.task == "refseg"]),
        "composites-val-refseg": ("refsegrs", bench("refsegrs", lambda: val_comp() / "refseg" / "refsegrs")),
        "composites-val-vqa": ("rsvqa-lr", bench("rsvqa-lr", lambda: val_comp() / "vqa")),
    }


def fmt(value: float) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def fmt_diff(d) -> str:
    if d.n == 0 or not np.isfinite(d.diff):
        return "-"
    return f"{100 * d.diff:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}] {d.verdict}"


def print_row(row, out: list[str]) -> None:
    arms = list(row.arms)
    for k in [k for k in row.arms.get("off", {}) if k != "n"]:
        if all(not np.isfinite(row.arms[a].get(k, float("nan"))) for a in arms):
            continue
        cells = [fmt(row.arms[a].get(k)) for a in arms]
        diffs = [fmt_diff(row.diffs[a][k]) for a in arms if a in row.diffs]
        out.append(f"| {row.name} | {k} | " + " | ".join(cells + diffs) + " |")
    secs = ", ".join(f"{a} {row.seconds[a]:.2f}" for a in arms)
    stats = ", ".join(
        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.crop_stats.items()
    )
    n = ", ".join(f"{a} {row.arms[a]['n']}" for a in arms)
    out.append(f"| {row.name} | n: {n}; s/sample: {secs}; {stats} |" + " |" * (len(arms) * 2 - 1))


def draw_case(sample, recs: dict, out: Path, title: str) -> None:
    """One overlay: the image with the target box (green), MagCrop's best crop (blue), the oracle's
    crop (yellow) and each arm's mask outlined (off red, magcrop cyan), the arms' IoU in the title."""
    from PIL import Image, ImageDraw, ImageFilter

    from geomag.data.samples import decode_mask
    from geomag.eval.ablation import target_box_of

    image = Image.open(sample.image).convert("RGB")
    w, h = image.size
    canvas = image.copy()
    draw = ImageDraw.Draw(canvas)
    line = max(2, round(max(w, h) / 300))
    for arm, colour in (("off", (255, 40, 40)), ("magcrop", (0, 230, 255))):
        rec = recs.get(arm)
        if not rec or rec.get("none"):
            continue
        mask = np.zeros((h, w), dtype=bool)
        for m in rec.get("masks", []):
            mask |= decode_mask({"rle": m}, w, h)
        if mask.any():
            edge = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.FIND_EDGES)
            edge = edge.filter(ImageFilter.MaxFilter(2 * line + 1))
            canvas.paste(Image.new("RGB", (w, h), colour), (0, 0), edge)
    target = target_box_of(sample, (w, h))
    if target is not None:
        draw.rectangle(target.to_tuple(), outline=(40, 255, 40), width=line)
    for arm, colour in (("magcrop", (40, 90, 255)), ("oracle", (255, 220, 0))):
        rec = recs.get(arm) or {}
        crops = [c for c in rec.get("candidates", []) if not c.get("whole")]
        boxes = crops[0]["boxes"] if crops else rec.get("boxes", {})
        inner = boxes.get("crop2") or boxes.get("crop1")
        if inner:
            draw.rectangle(tuple(inner), outline=colour, width=line)
    side = 720
    scale = side / max(w, h)
    canvas = canvas.resize((round(w * scale), round(h * scale)))
    banner = Image.new("RGB", (canvas.width, 44), (0, 0, 0))
    ImageDraw.Draw(banner).text((6, 4), title, fill=(255, 255, 255))
    sheet = Image.new("RGB", (canvas.width, canvas.height + 44))
    sheet.paste(banner, (0, 0))
    sheet.paste(canvas, (0, 44))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=88)


def main() -> None:
    from geomag.errors import GeoMagError
    from geomag.eval.ablation import (
        ArmCache,
        add_roc_scores,
        by_bucket,
        compare_arms,
        predict_arm,
        record_of,
        score_record,
        seeded_subset,
    )
    from geomag.eval.metrics import TextEmbedder
    from geomag.eval.runner import trained_ids, trained_manifest
    from geomag.model.registry import create_model, model_key
    from geomag.options import ParseOptions
    from geomag.predictor import GeoMagPredictor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nano")
    ap.add_argument("--real", default=str(REPO / ".." / "shared" / "data" / "real"))
    ap.add_argument("--work", default=str(REPO / "runs" / "ablation"))
    ap.add_argument("--limit", type=int, default=300, help="samples per row, drawn at random (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--rows", nargs="*", default=list(TEST_ROWS), help=f"of {', '.join(TEST_ROWS + VAL_ROWS)}"
    )
    ap.add_argument("--arms", nargs="*", default=["off", "magcrop", "oracle"])
    ap.add_argument("--composites", type=int, default=60, help="composites generated per split")
    ap.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="ParseOptions of the magcrop arm"
    )
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--score-only", action="store_true", help="score what the cache holds, predict nothing")
    ap.add_argument("--overlays", metavar="DIR", help="draw the refseg rows' biggest wins and losses here")
    ap.add_argument("--sweep", action="store_true", help="validation rows: the figure per arbiter margin")
    args = ap.parse_args()

    real, work = Path(args.real), Path(args.work)
    changes = {}
    for item in args.set:
        key, _, value = item.partition("=")
        changes[key] = (
            json.loads(value) if value not in ("", None) and value[0] in "-0123456789tfn[{" else value
        )
    defaults = ParseOptions.from_dict({"max_new_tokens": 48, **changes})
    tag = "-".join(f"{k}={v}" for k, v in sorted(changes.items())) or "defaults"
    # the cache of the arms that use MagCrop is keyed by every option, so a changed default is rerun
    import hashlib

    key = hashlib.sha1(json.dumps(defaults.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    loaders = row_loaders(real, work, args.composites)
    unknown = [r for r in args.rows if r not in loaders]
    if unknown:
        raise SystemExit(f"unknown rows: {', '.join(unknown)}")
    manifest = trained_manifest(model_key(args.model))
    predictor = None
    embedder = None
    table: list[str] = []
    results = []
    for name in args.rows:
        benchmark, load = loaders[name]
        samples = load()
        trained = trained_ids(samples, manifest)
        samples = seeded_subset([s for s in samples if s.meta["id"] not in trained], args.limit, args.seed)
        caches = {}
        for arm in args.arms:
            folder = work / args.model.replace("/", "_") / name
            caches[arm] = ArmCache(folder / (f"{arm}.jsonl" if arm == "off" else f"{arm}-{key}.jsonl"))
        todo = [s for s in samples if any(s.meta["id"] not in caches[a].records for a in args.arms)]
        if todo and not args.score_only:
            if predictor is None:
                predictor = GeoMagPredictor(create_model(args.model), model_name=args.model)
            for s in tqdm(todo, desc=f"{name} ({len(trained)} trained left out)", unit="sample"):
                try:
                    predictor.set_image(s.image)
                except GeoMagError as exc:
                    print(f"skipping {s.meta['id']}: {exc}", file=sys.stderr)
                    continue
                for arm in args.arms:
                    if s.meta["id"] in caches[arm].records:
                        continue
                    result, seconds = predict_arm(predictor, s, arm, defaults)
                    rec = (
                        {"id": s.meta["id"], "none": True}
                        if result is None
                        else record_of(s, result, seconds)
                    )
                    caches[arm].add(rec)
        # every arm is scored on the samples all arms have (an interrupted run leaves some behind)
        samples = [s for s in samples if all(s.meta["id"] in caches[a].records for a in args.arms)]
        by_arm: dict[str, list] = {}
        for arm in args.arms:
            have = [
                (s, caches[arm].records[s.meta["id"]]) for s in samples if s.meta["id"] in caches[arm].records
            ]
            have = [(s, r) for s, r in have if not r.get("none")]
            scores = [score_record(s, r, benchmark, arm) for s, r in have]
            if have and have[0][0].task == "roc":
                embedder = embedder or TextEmbedder()
                add_roc_scores(scores, [s for s, _ in have], [r["text"] for _, r in have], embedder)
            by_arm[arm] = scores
        row = compare_arms(name, samples[0].task if samples else "vqa", by_arm, args.resamples, args.seed)
        if args.sweep and "magcrop" in caches and "off" in caches and samples:
            from geomag.eval.ablation import choose_threshold

            figure = {"refseg": "P@0.5", "roc": "SS"}.get(samples[0].task, "presence")
            sweep = choose_threshold(
                samples, caches["magcrop"].records, caches["off"].records, benchmark, figure
            )
            print(f"{name}: {figure} by arbiter margin: " + ", ".join(f"{m:g}: {fmt(v)}" for m, v in sweep))
        if args.overlays and row.task == "refseg" and {"off", "magcrop"} <= set(by_arm):
            off_iou = {s.sample_id: s.iou for s in by_arm["off"]}
            gains = sorted(
                (s.iou - off_iou[s.sample_id], s.sample_id)
                for s in by_arm["magcrop"]
                if s.sample_id in off_iou
            )
            chosen = [("loss", g) for g in gains[:2] if g[0] < 0] + [
                ("win", g) for g in gains[::-1][:2] if g[0] > 0
            ]
            by_id = {s.meta["id"]: s for s in samples}
            for kind, (gain, sid) in chosen:
                recs = {a: caches[a].records.get(sid) for a in caches}
                title = f"{name} {sid}: {kind}, magcrop - off IoU {gain:+.2f}; green target, blue MagCrop crop, yellow oracle"
                draw_case(
                    by_id[sid],
                    recs,
                    Path(args.overlays) / f"ablation-{name}-{kind}-{sid.replace('/', '_')}.jpg",
                    title,
                )
        print_row(row, table)
        results.append(row.to_dict())
        if row.task in ("refseg", "roc"):
            for bucket, arms in by_bucket(by_arm).items():
                sub = compare_arms(f"{name} {bucket}", row.task, arms, args.resamples, args.seed)
                print_row(sub, table)
                results.append(sub.to_dict())
    arms = args.arms
    header = (
        "| row | figure | " + " | ".join(arms) + " | " + " | ".join(f"{a} - off" for a in arms if a != "off")
    )
    lines = [
        f"MagCrop ablation, model {args.model}, magcrop arm: {tag}; {args.limit} samples a row at most "
        f"(seed {args.seed}); figures x100, differences with paired bootstrap 95 % intervals",
        "",
        header + " |",
        "|" + "---|" * (2 + len(arms) + len([a for a in arms if a != "off"])),
        *table,
    ]
    text = "\n".join(lines)
    print("\n" + text)
    out = work / args.model.replace("/", "_")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"ablation-{tag}.md").write_text(text + "\n")
    (out / f"ablation-{tag}.json").write_text(json.dumps(results, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
