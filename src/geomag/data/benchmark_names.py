"""The names `geomag eval BENCHMARK` accepts, without importing the loaders.

Why apart: `geomag --help` builds every subcommand's parser, and the loaders import numpy, PIL and
the scene generator (0.9 s of a 1.5 s `--help` on the loaded 2-core machine, docs/performance.md).
`geomag.data.loaders.BENCHMARKS` holds the loaders under these names; a test checks the two agree.
"""

from __future__ import annotations

BENCHMARK_NAMES = (
    "ucm-captions",
    "sydney-captions",
    "aid",
    "resisc45",
    "rsvqa-lr",
    "rsvqa-hr-test1",
    "rsvqa-hr-test2",
    "dior-rsvg",
    "rrsis-d",
    "refsegrs",
    "geopixeld",
    "nwpu-refseg",
    "nwpu-vqa",
    "nwpu-roc",
    "nwpu-gcg",
    "aid-presence",
)
