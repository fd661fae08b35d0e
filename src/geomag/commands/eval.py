"""`geomag eval BENCHMARK --data DIR --model ID_OR_PATH --out DIR`: one benchmark, the paper's metrics."""

from __future__ import annotations

import argparse

from geomag.data.loaders import BENCHMARKS
from geomag.device import DEVICE_HELP


def register(sub: argparse._SubParsersAction) -> None:
    from geomag.commands.magcrop import add_psc_arguments

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
        "--model", required=True, help="model folder or Hugging Face id (LLaVA-style or GeoMag)"
    )
    parser.add_argument("--out", required=True, help="output folder (created; reused to resume)")
    parser.add_argument("--magcrop", choices=["on", "off"], default="off", help="adjust images with MagCrop")
    add_psc_arguments(parser)
    parser.add_argument(
        "--zoom",
        choices=["crop1", "crop2"],
        default=None,
        help="with --magcrop on, pixel tasks: the model sees only this crop (GeoMag checkpoints)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N samples")
    parser.add_argument(
        "--split", default=None, help="split to evaluate (default: the one the paper reports)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=64, help="answer length limit (default 64)")
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)
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
    from geomag.commands.magcrop import psc_config
    from geomag.eval.runner import run_eval

    results = run_eval(
        args.benchmark,
        args.data,
        args.model,
        args.out,
        magcrop=args.magcrop == "on",
        magcrop_config=psc_config(args),
        zoom=args.zoom,
        limit=args.limit,
        split=args.split,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        text_encoder=args.text_encoder,
        refseg_resolution=args.refseg_resolution,
    )
    from geomag.eval.tables import markdown_table

    print(markdown_table(results))
    return 0
