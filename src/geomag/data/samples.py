"""The generic training / evaluation sample: one image, one prompt, one answer, one mask per [SEG].

Masks are stored as specs so samples stay small and JSON-serialisable:
  {"polygons": [[[x, y], ...], ...]}   one or more polygons (pixel vertices) that make one mask
  {"rle": {"size": [h, w], "counts": ...}}   COCO RLE (pycocotools)
  {"png": "relative/or/absolute/path.png"}   a binary PNG (non-zero = inside)
and decoded on demand at the image's size. JSONL files hold one `Sample.to_dict()` per line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from geomag.errors import GeoMagError
from geomag.model.answers import gcg_phrases

TASKS = ("caption", "scene", "vqa", "roc", "refseg", "gcg")
TASK_GRANULARITY = {
    "caption": "image",
    "scene": "image",
    "vqa": "region",
    "roc": "region",
    "refseg": "pixel",
    "gcg": "pixel",
}
SEG_TOKEN = "[SEG]"


@dataclass
class Sample:
    """One example. `image` is a path (absolute, or relative to the folder of the file it came from)."""

    image: str
    prompt: str
    answer: str
    task: str
    masks: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise GeoMagError(f"unknown task '{self.task}'; expected one of {', '.join(TASKS)}")
        n_seg = self.answer.count(SEG_TOKEN)
        if self.masks and n_seg != len(self.masks):
            raise GeoMagError(f"{self.image}: answer has {n_seg} {SEG_TOKEN} but {len(self.masks)} masks")

    @property
    def granularity(self) -> str:
        return TASK_GRANULARITY[self.task]

    def load_image(self, root: str | Path | None = None) -> Image.Image:
        """The image through the one reader (`geomag.sources`): the pixels a parse of the file sees."""
        # imported here: the CLI builds `geomag eval`'s choices from the loaders without rasterio
        # (a `geomag parse --server` client starts in ~0.2 s; tests/test_cli.py)
        from geomag.sources import load_image

        return load_image(_resolve(self.image, root))

    def mask_arrays(self, width: int, height: int, root: str | Path | None = None) -> list[np.ndarray]:
        """The masks as boolean (height, width) arrays, in the order of the [SEG] tokens."""
        return [decode_mask(spec, width, height, root) for spec in self.masks]

    def target_box(
        self, width: int, height: int, root: str | Path | None = None
    ) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the sample's target in original pixels: the bounding box of the union of
        its masks (None if they are empty), else its `meta["box"]` rounded (a ROC sample's queried box;
        not checked against the image: callers clip or refuse it), else None."""
        if self.masks:
            union = np.zeros((height, width), dtype=bool)
            for m in self.mask_arrays(width, height, root):
                union |= m
            ys, xs = np.nonzero(union)
            if not xs.size:
                return None
            return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        box = self.meta.get("box")
        if isinstance(box, list | tuple) and len(box) == 4:
            x0, y0, x1, y1 = (round(float(v)) for v in box)
            return x0, y0, x1, y1
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve(path: str, root: str | Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or root is None else Path(root) / p


def polygons_to_mask(polygons: list[list[list[float]]], width: int, height: int) -> np.ndarray:
    """Rasterise polygons (each a list of [x, y] pixel vertices) into one boolean mask."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        pts = [(float(x), float(y)) for x, y in poly]
        if len(pts) >= 3:
            draw.polygon(pts, fill=1, outline=1)
        elif pts:
            draw.point(pts, fill=1)
    return np.asarray(canvas, dtype=bool)


def decode_mask(spec: dict[str, Any], width: int, height: int, root: str | Path | None = None) -> np.ndarray:
    """Decode one mask spec (polygons / rle / png) to a boolean (height, width) array."""
    if "polygons" in spec:
        return polygons_to_mask(spec["polygons"], width, height)
    if "rle" in spec:
        from pycocotools import mask as mask_utils

        rle = dict(spec["rle"])
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        elif isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode()
        m = mask_utils.decode(rle).astype(bool)
    elif "png" in spec:
        path = _resolve(spec["png"], root)
        if not path.is_file():
            raise GeoMagError(f"mask file not found: {path}")
        m = np.asarray(Image.open(path).convert("L")) > 0
    else:
        raise GeoMagError(f"unknown mask spec with keys {sorted(spec)}; expected polygons, rle or png")
    if m.shape != (height, width):
        raise GeoMagError(f"mask of shape {m.shape} does not match the image ({height}, {width})")
    return m


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE (JSON-safe: counts as str) of a boolean mask."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}


def write_jsonl(samples: Iterable[Sample], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for s in samples:
            f.write(json.dumps(s.to_dict()) + "\n")
    return path


def read_jsonl(path: str | Path) -> Iterator[Sample]:
    path = Path(path)
    if not path.is_file():
        raise GeoMagError(f"sample file not found: {path}")
    with path.open() as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield Sample(**json.loads(line))
                except (json.JSONDecodeError, TypeError) as exc:
                    raise GeoMagError(f"{path}:{i}: not a sample record ({exc})") from None


def load_geopixeld(json_path: str | Path, root: str | Path | None = None) -> list[Sample]:
    """Samples of a GeoPixelD conversation file (as released: list of {conversations, image, polygons}).

    Paths inside the file are relative to `root` (default: the folder above the file's `data/`, i.e.
    the dataset root, found by trying the file's folder and its parents). Each polygons file holds
    `polygons`: one list of polygons per [SEG], in order.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise GeoMagError(f"GeoPixelD file not found: {json_path}")
    records = json.loads(json_path.read_text())
    if not isinstance(records, list):
        raise GeoMagError(f"{json_path}: expected a list of GeoPixelD records")
    samples = []
    for rec in records:
        try:
            human = next(c["value"] for c in rec["conversations"] if c["from"] == "human")
            bot = next(c["value"] for c in rec["conversations"] if c["from"] in ("bot", "gpt"))
            image_rel, poly_rel = rec["image"], rec["polygons"]
        except (KeyError, StopIteration, TypeError) as exc:
            raise GeoMagError(f"{json_path}: record {rec.get('id', '?')} lacks {exc}") from None
        base = Path(root) if root is not None else _find_root(json_path, image_rel)
        poly_path = base / poly_rel
        if not poly_path.is_file():
            raise GeoMagError(f"GeoPixelD polygons file not found: {poly_path}")
        polygons = json.loads(poly_path.read_text())["polygons"]
        masks = [{"polygons": p} for p in polygons]
        samples.append(
            Sample(
                image=str((base / image_rel).resolve()),
                prompt=human.replace("<image>", "").strip(),
                answer=bot.strip(),
                task="gcg",
                masks=masks,
                meta={"id": rec.get("id"), "phrases": gcg_phrases(bot)},
            )
        )
    return samples


def _find_root(json_path: Path, rel: str) -> Path:
    for candidate in [json_path.parent, *json_path.parents]:
        if (candidate / rel).is_file():
            return candidate
    raise GeoMagError(f"cannot find {rel} next to {json_path} or in its parent folders; pass root=")
