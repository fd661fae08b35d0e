"""The benchmark runner behind `geomag eval`: predict every sample once, then score and tabulate.

Output folder (`--out DIR`):
  run.json           what was run (benchmark, split, data, model, magcrop): a resumed run must match
  predictions.jsonl  one record per sample, appended as it is predicted: {"id", "text", "phrases",
                     "masks" (COCO RLE on the original image grid), "image_size", "granularity",
                     "boxes", "timings"}; samples whose id is already there are skipped (resume)
  results.json       the metrics (fractions; see geomag.eval.metrics) and what they were computed on
  results.md         the same as a markdown table in the paper's layout (x100)

Samples are predicted by `geomag.predictor.GeoMagPredictor`, the pipeline of `geomag parse`, with the
benchmark's granularity; `--magcrop on` crops as `geomag parse` does (`geomag.options.ParseOptions`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from geomag.data.loaders import get_benchmark, load_benchmark
from geomag.data.samples import TASK_GRANULARITY, Sample, decode_mask, mask_to_rle
from geomag.device import torch_device
from geomag.errors import GeoMagError
from geomag.eval import metrics as M
from geomag.eval.tables import markdown_table
from geomag.model.answers import gcg_phrases
from geomag.api import load_predictor
from geomag.model.registry import DEFAULT_MODEL, model_key
from geomag.options import ParseOptions
from geomag.predictor import GeoMagPredictor
from geomag.result import Result


def predict_sample(predictor: GeoMagPredictor, sample: Sample, options: ParseOptions) -> Result:
    """One sample through the pipeline of `geomag parse`: the benchmark's granularity is known (eval
    measures MagCrop, not the classifier); the image is read by the one reader, as a parse reads it."""
    predictor.set_image(sample.image)
    return predictor.predict(sample.prompt, options, granularity=TASK_GRANULARITY[sample.task])


# ---------------------------------------------------------------------------------------------
# Prediction records
# ---------------------------------------------------------------------------------------------
def result_record(sample_id: str, result: Result) -> dict[str, Any]:
    return {
        "id": sample_id,
        "text": result.text,
        "phrases": list(result.phrases) or gcg_phrases(result.text),
        "masks": [mask_to_rle(np.asarray(m, dtype=bool)) for m in result.masks],
        "image_size": [int(v) for v in result.image_size],
        "granularity": result.granularity,
        "boxes": {k: (b.to_list() if hasattr(b, "to_list") else list(b)) for k, b in result.boxes.items()},
        "timings": {k: round(float(v), 4) for k, v in result.timings.items()},
    }


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    """Records by id. A cut-off last line (an interrupted write) is dropped from the file."""
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines(keepends=True)
    records: dict[str, dict[str, Any]] = {}
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            records[str(rec["id"])] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            if i == len(lines) - 1 and not line.endswith("\n"):
                _atomic_write(path, "".join(lines[:-1]))
                break
            raise GeoMagError(f"{path}:{i + 1}: not a prediction record; fix or remove the file") from None
    return records


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _check_run(out: Path, run: dict[str, Any]) -> None:
    """Refuse to mix predictions of different runs in one folder."""
    run_file = out / "run.json"
    if run_file.is_file():
        old = json.loads(run_file.read_text())
        diff = [k for k in sorted(old.keys() | run.keys()) if old.get(k) != run.get(k)]
        if diff:
            what = ", ".join(f"{k}: {old.get(k)!r} there, {run.get(k)!r} now" for k in diff)
            raise GeoMagError(f"{out} holds predictions of another run ({what}); choose another --out")
    elif (out / "predictions.jsonl").is_file():
        raise GeoMagError(f"{out} holds predictions.jsonl but no run.json; choose another --out")
    else:
        _atomic_write(run_file, json.dumps(run, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------
def score(task: str, samples: Sequence[Sample], records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Metrics of one task from samples (ground truth) and their prediction records."""
    recs = [records[s.meta["id"]] for s in samples]
    texts = [r["text"] for r in recs]
    if task == "caption":
        preds = {s.meta["id"]: r["text"] for s, r in zip(samples, recs, strict=True)}
        refs = {s.meta["id"]: list(s.meta["references"]) for s in samples}
        return {**M.caption_metrics(preds, refs), "n": len(samples)}
    if task == "scene":
        return M.scene_accuracy(texts, [s.answer for s in samples], samples[0].meta.get("classes"))
    if task == "vqa":
        return M.vqa_accuracy(texts, [s.answer for s in samples], [s.meta["type"] for s in samples])
    if task == "roc":
        return M.roc_metrics(texts, [s.answer for s in samples], M.TextEmbedder())
    if task == "refseg":
        return M.refseg_metrics(_refseg_pairs(samples, recs))
    if task == "gcg":
        images = []
        for s, r in zip(samples, recs, strict=True):
            w, h = r["image_size"]
            images.append(
                M.GcgImage(
                    pred_masks=[decode_mask({"rle": m}, w, h) for m in r["masks"]],
                    gt_masks=s.mask_arrays(w, h),
                    pred_phrases=list(r.get("phrases") or []),
                    gt_phrases=list(s.meta.get("phrases") or gcg_phrases(s.answer)),
                )
            )
        return M.gcg_metrics(texts, [s.answer for s in samples], images, M.TextEmbedder())
    raise GeoMagError(f"no metrics for task '{task}'")


