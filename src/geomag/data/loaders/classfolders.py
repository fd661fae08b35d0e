"""AID and RESISC-45: one folder per scene class.

Expected layout::

    DATA/
      Airport/airport_1.jpg ...          # AID: 30 CamelCase folders
      dense_residential/...              # RESISC-45: 45 snake_case folders

(A single extra top-level folder, e.g. `AID/` or `NWPU-RESISC45/`, is stepped into.) Every image is
in the one 'test' split (the folders have no split); whether a model was trained on some of them is
its training manifest's business (`geomag eval` leaves those out: geomag.data.manifest). The prompt lists all class names in
readable form ('DenseResidential' -> 'dense residential'); `answer` is the readable name and
`meta["label"]` the folder name. Samples are ordered round-robin over classes (first image of every
class, then the second, ...), so `--limit N` gives a class-balanced subset.
"""

from __future__ import annotations

from pathlib import Path

from geomag.data.loaders.common import SCENE_PROMPT, readable_class, require_dir
from geomag.data.samples import Sample
from geomag.errors import GeoMagError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_class_folders(root: str | Path, split: str = "test") -> list[Sample]:
    """Scene-classification samples from class folders (`split` must be 'test')."""
    root = require_dir(Path(root), "scene classification dataset")
    if split != "test":
        raise GeoMagError(f"class-folder datasets have only a 'test' split (zero-shot), not '{split}'")
    dirs = _class_dirs(root)
    if len(dirs) == 1 and len(_class_dirs(dirs[0])) > 1:
        root, dirs = dirs[0], _class_dirs(dirs[0])
    per_class = {
        d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        for d in dirs
    }
    per_class = {k: v for k, v in per_class.items() if v}
    if len(per_class) < 2:
        raise GeoMagError(
            f"{root}: expected one folder of images per class, found {len(per_class)} with images"
        )
    names = {label: readable_class(label) for label in per_class}
    prompt = SCENE_PROMPT.format(classes=", ".join(names[label] for label in per_class))
    samples = []
    depth = max(len(v) for v in per_class.values())
    for i in range(depth):
        for label, files in per_class.items():
            if i < len(files):
                samples.append(
                    Sample(
                        image=str(files[i]),
                        prompt=prompt,
                        answer=names[label],
                        task="scene",
                        meta={
                            "id": f"{label}/{files[i].name}",
                            "label": label,
                            "classes": list(names.values()),
                        },
                    )
                )
    return samples
