"""Box search over a PSC heatmap: the crop whose attention stands out most from its surroundings.

Why this shape (GeoMag's "YOLO-inspired" search, ViCrop's inside-versus-neighbourhood score):
every grid cell of the heatmap anchors candidate boxes of every size between the minimum crop and
`max_frac` of the image, in aspect ratios up to `max_aspect`, so a hot region of any shape is among
the candidates. A candidate's score compares its mean attention with the mean attention of its four
same-size neighbours (left, right, above, below; the parts that lie inside the map):

    score = (mean_inside - mean_neighbours) * area ** size_power

`size_power` = 1 is the paper's "total attention minus the neighbours' average total"; 0 is ViCrop's
area-normalised sharpness. Both peak on the hot region when it is clean, but with noise the first
ties between every box that contains the region and the second favours small noisy boxes; the
default 0.5 is the documented compromise (peaks on the planted region in the tests). The winning
box is then refined below cell size: each edge moves by the fraction of its boundary cell row or
column that is "hot" (its value between the neighbour level and the inside level), so boxes are not
stuck on the patch grid. Boxes are mapped to image pixels, grown to the minimum size and clamped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geomag.errors import GeoMagError
from geomag.imaging import Box


@dataclass(frozen=True)
class SearchConfig:
    """Flat settings of the box search (all sizes in pixels of the image the heatmap covers)."""

    min_size: int = 32  # smallest crop side in pixels
    max_frac: float = 0.75  # largest crop side as a fraction of the image side (< 1: a real crop)
    max_aspect: float = 3.0  # widest allowed width/height (and height/width) ratio, in pixels
    size_power: float = 0.5  # score = contrast * area ** size_power (see the module docstring)
    refine: bool = True  # sub-cell edge refinement


@dataclass(frozen=True)
class Candidate:
    """A box on the heatmap grid (cells, half-open) with its score."""

    row0: int
    col0: int
    row1: int
    col1: int
    score: float
    inside: float  # mean heat inside
    around: float  # mean heat of the neighbouring windows


def _integral(grid: np.ndarray) -> np.ndarray:
    s = np.zeros((grid.shape[0] + 1, grid.shape[1] + 1), dtype=np.float64)
    s[1:, 1:] = grid.cumsum(0).cumsum(1)
    return s


def _rect_sum(s: np.ndarray, r0: np.ndarray, c0: np.ndarray, r1: np.ndarray, c1: np.ndarray) -> np.ndarray:
    return s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0]


def _size_range(cells: int, pixels: int, min_px: int, max_frac: float) -> range:
    """Window sides in cells whose pixel size lies in [min_px, max_frac * pixels] (at least one)."""
    cell_px = pixels / cells
    lo = max(1, math.ceil(min(min_px, pixels) / cell_px - 1e-9))
    hi = max(lo, min(cells, math.floor(max_frac * cells + 1e-9)))
    return range(min(lo, cells), min(hi, cells) + 1)


def candidates(
    grid: np.ndarray, image_size: tuple[int, int], config: SearchConfig, top: int = 5
) -> list[Candidate]:
    """The `top` best windows over every anchor cell, size and allowed aspect ratio, best first."""
    rows, cols = grid.shape
    width, height = image_size
    hs = np.array(_size_range(rows, height, config.min_size, config.max_frac))
    ws = np.array(_size_range(cols, width, config.min_size, config.max_frac))
    h, w, r0, c0 = (a.ravel() for a in np.meshgrid(hs, ws, np.arange(rows), np.arange(cols), indexing="ij"))
    aspect = (w * width / cols) / (h * height / rows)
    keep = (
        (r0 + h <= rows)
        & (c0 + w <= cols)
        & (aspect <= config.max_aspect)
        & (1 / aspect <= config.max_aspect)
    )
    if not keep.any():
        raise GeoMagError(f"no candidate box fits a {rows}x{cols} heatmap with {config}")
    h, w, r0, c0 = h[keep], w[keep], r0[keep], c0[keep]
    s = _integral(grid)
    inside = _rect_sum(s, r0, c0, r0 + h, c0 + w) / (h * w)
    nb_sum = np.zeros_like(inside)
    nb_n = np.zeros_like(inside)
    # four same-size neighbours, clipped to the map; a neighbour wholly outside does not count
    for nr0, nc0 in ((r0, c0 - w), (r0, c0 + w), (r0 - h, c0), (r0 + h, c0)):
        a0, b0 = np.clip(nr0, 0, rows), np.clip(nc0, 0, cols)
        a1, b1 = np.clip(nr0 + h, 0, rows), np.clip(nc0 + w, 0, cols)
        area = (a1 - a0) * (b1 - b0)
        ok = area > 0
        nb_sum += np.where(ok, _rect_sum(s, a0, b0, a1, b1) / np.maximum(area, 1), 0.0)
        nb_n += ok
    around = np.where(nb_n > 0, nb_sum / np.maximum(nb_n, 1), grid.mean())
    score = (inside - around) * (h * w).astype(np.float64) ** config.size_power
    order = np.argsort(-score, kind="stable")[:top]
    return [
        Candidate(
            int(r0[i]),
            int(c0[i]),
            int(r0[i] + h[i]),
            int(c0[i] + w[i]),
            float(score[i]),
            float(inside[i]),
            float(around[i]),
        )
        for i in order
    ]


def _refine(grid: np.ndarray, c: Candidate) -> tuple[float, float, float, float]:
    """Fractional (row0, col0, row1, col1): move each edge by the hot share of its boundary cells."""
    r0, c0, r1, c1 = c.row0, c.col0, c.row1, c.col1
    core = grid[r0 + 1 : r1 - 1, c0 + 1 : c1 - 1]
    hot = float(core.mean()) if core.size else c.inside
    bg = c.around
    if hot - bg <= 1e-12:
        return float(r0), float(c0), float(r1), float(c1)

    def share(values: np.ndarray) -> float:
        return float(np.clip((values.mean() - bg) / (hot - bg), 0.0, 1.0)) if values.size else 0.0

    rows, cols = grid.shape
    # edge = old edge - hot share of the strip just outside + cold share of the strip just inside
    top = r0 - (share(grid[r0 - 1, c0:c1]) if r0 > 0 else 0.0) + (1 - share(grid[r0, c0:c1]))
    bottom = r1 + (share(grid[r1, c0:c1]) if r1 < rows else 0.0) - (1 - share(grid[r1 - 1, c0:c1]))
    left = c0 - (share(grid[r0:r1, c0 - 1]) if c0 > 0 else 0.0) + (1 - share(grid[r0:r1, c0]))
    right = c1 + (share(grid[r0:r1, c1]) if c1 < cols else 0.0) - (1 - share(grid[r0:r1, c1 - 1]))
    if bottom - top < 0.5 or right - left < 0.5:  # a degenerate refinement: keep the cell box
        return float(r0), float(c0), float(r1), float(c1)
    return top, left, bottom, right


def _fit(x0: float, x1: float, min_side: int, max_side: int, limit: int) -> tuple[int, int]:
    """Integer span [a, b) around [x0, x1), min_side..max_side pixels long, shifted inside [0, limit)."""
    low = max(1, min(min_side, limit))
    side = int(np.clip(round(x1) - round(x0), low, max(low, min(max_side, limit))))
    centre = (x0 + x1) / 2
    a = round(centre - side / 2)
    a = min(max(a, 0), limit - side)
    return a, a + side


def _limit_aspect(x0: float, x1: float, y0: float, y1: float, max_aspect: float) -> tuple[float, ...]:
    """Shrink the longer side about the centre so the refined box keeps the allowed aspect ratio."""
    w, h = x1 - x0, y1 - y0
    if w > max_aspect * h:
        cx, w = (x0 + x1) / 2, max_aspect * h
        x0, x1 = cx - w / 2, cx + w / 2
    elif h > max_aspect * w:
        cy, h = (y0 + y1) / 2, max_aspect * w
        y0, y1 = cy - h / 2, cy + h / 2
    return x0, x1, y0, y1


def best_box(heatmap: np.ndarray, image_size: tuple[int, int], config: SearchConfig | None = None) -> Box:
    """The crop (in pixels of the `image_size` image the heatmap covers) with the best score.

    The heatmap grid maps linearly onto the image (the VLM saw the image resized, not cropped).
    """
    config = config or SearchConfig()
    grid = np.asarray(heatmap, dtype=np.float64)
    if grid.ndim != 2 or grid.size == 0:
        raise GeoMagError(f"heatmap must be a non-empty 2-D grid, got shape {grid.shape}")
    if not np.isfinite(grid).all():
        raise GeoMagError("heatmap has NaN or infinite values")
    width, height = int(image_size[0]), int(image_size[1])
    if width < 1 or height < 1:
        raise GeoMagError(f"image size {image_size} has no pixels")
    if not 0 < config.max_frac <= 1:
        raise GeoMagError(f"max_frac {config.max_frac} must lie in (0, 1]")
    best = candidates(grid, (width, height), config)[0]
    r0, c0, r1, c1 = _refine(grid, best) if config.refine else (best.row0, best.col0, best.row1, best.col1)
    rows, cols = grid.shape
    sx, sy = width / cols, height / rows
    x0, x1, y0, y1 = _limit_aspect(c0 * sx, c1 * sx, r0 * sy, r1 * sy, config.max_aspect)
    x0, x1 = _fit(x0, x1, config.min_size, math.floor(config.max_frac * width), width)
    y0, y1 = _fit(y0, y1, config.min_size, math.floor(config.max_frac * height), height)
    return Box(x0, y0, x1, y1).clamp(width, height)


def peak_boxes(
    heatmap: np.ndarray,
    image_size: tuple[int, int],
    k: int = 1,
    min_side: int = 256,
    max_frac: float = 0.75,
    level: float = 0.5,
) -> list[Box]:
    """Up to `k` square crops around the strongest separate peaks of a fine heatmap (e.g. a mask
    probability map; the grid maps linearly onto the `image_size` image), best first.

    Each crop centres on its peak's blob (the 4-connected cells around the peak, within half the
    largest side of it, whose heat is at least `level` x the peak's) and has side 2 x the blob's
    longer extent, at least `min_side` and at most `max_frac` x the shorter image side, shifted
    inside the image: like an oracle crop of twice the target's size. A crop's cells are cleared
    before the next peak is taken, so crops differ.
    """
    grid = np.array(heatmap, dtype=np.float64)
    if grid.ndim != 2 or grid.size == 0 or not np.isfinite(grid).all():
        raise GeoMagError(f"heatmap must be a finite, non-empty 2-D grid, got shape {grid.shape}")
    if k < 1:
        raise GeoMagError(f"k must be at least 1, got {k}")
    width, height = int(image_size[0]), int(image_size[1])
    rows, cols = grid.shape
    sx, sy = width / cols, height / rows
    limit = max(1, math.floor(max_frac * min(width, height)))
    side_px = min(max(1, min_side), limit)
    reach_r, reach_c = max(1, round(limit / 2 / sy)), max(1, round(limit / 2 / sx))
    boxes: list[Box] = []
    for _ in range(k):
        r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
        peak = grid[r, c]
        if not np.isfinite(peak) or (boxes and peak <= 0):
            break
        a0, a1 = max(0, r - reach_r), min(rows, r + reach_r + 1)
        b0, b1 = max(0, c - reach_c), min(cols, c + reach_c + 1)
        hot_r, hot_c = np.nonzero(_blob(grid[a0:a1, b0:b1] >= level * peak, (r - a0, c - b0)))
        y0, y1 = (a0 + hot_r.min()) * sy, (a0 + hot_r.max() + 1) * sy
        x0, x1 = (b0 + hot_c.min()) * sx, (b0 + hot_c.max() + 1) * sx
        side = int(np.clip(2 * max(x1 - x0, y1 - y0), side_px, limit))
        bx = _fit((x0 + x1) / 2 - side / 2, (x0 + x1) / 2 + side / 2, side, side, width)
        by = _fit((y0 + y1) / 2 - side / 2, (y0 + y1) / 2 + side / 2, side, side, height)
        box = Box(bx[0], by[0], bx[1], by[1])
        boxes.append(box)
        grid[
            math.floor(box.y0 / sy) : math.ceil(box.y1 / sy), math.floor(box.x0 / sx) : math.ceil(box.x1 / sx)
        ] = -np.inf
    return boxes


def _coverage(cells: int, pixels: int, lo: float, hi: float) -> np.ndarray:
    """Per cell along one axis (cells spread evenly over `pixels`), the share of it inside [lo, hi)."""
    edges = np.linspace(0.0, float(pixels), cells + 1)
    overlap = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None)
    return overlap / np.diff(edges)


def peakedness(heatmap: np.ndarray, image_size: tuple[int, int], box: Box) -> float:
    """How strongly a heatmap singles out `box`: the share of its heat above the map's median (its
    background level) that lies inside the box, minus the box's share of the image's area, in [-1, 1]
    (the grid maps linearly onto the `image_size` image).

    A flat or empty map gives 0 whatever the box (MagCrop would then degrade the rest of the image
    for nothing: the skip rule); a map whose excess heat all lies in a box of a tenth of the image
    gives 0.9. The median is taken off because a mask probability map has a floor everywhere: over
    a 4K image that floor would outweigh a small target's peak.
    """
    grid = np.nan_to_num(np.asarray(heatmap, dtype=np.float64))
    if grid.ndim != 2 or grid.size == 0:
        raise GeoMagError(f"heatmap must be a non-empty 2-D grid, got shape {grid.shape}")
    grid = np.clip(grid - np.median(grid), 0.0, None)
    width, height = float(image_size[0]), float(image_size[1])
    total = grid.sum()
    if total <= 0:
        return 0.0
    wy = _coverage(grid.shape[0], int(height), box.y0, box.y1)
    wx = _coverage(grid.shape[1], int(width), box.x0, box.x1)
    inside = float(wy @ grid @ wx) / total
    return inside - box.area / (width * height)


def _blob(hot: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The 4-connected component of the boolean grid `hot` that holds `seed`."""
    blob = np.zeros_like(hot)
    blob[seed] = True
    while True:
        grown = blob.copy()
        grown[1:] |= blob[:-1]
        grown[:-1] |= blob[1:]
        grown[:, 1:] |= blob[:, :-1]
        grown[:, :-1] |= blob[:, 1:]
        grown &= hot
        grown[seed] = True
        if (grown == blob).all():
            return blob
        blob = grown
