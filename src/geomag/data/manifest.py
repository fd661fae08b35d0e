"""The training manifest of a checkpoint: content hashes of the image files it was trained on.

`trained_files.json` sits in a checkpoint folder (`geomag train nano` writes it next to the exported
weights; the shipped nano has one). It lists the sha256 of each real image file's bytes, so it does
not depend on where the data lives or what the files are called: `geomag eval` hashes every sample
image and knows which of them the model has seen (geomag.eval.runner). Generated GeoScenes images
are not listed: evaluation generates its GeoScenes from seeds the training mixture never uses.

    {"sha256": ["<hex>", ...], "sources": {"aid": 5342, ...}, "made_by": "<command>", "about": "..."}
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from geomag.errors import GeoMagError

MANIFEST_FILE = "trained_files.json"
ABOUT = (
    "sha256 of the bytes of every real image file in the checkpoint's training data (per source: "
    "distinct files); generated GeoScenes images are not listed, evaluation's GeoScenes use other seeds"
)


class TrainedDataWarning(UserWarning):
    """Samples of an evaluation are images the model was trained on (the CLI prints it as one line)."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (read in chunks; a symlink is followed to its target)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass
class TrainedManifest:
    """The hashes of one checkpoint's training images; `contains` hashes a file once per path."""

    path: Path
    hashes: frozenset[str]
    sources: dict[str, int]
    made_by: str = ""
    _cache: dict[str, bool] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> TrainedManifest:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            hashes = data["sha256"]
            if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
                raise TypeError("sha256 is not a list of strings")
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise GeoMagError(f"{path}: not a training manifest ({exc})") from None
        return cls(
            path,
            frozenset(h.lower() for h in hashes),
            dict(data.get("sources") or {}),
            data.get("made_by", ""),
        )

    def contains(self, image: str | os.PathLike[str]) -> bool:
        """Whether the file's bytes are one of the training images (False for a file that is not there)."""
        key = os.path.realpath(image)
        if key not in self._cache:
            self._cache[key] = os.path.isfile(key) and file_sha256(key) in self.hashes
        return self._cache[key]


def find_manifest(folder: str | os.PathLike[str] | None) -> TrainedManifest | None:
    """The manifest in a checkpoint folder, or None when it has none."""
    if folder is None:
        return None
    path = Path(folder) / MANIFEST_FILE
    return TrainedManifest.read(path) if path.is_file() else None


def write_manifest(
    files: Mapping[str, Sequence[str | os.PathLike[str]]], folder: str | os.PathLike[str], made_by: str
) -> Path:
    """Write FOLDER/trained_files.json from the training image files by source; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sources = {name: sorted({os.path.realpath(p) for p in paths}) for name, paths in files.items()}
    hashes = sorted({file_sha256(p) for p in itertools.chain(*sources.values())})
    data = {
        "sha256": hashes,
        "sources": {name: len(paths) for name, paths in sources.items()},
        "made_by": made_by,
        "about": ABOUT,
    }
    path = folder / MANIFEST_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
    return path
