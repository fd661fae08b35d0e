"""The `Result` of one request: what the model said, where, and how long it took.

Every box and mask is in the ORIGINAL image's pixel coordinates, whatever MagCrop did to the image.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from geomag.imaging import Box, ImageSource

# the model's tokens around masks: a `<p> phrase </p>` and [SEG]
_TOKEN = re.compile(r"<p>\s*(.*?)\s*</p>|\[SEG\]", re.S)
_TAGS = re.compile(r"\s*</?p>\s*")


def _targets(text: str, seg_masks: list[int | None]) -> list[dict[str, Any]]:
    """The targets of `text`: a run of [SEG] (only whitespace between) with the `<p> phrase </p>` right
    before it, if any; each with its span in `text`, its phrase and the masks of its [SEG]s."""
    targets: list[dict[str, Any]] = []
    pending: re.Match[str] | None = None
    seg = 0
    for token in _TOKEN.finditer(text):
        if token.group(0) != "[SEG]":
            pending = token
            continue
        index = seg_masks[seg]
        seg += 1
        last = targets[-1] if targets else None
        if last is not None and not text[last["end"] : token.start()].strip():  # the same run
            last["end"] = token.end()
            last["masks"].append(index)
            continue
        start, phrase = token.start(), ""
        if pending is not None and not text[pending.end() : token.start()].strip():
            start, phrase = pending.start(), pending.group(1).strip()
        targets.append({"start": start, "end": token.end(), "phrase": phrase, "masks": [index]})
        pending = None
    return targets


def mask_references(
    text: str, phrases: list[str], n_masks: int, seg_masks: list[int | None] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The model's text as people read it: each target (`<p> phrase </p> [SEG]`, or a bare [SEG])
    becomes its phrase and mask number, "Sure, it is [mask 1]." (as GLaMM's and GeoPixel's demos show
    it); a target whose masks were all empty becomes "(no mask)". Returns (display text, one reference
    per mask of each target: mask index or None, label, phrase, [start, end) in the display text).

    `seg_masks` (the predictor's `extra["seg_masks"]`) maps each [SEG] to its mask after empty masks
    were dropped and duplicates merged; without it (or when it does not fit the text) the [SEG]s are
    numbered in order while there are masks."""
    n_seg = text.count("[SEG]")
    if seg_masks is None or len(seg_masks) != n_seg:
        seg_masks = [i if i < n_masks else None for i in range(n_seg)]
    out: list[str] = []
    refs: list[dict[str, Any]] = []
    length, end = 0, 0

    def emit(piece: str) -> None:
        nonlocal length
        out.append(piece)
        length += len(piece)

    for target in _targets(text, seg_masks):
        emit(_TAGS.sub(" ", text[end : target["start"]]))
        masks = list(dict.fromkeys(i for i in target["masks"] if i is not None))
        phrase = target["phrase"]
        if not phrase and masks and masks[0] < len(phrases):
            phrase = phrases[masks[0]]
        for k, index in enumerate(masks or [None]):
            label = "(no mask)" if index is None else f"[mask {index + 1}]"
            piece = f"{phrase} {label}" if phrase and k == 0 else label
            if length and not out[-1][-1:].isspace():
                emit(" ")
            refs.append(
                {"mask": index, "label": label, "phrase": phrase, "span": [length, length + len(piece)]}
            )
            emit(piece)
        end = target["end"]
    emit(_TAGS.sub(" ", text[end:]))
    return "".join(out), refs


@dataclass
class Result:
    """Output of `geomag.parse` / `GeoMagPredictor.predict` (and so of `geomag parse`).

    masks: boolean arrays (H, W) on the original image grid, one per [SEG] in `text`;
    scores: each mask's confidence (mean predicted probability inside it).
    boxes: named boxes (e.g. MagCrop's "crop1", "crop2") in original pixel coordinates.
    timings: seconds per stage ("classify", "magcrop", "generate", "decode", ...).
    """

    text: str
    granularity: str
    image_size: tuple[int, int]  # (width, height) of the original image
    boxes: dict[str, Box] = field(default_factory=dict)
    masks: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # per mask: mean predicted probability inside
    phrases: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # where the pixels came from (georeferencing of GeoTIFF outputs); not serialised
    source: ImageSource | None = field(default=None, repr=False, compare=False)

    def references(self) -> tuple[str, list[dict[str, Any]]]:
        """(display text, references): `mask_references` of this result's text."""
        seg_masks = self.extra.get("seg_masks")
        return mask_references(self.text, self.phrases, len(self.masks), seg_masks)

    @property
    def display_text(self) -> str:
        """The answer with each [SEG] as its phrase and mask number (what a person is shown)."""
        return self.references()[0]

    def to_dict(self, mask_files: list[str] | None = None) -> dict[str, Any]:
        """JSON-ready dict. Masks are summarised (area, bbox) and optionally named by their PNG files."""
        masks = []
        for i, m in enumerate(self.masks):
            ys, xs = np.nonzero(m)
            bbox = (
                None if xs.size == 0 else [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
            )
            entry: dict[str, Any] = {"index": i, "area": int(m.sum()), "bbox": bbox}
            if i < len(self.phrases):
                entry["phrase"] = self.phrases[i]
            if i < len(self.scores):
                entry["score"] = round(float(self.scores[i]), 4)
            if mask_files is not None:
                entry["file"] = mask_files[i]
            masks.append(entry)
        display, references = self.references()
        return {
            "text": self.text,
            "display_text": display,
            "references": references,
            "granularity": self.granularity,
            "image_size": list(self.image_size),
            "boxes": {k: b.to_list() for k, b in self.boxes.items()},
            "masks": masks,
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
            **({"extra": self.extra} if self.extra else {}),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(**kwargs), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """Inverse of `to_dict` for everything but the mask pixels (those live in the PNG files)."""
        return cls(
            text=d["text"],
            granularity=d["granularity"],
            image_size=tuple(d["image_size"]),
            boxes={k: Box(*v) for k, v in d.get("boxes", {}).items()},
            timings=dict(d.get("timings", {})),
            phrases=[m["phrase"] for m in d.get("masks", []) if "phrase" in m],
            scores=[m["score"] for m in d.get("masks", []) if "score" in m],
            extra=dict(d.get("extra", {})),
        )

    def save(self, out_dir: str | Path) -> Path:
        """Write result.json and one PNG per mask into out_dir; returns the JSON path."""

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for i, m in enumerate(self.masks):
            name = f"mask_{i:02d}.png"
            # 0/255 grey built with one array of the mask's size (a 20000 px mask: 400 MB, not 1.2 GB);
            # zlib level 1: a 4K mask writes in ~0.05 s and is still small (masks are mostly 0)
            grey = np.zeros(np.shape(m), dtype=np.uint8)
            grey[np.asarray(m, dtype=bool)] = 255
            Image.fromarray(grey).save(out / name, compress_level=1)
            del grey
            files.append(name)
        path = out / "result.json"
        path.write_text(self.to_json(mask_files=files))
        return path
