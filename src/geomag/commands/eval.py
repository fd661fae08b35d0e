"""`geomag eval BENCHMARK --data DIR --model ID_OR_PATH --out DIR`: one benchmark, the paper's metrics.

Also `geomag eval BENCHMARK --data DIR --predictions FILE --out DIR` (score another model's prediction
file, no model run) and `geomag eval --compare OUT1 OUT2 ...` (runs side by side, paired intervals)."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import TextIO

from geomag.commands.parse_options import add_parse_arguments, option_values
from geomag.data.benchmark_names import BENCHMARK_NAMES
from geomag.device import DEVICE_HELP


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="evaluate a model on one of the paper's benchmarks",
        description=(
            "Predict every sample of a benchmark (resumable: samples already in OUT/predictions.jsonl "
            "are skipped), then write OUT/results.json and OUT/results.md (the paper's table layout). "
            "With --predictions, score another model's prediction file instead of running a model; "
            "with --compare, print earlier runs side by side with paired bootstrap intervals. "
            "Expected data layouts and prediction formats: docs/eval.md."
        ),
    )
    parser.add_argument(
        "benchmark",
        nargs="?",
        choices=list(BENCHMARK_NAMES),
        metavar="BENCHMARK",
        help=", ".join(BENCHMARK_NAMES),
    )
    parser.add_argument(
        "--data", help="the benchmark's folder, in its released layout (required with BENCHMARK)"
    )
    parser.add_argument(
        "--model",
        default="nano",
        help="nano (default), a GeoMag checkpoint folder, or a LLaVA-style VLM folder / cached hub id",
    )
    parser.add_argument("--out", help="output folder (created; reused to resume); required with BENCHMARK")
    parser.add_argument(
        "--predictions",
        metavar="PATH",
        help="score this prediction file or folder instead of running a model: a GeoMag predictions.jsonl, "
        "GeoChat's answers JSONL, GLaMM's GCG prediction JSON (a folder or one file) or a folder of "
        "predicted masks (docs/eval.md)",
    )
    parser.add_argument(
        "--name", help="with --predictions: the model's name in the tables (default: the file's)"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="OUT",
        help="print these output folders of one benchmark side by side: each run minus the first, with a "
        "95%% paired bootstrap interval on the samples they share",
    )
    parser.add_argument(
        "--magcrop",
        choices=["on", "off"],
        default="off",
        help="off (default): the model alone on the whole image, as the benchmarks' tables; on: "
        "every image adjusted by MagCrop at the benchmark's granularity, as `geomag parse` does",
    )
    add_parse_arguments(parser, granularity=False, no_magcrop=False)
    parser.add_argument("--limit", type=int, default=None, help="only the first N samples")
    parser.add_argument(
        "--split", default=None, help="split to evaluate (default: the one the paper reports)"
    )
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument(
        "--text-encoder",
        default=None,
        help="sentence encoder for DIOR-RSVG's SS and GCG's phrase similarity (default: the bundled "
        "all-MiniLM-L6-v2; GLaMM's GCG tables: bert-base-uncased, which must be in the HF cache)",
    )
    parser.add_argument(
        "--refseg-resolution",
        choices=["original", "480"],
        default="original",
        help="referring segmentation: score masks on the original image grid (default) or resized to "
        "480x480 with nearest neighbour, as RMSIN's RRSIS-D code does",
    )
    trained = parser.add_mutually_exclusive_group()
    trained.add_argument(
        "--exclude-trained",
        dest="exclude_trained",
        action="store_true",
        default=True,
        help="leave out samples whose image the model was trained on (the default; needs the model's "
        "training manifest, trained_files.json, which the shipped nano has)",
    )
    trained.add_argument(
        "--include-trained",
        dest="exclude_trained",
        action="store_false",
        help="score samples the model was trained on too (counted and warned about in the results)",
    )
    parser.set_defaults(func=run)


_SHOW_WARNING = warnings.showwarning


def _one_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """GeoMag's warnings (about the data, e.g. trained-on samples) as one line; others as Python shows them."""
    if category.__module__.startswith("geomag"):
        print(f"geomag: warning: {message}", file=sys.stderr)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)


def _check_args(args: argparse.Namespace) -> None:
    """The three forms of `geomag eval` (one model run, --predictions, --compare) take different arguments."""
    from geomag.errors import GeoMagError

    if args.compare:
        given = [
            f
            for f, v in (
                ("BENCHMARK", args.benchmark),
                ("--data", args.data),
                ("--predictions", args.predictions),
            )
            if v
        ]
        if given:
            raise GeoMagError(f"--compare takes output folders only, not {', '.join(given)}")
        return
    missing = [
        f for f, v in (("BENCHMARK", args.benchmark), ("--data", args.data), ("--out", args.out)) if not v
    ]
    if missing:
        raise GeoMagError(f"{', '.join(missing)} required (or --compare OUT1 OUT2 ...)")
    if args.name and not args.predictions:
        raise GeoMagError("--name names the model of a --predictions file")
    if args.predictions and args.model != "nano":
        raise GeoMagError("--model runs a model; --predictions scores a file as it is (give one of them)")
    if args.predictions and args.magcrop == "on":
        raise GeoMagError("--magcrop applies to a model run; --predictions scores a file as it is")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    # torch and transformers: imported here, not when the CLI is built (`geomag --help` stays fast)
    if args.compare:
        from geomag.eval.compare import compare_runs

        comparison = compare_runs(args.compare)
        if args.out:
            import json
            from pathlib import Path

            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "compare.json").write_text(json.dumps(comparison.to_dict(), indent=2) + "\n")
            (out / "compare.md").write_text(comparison.markdown())
        print(comparison.markdown())
        return 0
    from geomag.eval.runner import run_eval, score_predictions
    from geomag.options import ParseOptions

    with warnings.catch_warnings():
        warnings.showwarning = _one_line  # GeoMag's own warnings as "geomag: warning: ..."
        if args.predictions:
            results = score_predictions(
                args.benchmark,
                args.data,
                args.predictions,
                args.out,
                name=args.name,
                limit=args.limit,
                split=args.split,
                text_encoder=args.text_encoder,
                refseg_resolution=args.refseg_resolution,
            )
        else:
            options = ParseOptions().with_(**option_values(args), magcrop=args.magcrop == "on")
            results = run_eval(
                args.benchmark,
                args.data,
                args.model,
                args.out,
                options=options,
                limit=args.limit,
                split=args.split,
                text_encoder=args.text_encoder,
                refseg_resolution=args.refseg_resolution,
                exclude_trained=args.exclude_trained,
            )
    from geomag.eval.tables import markdown_table

    print(markdown_table(results))
    return 0
