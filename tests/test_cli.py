"""The `geomag` entry point: help, version, clear errors."""

from __future__ import annotations

import subprocess
import sys

from geomag import __version__
from geomag.cli import COMMANDS, build_parser, main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_built_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "geomag", "--help"], capture_output=True, text=True, check=True
    )
    parser = build_parser()
    registered = [a for a in parser._subparsers._group_actions[0].choices]
    assert registered, "no subcommand registered"
    for name in registered:
        assert name in COMMANDS and name in out.stdout


def test_unknown_command_exits_nonzero():
    res = subprocess.run([sys.executable, "-m", "geomag", "nosuch"], capture_output=True, text=True)
    assert res.returncode != 0 and "invalid choice" in res.stderr


def test_building_the_cli_imports_no_heavy_library():
    """`geomag parse --server` starts a new process per call: its parser must not pull in torch,
    transformers or rasterio (they load inside the handlers)."""
    code = (
        "import sys; from geomag.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'transformers', 'rasterio', 'geomag.result') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_train_nano_refuses_negative_decoder_epochs(tmp_path, capsys):
    assert main(["train", "nano", "--out", str(tmp_path / "run"), "--decoder-epochs", "-1"]) == 2
    assert "--decoder-epochs must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
