"""The `geomag` command. Each subcommand lives in `geomag.commands.<name>` and exposes `register(sub)`.

Subcommand modules import heavy libraries (torch, transformers) inside their handlers, so
`geomag --help` stays fast. User mistakes raise GeoMagError: printed as one line, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from geomag import __version__
from geomag.errors import GeoMagError

# Order here is the order in `geomag --help`.
COMMANDS = ["parse", "batch", "serve", "magcrop", "classify", "scenes", "eval", "train"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geomag",
        description="Remote-sensing image parsing with a vision-language model and MagCrop.",
    )
    parser.add_argument("--version", action="version", version=f"geomag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"geomag.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Deprecation notices of the libraries underneath are for GeoMag's developers, not its users, and
    # so are Hugging Face's "Loading weights" bars (read by huggingface_hub when transformers is first
    # imported, inside the commands); GeoMag's own progress bars stay.
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except GeoMagError as exc:
        print(f"geomag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("geomag: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
