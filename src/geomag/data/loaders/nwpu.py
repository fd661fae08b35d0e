"""NWPU VHR-10 with instance masks: the COCO file of Su et al. over the 650 positive images.

Layout (../shared/data/real/nwpu-vhr10): `positive_image_set/NNN.jpg`, `coco_instances/annotations.json`
(COCO instances, image ids 0-649 for 001-650.jpg, one polygon list per instance) and
`image_set/{train,test}.txt` (image stems, the split GeoMag trains / evaluates on). The file is read
with pycocotools, so polygons decode to masks exactly as COCO tools draw them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geomag.data.loaders.common import record_of, require_dir, require_file
from geomag.errors import GeoMagError

NWPU_CLASSES = (
    "airplane",
    "ship",
    "storage tank",
    "baseball diamond",
    "tennis court",
    "basketball court",
    "ground track field",
    "harbor",
    "bridge",
    "vehicle",
)
NWPU_PLURALS = {"ship": "ships", "harbor": "harbors", "bridge": "bridges", "vehicle": "vehicles"}
SPLITS = ("train", "test")


def plural(name: str) -> str:
    """'airplane' -> 'airplanes', 'storage tank' -> 'storage tanks', 'ground track field' -> ..."""
    return NWPU_PLURALS.get(name, name + "s")


@dataclass(frozen=True)
class NwpuObject:
    """One annotated instance: its class (readable, from NWPU_CLASSES), polygons and COCO box."""

    category: str
    polygons: tuple[tuple[float, ...], ...]  # flat [x0, y0, x1, y1, ...] per polygon, pixels
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1
    area: float
    ann_id: int

    def mask(self, width: int, height: int) -> np.ndarray:
        """The instance's exact binary mask [H, W] (pycocotools' polygon rasteriser)."""
        from pycocotools import mask as mask_utils

        rles = mask_utils.frPyObjects([list(p) for p in self.polygons], height, width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


@dataclass(frozen=True)
class NwpuImage:
    image: Path
    width: int
    height: int
    objects: tuple[NwpuObject, ...] = field(default_factory=tuple)

    @property
    def stem(self) -> str:
        return self.image.stem

    def count(self, category: str) -> int:
        return sum(o.category == category for o in self.objects)


def read_split(root: Path, split: str) -> list[str]:
    if split not in SPLITS:
        raise GeoMagError(f"NWPU VHR-10 split must be one of {', '.join(SPLITS)}, not '{split}'")
    path = require_file(root / "image_set" / f"{split}.txt", "NWPU VHR-10 split file")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_nwpu(root: str | Path, split: str = "test") -> list[NwpuImage]:
    """The images of one split with their instances, sorted by file name."""
    from pycocotools.coco import COCO

    root = Path(root)
    require_dir(root / "positive_image_set", "NWPU VHR-10 images", "expected positive_image_set/NNN.jpg")
    ann_file = require_file(root / "coco_instances" / "annotations.json", "NWPU VHR-10 COCO annotations")
    stems = set(read_split(root, split))
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        try:
            coco = COCO(str(ann_file))
        except (ValueError, KeyError, TypeError) as exc:
            raise GeoMagError(f"{ann_file} is not a COCO instances file ({exc})") from None
    names = {c["id"]: c["name"].replace("_", " ") for c in coco.loadCats(coco.getCatIds())}
    out = []
    for img in coco.loadImgs(coco.getImgIds()):
        with record_of(ann_file, f"image {img.get('id')}"):
            stem = Path(img["file_name"]).stem
            if stem not in stems:
                continue
            objects = []
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
                x, y, w, h = (float(v) for v in ann["bbox"])
                objects.append(
                    NwpuObject(
                        category=names[ann["category_id"]],
                        polygons=tuple(tuple(float(v) for v in p) for p in ann["segmentation"]),
                        bbox=(x, y, x + w, y + h),
                        area=float(ann["area"]),
                        ann_id=int(ann["id"]),
                    )
                )
            path = root / "positive_image_set" / img["file_name"]
            out.append(NwpuImage(path, int(img["width"]), int(img["height"]), tuple(objects)))
    missing = stems - {o.stem for o in out}
    if missing:
        raise GeoMagError(
            f"{ann_file}: no record for {len(missing)} images of {split}.txt (e.g. {min(missing)})"
        )
    return sorted(out, key=lambda o: o.image.name)
