"""Output folders: never clobber user data, never leave partial results behind.

Every command that writes a folder does it in two steps:
- `check_output(out, overwrite, inputs)` BEFORE any model work: `--out` must be creatable (no file
  in its way, a writable parent), empty unless `--overwrite`, and with `--overwrite` hold only what
  GeoMag wrote there last time (its manifest, `.geomag-outputs.json`); no input file may lie in it.
- `staged_output(out, ...)`: files are written into a private staging folder NEXT TO `out` (same
  file system) and published when the whole job succeeded: a new `out` with one rename; an existing
  one by replacing the files of the last run (files of the last run that this run did not write,
  e.g. a stale `mask_05.png`, are removed) and writing the new manifest. A failure or Ctrl+C removes
  the staging folder, and `out` is as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from geomag import interrupts
from geomag.errors import GeoMagError

MANIFEST = ".geomag-outputs.json"


def written_before(out: Path) -> set[str]:
    """Names GeoMag wrote into `out` last time (its manifest); empty when there is none."""
    try:
        names = json.loads((out / MANIFEST).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {str(n) for n in names if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")}


def check_output(out: Path, overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Refuse an `out` that cannot be created, a non-empty one without `overwrite`, one holding files
    GeoMag did not write, and one that holds an input (checked before any model work)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GeoMagError(f"--out {out} exists and is not a folder")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise GeoMagError(f"--out {out}: {parent} is a file, so the folder cannot be created")
    if not os.access(parent if not out.exists() else out, os.W_OK | os.X_OK):
        raise GeoMagError(f"--out {out}: {parent if not out.exists() else out} is not writable")
    if not out.is_dir():
        return
    present = {p.name for p in out.iterdir()} - {MANIFEST}
    if present and not overwrite:
        raise GeoMagError(f"--out {out} is not empty; pass --overwrite to replace what GeoMag wrote there")
    foreign = sorted(present - written_before(out))
    if foreign:
        raise GeoMagError(
            f"--out {out} holds files GeoMag did not write ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}); --overwrite only replaces GeoMag's own outputs: "
            "choose another --out"
        )
    resolved = out.resolve()
    for src in inputs:
        src = Path(src)
        if src.exists() and resolved in src.resolve().parents:
            raise GeoMagError(f"refusing to write into {out}: it holds the input {src}")


@contextmanager
def staged_output(out: Path, prefix: str = "geomag-") -> Iterator[Path]:
    """Yield a staging folder next to `out`; publish its files into `out` when the block succeeds
    (see the module docstring); remove it on any failure."""
    out = Path(out)
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{prefix}", dir=parent))
    try:
        yield staged
        interrupts.check()  # a Ctrl+C that a library swallowed: publish nothing
        names = sorted(p.name for p in staged.iterdir())
        (staged / MANIFEST).write_text(json.dumps({"files": names}, indent=1) + "\n")
        os.chmod(staged, 0o777 & ~_umask())  # mkdtemp's folder is private; the results are not
        if not out.exists():
            os.rename(staged, out)  # one rename: `out` appears whole or not at all
            return
        stale = written_before(out) - set(names)
        for name in names:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(staged / name, target)
        for name in stale:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        os.replace(staged / MANIFEST, out / MANIFEST)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
