"""RefSegRS: images, binary masks and one expression file per split.

Released layout (zhu-xlab/rrsis, Hugging Face JessicaYuan/RefSegRS)::

    DATA/
      images/{stem}.tif             # (.png also accepted: GeoScenes writes PNG)
      masks/{stem}.tif              # non-zero = the referred object(s)
      output_phrase_train.txt       # one "{stem} {expression words ...}" a line
      output_phrase_val.txt
      output_phrase_test.txt

One sample per line; the same stem may appear on several lines with different expressions.
"""

from __future__ import annotations

from pathlib import Path

from geomag.data.loaders.common import REFSEG_PROMPT, require_dir, require_file
from geomag.data.samples import Sample
from geomag.errors import GeoMagError
from geomag.model.answers import REFSEG_ANSWER

SPLITS = ("train", "val", "test")
SUFFIXES = (".tif", ".png")


def _file(folder: Path, stem: str) -> Path:
    """folder/stem.tif, or stem.png if only that exists (a missing file is named by the runner)."""
    return next(
        (folder / f"{stem}{s}" for s in SUFFIXES if (folder / f"{stem}{s}").is_file()), folder / f"{stem}.tif"
    )


def load_refsegrs(root: str | Path, split: str = "test") -> list[Sample]:
    """Referring-segmentation samples of one RefSegRS split."""
    root = require_dir(Path(root), "RefSegRS dataset")
    if split not in SPLITS:
        raise GeoMagError(f"unknown RefSegRS split '{split}'; expected one of {', '.join(SPLITS)}")
    phrase_file = require_file(root / f"output_phrase_{split}.txt", "RefSegRS expression file")
    image_dir = require_dir(root / "images", "RefSegRS images")
    mask_dir = require_dir(root / "masks", "RefSegRS masks")
    samples = []
    for i, line in enumerate(phrase_file.read_text().splitlines()):
        parts = line.strip().split(" ", 1)
        if not parts[0]:
            continue
        if len(parts) < 2 or not parts[1].strip():
            raise GeoMagError(f"{phrase_file}:{i + 1}: expected '<stem> <expression>'")
        stem, text = parts[0], parts[1].strip()
        samples.append(
            Sample(
                image=str(_file(image_dir, stem)),
                prompt=REFSEG_PROMPT.format(expression=text),
                answer=REFSEG_ANSWER,
                task="refseg",
                masks=[{"png": str(_file(mask_dir, stem))}],
                meta={"id": f"{i}_{stem}", "expression": text},
            )
        )
    return samples
