"""GeoMag-nano on held-out data, MagCrop on and off: `geomag eval` numbers printed as one table.

Held-out sets: the 20 % of each AID class that `geomag train nano` never trains on
(geomag.train.nano_data.aid_split) as scenes and with presence questions (aid-presence), RSVQA-LR /
RSVQA-HR test questions, NWPU VHR-10's test split (image_set/test.txt: VQA and referring
segmentation), real-texture composites of held-out objects on held-out backgrounds
(geomag.data.composites), and GeoScenes generated from seeds the nano mixture never uses. Each
dataset runs twice: MagCrop on (the `geomag parse` defaults: saliency, skip rule, candidates, zoom)
and off; the last column is on minus off in the task's main metric. Each run writes its own folder
under --work (predictions.jsonl, results.json, results.md), resumable; `geomag eval` also checks each
sample against the checkpoint's training manifest (the "trained (skipped)" column: 0 here). Metrics
are the peers' own scoring code (the default of geomag.eval.metrics, the paper's convention), with
GeoMag's old lenient value in brackets where it differs.

    python benchmarks/nano_eval.py [--model CKPT] [--limit 300] [--scenes 40] [--composites 60]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HELDOUT_SEED = 10_000_000  # GeoScenes seeds of the nano mixture are < 1e6 * (seed + 1)


def heldout_aid(real: Path, work: Path) -> Path:
    """A class-folder copy (symlinks) of the AID images nano never trained on."""
    from geomag.train.nano_data import aid_split

    folder = work / "aid-heldout"
    if not folder.is_dir():
        _, held = aid_split(real / "aid-150")
        for s in held:
            target = folder / s.meta["label"] / Path(s.image).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(s.image)
    return folder


def heldout_scenes(work: Path, n: int, size: int) -> Path:
    from tqdm import tqdm

    from geomag.data.scenes import generate_scene
    from geomag.data.writers import DatasetWriter

    folder = work / f"geoscenes-heldout-{n}-{size}"
    if not folder.is_dir():
        tmp = folder.with_name(folder.name + ".tmp")
        writer = DatasetWriter(tmp, ("caption", "vqa", "roc", "refseg"))
        for k in tqdm(range(n), desc="held-out GeoScenes"):
            writer.add(generate_scene(HELDOUT_SEED + k, (size, size)), 10 * k)  # index % 10 == 0: test
        writer.close()
        tmp.rename(folder)
    return folder


def heldout_composites(real: Path, work: Path, n: int) -> Path:
    """Real-texture composites of held-out objects on held-out backgrounds, in the benchmarks' formats."""
    from geomag.data.composites import generate_composites

    return generate_composites(n, 0, "heldout", work / f"composites-heldout-{n}", real)["benchmark"]


SHOWN = {  # the columns of the README table, per task
    "scene": ("accuracy",),
    "vqa": ("presence", "count", "comp", "OA"),
    "roc": ("SS", "SIoU"),
    "caption": ("BLEU-4", "METEOR", "CIDEr"),
    "refseg": ("P@0.5", "oIoU", "mIoU"),
}
MAIN = {"scene": "accuracy", "vqa": "presence", "roc": "SS", "caption": "CIDEr", "refseg": "P@0.5"}


def lenient(metrics: dict[str, Any], key: str) -> float | None:
    """The lenient variant of a metric (`KEY_lenient`, or its question type in `per_type_lenient`)."""
    if f"{key}_lenient" in metrics:
        return metrics[f"{key}_lenient"]
    per_type = metrics.get("per_type_lenient") or {}
    return (per_type.get(key) or {}).get("accuracy")


def shown_metrics(task: str, metrics: dict[str, Any]) -> str:
    """'accuracy 82.3 [84.0], ...': strict values x100, the lenient one in brackets where it differs."""
    parts = []
    for key in SHOWN.get(task, ()):
        value = metrics.get(key)
        if value is None:
            continue
        text = f"{key} {100 * value:.1f}"
        other = lenient(metrics, key)
        if other is not None and f"{100 * other:.1f}" != f"{100 * value:.1f}":
            text += f" [{100 * other:.1f}]"
        parts.append(text)
    return ", ".join(parts)


