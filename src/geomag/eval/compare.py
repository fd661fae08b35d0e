"""`geomag eval --compare OUT1 OUT2 ...`: runs of one benchmark side by side, with paired intervals.

Each OUT is a `geomag eval` output folder (a model run or `--predictions`). The runs are rescored on
the samples they share, with the benchmark's own scorer (geomag.eval.runner.score), and every later
run is compared with the first: its difference per figure with a 95 % paired bootstrap interval
(geomag.eval.bootstrap, the helper of the MagCrop ablation) over those samples. Figures that are not a
function of per-sample parts (AP50's ranking over all images, the corpus caption scores) are shown
without an interval.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geomag.data.loaders import get_benchmark, load_benchmark
from geomag.data.samples import Sample
from geomag.errors import GeoMagError
from geomag.eval import metrics as M
from geomag.eval.bootstrap import PairedDifference, paired_bootstrap
from geomag.eval.runner import RSVQA_DATASETS, gcg_images, read_predictions, refseg_pairs, score
from geomag.eval.tables import COLUMNS, method_label

Figure = Callable[[np.ndarray], float]
"""A figure of a run from the indices of a subset (with repeats) of the shared samples."""


@dataclass
class Run:
    """One output folder: its results.json and its prediction records."""

    out: Path
    results: dict[str, Any]
    records: dict[str, dict[str, Any]]

    @property
    def label(self) -> str:
        return method_label(self.results)


def load_run(out: str | os.PathLike[str]) -> Run:
    out = Path(out)
    res_file, pred_file = out / "results.json", out / "predictions.jsonl"
    if not res_file.is_file() or not pred_file.is_file():
        raise GeoMagError(
            f"{out}: not a `geomag eval` output folder (needs results.json and predictions.jsonl)"
        )
    try:
        results = json.loads(res_file.read_text())
    except json.JSONDecodeError:
        raise GeoMagError(f"{res_file}: not JSON") from None
    return Run(out, results, read_predictions(pred_file))


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def sample_figures(
    task: str,
    samples: Sequence[Sample],
    records: dict[str, dict[str, Any]],
    *,
    benchmark: str,
    text_encoder: str | None,
    refseg_resolution: str,
) -> dict[str, Figure]:
    """The figures of `task` that are functions of per-sample parts, as functions of sample indices.

    The parts come from the functions geomag.eval.metrics scores with, so a figure over all indices is
    the run's own figure on these samples."""
    recs = [records[s.meta["id"]] for s in samples]
    texts = [r["text"] for r in recs]
    if task == "scene":
        labels = [s.meta.get("label", s.answer) for s in samples]
        classes = samples[0].meta.get("classes")
        hits = np.array([M.scene_correct(p, g) for p, g in zip(texts, labels, strict=True)], dtype=float)
        lenient = np.array(
            [M.scene_match(p, g, classes) for p, g in zip(texts, labels, strict=True)], dtype=float
        )
        return {
            "accuracy": lambda i: float(hits[i].mean()),
            "accuracy_lenient": lambda i: float(lenient[i].mean()),
        }
    if task == "vqa":
        types = [s.meta["type"] for s in samples]
        dataset, expected = M.rsvqa_types(types, RSVQA_DATASETS.get(benchmark))
        hits_l = M.rsvqa_hits(texts, [s.answer for s in samples], dataset == "LR")
        hits, tarr = np.array(hits_l), np.array(types)

        def vqa(key: str) -> Figure:
            return lambda i: _nan(M.vqa_figures(list(hits[i]), list(tarr[i]), expected).get(key))

        return {k: vqa(k) for k in ("presence", "comp", "average", "OA", "AA")}
    if task == "roc":
        ss, siou = M.roc_scores(
            texts, [s.answer for s in samples], M.TextEmbedder(text_encoder or M.DEFAULT_TEXT_ENCODER)
        )
        return {"SS": lambda i: float(ss[i].mean()), "SIoU": lambda i: float(siou[i].mean())}
    if task == "refseg":
        size = M.REFSEG_RESOLUTIONS[refseg_resolution]
        inter, union = M.refseg_counts(refseg_pairs(samples, recs), size)
        keys = [k for k, _ in COLUMNS["refseg"]] + ["cIoU"]
        return {k: (lambda i, k=k: M.refseg_figures(inter[i], union[i])[k]) for k in keys}
    if task == "gcg":
        parts = M.gcg_parts(gcg_images(samples, recs), M.TextEmbedder(text_encoder or M.DEFAULT_TEXT_ENCODER))
        return {k: (lambda i, k=k: parts.figures(i)[k]) for k in ("mIoU", "recall")}
    return {}  # captions: corpus-level scores only


