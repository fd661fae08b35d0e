"""Ctrl+C stops a command even where a library swallows it.

Why: a few libraries catch every exception, KeyboardInterrupt included (a bare `except:` around an
optional import or a probe). Ctrl+C that lands there is lost: the command ran on, wrote its outputs
and exited 0 (seen once in tests/test_bad_input.py's Ctrl+C test on a loaded machine). So the CLI's
SIGINT handler records the interrupt before it raises KeyboardInterrupt as Python's own does;
staged outputs (`geomag.outputs.staged_output`) check the record before they publish anything, and
the CLI exits 130 when it is set. A library user's process keeps Python's default handler.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_interrupted = threading.Event()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _interrupted.set()
    signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt, as without this handler


def install() -> None:
    """Record every Ctrl+C of this process (the main thread only can set a handler)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def check() -> None:
    """Raise KeyboardInterrupt again if Ctrl+C came and something swallowed it."""
    if _interrupted.is_set():
        raise KeyboardInterrupt


def handled() -> None:
    """Forget the Ctrl+C a command took as its way to stop (`geomag serve`): a normal end, exit 0."""
    _interrupted.clear()
