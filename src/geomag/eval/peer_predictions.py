"""Other models' prediction files read as GeoMag prediction records, so one scorer scores them all.

`geomag eval BENCHMARK --data D --predictions PATH` scores PATH against the benchmark's samples with
the same code as GeoMag's own predictions (docs/eval.md). Formats, told apart by what PATH holds:

- `geomag`: a GeoMag `predictions.jsonl` (`{"id", "text", "masks", "image_size", ...}` a line).
- `geochat`: the answers JSONL of GeoChat's eval scripts (geochat/eval/batch_geochat_*.py:
  `{"question_id", "image_id", "answer", ...}` a line); text tasks only. A line is the sample whose id
  is its question_id (GeoMag's scene ids are GeoChat's `<class folder>/<file>`, RSVQA's the question
  id); otherwise, for tasks with one sample per image, the sample whose image file is its image_id.
- `glamm`: GLaMM's GCG predictions (eval/gcg/infer.py): a folder of `{image_id}.json` files, or one
  JSON file holding such records (a list, or a dict by image id), each `{"image_id", "caption",
  "phrases", "pred_masks": [COCO RLE]}`; the image id is the image's file name without extension.
- `masks`: a folder of predicted masks for referring segmentation, one image per sample, non-zero =
  target: `{sample id}.png` (`/` in the id as `__`; .png/.tif/.jpg), or LISA's chat.py naming
  `{image stem}_mask_0.jpg` where one sample has that image. JPEG masks (LISA writes 0 / 100) are
  thresholded at 50 to undo the codec's ringing.

Samples without a prediction are not scored (their count is reported); a prediction that names no
sample is counted; a file where nothing matches, or two predictions of one sample, is an error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from geomag.data.samples import Sample, mask_to_rle
from geomag.errors import GeoMagError

FORMATS = ("geomag", "geochat", "glamm", "masks")
TEXT_TASKS = ("caption", "scene", "vqa", "roc")
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")

Record = dict[str, object]


class UnscoredPredictionsWarning(UserWarning):
    """Samples of the split without a prediction, or predictions that name no sample: not scored."""


@dataclass
class PeerPredictions:
    """Prediction records by sample id, and what did not match."""

    format: str
    records: dict[str, Record]
    unmatched: list[str] = field(default_factory=list)  # prediction keys that name no sample


def detect_format(path: Path) -> str:
    """The format of a prediction file or folder (module docstring), or an error naming what was found."""
    if path.is_dir():
        names = [p for p in path.iterdir() if p.is_file()]
        if any(p.suffix == ".json" for p in names):
            return "glamm"
        if any(p.suffix.lower() in MASK_SUFFIXES for p in names):
            return "masks"
        raise GeoMagError(f"{path}: a folder with neither GLaMM .json predictions nor mask images")
    if not path.is_file():
        raise GeoMagError(f"predictions not found: {path}")
    if path.suffix == ".json":
        return "glamm"
    first = _first_json_line(path)
    if "question_id" in first and "answer" in first:
        return "geochat"
    if "id" in first and "text" in first:
        return "geomag"
    raise GeoMagError(
        f"{path}: line 1 is neither a GeoMag prediction (id, text) nor a GeoChat answer (question_id, answer)"
    )


def read_peer_predictions(path: str | Path, task: str, samples: Sequence[Sample]) -> PeerPredictions:
    """The records of `path` for `samples` (one benchmark split), in GeoMag's prediction-record form."""
    path = Path(path).expanduser()
    fmt = detect_format(path)
    if fmt == "geochat" and task not in TEXT_TASKS:
        raise GeoMagError(f"{path}: GeoChat answers are text; the {task} task is scored on masks")
    if fmt == "glamm" and task != "gcg":
        raise GeoMagError(f"{path}: GLaMM GCG predictions score the gcg task, not {task}")
    if fmt == "masks" and task != "refseg":
        raise GeoMagError(f"{path}: a mask folder scores referring segmentation, not {task}")
    reader = {"geomag": _read_geomag, "geochat": _read_geochat, "glamm": _read_glamm, "masks": _read_masks}
    out = reader[fmt](path, samples)
    if fmt == "geomag" and task in ("refseg", "gcg"):
        bad = [sid for sid, r in out.records.items() if "masks" not in r or "image_size" not in r]
        if bad:
            raise GeoMagError(f"{path}: prediction {bad[0]} has no masks / image_size, which {task} scores")
    if not out.records:
        raise GeoMagError(
            f"{path}: none of its {len(out.unmatched)} {fmt} predictions matches a sample of this benchmark "
            f"(first: {out.unmatched[0] if out.unmatched else 'none'}); is --data the right folder?"
        )
    return out


