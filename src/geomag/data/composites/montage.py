"""A montage PNG of a composites folder: each image with its referred masks outlined (drawn at the
tile's scale, so a 30 px object on a 4K canvas still shows), a box round each, the expressions and
the count questions below."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from geomag.data.samples import Sample, read_jsonl
from geomag.data.scenes.montage import PALETTE
from geomag.errors import GeoMagError

TILE = 512
TEXT_H = 120


def _outline(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The mask's 2 px outline at `size` (any pixel of the mask marks its tile pixel)."""
    small = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.BOX)) > 0
    im = Image.fromarray(small.astype(np.uint8) * 255)
    inner = np.asarray(im.filter(ImageFilter.MinFilter(5))) > 0
    return small & ~inner


def montage(root: str | Path, n: int = 6, cols: int = 3) -> Image.Image:
    by_image: dict[str, list[Sample]] = {}
    for s in read_jsonl(Path(root) / "samples.jsonl"):
        by_image.setdefault(s.image, []).append(s)
    images = list(by_image)[:n]
    if not images:
        raise GeoMagError(f"{root} holds no composites")
    font = ImageFont.load_default(size=14)
    rows = (len(images) + cols - 1) // cols
    canvas = Image.new("RGB", (cols * TILE, rows * (TILE + TEXT_H)), (20, 20, 20))
    draw = ImageDraw.Draw(canvas)
    for k, path in enumerate(images):
        img = Image.open(path).convert("RGB")
        w, h = img.size
        scale = TILE / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        tile = np.asarray(img.resize(size, Image.LANCZOS)).copy()
        refs = [s for s in by_image[path] if s.task == "refseg"]
        lines = [(f"{w}x{h}", (200, 200, 200))]
        boxes = []
        for j, s in enumerate(refs):
            col = PALETTE[j % len(PALETTE)]
            mask = s.mask_arrays(w, h)[0]
            tile[_outline(mask, size)] = col
            ys, xs = np.nonzero(mask)
            boxes.append(
                (
                    [
                        xs.min() * scale - 4,
                        ys.min() * scale - 4,
                        (xs.max() + 1) * scale + 4,
                        (ys.max() + 1) * scale + 4,
                    ],
                    col,
                )
            )
            lines.append((s.meta.get("expression", s.prompt), col))
        counts = [s for s in by_image[path] if s.meta.get("type") == "count"]
        for s in counts[:2]:
            lines.append((s.prompt.split("?")[0] + "? " + s.answer, (230, 230, 230)))
        tile_im = Image.fromarray(tile)
        d = ImageDraw.Draw(tile_im)
        for b, col in boxes:
            d.rectangle(b, outline=col, width=1)
        x, y = (k % cols) * TILE, (k // cols) * (TILE + TEXT_H)
        canvas.paste(tile_im, (x, y))
        for j, (text, col) in enumerate(lines[:7]):
            draw.text((x + 6, y + TILE + 3 + 16 * j), text[:72], fill=col, font=font)
    return canvas
