"""GeoPixelD (grounded conversation generation): per-image JSON with polygons, or the conversation file.

Released layout (GeoPixel)::

    DATA/
      data/GeoPixelD.json                     # conversations: [{conversations, image, polygons}]
      data/GeoPixelD/{train,test}/{stem}.png  # the image (an 800x800 iSAID/DOTA patch)
      data/GeoPixelD/{train,test}/{stem}.json # {"id", "img", "gcg_description", "polygons"}

`geomag eval geopixeld --data DATA` reads the per-image JSON files of the split (looked for in
DATA/{split}, DATA/GeoPixelD/{split}, DATA/data/GeoPixelD/{split}); `--data path/to/GeoPixelD.json`
reads a conversation file instead (`geomag.data.samples.load_geopixeld`). `polygons` holds one list
of polygons (pixel [x, y] vertices) per `[SEG]` of `gcg_description`, in order.
"""

from __future__ import annotations

from pathlib import Path

from geomag.data.loaders.common import read_json
from geomag.data.prompts import GCG_PROMPT as GCG_PROMPT  # re-exported: the benchmark's prompt
from geomag.data.samples import Sample, gcg_phrases, load_geopixeld
from geomag.errors import GeoMagError

SPLITS = ("train", "val", "test")


def _split_dir(root: Path, split: str) -> Path:
    for cand in (root / split, root / "GeoPixelD" / split, root / "data" / "GeoPixelD" / split):
        if cand.is_dir():
            return cand
    raise GeoMagError(
        f"GeoPixelD split folder not found: {root / 'data' / 'GeoPixelD' / split} (or pass the "
        "conversation file GeoPixelD.json as the data path)"
    )


def _image_for(ann_path: Path, rel: str | None) -> Path:
    if rel:
        for base in [ann_path.parent, *ann_path.parents]:
            if (base / rel).is_file():
                return base / rel
    for suffix in (".png", ".jpg", ".tif"):
        if ann_path.with_suffix(suffix).is_file():
            return ann_path.with_suffix(suffix)
    return ann_path.with_suffix(".png")  # missing: the runner names it before predicting


def load_geopixeld_split(root: str | Path, split: str = "test") -> list[Sample]:
    """GCG samples from a GeoPixelD split folder, or from a conversation JSON file given as `root`."""
    root = Path(root)
    if root.suffix == ".json":
        samples = load_geopixeld(root)
        for i, s in enumerate(samples):
            s.meta["id"] = str(s.meta.get("id") if s.meta.get("id") is not None else i)
        return samples
    if not root.is_dir():
        raise GeoMagError(f"GeoPixelD dataset folder not found: {root}")
    if split not in SPLITS:
        raise GeoMagError(f"unknown GeoPixelD split '{split}'; expected one of {', '.join(SPLITS)}")
    folder = _split_dir(root, split)
    samples = []
    for ann_path in sorted(folder.glob("*.json")):
        ann = read_json(ann_path, "GeoPixelD annotation")
        try:
            text, polygons = ann["gcg_description"].strip(), ann["polygons"]
        except (KeyError, TypeError, AttributeError) as exc:
            raise GeoMagError(f"{ann_path}: not a GeoPixelD annotation (missing {exc})") from None
        samples.append(
            Sample(
                image=str(_image_for(ann_path, ann.get("img"))),
                prompt=GCG_PROMPT,
                answer=text,
                task="gcg",
                masks=[{"polygons": p} for p in polygons],
                meta={"id": ann_path.stem, "phrases": gcg_phrases(text)},
            )
        )
    if not samples:
        raise GeoMagError(f"no GeoPixelD annotation files (*.json) in {folder}")
    return samples
