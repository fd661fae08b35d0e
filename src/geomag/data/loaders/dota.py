"""DOTA-v1.0 oriented boxes as instance images: `images/<name>.png` and `labelTxt/<name>.txt`, one
object a line `x1 y1 x2 y2 x3 y3 x4 y4 class difficult` (four corners in pixels; optional header
lines `imagesource:...` and `gsd:...`), the DOTA devkit layout.

Each oriented box becomes an instance whose mask is the filled quadrilateral (a box-shaped mask:
exact for the box, not a footprint), so the one task builder (geomag.data.instance_tasks) asks
referring, presence, count, comparison, box classification and GCG on DOTA's small objects. DOTA
annotates every instance of its 15 classes ("difficult" ones included), so a class with no
instance in an image is truly absent there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from geomag.data.instances import Instance, InstanceImage
from geomag.data.loaders.common import require_dir
from geomag.errors import GeoMagError

DOTA_CLASSES = (
    "plane",
    "ship",
    "storage tank",
    "baseball diamond",
    "tennis court",
    "basketball court",
    "ground track field",
    "harbor",
    "bridge",
    "large vehicle",
    "small vehicle",
    "helicopter",
    "roundabout",
    "soccer ball field",
    "swimming pool",
)


def quad_instance(category: str, corners: np.ndarray, size: tuple[int, int]) -> Instance | None:
    """The filled quadrilateral `corners` [4, 2] (pixels) clipped to the image; None if it lies
    outside the image."""
    w, h = size
    x0, y0 = (max(0, int(np.floor(v))) for v in corners.min(0))
    x1, y1 = (min(lim, int(np.ceil(v)) + 1) for v, lim in zip(corners.max(0), (w, h), strict=True))
    if x1 <= x0 or y1 <= y0:
        return None
    canvas = Image.new("1", (x1 - x0, y1 - y0))
    ImageDraw.Draw(canvas).polygon([(float(x - x0), float(y - y0)) for x, y in corners], fill=1, outline=1)
    crop = np.asarray(canvas, dtype=bool)
    if not crop.any():
        return None
    return Instance.from_crop(category, crop, (x0, y0), size)


def read_dota_labels(path: Path) -> list[tuple[str, np.ndarray]]:
    """(class, corners [4, 2]) per object line of one labelTxt file."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or ":" in parts[0]:  # blank, imagesource:..., gsd:...
            continue
        if len(parts) not in (9, 10):
            raise GeoMagError(f"{path}:{n}: expected 'x1 y1 ... x4 y4 class difficult', got {line!r}")
        try:
            corners = np.array([float(v) for v in parts[:8]]).reshape(4, 2)
        except ValueError:
            raise GeoMagError(f"{path}:{n}: corner coordinates are not numbers: {line!r}") from None
        category = parts[8].replace("-", " ")
        if category not in DOTA_CLASSES:
            raise GeoMagError(f"{path}:{n}: unknown DOTA class {parts[8]!r}")
        out.append((category, corners))
    return out


def read_dota_image(image: str | Path, labels: str | Path) -> InstanceImage:
    """One DOTA image and its oriented boxes as instances (in label-file order)."""
    image, labels = Path(image), Path(labels)
    for p in (image, labels):
        if not p.is_file():
            raise GeoMagError(f"DOTA file not found: {p}")
    try:
        with Image.open(image) as im:
            size = im.size
    except OSError as exc:
        raise GeoMagError(f"{image}: not a readable image ({exc})") from None
    instances = tuple(
        inst
        for c, corners in read_dota_labels(labels)
        if (inst := quad_instance(c, corners, size)) is not None
    )
    present = {o.category for o in instances}
    absent = tuple(c for c in DOTA_CLASSES if c not in present)
    return InstanceImage(image, size[0], size[1], instances, absent, "dota")


def read_dota(root: str | Path) -> list[InstanceImage]:
    """Every image of `root/images/` that has a `root/labelTxt/` file (label files without their
    image are skipped: the instances need the image's size)."""
    root = require_dir(Path(root), "DOTA folder")
    images = require_dir(root / "images", "DOTA images")
    labels = require_dir(root / "labelTxt", "DOTA labelTxt")
    return [
        read_dota_image(p, labels / f"{p.stem}.txt")
        for p in sorted(images.iterdir())
        if p.suffix.lower() in (".png", ".jpg", ".tif", ".tiff") and (labels / f"{p.stem}.txt").is_file()
    ]
