"""Start-up: what a command imports before it does its work (docs/performance.md)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("numpy", "PIL", "torch", "transformers", "rasterio", "fastapi", "geomag.data.loaders")


def test_help_imports_no_heavy_library():
    """`geomag --help` builds every subcommand's parser: none may import numpy, PIL, torch, ... (the
    loaders of `geomag eval` were 0.9 s of a 1.5 s --help)."""
    code = (
        "import sys\nfrom geomag.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "COMMAND" in out.stdout
    assert out.stderr.strip().splitlines()[-1] == "[]"


def test_eval_names_the_loaders_benchmarks():
    from geomag.data.benchmark_names import BENCHMARK_NAMES
    from geomag.data.loaders import BENCHMARKS

    assert tuple(BENCHMARKS) == BENCHMARK_NAMES


def test_whitespace_ids_match_decoding_each_token(tiny_llava):
    """The batched whitespace-token lookup of a model load finds exactly the ids `decode` would."""
    from transformers import AutoTokenizer

    from geomag.model.geomag import whitespace_ids

    tok = AutoTokenizer.from_pretrained(tiny_llava)
    tok.add_tokens(["[SEG]", "<p>", "</p>"], special_tokens=True)
    want = {i for i in range(len(tok)) if not tok.decode([i]).strip()}
    assert whitespace_ids(tok) == want and want