def _refseg_pairs(samples: Sequence[Sample], recs: Sequence[dict[str, Any]]):
    """(prediction, ground truth) at original size; several predicted masks count as their union."""
    for s, r in zip(samples, recs, strict=True):
        w, h = r["image_size"]
        gt = np.zeros((h, w), dtype=bool)
        for m in s.mask_arrays(w, h):
            gt |= m
        pred = np.zeros((h, w), dtype=bool)
        for m in r["masks"]:
            pred |= decode_mask({"rle": m}, w, h)
        yield pred, gt


# ---------------------------------------------------------------------------------------------
def run_eval(
    benchmark: str,
    data: str | os.PathLike[str],
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    out: str | os.PathLike[str] = "runs/eval",
    *,
    options: ParseOptions | None = None,
    limit: int | None = None,
    split: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Predict the samples not yet in OUT/predictions.jsonl, then write results.json and results.md.
    `options` (default: `ParseOptions(magcrop=False)`, the model alone) say how each sample is parsed;
    the device only says where the model runs: predictions resume across devices."""
    options = options or ParseOptions(magcrop=False)
    torch_device(options.device)  # a wrong device fails before the data is read
    bench = get_benchmark(benchmark)
    split = split or bench.split
    if limit is not None and limit < 1:
        raise GeoMagError("--limit must be at least 1")
    samples = load_benchmark(benchmark, data, split)[:limit]
    if not samples:
        raise GeoMagError(f"{data}: no {bench.title} samples in split '{split}'")
    missing = [s.image for s in samples if not Path(s.image).is_file()]
    if missing:
        raise GeoMagError(
            f"image not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GeoMagError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    run = {
        "benchmark": benchmark,
        "split": split,
        "data": str(Path(data).resolve()),
        "model": model_key(model),
        "magcrop": options.magcrop,
        "max_new_tokens": options.max_new_tokens,
    }
    if options.magcrop:  # every MagCrop setting: predictions made with other crops are not resumed
        run.update({f"magcrop_{k}": v for k, v in asdict(options.magcrop_config()).items()})
        run["zoom"] = options.zoom
    _check_run(out, run)
    pred_path = out / "predictions.jsonl"
    records = read_predictions(pred_path)
    todo = [s for s in samples if s.meta["id"] not in records]
    if todo:
        predictor = load_predictor(model_key(model), options.device)
        with pred_path.open("a") as f:
            for s in tqdm(todo, desc=f"eval {benchmark}", unit="sample", disable=not progress):
                rec = result_record(s.meta["id"], predict_sample(predictor, s, options))
                f.write(json.dumps(rec) + "\n")
                f.flush()
                records[rec["id"]] = rec

    results = {
        "benchmark": benchmark,
        "title": bench.title,
        "task": bench.task,
        **run,
        "model_name": Path(str(model)).name or str(model),
        "n": len(samples),
        "metrics": score(bench.task, samples, records),
    }
    _atomic_write(out / "results.json", json.dumps(results, indent=2) + "\n")
    _atomic_write(out / "results.md", markdown_table(results))
    return results
