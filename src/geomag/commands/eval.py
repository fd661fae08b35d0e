"""`geomag eval BENCHMARK --data DIR --model ID_OR_PATH --out DIR`: one benchmark, the paper's metrics."""

from __future__ import annotations

import argparse

from geomag.commands.parse_options import add_parse_arguments, option_values
from geomag.data.loaders import BENCHMARKS
from geomag.device import DEVICE_HELP


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="evaluate a model on one of the paper's benchmarks",
        description=(
            "Predict every sample of a benchmark (resumable: samples already in OUT/predictions.jsonl "
            "are skipped), then write OUT/results.json and OUT/results.md (the paper's table layout). "
            "Expected data layouts: docs/eval.md."
        ),
    )
    parser.add_argument(
        "benchmark", choices=list(BENCHMARKS), metavar="BENCHMARK", help=", ".join(BENCHMARKS)
    )
    parser.add_argument("--data", required=True, help="the benchmark's folder, in its released layout")
    parser.add_argument(
        "--model",
        default="nano",
        help="nano (default), a GeoMag checkpoint folder, or a LLaVA-style VLM folder / cached hub id",
    )
    parser.add_argument("--out", required=True, help="output folder (created; reused to resume)")
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # torch and transformers: imported here, not when the CLI is built (`geomag --help` stays fast)
    from geomag.eval.runner import run_eval
    from geomag.options import ParseOptions

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
    )
    from geomag.eval.tables import markdown_table

    print(markdown_table(results))
    return 0
