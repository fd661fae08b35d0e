"""Output folders of the CLI: never clobber user data, never leave partial results behind.

Commands write everything into a temporary folder and move the files into --out only when the whole
job has succeeded.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from geomag.errors import GeoMagError


def check_out_dir(out: Path, overwrite: bool, inputs: Iterable[Path] = (), names: Iterable[str] = ()) -> None:
    """Refuse a non-folder --out, a non-empty one without --overwrite, and writing over an input file."""
    if out.exists() and not out.is_dir():
        raise GeoMagError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise GeoMagError(f"--out {out} is not empty; pass --overwrite to write into it")
    for name in names:
        target = out / name
        for src in inputs:
            if target.exists() and src.exists() and target.resolve() == src.resolve():
                raise GeoMagError(f"refusing to overwrite the input {src}")


@contextmanager
def staged_output(out: Path, prefix: str = "geomag-") -> Iterator[Path]:
    """Yield a temporary folder; on success move its files into `out` (created if needed)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        staged = Path(tmp)
        yield staged
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(staged.iterdir()):
            target = out / f.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(f), target)
