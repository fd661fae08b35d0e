"""RRSIS-D: RefCOCO-style `instances.json` + referring expressions, masks as COCO RLE / polygons.

Released layout (RMSIN)::

    DATA/
      rrsisd/instances.json          # COCO: images [{id, file_name, width, height}],
                                     #       annotations [{id, image_id, segmentation, bbox, ...}]
      rrsisd/refs(unc).p             # Python pickle: NOT read (pickles run code when loaded)
      images/rrsisd/JPEGImages/<file_name>

GeoMag reads the expressions from a JSON copy of the pickle instead, `rrsisd/refs(unc).json`
(or `refs.json`): the same list of refs [{ref_id, ann_id, image_id, split, sentences: [{sent,
sent_id}], ...}]. Make it once, on data you trust::

    python -c "import json, pickle; json.dump(pickle.load(open('refs(unc).p', 'rb')), open('refs(unc).json', 'w'))"

`instances.json` / refs may also lie directly in DATA, and images in DATA/JPEGImages. One sample
per (ref, sentence), evaluated at the image's original resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geomag.data.loaders.common import REFSEG_PROMPT, read_json, require_dir
from geomag.data.samples import Sample
from geomag.errors import GeoMagError
from geomag.model.answers import REFSEG_ANSWER

SPLITS = ("train", "val", "test")
ANN_DIRS = ("rrsisd", ".")
REFS_NAMES = ("refs(unc).json", "refs.json")
IMAGE_DIRS = ("images/rrsisd/JPEGImages", "JPEGImages", "images")


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    for d in ANN_DIRS:
        for n in names:
            if (root / d / n).is_file():
                return root / d / n
    return None


def coco_segmentation_to_spec(seg: Any, width: int, height: int) -> dict[str, Any]:
    """A COCO `segmentation` (flat polygons, RLE, or [RLE]) as a Sample mask spec."""
    if isinstance(seg, list) and seg and isinstance(seg[0], dict):
        seg = seg[0] if len(seg) == 1 else {"merge": seg}
    if isinstance(seg, dict):
        if "merge" in seg:
            raise GeoMagError("segmentations made of several RLEs are not supported")
        rle = dict(seg)
        rle.setdefault("size", [height, width])
        if isinstance(rle.get("counts"), bytes):
            rle["counts"] = rle["counts"].decode()
        return {"rle": rle}
    if isinstance(seg, list) and seg:
        polygons = [[[float(p[i]), float(p[i + 1])] for i in range(0, len(p) - 1, 2)] for p in seg]
        return {"polygons": polygons}
    raise GeoMagError(f"unsupported COCO segmentation: {str(seg)[:80]}")


def load_rrsisd(root: str | Path, split: str = "test") -> list[Sample]:
    """Referring-segmentation samples of one RRSIS-D split."""
    root = require_dir(Path(root), "RRSIS-D dataset")
    if split not in SPLITS:
        raise GeoMagError(f"unknown RRSIS-D split '{split}'; expected one of {', '.join(SPLITS)}")
    inst_path = _find(root, ("instances.json",))
    if inst_path is None:
        raise GeoMagError(f"RRSIS-D annotations not found: {root / 'rrsisd' / 'instances.json'}")
    refs_path = _find(root, REFS_NAMES)
    if refs_path is None:
        pickle_path = _find(root, ("refs(unc).p",))
        hint = (
            f"; found {pickle_path}, which GeoMag does not unpickle: convert it once with "
            "python -c \"import json, pickle; json.dump(pickle.load(open('refs(unc).p', 'rb')), "
            "open('refs(unc).json', 'w'))\" (see docs/eval.md)"
            if pickle_path
            else ""
        )
        raise GeoMagError(f"RRSIS-D expressions not found: {inst_path.parent / 'refs(unc).json'}{hint}")
    image_dir = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
    if image_dir is None:
        raise GeoMagError(f"RRSIS-D image folder not found: {root / IMAGE_DIRS[0]}")
    instances = read_json(inst_path, "RRSIS-D instances")
    refs = read_json(refs_path, "RRSIS-D expressions")
    if not isinstance(refs, list):
        raise GeoMagError(f"{refs_path}: expected a list of refs")
    try:
        images = {int(im["id"]): im for im in instances["images"]}
        anns = {int(a["id"]): a for a in instances["annotations"]}
    except (KeyError, TypeError) as exc:
        raise GeoMagError(f"{inst_path}: not a COCO instances file (missing {exc})") from None
    samples = []
    for ref in sorted(refs, key=lambda r: int(r.get("ref_id", 0))):
        if ref.get("split") != split:
            continue
        try:
            ann = anns[int(ref["ann_id"])]
            im = images[int(ref.get("image_id", ann["image_id"]))]
        except KeyError as exc:
            raise GeoMagError(f"{refs_path}: ref {ref.get('ref_id')} points to unknown id {exc}") from None
        width, height = int(im["width"]), int(im["height"])
        spec = coco_segmentation_to_spec(ann["segmentation"], width, height)
        for k, sent in enumerate(ref.get("sentences", [])):
            text = (sent.get("sent") or sent.get("raw") or "").strip()
            if not text:
                continue
            samples.append(
                Sample(
                    image=str(image_dir / (ref.get("file_name") or im["file_name"])),
                    prompt=REFSEG_PROMPT.format(expression=text),
                    answer=REFSEG_ANSWER,
                    task="refseg",
                    masks=[spec],
                    meta={"id": f"{ref['ref_id']}_{sent.get('sent_id', k)}", "expression": text},
                )
            )
    return samples
