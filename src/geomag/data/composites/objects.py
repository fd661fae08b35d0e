"""The object bank: REAL annotated objects cut out as RGBA patches (alpha = the exact mask).

Sources (under ../shared/data/real):
- NWPU VHR-10 train split (`image_set/train.txt`) by its instance polygons; the test split is never
  read, so `geomag eval` on NWPU test stays clean. The 77 Vaihingen false-colour images (vegetation
  neon green or red) are skipped: their objects would be false-coloured on RGB backgrounds.
- DOTA ships and vehicles (small + large) by their oriented boxes (a ship or car fills its box well);
  the label file's `gsd:` line gives their size in metres.
- NEON trees by their boxes, cut as the ellipse inscribed in the box (a crown is round; the box
  corners are forest floor). 0.1 m per pixel.
- GeoPixelD's four tennis courts by their polygons.

Split: an NWPU image, a NEON tile, or (for the two DOTA images and the one GeoPixelD image, which
hold too few images to split by image) a 256 px cell of the source image goes to the held-out split
by a stable hash (`split.split_of_key`), so no held-out object was cut from a region nano trained on.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from geomag.data.composites.split import split_of_key
from geomag.data.loaders.nwpu import read_nwpu

MIN_AREA = 40  # source pixels: smaller objects are not cut
MIN_SIDE = 5
CELL = 256  # px: the split unit inside the few-image sources
NEON_GSD = 0.1
NEON_HELDOUT = ("OSBS_029",)  # NEON tiles are few: the held-out ones are named, not hashed
DOTA_CLASSES = {"ship": "ship", "small-vehicle": "vehicle", "large-vehicle": "vehicle"}


@dataclass(frozen=True)
class ObjectPatch:
    """One real object: RGBA pixels cropped to its mask's box (alpha 0 or 255), where it came from."""

    category: str
    rgba: np.ndarray  # uint8 (h, w, 4)
    source: str  # nwpu / dota / neon / geopixeld
    key: str  # the split unit (image or image cell)
    split: str
    gsd: float | None  # metres per source pixel where the source says (DOTA, NEON)

    @property
    def long_side(self) -> int:
        return max(self.rgba.shape[:2])


