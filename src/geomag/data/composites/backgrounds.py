"""Backgrounds for the composites: REAL images, each with the object classes it is known to lack.

A class is pasted only onto a background that rules it out, so "How many ships are there?" counts
exactly the pasted ships. Sources:
- AID (aid-150, 150 px copies of 600 px originals): its scene class rules objects out
  (`geomag.data.scene_objects.absent`), plus trees on Desert (AID's desert images are bare sand and
  rock). The split is nano's own AID split (per class, the first 80 % of the sorted files train,
  as `geomag.train.nano_data.aid_split`), so held-out composites use only images nano never saw.
  Ground sampling distance: AID's originals span 0.5-8 m; the classes used here (natural, residential,
  sports, ...) are mostly Google Earth at about 0.5-1 m, so a 600 px original is taken as 0.4-1.0 m.
- UCM-Captions' shipped images (1-9.tif, all of UC Merced's "agricultural" class, 0.3 m): fields,
  so they rule out what AID's Farmland does.
- NEON tree tiles (0.1 m forest plots at OSBS, SOAP and YELL): unlabelled, but canopy-only plots
  of national forest sites: no airplane, ship, storage tank, harbor, bridge or sports ground. Vehicles
  (forest roads) and trees (the canopy) are not ruled out, so never pasted or asked about there.
Not used: RSICD / Sydney images (their classes show objects: playfields, bridges, storage tanks),
RSVQA-LR (10 m Sentinel-2: every object here would be a pixel or two) and the GeoChat photos (no
labels, and 7292.JPG shows vehicles and a bridge).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from geomag.data.composites.objects import NEON_HELDOUT
from geomag.data.composites.split import split_of_key
from geomag.data.loaders import load_benchmark
from geomag.data.scene_objects import RULES_OUT, absent

AID_TRAIN_FRACTION = 0.8  # = geomag.train.nano_data.AID_TRAIN_FRACTION (tests/test_composites.py checks)
EXTRA_ABSENT = {"Desert": ("tree",)}
NEON_ABSENT = (
    "airplane",
    "ship",
    "storage tank",
    "harbor",
    "bridge",
    "baseball diamond",
    "tennis court",
    "basketball court",
    "ground track field",
)
NEON_BACKGROUND_HELDOUT = (*NEON_HELDOUT, "SOAP_031")


@dataclass(frozen=True)
class Background:
    """One real image: where it is, its group (tiles of a large canvas come from one group), the classes
    it rules out, its split, and its original side in pixels with that side's metres per pixel."""

    path: str
    group: str  # e.g. "aid/Desert": canvases tile images of one group only
    absent: tuple[str, ...]
    split: str
    native_side: int
    gsd: tuple[float, float]  # metres per native pixel, (low, high)


def aid_backgrounds(root: Path) -> list[Background]:
    by_class: dict[str, list[str]] = {}
    for s in load_benchmark("aid", root):
        by_class.setdefault(s.meta["label"], []).append(s.image)
    out = []
    for label, images in by_class.items():
        images.sort()
        k = round(AID_TRAIN_FRACTION * len(images))
        out_classes = (*absent(label), *EXTRA_ABSENT.get(label, ()))
        if not out_classes:
            continue
        out += [
            Background(p, f"aid/{label}", out_classes, "train" if i < k else "heldout", 600, (0.4, 1.0))
            for i, p in enumerate(images)
        ]
    return out


def ucm_backgrounds(root: Path) -> list[Background]:
    """UCM image k.tif is UC Merced class (k-1)//100 (classes sorted): only class 0, agricultural."""
    out = []
    for p in sorted(root.glob("*.tif")):
        if p.stem.isdigit() and (int(p.stem) - 1) // 100 == 0:
            key = f"ucm/{p.name}"
            out.append(
                Background(
                    str(p), "ucm/agricultural", RULES_OUT["Farmland"], split_of_key(key), 256, (0.3, 0.3)
                )
            )
    return out


def neon_backgrounds(root: Path) -> list[Background]:
    from PIL import Image

    out = []
    for p in sorted(root.glob("*.png")):
        split = "heldout" if p.stem in NEON_BACKGROUND_HELDOUT else "train"
        side = min(Image.open(p).size)
        out.append(Background(str(p), "neon", NEON_ABSENT, split, min(side, 800), (0.1, 0.1)))
    return out


@lru_cache(maxsize=2)
def all_backgrounds(real_root: str) -> tuple[Background, ...]:
    root = Path(real_root)
    out: list[Background] = []
    if (root / "aid-150").is_dir():
        out += aid_backgrounds(root / "aid-150")
    if (root / "ucm-captions" / "images").is_dir():
        out += ucm_backgrounds(root / "ucm-captions" / "images")
    if (root / "neon-trees").is_dir():
        out += neon_backgrounds(root / "neon-trees")
    return tuple(out)


def backgrounds_of(real_root: str | Path, split: str) -> list[Background]:
    return [b for b in all_backgrounds(str(Path(real_root).resolve())) if b.split == split]
