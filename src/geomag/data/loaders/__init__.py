"""Loaders for the ten benchmarks of the GeoMag paper, each reading its released on-disk format,
and GeoMag's own real-data benchmarks (NWPU VHR-10 tasks, AID presence).

Every loader returns `geomag.data.samples.Sample` objects with a unique `meta["id"]`. The table
`BENCHMARKS` names them for `geomag eval BENCHMARK`; docs/eval.md shows each expected layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from geomag.data.loaders.aid_presence import load_aid_presence
from geomag.data.loaders.captions import load_karpathy
from geomag.data.loaders.classfolders import load_class_folders
from geomag.data.loaders.common import MALFORMED
from geomag.data.loaders.dior_rsvg import load_dior_rsvg
from geomag.data.loaders.geopixeld import load_geopixeld_split
from geomag.data.loaders.nwpu_tasks import load_nwpu_gcg, load_nwpu_refseg, load_nwpu_roc, load_nwpu_vqa
from geomag.data.loaders.refsegrs import load_refsegrs
from geomag.data.loaders.rrsisd import load_rrsisd
from geomag.data.loaders.rsvqa import load_rsvqa
from geomag.data.samples import Sample
from geomag.errors import GeoMagError


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str  # as in the paper's tables
    task: str
    load: Callable[..., list[Sample]]  # load(root, split) -> samples
    split: str  # the split the paper reports


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark("ucm-captions", "UCM-Captions", "caption", load_karpathy, "test"),
        Benchmark("sydney-captions", "Sydney-Captions", "caption", load_karpathy, "test"),
        Benchmark("aid", "AID", "scene", load_class_folders, "test"),
        Benchmark("resisc45", "RESISC-45", "scene", load_class_folders, "test"),
        Benchmark("rsvqa-lr", "RSVQA-LR", "vqa", partial(load_rsvqa, variant="LR"), "test"),
        Benchmark("rsvqa-hr-test1", "RSVQA-HR test1", "vqa", partial(load_rsvqa, variant="HR"), "test"),
        Benchmark("rsvqa-hr-test2", "RSVQA-HR test2", "vqa", partial(load_rsvqa, variant="HR"), "test_phili"),
        Benchmark("dior-rsvg", "DIOR-RSVG", "roc", load_dior_rsvg, "test"),
        Benchmark("rrsis-d", "RRSIS-D", "refseg", load_rrsisd, "test"),
        Benchmark("refsegrs", "RefSegRS", "refseg", load_refsegrs, "test"),
        Benchmark("geopixeld", "GeoPixelD", "gcg", load_geopixeld_split, "test"),
        # GeoMag's real-data benchmarks (issue #23): NWPU VHR-10's test.txt, AID's weak presence labels
        Benchmark("nwpu-refseg", "NWPU VHR-10 referring", "refseg", load_nwpu_refseg, "test"),
        Benchmark("nwpu-vqa", "NWPU VHR-10 VQA", "vqa", load_nwpu_vqa, "test"),
        Benchmark("nwpu-roc", "NWPU VHR-10 ROC", "roc", load_nwpu_roc, "test"),
        Benchmark("nwpu-gcg", "NWPU VHR-10 GCG", "gcg", load_nwpu_gcg, "test"),
        Benchmark("aid-presence", "AID presence", "vqa", load_aid_presence, "test"),
    ]
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise GeoMagError(f"unknown benchmark '{name}'; expected one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def load_benchmark(name: str, root: str | Path, split: str | None = None) -> list[Sample]:
    """Samples of benchmark `name` read from `root` (default split: the one the paper reports)."""
    bench = get_benchmark(name)
    try:
        samples = bench.load(Path(root), split=split or bench.split)
    except MALFORMED as exc:  # a loader that does not name the record itself: at least the folder
        raise GeoMagError(
            f"{root}: a {bench.title} record is malformed ({type(exc).__name__}: {exc})"
        ) from None
    ids = [s.meta.get("id") for s in samples]
    if len(set(ids)) != len(ids) or None in ids:
        raise GeoMagError(f"{root}: sample ids of {name} are not unique")
    return samples


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "get_benchmark",
    "load_benchmark",
    "load_class_folders",
    "load_dior_rsvg",
    "load_geopixeld_split",
    "load_karpathy",
    "load_refsegrs",
    "load_rrsisd",
    "load_rsvqa",
]
