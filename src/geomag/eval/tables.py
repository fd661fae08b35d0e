"""Markdown tables of evaluation results, in the column layout of the paper's tables (values x100)."""

from __future__ import annotations

from typing import Any

# (key in results["metrics"], column title), the paper's columns first.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "caption": [
        ("BLEU-1", "BLEU-1"),
        ("BLEU-2", "BLEU-2"),
        ("BLEU-3", "BLEU-3"),
        ("BLEU-4", "BLEU-4"),
        ("METEOR", "METEOR"),
        ("ROUGE_L", "ROUGE_L"),
        ("CIDEr", "CIDEr"),
    ],
    "scene": [("accuracy", "Accuracy"), ("accuracy_lenient", "Lenient (not comparable)")],
    "vqa": [("presence", "Presence"), ("comp", "Comparison"), ("average", "Average")],
    "roc": [("SS", "SS"), ("SIoU", "SIoU")],
    "refseg": [
        ("P@0.5", "P@0.5"),
        ("oIoU", "oIoU"),
        ("mIoU", "mIoU (RMSIN)"),
        ("gIoU", "gIoU (LISA)"),
        ("P@0.6", "P@0.6"),
        ("P@0.7", "P@0.7"),
        ("P@0.8", "P@0.8"),
        ("P@0.9", "P@0.9"),
    ],
    "gcg": [
        ("METEOR", "METEOR"),
        ("CIDEr", "CIDEr"),
        ("AP50", "AP50"),
        ("mIoU", "mIoU"),
        ("recall", "Recall"),
        ("looping", "Looping (GeoMag; lower is better)"),
    ],
}


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.2f}"


def conventions(metrics: dict[str, Any]) -> str:
    """One line naming how the numbers were computed (protocol, encoder, resolution) and the extra keys."""
    named = [
        f"{what} `{metrics[key]}`"
        for key, what in (("protocol", "protocol"), ("dataset", "dataset"), ("encoder", "encoder"))
        if metrics.get(key)
    ]
    if metrics.get("resolution"):
        named.append(f"masks at {metrics['resolution']}")
    line = "Metrics: " + (", ".join(named) or "as in docs/eval.md") + " (docs/eval.md)"
    extra = metrics.get("extra") or {}
    if extra:
        line += "; also in results.json: " + ", ".join(f"`{k}`" for k in extra)
    return line + "."


def trained_line(results: dict[str, Any]) -> str:
    """One line on the samples the model was trained on (from its training manifest)."""
    if results.get("predictions"):
        missing = results.get("missing_predictions") or 0
        line = (
            f"Scored from `{results['predictions']}` ({results['format']} format; no model run): "
            "which samples that model was trained on is not known here."
        )
        return line + (f" {missing} samples without a prediction were left out." if missing else "")
    manifest = results.get("manifest")
    if not manifest:
        return "Training data: the model ships no training manifest, so samples it was trained on cannot be told apart."
    skipped, scored = results.get("skipped_trained", 0), results.get("trained_scored", 0)
    where = f"(manifest `{manifest}`)"
    if scored:
        return (
            f"**{scored} of the {results['n']} samples are images the model was trained on** "
            f"(scored with --include-trained) {where}."
        )
    if skipped:
        return f"Held-out only: {skipped} samples whose image the model was trained on were left out {where}."
    return f"No sample is an image the model was trained on {where}."


def method_label(results: dict[str, Any]) -> str:
    if results.get("predictions"):
        return f"{results['model_name']} ({results['format']} predictions)"
    return f"{results['model_name']} (MagCrop {'on' if results['magcrop'] else 'off'})"


def markdown_table(results: dict[str, Any]) -> str:
    """The results of one `geomag eval` run as a titled markdown table (scores x100, as in the paper)."""
    task, metrics = results["task"], results["metrics"]
    cols = COLUMNS[task]
    lines = [
        f"## {results['title']} ({results['split']}, {results['n']} samples)",
        "",
        "| Method | " + " | ".join(title for _, title in cols) + " |",
        "|---|" + "---:|" * len(cols),
        f"| {method_label(results)} | " + " | ".join(_fmt(metrics.get(key)) for key, _ in cols) + " |",
    ]
    if task == "vqa":
        per_type = metrics["per_type"]
        lines += [
            "",
            "Accuracy per question type:",
            "",
            "| " + " | ".join(f"{t} (n={v['n']})" for t, v in per_type.items()) + " | OA | AA |",
            "|" + "---:|" * (len(per_type) + 2),
            "| "
            + " | ".join(_fmt(v["accuracy"]) for v in per_type.values())
            + f" | {_fmt(metrics['OA'])} | {_fmt(metrics['AA'])} |",
        ]
    source = (
        f"Predictions: `{results['predictions']}`"
        if results.get("predictions")
        else f"Model: `{results['model']}`"
    )
    lines += ["", conventions(metrics), "", f"{source}; data: `{results['data']}`.", ""]
    lines += [trained_line(results), ""]
    return "\n".join(lines)
