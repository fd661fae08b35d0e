"""The `geomag` command. Each subcommand lives in `geomag.commands.<name>` and exposes `register(sub)`.

Subcommand modules import heavy libraries (torch, transformers) inside their handlers, so
`geomag --help` stays fast. What a user can get wrong ends in ONE line on stderr and exit code 2:
GeoMagError from the library, and argparse's own errors (`GeoMagParser`). Ctrl+C ends with exit code
130 and nothing partial (outputs are staged, `geomag.outputs`). Library warnings a user can act on
are one `geomag: warning:` line each; the rest are silent unless `--verbose`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import warnings
from typing import NoReturn

from geomag import __version__, interrupts
from geomag.errors import GeoMagError
from geomag.threads import THREADS_HELP, configure_threads

# Order here is the order in `geomag --help`.
COMMANDS = [
    "parse",
    "batch",
    "serve",
    "magcrop",
    "classify",
    "scenes",
    "composites",
    "eval",
    "train",
    "weights",
]
# warnings of the libraries underneath that say nothing a user can act on (shown with --verbose)
QUIET_CATEGORIES = (FutureWarning, DeprecationWarning, PendingDeprecationWarning, ResourceWarning)
QUIET_MESSAGES = ("Dataset has no geotransform", "TypedStorage is deprecated", "is_gradient_checkpointing")


class GeomagParser(argparse.ArgumentParser):
    """argparse with one-line errors: `geomag: error: ...` and a pointer to --help, exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"geomag: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = GeomagParser(
        prog="geomag",
        description="Remote-sensing image parsing with a vision-language model and MagCrop.",
    )
    parser.add_argument("--version", action="version", version=f"geomag {__version__}")
    parser.add_argument(
        "--verbose", action="store_true", help="show the libraries' own warnings and full tracebacks"
    )
    # the one thread setting of every command (geomag.threads): before the command imports torch
    parser.add_argument("--threads", dest="process_threads", type=int, metavar="N", help=THREADS_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=GeomagParser)
    for name in COMMANDS:
        importlib.import_module(f"geomag.commands.{name}").register(sub)
    return parser


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """A warning as one line, without file:line (they are for GeoMag's developers)."""
    text = " ".join(str(message).split())
    print(f"geomag: warning: {text}", file=sys.stderr)


def quiet_warnings(verbose: bool) -> None:
    """One `geomag: warning:` line per warning; library noise silenced unless `verbose`."""
    warnings.showwarning = _show_warning
    if verbose:
        return
    for category in QUIET_CATEGORIES:
        warnings.filterwarnings("ignore", category=category)
    for text in QUIET_MESSAGES:  # by message: rasterio's warning classes would cost its import here
        warnings.filterwarnings("ignore", message=f".*{text}")


def main(argv: list[str] | None = None) -> int:
    # Hugging Face's "Loading weights" bars are read by huggingface_hub when transformers is first
    # imported (inside the commands); GeoMag's own progress bars stay.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    with warnings.catch_warnings():
        quiet_warnings(args.verbose)
        try:
            # `geomag train nano --threads N` names the same count for its own loop
            threads = args.process_threads
            configure_threads(getattr(args, "threads", None) if threads is None else threads)
            code = int(args.func(args) or 0)
            if code != 130:
                interrupts.check()  # Ctrl+C that a library swallowed still ends the command as Ctrl+C
            return code
        except GeoMagError as exc:
            print(f"geomag: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("geomag: interrupted", file=sys.stderr)
            return 130


def _redeliver_interrupt(unraisable: sys.UnraisableHookArgs) -> None:
    """Ctrl+C that lands in a finalizer (`__del__`) is swallowed there by Python, with a traceback
    printed; deliver it again instead, so the command stops (exit 130) and prints no traceback."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        # from another thread, a moment later: the main thread gets it once out of the finalizer
        threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)).start()
        return
    sys.__unraisablehook__(unraisable)


def entry() -> NoReturn:
    """The `geomag` console script: `main`, then exit without running atexit handlers after Ctrl+C
    (a second interrupt inside a library's handler would print a traceback)."""
    sys.unraisablehook = _redeliver_interrupt
    interrupts.install()  # the console script only: a caller of `main` keeps its own handler
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
