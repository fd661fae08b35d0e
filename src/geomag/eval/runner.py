"""The benchmark runner behind `geomag eval`: predict every sample once, then score and tabulate.

Output folder (`--out DIR`):
  run.json           what was run (benchmark, split, data, model, magcrop): a resumed run must match
  predictions.jsonl  one record per sample, appended as it is predicted: {"id", "text", "phrases",
                     "masks" (COCO RLE on the original image grid), "image_size", "granularity",
                     "boxes", "timings"}; samples whose id is already there are skipped (resume)
  results.json       the metrics (fractions; see geomag.eval.metrics), what they were computed on, and
                     how many samples the model was trained on (`trained_samples`, `skipped_trained`,
                     `trained_scored`, `manifest`)
  results.md         the same as a markdown table in the paper's layout (x100)

Samples are predicted by `geomag.predictor.GeoMagPredictor`, the pipeline of `geomag parse`, with the
benchmark's granularity; `--magcrop on` crops as `geomag parse` does (`geomag.options.ParseOptions`).
A checkpoint with a training manifest (trained_files.json, geomag.data.manifest) has the samples whose
image it was trained on counted, warned about and, unless `exclude_trained=False`, left out.
`score_predictions` scores another model's prediction file (geomag.eval.peer_predictions) the same way,
without a model.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from geomag.api import load_predictor
from geomag.data.loaders import get_benchmark, load_benchmark
from geomag.data.manifest import TrainedDataWarning, TrainedManifest, find_manifest
from geomag.data.samples import TASK_GRANULARITY, Sample, decode_mask, mask_to_rle
from geomag.device import torch_device
from geomag.errors import GeoMagError
from geomag.eval import metrics as M
from geomag.eval.tables import markdown_table
from geomag.hub import resolve_model
from geomag.model.answers import gcg_phrases
from geomag.model.registry import DEFAULT_MODEL, checkpoint_folder, model_key
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


def _check_run(out: Path, run: dict[str, Any], write: bool = True) -> None:
    """Refuse to mix predictions of different runs in one folder (`write`: record this run's run.json)."""
    run_file = out / "run.json"
    if run_file.is_file():
        old = json.loads(run_file.read_text())
        diff = [k for k in sorted(old.keys() | run.keys()) if old.get(k) != run.get(k)]
        if diff:
            what = ", ".join(f"{k}: {old.get(k)!r} there, {run.get(k)!r} now" for k in diff)
            raise GeoMagError(f"{out} holds predictions of another run ({what}); choose another --out")
    elif (out / "predictions.jsonl").is_file():
        raise GeoMagError(f"{out} holds predictions.jsonl but no run.json; choose another --out")
    elif write:
        _atomic_write(run_file, json.dumps(run, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------
RSVQA_DATASETS = {"rsvqa-lr": "LR", "rsvqa-hr-test1": "HR", "rsvqa-hr-test2": "HR"}


def score(
    task: str,
    samples: Sequence[Sample],
    records: dict[str, dict[str, Any]],
    *,
    benchmark: str | None = None,
    text_encoder: str | None = None,
    refseg_resolution: str = "original",
) -> dict[str, Any]:
    """Metrics of one task from samples (ground truth) and their prediction records.

    benchmark: its name, where the convention depends on it (RSVQA LR vs HR question types and bins).
    text_encoder: sentence encoder of ROC's SS and GCG's phrase similarity (default: the bundled
    all-MiniLM-L6-v2; GLaMM's tables use bert-base-uncased). Its name is written into the metrics.
    refseg_resolution: "original" (the image grid) or "480" (RMSIN's 480x480, nearest neighbour).
    """
    recs = [records[s.meta["id"]] for s in samples]
    texts = [r["text"] for r in recs]
    encoder = text_encoder or M.DEFAULT_TEXT_ENCODER
    if task == "caption":
        preds = {s.meta["id"]: r["text"] for s, r in zip(samples, recs, strict=True)}
        refs = {s.meta["id"]: list(s.meta["references"]) for s in samples}
        return {"protocol": M.CAPTION_PROTOCOL, **M.caption_metrics(preds, refs), "n": len(samples)}
    if task == "scene":
        # GeoChat scores against the class folder name (`label`), not the readable name
        labels = [s.meta.get("label", s.answer) for s in samples]
        return M.scene_accuracy(texts, labels, samples[0].meta.get("classes"))
    if task == "vqa":
        types = [s.meta["type"] for s in samples]
        dataset = RSVQA_DATASETS.get(benchmark or "")
        return M.vqa_accuracy(texts, [s.answer for s in samples], types, dataset)
    if task == "roc":
        return M.roc_metrics(texts, [s.answer for s in samples], M.TextEmbedder(encoder))
    if task == "refseg":
        if refseg_resolution not in M.REFSEG_RESOLUTIONS:
            raise GeoMagError(
                f"unknown refseg resolution '{refseg_resolution}'; expected {', '.join(M.REFSEG_RESOLUTIONS)}"
            )
        size = M.REFSEG_RESOLUTIONS[refseg_resolution]
        return M.refseg_metrics(refseg_pairs(samples, recs), size=size)
    if task == "gcg":
        return M.gcg_metrics(
            texts, [s.answer for s in samples], gcg_images(samples, recs), M.TextEmbedder(encoder)
        )
    raise GeoMagError(f"no metrics for task '{task}'")


def gcg_images(samples: Sequence[Sample], recs: Sequence[dict[str, Any]]) -> list[M.GcgImage]:
    """GCG samples and their prediction records as GLaMM scores them: images named by file (without the
    extension; the sample ids where names repeat), predicted phrases as GLaMM's infer.py takes them from
    the answer (or as a GLaMM prediction file lists them: `glamm_phrases`)."""
    stems = [Path(s.image).stem for s in samples]
    ids = stems if len(set(stems)) == len(stems) else [s.meta["id"] for s in samples]
    images = []
    for s, r, image_id in zip(samples, recs, ids, strict=True):
        w, h = r["image_size"]
        gt_masks, gt_phrases = gcg_ground_truth(s, w, h)
        phrases = r["glamm_phrases"] if "glamm_phrases" in r else M.glamm_phrases(r["text"])
        images.append(
            M.GcgImage(
                pred_masks=[decode_mask({"rle": m}, w, h) for m in r["masks"]],
                gt_masks=gt_masks,
                pred_phrases=list(phrases),
                gt_phrases=gt_phrases,
                image_id=str(image_id),
            )
        )
    return images


def gcg_ground_truth(sample: Sample, width: int, height: int) -> tuple[list[np.ndarray], list[str]]:
    """A GCG sample's ground-truth masks on the (width, height) grid and their phrases.

    A mask that rasterises to nothing (a degenerate or off-image polygon) is kept, as GLaMM's ground
    truth keeps it: COCOeval counts it as a ground truth no prediction can match, and GLaMM's 0 / 0 IoU
    of it with an empty prediction is NaN (geomag.eval.metrics.glamm_iou_matrix). A warning names it.
    """
    masks = sample.mask_arrays(width, height)
    phrases = list(sample.meta.get("phrases") or gcg_phrases(sample.answer))
    empty = [k for k, m in enumerate(masks) if not m.any()]
    if empty:
        warnings.warn(
            f"GCG sample {sample.meta.get('id')}: ground-truth mask(s) {empty} are empty on the "
            f"{width}x{height} grid; counted as GLaMM counts them (a ground truth nothing can match)",
            stacklevel=2,
        )
    return masks, phrases


def _check_scoring(task: str, text_encoder: str | None, refseg_resolution: str) -> None:
    """Fail on a bad scoring option before predicting, not after."""
    if refseg_resolution not in M.REFSEG_RESOLUTIONS:
        raise GeoMagError(
            f"unknown refseg resolution '{refseg_resolution}'; expected {', '.join(M.REFSEG_RESOLUTIONS)}"
        )
    if task in ("roc", "gcg"):
        resolve_model(text_encoder or M.DEFAULT_TEXT_ENCODER, "text encoder")


def refseg_pairs(
    samples: Sequence[Sample], recs: Sequence[dict[str, Any]]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
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
# Samples the model was trained on
# ---------------------------------------------------------------------------------------------
def trained_manifest(model: str | os.PathLike[str]) -> TrainedManifest | None:
    """The training manifest shipped with a model (its checkpoint folder's trained_files.json), if any."""
    folder = checkpoint_folder(model)
    if folder is None and Path(model).expanduser().is_dir():
        folder = Path(model).expanduser()  # a plain VLM folder may carry one too
    return find_manifest(folder)


def trained_ids(samples: Sequence[Sample], manifest: TrainedManifest | None) -> set[str]:
    """Ids of the samples whose image file is one the model was trained on (by content hash)."""
    if manifest is None:
        return set()
    return {s.meta["id"] for s in samples if manifest.contains(s.image)}


def _warn_trained(n_trained: int, n_split: int, manifest: TrainedManifest, exclude: bool) -> None:
    what = (
        "left out (--include-trained scores them)"
        if exclude
        else "scored anyway (--include-trained): these numbers are not held-out"
    )
    warnings.warn(
        f"{n_trained} of the {n_split} samples are images the model was trained on ({manifest.path}); {what}",
        TrainedDataWarning,
        stacklevel=3,
    )


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
    text_encoder: str | None = None,
    refseg_resolution: str = "original",
    exclude_trained: bool = True,
) -> dict[str, Any]:
    """Predict the samples not yet in OUT/predictions.jsonl, then write results.json and results.md.
    `options` (default: `ParseOptions(magcrop=False)`, the model alone) say how each sample is parsed;
    the device only says where the model runs: predictions resume across devices. `text_encoder`
    and `refseg_resolution` only change the scores (see `score`), never the predictions.
    If the model ships a training manifest, samples whose image it was trained on are counted, warned
    about (`TrainedDataWarning`) and, with `exclude_trained` (the default), left out before `limit`."""
    options = options or ParseOptions(magcrop=False)
    torch_device(options.device)  # a wrong device fails before the data is read
    bench = get_benchmark(benchmark)
    split = split or bench.split
    if limit is not None and limit < 1:
        raise GeoMagError("--limit must be at least 1")
    _check_scoring(bench.task, text_encoder, refseg_resolution)
    samples = load_benchmark(benchmark, data, split)
    if not samples:
        raise GeoMagError(f"{data}: no {bench.title} samples in split '{split}'")
    manifest = trained_manifest(model)
    trained = trained_ids(samples, manifest)
    if trained and manifest is not None:
        _warn_trained(len(trained), len(samples), manifest, exclude_trained)
    if trained and exclude_trained:
        kept = [s for s in samples if s.meta["id"] not in trained]
        if not kept:
            raise GeoMagError(
                f"all {len(samples)} {bench.title} samples in {data} are images the model was trained on "
                f"({manifest.path if manifest else ''}); --include-trained scores them anyway"
            )
        samples = kept
    samples = samples[:limit]
    trained_counts = {
        "manifest": str(manifest.path) if manifest else None,
        "trained_samples": len(trained),
        "skipped_trained": len(trained) if exclude_trained else 0,
        "trained_scored": sum(s.meta["id"] in trained for s in samples),
    }
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
        **trained_counts,
        "metrics": score(
            bench.task,
            samples,
            records,
            benchmark=benchmark,
            text_encoder=text_encoder,
            refseg_resolution=refseg_resolution,
        ),
    }
    _atomic_write(out / "results.json", json.dumps(results, indent=2) + "\n")
    _atomic_write(out / "results.md", markdown_table(results))
    return results


# ---------------------------------------------------------------------------------------------
def score_predictions(
    benchmark: str,
    data: str | os.PathLike[str],
    predictions: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    limit: int | None = None,
    split: str | None = None,
    text_encoder: str | None = None,
    refseg_resolution: str = "original",
) -> dict[str, Any]:
    """Score a prediction file of any model (geomag.eval.peer_predictions: GeoMag, GeoChat, GLaMM, mask
    folders) with the code that scores GeoMag's own runs; no model is run. OUT gets run.json,
    predictions.jsonl (the file's predictions as GeoMag records, for `geomag eval --compare`),
    results.json and results.md. Samples without a prediction are left out and counted."""
    from geomag.eval.peer_predictions import UnscoredPredictionsWarning, read_peer_predictions

    bench = get_benchmark(benchmark)
    split = split or bench.split
    if limit is not None and limit < 1:
        raise GeoMagError("--limit must be at least 1")
    _check_scoring(bench.task, text_encoder, refseg_resolution)
    source = Path(predictions).expanduser().resolve()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GeoMagError(f"--out {out} is a file; give a folder")
    if source == (out / "predictions.jsonl").resolve():
        raise GeoMagError(f"{source} is the predictions.jsonl of --out {out}; choose another --out")
    samples = load_benchmark(benchmark, data, split)[:limit]
    if not samples:
        raise GeoMagError(f"{data}: no {bench.title} samples in split '{split}'")
    peer = read_peer_predictions(source, bench.task, samples)
    scored = [s for s in samples if s.meta["id"] in peer.records]
    missing = len(samples) - len(scored)
    if missing:
        warnings.warn(
            f"{missing} of the {len(samples)} {bench.title} samples have no prediction in {source}; "
            f"scored the {len(scored)} that have one",
            UnscoredPredictionsWarning,
            stacklevel=2,
        )
    if peer.unmatched:
        warnings.warn(
            f"{len(peer.unmatched)} predictions in {source} name no sample of this split "
            f"(first: {peer.unmatched[0]}); not scored",
            UnscoredPredictionsWarning,
            stacklevel=2,
        )
    run = {
        "benchmark": benchmark,
        "split": split,
        "data": str(Path(data).resolve()),
        "predictions": str(source),
        "format": peer.format,
    }
    _check_run(out, run, write=False)
    metrics = score(
        bench.task,
        scored,
        peer.records,
        benchmark=benchmark,
        text_encoder=text_encoder,
        refseg_resolution=refseg_resolution,
    )
    results = {
        "benchmark": benchmark,
        "title": bench.title,
        "task": bench.task,
        **run,
        "model": None,
        "model_name": name or (source.stem if source.is_file() else source.name),
        "magcrop": None,
        "n": len(scored),
        "missing_predictions": missing,
        "unmatched_predictions": len(peer.unmatched),
        "manifest": None,
        "trained_samples": 0,
        "skipped_trained": 0,
        "trained_scored": 0,
        "metrics": metrics,
    }
    # written only once scored: a bad file leaves nothing behind
    out.mkdir(parents=True, exist_ok=True)
    _check_run(out, run)
    lines = "".join(json.dumps(peer.records[s.meta["id"]]) + "\n" for s in scored)
    _atomic_write(out / "predictions.jsonl", lines)
    _atomic_write(out / "results.json", json.dumps(results, indent=2) + "\n")
    _atomic_write(out / "results.md", markdown_table(results))
    return results
