"""UCM-Captions, Sydney-Captions (and RSICD): the Karpathy-style `dataset.json`.

Expected layout (as released with the RSICD_optimal splits)::

    DATA/
      dataset.json            # or one dataset_*.json, e.g. dataset_ucm_modified.json
      images/                 # or imgs/; the files named by "filename" (UCM: 1.tif ... 2100.tif)

`dataset.json` = {"images": [{"filename", "imgid", "split", "sentences": [{"raw", "tokens", ...}]}]}.
Each image of the split gives one sample: the prompt asks for a caption, `answer` is the first
reference and `meta["references"]` holds all of them (the metrics score against all five).
"""

from __future__ import annotations

from pathlib import Path

from geomag.data.loaders.common import CAPTION_PROMPT, read_json, require_dir
from geomag.data.samples import Sample
from geomag.errors import GeoMagError

IMAGE_DIRS = ("images", "imgs", "Images")
SPLITS = ("train", "val", "test")


def find_dataset_json(root: Path) -> Path:
    """`dataset.json`, else the one `dataset*.json` in root."""
    require_dir(root, "caption dataset")
    if (root / "dataset.json").is_file():
        return root / "dataset.json"
    found = sorted(root.glob("dataset*.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise GeoMagError(
            f"caption annotations not found: {root / 'dataset.json'} (Karpathy-style dataset.json)"
        )
    raise GeoMagError(
        f"{root} holds several dataset*.json files ({', '.join(p.name for p in found)}); keep one"
    )


def find_image_dir(root: Path) -> Path:
    for name in IMAGE_DIRS:
        if (root / name).is_dir():
            return root / name
    raise GeoMagError(f"image folder not found: {root / 'images'} (expected next to dataset.json)")


def load_karpathy(root: str | Path, split: str = "test") -> list[Sample]:
    """Caption samples of one split ('restval' counts as 'train', as in Karpathy's splits)."""
    root = Path(root)
    if split not in SPLITS:
        raise GeoMagError(f"unknown caption split '{split}'; expected one of {', '.join(SPLITS)}")
    path = find_dataset_json(root)
    data = read_json(path, "caption annotations")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise GeoMagError(f"{path}: expected a Karpathy-style file with an 'images' list")
    image_dir = find_image_dir(root)
    samples = []
    for rec in data["images"]:
        rec_split = "train" if rec.get("split") == "restval" else rec.get("split")
        if rec_split != split:
            continue
        try:
            refs = [s["raw"].strip() for s in rec["sentences"]]
            rel = Path(rec.get("filepath", "")) / rec["filename"]
        except (KeyError, TypeError) as exc:
            raise GeoMagError(f"{path}: image record {rec.get('imgid', '?')} lacks {exc}") from None
        if not refs:
            raise GeoMagError(f"{path}: image {rec['filename']} has no sentences")
        samples.append(
            Sample(
                image=str(image_dir / rel),
                prompt=CAPTION_PROMPT,
                answer=refs[0],
                task="caption",
                meta={"id": str(rel), "references": refs, "imgid": rec.get("imgid")},
            )
        )
    return samples
