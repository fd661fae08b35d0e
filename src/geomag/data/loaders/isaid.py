"""iSAID instance masks from its PNG pair: `<name>_instance_id_RGB.png` (instance id per pixel =
R + 256 G + 65536 B, 0 = background) and `<name>_instance_color_RGB.png` (class colour per pixel,
the iSAID palette below), next to `<name>.png`, in `<split>/images/` (the iSAID devkit layout).

iSAID annotates every instance of its 15 classes, so a class with no instance in an image is truly
absent there (presence "no" and count 0 are exact).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from geomag.data.instance_tasks import count_questions, presence_questions, refseg_samples, vqa_samples
from geomag.data.instances import Instance, InstanceImage
from geomag.data.loaders.common import require_dir
from geomag.data.samples import Sample
from geomag.errors import GeoMagError

ISAID_PALETTE: dict[tuple[int, int, int], str] = {
    (0, 0, 63): "ship",
    (0, 63, 63): "storage tank",
    (0, 63, 0): "baseball diamond",
    (0, 63, 127): "tennis court",
    (0, 63, 191): "basketball court",
    (0, 63, 255): "ground track field",
    (0, 127, 63): "bridge",
    (0, 127, 127): "large vehicle",
    (0, 0, 127): "small vehicle",
    (0, 0, 191): "helicopter",
    (0, 0, 255): "swimming pool",
    (0, 191, 127): "roundabout",
    (0, 127, 191): "soccer ball field",
    (0, 127, 255): "plane",
    (0, 100, 155): "harbor",
}
ISAID_CLASSES = tuple(ISAID_PALETTE.values())
ID_SUFFIX, COLOUR_SUFFIX = "_instance_id_RGB.png", "_instance_color_RGB.png"


def _rgb_code(path: Path) -> np.ndarray:
    try:
        a = np.asarray(Image.open(path).convert("RGB"), dtype=np.int64)
    except OSError as exc:
        raise GeoMagError(f"{path}: not a readable PNG ({exc})") from None
    return a[..., 0] + 256 * a[..., 1] + 65536 * a[..., 2]


def read_isaid_image(image: str | Path) -> InstanceImage:
    """The instances of one iSAID image (its two PNGs next to it), in order of instance id."""
    image = Path(image)
    id_path = image.with_name(image.stem + ID_SUFFIX)
    colour_path = image.with_name(image.stem + COLOUR_SUFFIX)
    for p in (image, id_path, colour_path):
        if not p.is_file():
            raise GeoMagError(f"iSAID file not found: {p}")
    ids, colours = _rgb_code(id_path), _rgb_code(colour_path)
    if ids.shape != colours.shape:
        raise GeoMagError(f"{id_path} and {colour_path} differ in size")
    with Image.open(image) as im:
        width, height = im.size
    if ids.shape != (height, width):
        raise GeoMagError(f"{id_path} is {ids.shape[1]}x{ids.shape[0]}, the image {width}x{height}")
    palette = {r + 256 * g + 65536 * b: name for (r, g, b), name in ISAID_PALETTE.items()}
    pairs = np.unique(np.stack([ids[ids > 0], colours[ids > 0]]), axis=1)
    classes: dict[int, str] = {}
    for inst_id, code in pairs.T:
        if int(code) not in palette:
            raise GeoMagError(
                f"{colour_path}: colour {code} of instance {inst_id} is not in the iSAID palette"
            )
        if int(inst_id) in classes:
            raise GeoMagError(f"{colour_path}: instance {inst_id} has pixels of two classes")
        classes[int(inst_id)] = palette[int(code)]
    instances = tuple(Instance.from_mask(classes[k], ids == k) for k in sorted(classes))
    present = {o.category for o in instances}
    absent = tuple(c for c in ISAID_CLASSES if c not in present)
    return InstanceImage(image, width, height, instances, absent, "isaid")


def read_isaid(root: str | Path, split: str | None = None) -> list[InstanceImage]:
    """Every image of `root/<split>/images/` (all splits when None) with its instances."""
    root = require_dir(Path(root), "iSAID folder")
    splits = [split] if split else sorted(p.name for p in root.iterdir() if (p / "images").is_dir())
    out = []
    for s in splits:
        folder = require_dir(root / s / "images", f"iSAID {s} images")
        names = sorted(p for p in folder.glob("*.png") if not p.name.endswith((ID_SUFFIX, COLOUR_SUFFIX)))
        out += [read_isaid_image(p) for p in names]
    return out


def isaid_samples(img: InstanceImage, rng: np.random.Generator, max_refs: int = 10) -> list[Sample]:
    """Referring segmentation (instances and "all the <class>"), presence and exact counts (no cap:
    the dense scenes are what the images are for)."""
    qs = presence_questions(img, rng) + count_questions(img, rng, cap=None, zeros=1)
    return refseg_samples(img, rng, max_refs=max_refs, with_all=True) + vqa_samples(img, qs)