def main() -> None:
    from geomag.eval.runner import run_eval
    from geomag.options import ParseOptions

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nano", help="GeoMag checkpoint (default: the shipped nano)")
    ap.add_argument("--real", default=str(REPO / ".." / "shared" / "data" / "real"))
    ap.add_argument("--work", default=str(REPO / "runs" / "nano-eval"))
    ap.add_argument("--limit", type=int, default=300, help="samples per benchmark (class-balanced for AID)")
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--composites", type=int, default=60, help="held-out composites")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--only", nargs="*", help="run only these rows")
    ap.add_argument(
        "--modes", nargs="*", default=["on", "off"], choices=["on", "off"], help="MagCrop on, off or both"
    )
    args = ap.parse_args()
    model = args.model
    real, work = Path(args.real), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    scenes = heldout_scenes(work, args.scenes, args.size)
    composites = heldout_composites(real, work, args.composites)
    aid = heldout_aid(real, work)
    nwpu = real / "nwpu-vhr10"
    datasets = {
        "AID (held-out 20%)": ("aid", aid),
        "AID presence (held-out 20%)": ("aid-presence", aid),
        "RSVQA-LR test": ("rsvqa-lr", real / "rsvqa-lr" / "configilm_subset"),
        "RSVQA-HR test1": ("rsvqa-hr-test1", real / "rsvqa-hr" / "configilm_subset"),
        "NWPU VHR-10 test VQA": ("nwpu-vqa", nwpu),
        "NWPU VHR-10 test refseg": ("nwpu-refseg", nwpu),
        "Composites held-out VQA": ("rsvqa-lr", composites / "vqa"),
        "Composites held-out refseg": ("refsegrs", composites / "refseg" / "refsegrs"),
        "GeoScenes VQA": ("rsvqa-lr", scenes / "vqa"),
        "GeoScenes ROC": ("dior-rsvg", scenes / "roc"),
        "GeoScenes captions": ("ucm-captions", scenes / "caption"),
        "GeoScenes refseg": ("refsegrs", scenes / "refseg" / "refsegrs"),
    }
    # MagCrop on = the `geomag parse` defaults (answers capped at 48 tokens: benchmarks want short ones)
    on = ParseOptions(max_new_tokens=48)
    off = on.with_(magcrop=False)
    table = []
    for name, (bench, data) in datasets.items():
        if args.only and name not in args.only:
            continue
        pair = []
        for label, options in (("on", on), ("off", off)):
            if label not in args.modes:
                continue
            slug = name.lower().replace(" ", "-").replace("%", "").replace("(", "").replace(")", "")
            res = run_eval(
                bench, data, model, work / f"{slug}-magcrop-{label}", options=options, limit=args.limit
            )
            pair.append(res)
        if len(pair) == 2:
            table.append((name, *pair))
    print(f"\nGeoMag-nano held-out results (model: {model}); strict = the peers' own scoring code,")
    print("[lenient] = GeoMag's old rule where it gives another number (docs/eval.md); MagCrop on = the")
    print("`geomag parse` defaults, off = --no-magcrop\n")
    print("| data | n | trained (skipped) | MagCrop on: strict [lenient] | off | on - off |")
    print("|---|---|---|---|---|---|")
    for name, res_on, res_off in table:
        trained = f"{res_on.get('trained_samples', '-')} ({res_on.get('skipped_trained', '-')})"
        key = MAIN[res_on["task"]]
        a, b = res_on["metrics"].get(key), res_off["metrics"].get(key)
        diff = f"{key} {100 * (a - b):+.1f}" if a is not None and b is not None else "-"
        print(
            f"| {name} | {res_on.get('n', '')} | {trained} | {shown_metrics(res_on['task'], res_on['metrics'])} "
            f"| {shown_metrics(res_off['task'], res_off['metrics'])} | {diff} |"
        )
    summary = {n: {"on": a, "off": b} for n, a, b in table}
    (work / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
