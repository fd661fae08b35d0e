"""Which real image files a nano checkpoint was trained on, re-derived from the mixture's own choice.

`trained_files(real_root)` lists the files of the REAL sources of `geomag.train.nano_data`
(`real_sources`: AID's 80 % per class, RSVQA train + val, NEON, the UCM / Sydney caption images,
GeoPixelD), picked by the same seeded, deterministic functions `build_mixture` uses, without
generating GeoScenes (their images are not listed: evaluation's GeoScenes come from other seeds).
`write_trained_manifest` hashes them into the checkpoint's `trained_files.json`
(geomag.data.manifest), which `geomag eval` reads to skip samples the model was trained on.

    python -m geomag.train.manifest [--real ../shared/data/real] [--out src/geomag/assets/nano]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from geomag.data.manifest import write_manifest

DEFAULT_REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real"


def trained_sources(real_root: str | os.PathLike[str], mixture: str = "base") -> dict[str, list[Path]]:
    """The distinct image files of each real source of a nano mixture, sorted. "objects" fine-tunes a
    checkpoint of "base", so it lists the base sources too (all of them, replayed or not)."""
    from geomag.train.nano_data import object_sources, real_sources

    sources = real_sources(Path(real_root))
    if mixture in ("objects", "views"):  # "views" is "objects" seen through MagCrop's crop views
        sources.update(object_sources(Path(real_root), seed=0))  # which files: the same for every seed
    return {name: sorted({Path(s.image).resolve() for s in samples}) for name, samples in sources.items()}


def trained_files(real_root: str | os.PathLike[str], mixture: str = "base") -> list[Path]:
    """Every real image file a nano mixture trains on (all sources, sorted, distinct)."""
    return sorted({p for paths in trained_sources(real_root, mixture).values() for p in paths})


def write_trained_manifest(
    real_root: str | os.PathLike[str], folder: str | os.PathLike[str], made_by: str, mixture: str = "base"
) -> Path:
    """FOLDER/trained_files.json for a checkpoint trained on the nano mixture of REAL_ROOT."""
    return write_manifest(trained_sources(real_root, mixture), folder, made_by)


def main(argv: list[str] | None = None) -> int:
    from geomag.train.nano import SHIPPED

    ap = argparse.ArgumentParser(description="(Re)build the training manifest of a nano checkpoint.")
    ap.add_argument("--real", default=str(DEFAULT_REAL), help="the real data the run trained on")
    ap.add_argument("--out", default=str(SHIPPED), help="checkpoint folder (default: the shipped nano)")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    path = write_trained_manifest(
        args.real, args.out, shlex.join(["python", "-m", "geomag.train.manifest", *argv])
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
