"""Image operations MagCrop is built from: Box, crop, paste (stitch), degrade D(), resize.

Pure functions on PIL images; no model code. Every Box is in the ORIGINAL image's pixel coordinates,
half-open: x0 <= x < x1, y0 <= y < y1.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from geomag.errors import GeoMagError


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels, half-open [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "x1", "y1"):
            object.__setattr__(self, name, int(np.rint(getattr(self, name))))
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise GeoMagError(f"empty box {self.to_list()}: need x0 < x1 and y0 < y1")

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    def to_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    def to_tuple(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    def contains(self, other: Box) -> bool:
        return self.x0 <= other.x0 and self.y0 <= other.y0 and other.x1 <= self.x1 and other.y1 <= self.y1

    def iou(self, other: Box) -> float:
        ix = max(0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        return inter / float(self.area + other.area - inter)

    def clamp(self, width: int, height: int) -> Box:
        """Clip to an image of the given size; an error if nothing is left."""
        x0, y0 = max(0, self.x0), max(0, self.y0)
        x1, y1 = min(width, self.x1), min(height, self.y1)
        if x1 <= x0 or y1 <= y0:
            raise GeoMagError(f"box {self.to_list()} lies outside the {width}x{height} image")
        return Box(x0, y0, x1, y1)

    def check_inside(self, width: int, height: int) -> Box:
        """Return self if it lies inside a width x height image, else a clear error."""
        if self.x0 < 0 or self.y0 < 0 or self.x1 > width or self.y1 > height:
            raise GeoMagError(f"box {self.to_list()} is outside the {width}x{height} image")
        return self

    def shift(self, dx: int, dy: int) -> Box:
        """The same box moved by (dx, dy): maps a box inside a crop to the crop's parent image."""
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def scale(self, sx: float, sy: float) -> Box:
        """Box on a grid scaled by (sx, sy), rounded outward so it still covers the same pixels."""
        return Box(
            math.floor(self.x0 * sx + 1e-9),
            math.floor(self.y0 * sy + 1e-9),
            math.ceil(self.x1 * sx - 1e-9),
            math.ceil(self.y1 * sy - 1e-9),
        )

    @classmethod
    def parse(cls, text: str) -> Box:
        """Box from "x0,y0,x1,y1" (the CLI's --box), with a clear error for anything else."""
        parts = [t.strip() for t in str(text).split(",")]
        try:
            values = [int(t) for t in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise GeoMagError(f"box '{text}': expected four integers x0,y0,x1,y1")
        return cls(*values)


def to_uint8(
    array: np.ndarray,
    low_pct: float = 2.0,
    high_pct: float = 98.0,
    nodata: float | None = None,
    limits: np.ndarray | None = None,
) -> np.ndarray:
    """Stretch any numeric array (bands last) to uint8 by per-band percentiles.

    uint8 input is returned as is. For 16-bit and float rasters the 2nd..98th percentile of the valid
    pixels of each band maps linearly to 0..255 (the usual "percentile stretch" of GIS viewers).
    `limits` (bands x 2: low, high) replaces the percentiles, so windows of one raster share a stretch.
    """
    if array.dtype == np.uint8:
        return array
    a = array.astype(np.float32)
    if a.ndim == 2:
        a = a[..., None]
    out = np.zeros(a.shape, dtype=np.uint8)
    for b in range(a.shape[-1]):
        band = a[..., b]
        if limits is not None:
            lo, hi = limits[b]
        else:
            valid = np.isfinite(band) if nodata is None else (np.isfinite(band) & (band != nodata))
            if not valid.any():
                continue
            lo, hi = np.percentile(band[valid], [low_pct, high_pct])
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        out[..., b] = np.clip((band - lo) * scale, 0, 255).astype(np.uint8)
    return out if array.ndim == 3 else out[..., 0]


def crop(image: Image.Image, box: Box) -> Image.Image:
    """The pixels of `box` (which must lie inside the image)."""
    box.check_inside(*image.size)
    return image.crop(box.to_tuple())


def paste(canvas: Image.Image, patch: Image.Image, box: Box) -> Image.Image:
    """Stitching operator (+): a copy of `canvas` with `patch` pasted at the box's own position."""
    box.check_inside(*canvas.size)
    if patch.size != (box.width, box.height):
        raise GeoMagError(f"patch size {patch.size} does not match box {box.to_list()}")
    out = canvas.copy()
    out.paste(patch, (box.x0, box.y0))
    return out


def nearest_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A boolean mask resampled to (width, height) by nearest neighbour (pixel centres), built by
    indexing: no temporary of the input's size (a 20000 x 20000 mask reduces without 400 MB copies)."""
    m = np.asarray(mask, dtype=bool)
    height, width = m.shape
    rows = np.minimum(((np.arange(size[1]) + 0.5) * height / size[1]).astype(np.intp), height - 1)
    cols = np.minimum(((np.arange(size[0]) + 0.5) * width / size[0]).astype(np.intp), width - 1)
    return m[np.ix_(rows, cols)]


def paste_mask(size: tuple[int, int], box: Box, mask: np.ndarray) -> np.ndarray:
    """A boolean mask of a crop -> a (height, width) mask of the whole image, False outside the box."""
    box.check_inside(*size)
    m = np.asarray(mask, dtype=bool)
    if m.shape != (box.height, box.width):
        raise GeoMagError(f"mask shape {m.shape} does not match box {box.to_list()}")
    out = np.zeros((size[1], size[0]), dtype=bool)
    out[box.y0 : box.y1, box.x0 : box.x1] = m
    return out


def tile_boxes(width: int, height: int, tile: int, overlap: float = 0.2) -> list[Box]:
    """SAHI-style slices of an image: squares of side `tile` (or the image side, if smaller) with
    `overlap` between neighbours; the last row and column are shifted inward to keep the full size."""
    if tile < 1 or not 0 <= overlap < 1:
        raise GeoMagError(f"tile must be >= 1 px and overlap in [0, 1), got {tile} and {overlap}")
    step = max(1, int(tile * (1 - overlap)))

    def starts(n: int) -> list[int]:
        return [0] if n <= tile else sorted({*range(0, n - tile, step), n - tile})

    return [
        Box(x, y, min(x + tile, width), min(y + tile, height)) for y in starts(height) for x in starts(width)
    ]


def reduced_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    """(width, height) divided by `factor`, rounded, at least 1x1: the small side of D()."""
    return max(1, round(size[0] / factor)), max(1, round(size[1] / factor))


def degrade(image: Image.Image, factor: int = 4) -> Image.Image:
    """D(X) (Eq. 3): resize to H/factor x W/factor (area average) and back (bilinear). Same size, less detail."""
    small = image.resize(reduced_size(image.size, factor), Image.Resampling.BOX)
    return small.resize(image.size, Image.Resampling.BILINEAR)


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to (width, height) with bilinear filtering (antialiased when shrinking)."""
    return image.resize(size, Image.Resampling.BILINEAR)


class ImageSource(Protocol):
    """Where MagCrop reads pixels from: a PIL image in memory or a huge raster read in windows.

    `size` is the ORIGINAL (width, height). `read(box, out_size)` returns the pixels of `box` (default:
    the whole image) resampled to `out_size` (default: the box's own size), as 8-bit RGB. A raster
    implementation (geomag.sources.RasterSource) reads only that window, decimated, never the whole file.
    """

    @property
    def size(self) -> tuple[int, int]: ...

    def read(self, box: Box | None = None, out_size: tuple[int, int] | None = None) -> Image.Image: ...


class PilSource:
    """ImageSource over an in-memory PIL image."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image.convert("RGB")

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def read(self, box: Box | None = None, out_size: tuple[int, int] | None = None) -> Image.Image:
        """Shrinking uses an area average (BOX, as D() and GDAL's decimation); enlarging is bilinear."""
        region = self.image if box is None else crop(self.image, box)
        if out_size is not None and region.size != tuple(out_size):
            w, h = int(out_size[0]), int(out_size[1])
            if w < 1 or h < 1:
                raise GeoMagError(f"output size {out_size} must be at least 1x1")
            shrink = w <= region.width and h <= region.height
            region = region.resize((w, h), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
        return region


def degraded_read(
    source: ImageSource, box: Box | None, size: tuple[int, int], factor: int = 4
) -> Image.Image:
    """D() through an ImageSource: read `box` at size/factor, then enlarge (bilinear) to `size`.

    For a PilSource and `size` equal to the box's own size this equals `degrade(crop(image, box))`
    pixel for pixel; a RasterSource decimates in GDAL and never reads the box at full resolution.
    """
    small = source.read(box, reduced_size(size, factor))
    return small.resize(tuple(size), Image.Resampling.BILINEAR)


# --- pictures people look at -------------------------------------------------------------------------

BOX_COLORS = [(255, 64, 32), (32, 160, 255), (255, 210, 0), (0, 200, 120)]


def label_px(size: tuple[int, int]) -> int:
    """Label height for a picture of `size`: 14 px up to ~800 px, 73 px on 4K, so that a label stays
    legible when the picture is shown shrunk to a screen."""
    return max(14, round(max(size) / 56))


def outline_px(size: tuple[int, int]) -> int:
    """Mask outline width for a picture of `size`: 2 px up to ~1000 px, 8 px on 4K."""
    return max(2, round(max(size) / 512))


@functools.lru_cache(maxsize=16)
def label_font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font at `px` (scalable since Pillow 10.1; the bitmap font without FreeType)."""
    return ImageFont.load_default(size=px)


def _label_size(draw: ImageDraw.ImageDraw, text: str, px: int) -> tuple[int, int, int, int]:
    """(left, top, width, height) of `text` drawn at (0, 0) by `_draw_label`, its rim included."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=label_font(px), stroke_width=max(1, px // 12))
    return int(left), int(top), int(right - left), int(bottom - top)


def _draw_label(
    draw: ImageDraw.ImageDraw, corner: tuple[float, float], text: str, color: tuple[int, ...], px: int
) -> None:
    """`text` in `color` with a dark rim (readable on bright and dark ground alike), its top-left
    corner at `corner`."""
    left, top, _, _ = _label_size(draw, text, px)
    draw.text(
        (corner[0] - left, corner[1] - top), text, fill=color, font=label_font(px),
        stroke_width=max(1, px // 12), stroke_fill=(0, 0, 0),
    )  # fmt: skip


def draw_boxes(
    image: Image.Image, boxes: dict[str, Box], scale: tuple[float, float] = (1.0, 1.0), width: int = 0
) -> Image.Image:
    """A copy of `image` with labelled boxes drawn on it; `scale` maps box coordinates to the image.
    Lines and labels grow with the image (`label_px`); a label sits just above its box (inside it
    at the top edge), clear of what the box holds."""

    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    line = width or max(2, round(max(out.size) / 300))
    px = label_px(out.size)
    for i, (name, box) in enumerate(boxes.items()):
        color = BOX_COLORS[i % len(BOX_COLORS)]
        x0, y0, x1, y1 = box.x0 * scale[0], box.y0 * scale[1], box.x1 * scale[0], box.y1 * scale[1]
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=color, width=line)
        _, _, _, h = _label_size(draw, name, px)
        top = y0 - h - line
        _draw_label(draw, (x0, top) if top >= 0 else (x0 + line + 2, y0 + line + 2), name, color, px)
    return out


def heatmap_colors(grid: np.ndarray) -> np.ndarray:
    """(rows, cols) scores -> (rows, cols, 3) uint8 colours, dark blue (low) to yellow (high)."""
    g = np.asarray(grid, dtype=np.float64)
    top = float(g.max()) if g.size else 0.0
    t = g / top if top > 0 else np.zeros_like(g)
    anchors = np.array([[20, 20, 90], [40, 90, 200], [230, 60, 40], [255, 230, 40]], dtype=np.float64)
    pos = t * (len(anchors) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(anchors) - 2)
    frac = (pos - lo)[..., None]
    rgb = anchors[lo] * (1 - frac) + anchors[lo + 1] * frac
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def overlay_heatmap(image: Image.Image, grid: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """`image` blended with the heatmap `grid` stretched over it (nearest, so patches stay visible)."""
    colors = Image.fromarray(heatmap_colors(grid), "RGB").resize(image.size, Image.Resampling.NEAREST)
    return Image.blend(image.convert("RGB"), colors, alpha)


SPECK_LINES = 4  # a mask less than this many outline widths across gets a circle of that radius round it
MASK_COLORS = [(255, 64, 64), (64, 200, 255), (255, 220, 40), (120, 255, 90), (230, 90, 255), (255, 150, 40)]


def overlay_masks(image: Image.Image, masks: list[np.ndarray], alpha: float = 0.5) -> Image.Image:
    """`image` with each boolean mask (same H x W) tinted in its own colour, for people to look at.

    Only each mask's bounding box is touched: on a 4K image with a small mask that is ~10 ms instead
    of the ~0.6 s a float copy of the whole picture takes."""
    out = np.array(image.convert("RGB"))
    for i, mask in enumerate(masks):
        m = np.asarray(mask, dtype=bool)
        if m.shape != out.shape[:2]:
            raise GeoMagError(f"mask {i} has shape {m.shape}, the image {out.shape[:2]}")
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if not rows.size:
            continue
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        inside, region = m[box], out[box]
        color = np.array(MASK_COLORS[i % len(MASK_COLORS)], dtype=np.float32)
        tinted = (1 - alpha) * region[inside].astype(np.float32) + alpha * color
        region[inside] = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """`mask` grown by `radius` px in every direction (a square of side 2 radius + 1), by shifted ORs
    that double the reach each step: O(pixels x log radius), no SciPy needed."""
    out = np.asarray(mask, dtype=bool).copy()
    for axis in (0, 1):
        reach = 0
        while reach < radius:
            step = min(2 * reach + 1, radius - reach)
            grown = out.copy()
            if axis == 0:
                grown[step:] |= out[:-step]
                grown[:-step] |= out[step:]
            else:
                grown[:, step:] |= out[:, :-step]
                grown[:, :-step] |= out[:, step:]
            out, reach = grown, reach + step
    return out


def outline_masks(
    image: Image.Image, masks: list[np.ndarray], labels: list[str] | None = None, width: int = 0
) -> Image.Image:
    """`image` with a line of `width` px (default `outline_px`) in each mask's colour just outside it,
    and its label (default "mask i") by it in a font that grows with the image: a 30-pixel mask on
    a 4K picture is found by its ring, a circle round it and its label, where its tint alone is a
    speck."""
    out = np.array(image.convert("RGB"))
    height, width_px = out.shape[:2]
    line = width or outline_px((width_px, height))
    places = []
    for i, mask in enumerate(masks):
        m = np.asarray(mask, dtype=bool)
        if m.shape != out.shape[:2]:
            raise GeoMagError(f"mask {i} has shape {m.shape}, the image {out.shape[:2]}")
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if not rows.size:
            continue
        y0, y1 = max(0, rows[0] - line), min(height, rows[-1] + 1 + line)
        x0, x1 = max(0, cols[0] - line), min(width_px, cols[-1] + 1 + line)
        inside = m[y0:y1, x0:x1]
        ring = dilate(inside, line) & ~inside
        out[y0:y1, x0:x1][ring] = MASK_COLORS[i % len(MASK_COLORS)]
        # the label goes by the mask's bulk: the box of its rows and columns between the 2 % and 98 %
        # of its pixels, so a stray fragment far off does not pull the label away from it
        (r0, r1), (c0, c1) = _bulk(inside.sum(axis=1)), _bulk(inside.sum(axis=0))
        bulk = (max(0, x0 + c0 - line), max(0, y0 + r0 - line), x0 + c1 + line, y0 + r1 + line)
        places.append((i, *(int(v) for v in bulk)))
    picture = Image.fromarray(out, "RGB")
    draw = ImageDraw.Draw(picture)
    px, gap = label_px(picture.size), max(2, label_px(picture.size) // 4)
    spots = []  # where each mask is on the picture: its ring's box, or its circle's
    for i, x0, y0, x1, y1 in places:  # a mask smaller than a few line widths: a circle round it too
        if max(x1 - x0, y1 - y0) < SPECK_LINES * line:
            cx, cy, r = (x0 + x1) // 2, (y0 + y1) // 2, SPECK_LINES * line
            x0, y0, x1, y1 = cx - r, cy - r, cx + r, cy + r
            draw.ellipse([x0, y0, x1, y1], outline=MASK_COLORS[i % len(MASK_COLORS)], width=max(2, line // 2))
        spots.append((i, x0, y0, x1, y1))
    # labels avoid the masks and the labels placed before them
    taken: list[tuple[int, int, int, int]] = [(x0, y0, x1, y1) for _, x0, y0, x1, y1 in spots]
    for i, x0, y0, _, y1 in spots:
        text = labels[i] if labels is not None and i < len(labels) and labels[i] else f"mask {i}"
        _, _, w, h = _label_size(draw, text, px)
        x = min(max(0, x0), max(0, width_px - w))
        # below the mask, else above it, else further down, within the picture
        tries = [y1 + gap, y0 - h - gap, *(y1 + gap + k * (h + gap) for k in range(1, 8))]
        inside = [y for y in tries if 0 <= y <= height - h] or [max(0, min(height - h, y1 + gap))]
        y = next((y for y in inside if not any(_overlap((x, y, x + w, y + h), t) for t in taken)), inside[0])
        taken.append((x, y, x + w, y + h))
        _draw_label(draw, (x, y), text, MASK_COLORS[i % len(MASK_COLORS)], px)
    return picture


def _bulk(counts: np.ndarray, share: float = 0.02) -> tuple[int, int]:
    """The first and last index (half-open end) where the cumulative share of `counts` passes
    `share` and 1 - `share`."""
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    first = int(np.searchsorted(cumulative, share * total, side="right"))
    last = int(np.searchsorted(cumulative, (1 - share) * total, side="left"))
    return first, max(first, last) + 1


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def resize_batch(images: list[Image.Image], size: int) -> np.ndarray:
    """float32 array [B, 3, size, size] of 0..255 values: each image bilinearly resized (not cropped)."""
    if not images:
        raise GeoMagError("no images given")
    arrays = []
    for image in images:
        rgb = image.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1))
    return np.stack(arrays)