def cut(image: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The RGBA patch of `mask` over `image` (cropped to the mask's box), or None if too small."""
    ys, xs = np.nonzero(mask)
    if len(xs) < MIN_AREA:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if min(y1 - y0, x1 - x0) < MIN_SIDE:
        return None
    rgba = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
    rgba[..., :3] = image[y0:y1, x0:x1, :3]
    rgba[..., 3] = mask[y0:y1, x0:x1] * 255
    return rgba


def false_colour(image: np.ndarray) -> bool:
    """Colour-infrared or tinted imagery: many saturated neon-green or red (vegetation) pixels."""
    r, g, b = (image[::4, ::4, k].astype(np.float32) for k in range(3))
    neon = ((g > 1.5 * r) & (g > 1.5 * b) & (g > 90)).mean()
    red = ((r > 1.3 * g) & (r > 1.15 * b) & (r > 90)).mean()
    return bool(neon > 0.06 or red > 0.08)


def _cell_key(prefix: str, mask: np.ndarray) -> str:
    ys, xs = np.nonzero(mask)
    return f"{prefix}/{int(xs.mean()) // CELL}_{int(ys.mean()) // CELL}"


def _polygon_mask(points: list[tuple[float, float]], w: int, h: int, ellipse: bool = False) -> np.ndarray:
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if ellipse:
        xs, ys = zip(*points, strict=True)
        draw.ellipse([min(xs), min(ys), max(xs), max(ys)], fill=1)
    else:
        draw.polygon(points, fill=1)
    return np.asarray(canvas, bool)


def nwpu_objects(root: Path) -> list[ObjectPatch]:
    out = []
    for img in read_nwpu(root, "train"):
        pixels = np.asarray(Image.open(img.image).convert("RGB"))
        if false_colour(pixels):
            continue
        key = f"nwpu/{img.stem}"
        for o in img.objects:
            rgba = cut(pixels, o.mask(img.width, img.height))
            if rgba is not None:
                out.append(ObjectPatch(o.category, rgba, "nwpu", key, split_of_key(key), None))
    return out


def dota_objects(root: Path) -> list[ObjectPatch]:
    out = []
    for image in sorted((root / "images").glob("*.png")):
        label = root / "labelTxt" / f"{image.stem}.txt"
        if not label.is_file():
            continue
        pixels = np.asarray(Image.open(image).convert("RGB"))
        h, w = pixels.shape[:2]
        gsd = None
        for line in label.read_text().splitlines():
            parts = line.split()
            if line.startswith("gsd:"):
                gsd = float(line[4:]) if line[4:].strip() not in ("", "null", "None") else None
                continue
            if len(parts) < 9 or parts[8] not in DOTA_CLASSES:
                continue
            pts = [(float(parts[i]), float(parts[i + 1])) for i in range(0, 8, 2)]
            mask = _polygon_mask(pts, w, h)
            rgba = cut(pixels, mask)
            if rgba is None:
                continue
            key = _cell_key(f"dota/{image.stem}", mask)
            out.append(ObjectPatch(DOTA_CLASSES[parts[8]], rgba, "dota", key, split_of_key(key), gsd))
    return out


def neon_objects(root: Path) -> list[ObjectPatch]:
    out = []
    for xml in sorted(root.glob("*.xml")):
        image = xml.with_suffix(".png")
        if not image.is_file():
            continue
        pixels = np.asarray(Image.open(image).convert("RGB"))
        h, w = pixels.shape[:2]
        split = "heldout" if xml.stem in NEON_HELDOUT else "train"
        for obj in ET.parse(xml).getroot().iter("object"):
            bb = obj.find("bndbox")
            if bb is None:
                continue
            x0, y0, x1, y1 = (float(bb.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax"))
            rgba = cut(pixels, _polygon_mask([(x0, y0), (x1, y1)], w, h, ellipse=True))
            if rgba is not None:
                out.append(ObjectPatch("tree", rgba, "neon", f"neon/{xml.stem}", split, NEON_GSD))
    return out


def geopixeld_objects(root: Path) -> list[ObjectPatch]:
    """Tennis courts: every phrase of the GeoPixelD records here names one (checked per phrase)."""
    out = []
    for ann_path in sorted(root.glob("*.json")):
        image = ann_path.with_suffix(".png")
        if not image.is_file():
            continue
        ann = json.loads(ann_path.read_text())
        phrases = [p.split("</p>")[0].strip() for p in ann["gcg_description"].split("<p>")[1:]]
        pixels = np.asarray(Image.open(image).convert("RGB"))
        h, w = pixels.shape[:2]
        for polys, phrase in zip(ann["polygons"], phrases, strict=False):
            if not phrase.startswith("tennis court"):
                continue
            mask = np.zeros((h, w), bool)
            for poly in polys:
                mask |= _polygon_mask([(float(x), float(y)) for x, y in poly], w, h)
            rgba = cut(pixels, mask)
            if rgba is not None:
                key = _cell_key(f"geopixeld/{image.stem}", mask)
                out.append(ObjectPatch("tennis court", rgba, "geopixeld", key, split_of_key(key), None))
    return out


@lru_cache(maxsize=2)
def object_bank(real_root: str) -> tuple[ObjectPatch, ...]:
    """Every object of every source found under `real_root` (a missing source is skipped)."""
    root = Path(real_root)
    out: list[ObjectPatch] = []
    if (root / "nwpu-vhr10" / "image_set" / "train.txt").is_file():
        out += nwpu_objects(root / "nwpu-vhr10")
    if (root / "dota" / "images").is_dir():
        out += dota_objects(root / "dota")
    if (root / "neon-trees").is_dir():
        out += neon_objects(root / "neon-trees")
    if (root / "geopixel" / "data" / "GeoPixelD" / "train").is_dir():
        out += geopixeld_objects(root / "geopixel" / "data" / "GeoPixelD" / "train")
    return tuple(out)


def objects_of(real_root: str | Path, split: str) -> dict[str, list[ObjectPatch]]:
    """The bank of one split, by class."""
    by_class: dict[str, list[ObjectPatch]] = {}
    for o in object_bank(str(Path(real_root).resolve())):
        if o.split == split:
            by_class.setdefault(o.category, []).append(o)
    return by_class