@dataclass
class Comparison:
    """Runs on their shared samples: every run's figures, and each later run minus the first."""

    benchmark: str
    title: str
    split: str
    task: str
    n: int
    labels: list[str]
    columns: list[tuple[str, str]]
    values: list[dict[str, float | None]]
    differences: list[dict[str, PairedDifference]]  # runs[1:] - runs[0], per bootstrapped figure

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "split": self.split,
            "task": self.task,
            "n_shared": self.n,
            "runs": [{"label": lab, "figures": v} for lab, v in zip(self.labels, self.values, strict=True)],
            "differences": [
                {"label": f"{lab} - {self.labels[0]}", **{k: d.to_dict() for k, d in diff.items()}}
                for lab, diff in zip(self.labels[1:], self.differences, strict=True)
            ],
        }

    def markdown(self) -> str:
        def fmt(v: float | None) -> str:
            return "-" if v is None or v != v else f"{100 * v:.2f}"

        def fmt_diff(d: PairedDifference | None) -> str:
            if d is None:
                return "(no interval)"
            return f"{100 * d.diff:+.2f} [{100 * d.low:+.2f}, {100 * d.high:+.2f}] {d.verdict}"

        head = [title for _, title in self.columns]
        lines = [
            f"## {self.title} ({self.split}): {len(self.labels)} runs on {self.n} shared samples",
            "",
            "| Run | " + " | ".join(head) + " |",
            "|---|" + "---:|" * len(head),
        ]
        for lab, v in zip(self.labels, self.values, strict=True):
            lines.append(f"| {lab} | " + " | ".join(fmt(v.get(k)) for k, _ in self.columns) + " |")
        for lab, diff in zip(self.labels[1:], self.differences, strict=True):
            cells = [fmt_diff(diff.get(k)) for k, _ in self.columns]
            lines.append(f"| {lab} - {self.labels[0]} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Differences x100 with a 95 % paired bootstrap interval over the shared samples (2000 resamples, "
            "seed 0); 'better' / 'worse' only where the interval excludes 0 (geomag.eval.bootstrap).",
            "",
        ]
        return "\n".join(lines)


def compare_runs(
    outs: Sequence[str | os.PathLike[str]], *, resamples: int = 2000, seed: int = 0
) -> Comparison:
    """Rescore the runs in `outs` on the samples they all predicted and compare each with the first."""
    if len(outs) < 2:
        raise GeoMagError("--compare needs at least two output folders")
    runs = [load_run(o) for o in outs]
    first = runs[0].results
    for run in runs[1:]:
        r = run.results
        for key in ("benchmark", "split", "data"):
            if r.get(key) != first.get(key):
                raise GeoMagError(
                    f"{run.out} is {key} {r.get(key)!r}, {runs[0].out} is {first.get(key)!r}: "
                    "only runs of one benchmark split, on one data folder, compare"
                )
        for key in ("encoder", "resolution"):
            if r["metrics"].get(key) != first["metrics"].get(key):
                raise GeoMagError(
                    f"{run.out} was scored with {key} {r['metrics'].get(key)!r}, {runs[0].out} with "
                    f"{first['metrics'].get(key)!r}: rescore one of them first"
                )
    benchmark, split = first["benchmark"], first["split"]
    bench = get_benchmark(benchmark)
    data = first["data"]
    if not Path(data).exists():
        raise GeoMagError(f"{runs[0].out}: its data {data} is not there any more")
    samples = [
        s for s in load_benchmark(benchmark, data, split) if all(s.meta["id"] in r.records for r in runs)
    ]
    if not samples:
        raise GeoMagError("the runs share no sample")
    encoder = first["metrics"].get("encoder")
    resolution = "480" if str(first["metrics"].get("resolution", "")).startswith("480") else "original"
    kwargs = {"benchmark": benchmark, "text_encoder": encoder, "refseg_resolution": resolution}
    figures = [sample_figures(bench.task, samples, r.records, **kwargs) for r in runs]
    values = []
    for run, figs in zip(runs, figures, strict=True):
        # the figures no interval is given for (AP50, captions): scored on the shared samples as a whole
        needed = any(k not in figs for k, _ in COLUMNS[bench.task])
        whole = score(bench.task, samples, run.records, **kwargs) if needed else {}
        values.append(
            {
                k: (figs[k](np.arange(len(samples))) if k in figs else whole.get(k))
                for k, _ in COLUMNS[bench.task]
            }
        )
    differences = [
        {
            k: paired_bootstrap(figs[k], figures[0][k], len(samples), resamples=resamples, seed=seed)
            for k, _ in COLUMNS[bench.task]
            if k in figs
        }
        for figs in figures[1:]
    ]
    return Comparison(
        benchmark,
        bench.title,
        split,
        bench.task,
        len(samples),
        [r.label for r in runs],
        COLUMNS[bench.task],
        values,
        differences,
    )