# ------------------------------------------------------------------------------------------------
def _first_json_line(path: Path) -> dict[str, object]:
    with path.open() as f:
        for line in f:
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    break
                if isinstance(rec, dict):
                    return rec
                break
    raise GeoMagError(f"{path}: not a JSONL file of prediction records")


def _jsonl(path: Path) -> list[dict[str, object]]:
    out = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise GeoMagError(f"{path}:{i + 1}: not JSON") from None
        if not isinstance(rec, dict):
            raise GeoMagError(f"{path}:{i + 1}: not a JSON object")
        out.append(rec)
    return out


class _Matcher:
    """Sample ids by the keys a peer's file uses (sample id; image file name or stem where unique)."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.ids = {str(s.meta["id"]): s for s in samples}
        self.by_name = _unique([(Path(s.image).name, str(s.meta["id"])) for s in samples])
        self.by_stem = _unique([(Path(s.image).stem, str(s.meta["id"])) for s in samples])
        self.records: dict[str, Record] = {}
        self.unmatched: list[str] = []

    def add(self, sample_id: str | None, key: str, record: Record, where: str) -> None:
        if sample_id is None:
            self.unmatched.append(key)
            return
        if sample_id in self.records:
            raise GeoMagError(f"{where}: a second prediction of sample {sample_id}")
        self.records[sample_id] = {"id": sample_id, **record}


def _unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """key -> sample id, for the keys only one sample has (an image with several questions has none)."""
    counts: dict[str, int] = {}
    for key, _ in pairs:
        counts[key] = counts.get(key, 0) + 1
    return {key: sid for key, sid in pairs if counts[key] == 1}


def _read_geomag(path: Path, samples: Sequence[Sample]) -> PeerPredictions:
    m = _Matcher(samples)
    for i, rec in enumerate(_jsonl(path)):
        if "id" not in rec or "text" not in rec:
            raise GeoMagError(f"{path}:{i + 1}: a GeoMag prediction needs id and text")
        sid = str(rec["id"])
        m.add(
            sid if sid in m.ids else None, sid, {k: v for k, v in rec.items() if k != "id"}, f"{path}:{i + 1}"
        )
    return PeerPredictions("geomag", m.records, m.unmatched)


def _read_geochat(path: Path, samples: Sequence[Sample]) -> PeerPredictions:
    m = _Matcher(samples)
    for i, rec in enumerate(_jsonl(path)):
        if "question_id" not in rec or "answer" not in rec:
            raise GeoMagError(f"{path}:{i + 1}: a GeoChat answer needs question_id and answer")
        qid = str(rec["question_id"])
        sid = qid if qid in m.ids else m.by_name.get(Path(str(rec.get("image_id", ""))).name)
        record = {"text": str(rec["answer"]), "phrases": [], "masks": [], "image_size": None}
        m.add(sid, qid, record, f"{path}:{i + 1}")
    return PeerPredictions("geochat", m.records, m.unmatched)


def _glamm_records(path: Path) -> list[tuple[str, dict[str, object]]]:
    """(where, record) of every GLaMM prediction in a folder of JSON files or one JSON file."""
    files = sorted(p for p in path.iterdir() if p.suffix == ".json") if path.is_dir() else [path]
    out = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError:
            raise GeoMagError(f"{f}: not JSON") from None
        if isinstance(data, dict) and "pred_masks" in data:
            data.setdefault("image_id", f.stem)
            out.append((str(f), data))
        elif isinstance(data, dict):
            out += [(f"{f}: {k}", {"image_id": k, **v}) for k, v in data.items() if isinstance(v, dict)]
        elif isinstance(data, list):
            out += [(f"{f}[{k}]", v) for k, v in enumerate(data) if isinstance(v, dict)]
        else:
            raise GeoMagError(f"{f}: not a GLaMM GCG prediction")
    return out


def _read_glamm(path: Path, samples: Sequence[Sample]) -> PeerPredictions:
    m = _Matcher(samples)
    for where, rec in _glamm_records(path):
        missing = [k for k in ("image_id", "caption", "phrases", "pred_masks") if k not in rec]
        if missing:
            raise GeoMagError(f"{where}: a GLaMM GCG prediction needs {', '.join(missing)}")
        key = str(rec["image_id"])
        sid = key if key in m.ids else m.by_stem.get(key)
        masks = _glamm_masks(rec["pred_masks"], where)
        sizes = {tuple(r["size"]) for r in masks}
        if len(sizes) > 1:
            raise GeoMagError(f"{where}: its masks differ in size ({sorted(sizes)})")
        if sid is not None:
            size = _image_size(m.ids[sid])
            if masks and (int(masks[0]["size"][1]), int(masks[0]["size"][0])) != size:
                h, w = masks[0]["size"]
                raise GeoMagError(f"{where}: masks of {w}x{h} for an image of {size[0]}x{size[1]}")
            record = {
                "text": str(rec["caption"]),
                "glamm_phrases": [str(p) for p in rec["phrases"]],  # type: ignore[union-attr]
                "masks": masks,
                "image_size": list(size),
            }
            m.add(sid, key, record, where)
        else:
            m.unmatched.append(key)
    return PeerPredictions("glamm", m.records, m.unmatched)


def _glamm_masks(masks: object, where: str) -> list[dict[str, object]]:
    """GLaMM's pred_masks (COCO RLE, counts as str), checked by decoding each once."""
    from pycocotools import mask as mask_utils

    if not isinstance(masks, list):
        raise GeoMagError(f"{where}: pred_masks is not a list of COCO RLE masks")
    out = []
    for k, m in enumerate(masks):
        try:
            size, counts = [int(v) for v in m["size"]], m["counts"]
            if isinstance(counts, list):  # uncompressed RLE, as GLaMM's mask_to_rle_pytorch gives it
                counts = mask_utils.frPyObjects({"size": size, "counts": counts}, *size)["counts"].decode()
            mask_utils.decode({"size": size, "counts": counts.encode()})
            rle = {"size": size, "counts": counts}
        except (TypeError, KeyError, ValueError, AttributeError):
            raise GeoMagError(f"{where}: pred_masks[{k}] is not a COCO RLE mask") from None
        out.append(rle)
    return out


