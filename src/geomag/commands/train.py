"""`geomag train TARGET`: each target lives in `geomag.commands.train_<target>` with `register(sub)`."""

from __future__ import annotations

import argparse
import importlib

TARGETS = ["classifier", "model", "nano"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train the granularity classifier, a GeoMag model, or GeoMag-nano")
    targets = parser.add_subparsers(dest="target", metavar="TARGET")
    for name in TARGETS:
        importlib.import_module(f"geomag.commands.train_{name}").register(targets)
