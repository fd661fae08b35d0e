"""A montage PNG of a generated dataset: images with referred masks and their expressions drawn on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pycocotools import mask as mask_utils

from geomag.errors import GeoMagError

TILE = 512
PALETTE = [(255, 64, 64), (64, 200, 255), (255, 220, 0), (200, 80, 255), (0, 255, 140), (255, 140, 0)]


def _samples(root: Path, n: int) -> list[tuple[Path, list[tuple[np.ndarray, str]]]]:
    """(image path, [(full mask, text)]) per scene, from RRSIS-D, else GeoPixelD, else caption images."""
    rr = root / "refseg" / "rrsisd"
    if (rr / "rrsisd" / "instances.json").is_file():
        inst = json.loads((rr / "rrsisd" / "instances.json").read_text())
        refs = json.loads((rr / "rrsisd" / "refs(unc).json").read_text())
        anns = {a["id"]: a for a in inst["annotations"]}
        out = []
        for img in inst["images"][:n]:
            items = []
            for r in refs:
                if r["image_id"] == img["id"]:
                    rle = dict(anns[r["ann_id"]]["segmentation"])
                    items.append(
                        (
                            mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(
                                bool
                            ),
                            r["sentences"][0]["raw"],
                        )
                    )
            out.append((rr / "images" / "rrsisd" / "JPEGImages" / img["file_name"], items))
        return out
    if (root / "gcg" / "data" / "GeoPixelD.json").is_file():
        out = []
        for rec in json.loads((root / "gcg" / "data" / "GeoPixelD.json").read_text())[:n]:
            ann = json.loads((root / "gcg" / rec["polygons"]).read_text())
            size = Image.open(root / "gcg" / rec["image"]).size
            phrases = [p.strip() for p in ann["gcg_description"].split("<p>")[1:]]
            items = []
            for polys, ph in zip(ann["polygons"], phrases, strict=False):
                m = Image.new("L", size, 0)
                for poly in polys:
                    ImageDraw.Draw(m).polygon([tuple(p) for p in poly], fill=255)
                items.append((np.asarray(m) > 0, ph.split("</p>")[0].strip()))
            out.append((root / "gcg" / rec["image"], items))
        return out
    if (root / "caption" / "dataset.json").is_file():
        data = json.loads((root / "caption" / "dataset.json").read_text())
        return [(root / "caption" / "images" / im["filename"], []) for im in data["images"][:n]]
    raise GeoMagError(f"{root} holds no refseg, gcg or caption output to show")


def montage(root: Path, n: int = 6, cols: int = 3) -> Image.Image:
    samples = _samples(Path(root), n)
    if not samples:
        raise GeoMagError(f"{root} holds no scenes")
    font = ImageFont.load_default(size=14)
    text_h = 110
    rows = (len(samples) + cols - 1) // cols
    canvas = Image.new("RGB", (cols * TILE, rows * (TILE + text_h)), (20, 20, 20))
    for k, (path, items) in enumerate(samples):
        img = np.asarray(Image.open(path).convert("RGB"), np.float32)
        lines = []
        for j, (mask, text) in enumerate(items[:6]):
            col = np.array(PALETTE[j % len(PALETTE)], np.float32)
            img[mask] = 0.45 * img[mask] + 0.55 * col
            lines.append((text, PALETTE[j % len(PALETTE)]))
        tile = Image.fromarray(img.astype(np.uint8))
        scale = TILE / max(tile.size)
        tile = tile.resize(
            (max(1, round(tile.width * scale)), max(1, round(tile.height * scale))), Image.LANCZOS
        )
        draw = ImageDraw.Draw(tile)
        for j, (mask, _) in enumerate(items[:6]):  # a box too, so tiny targets can be found
            ys, xs = np.nonzero(mask)
            if len(xs):
                b = [
                    xs.min() * scale - 3,
                    ys.min() * scale - 3,
                    (xs.max() + 1) * scale + 3,
                    (ys.max() + 1) * scale + 3,
                ]
                draw.rectangle(b, outline=PALETTE[j % len(PALETTE)], width=2)
        x, y = (k % cols) * TILE, (k // cols) * (TILE + text_h)
        canvas.paste(tile, (x, y))
        d = ImageDraw.Draw(canvas)
        for j, (text, col) in enumerate(lines):
            d.text((x + 6, y + TILE + 4 + 17 * j), text[:70], fill=col, font=font)
    return canvas