def _image_size(sample: Sample) -> tuple[int, int]:
    from geomag.sources import open_source

    return tuple(open_source(sample.image).size)  # type: ignore[return-value]


def _read_mask(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L"))
    except OSError as exc:
        raise GeoMagError(f"{path}: not a mask image ({exc})") from None
    return a >= 50 if path.suffix.lower() in (".jpg", ".jpeg") else a > 0


def _read_masks(path: Path, samples: Sequence[Sample]) -> PeerPredictions:
    m = _Matcher(samples)
    by_file = {sid.replace("/", "__"): sid for sid in m.ids}
    for f in sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MASK_SUFFIXES):
        sid = by_file.get(f.stem)
        if sid is None and f.stem.endswith("_mask_0"):
            sid = m.by_stem.get(f.stem[: -len("_mask_0")])
        if sid is None:
            m.unmatched.append(f.name)
            continue
        mask = _read_mask(f)
        h, w = mask.shape
        if (w, h) != _image_size(m.ids[sid]):
            iw, ih = _image_size(m.ids[sid])
            raise GeoMagError(
                f"{f}: a {w}x{h} mask for an image of {iw}x{ih}; give masks at the image's size"
            )
        m.add(sid, f.name, {"text": "", "masks": [mask_to_rle(mask)], "image_size": [w, h]}, str(f))
    return PeerPredictions("masks", m.records, m.unmatched)
