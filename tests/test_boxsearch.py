"""Box search recovers planted hot regions; boxes respect size limits and image borders."""

from __future__ import annotations

import numpy as np
import pytest

from geomag.boxsearch import SearchConfig, best_box, candidates, peak_boxes
from geomag.errors import GeoMagError
from geomag.imaging import Box


def planted(rng: np.random.Generator, grid: int = 24, noise: float = 0.05):
    """A heatmap whose cells hold the covered share of a planted box (x hot level) over noisy background.

    Image sizes and box sizes/positions are random; a third of the boxes touch an image border.
    This is what an ideal PSC map of one attended object looks like, plus noise.
    """
    width = int(rng.integers(300, 4097))
    height = int(np.clip(width * rng.uniform(0.5, 2.0), 200, 4096))
    while True:
        fw, fh = rng.uniform(0.1, 0.5, 2)
        bw, bh = max(2, int(fw * width)), max(2, int(fh * height))
        if 1 / 2.5 <= bw / bh <= 2.5:
            break
    x0, y0 = int(rng.integers(0, width - bw + 1)), int(rng.integers(0, height - bh + 1))
    if rng.random() < 0.3:
        x0 = 0 if rng.random() < 0.5 else width - bw
    if rng.random() < 0.3:
        y0 = 0 if rng.random() < 0.5 else height - bh
    box = Box(x0, y0, x0 + bw, y0 + bh)
    xe, ye = np.linspace(0, width, grid + 1), np.linspace(0, height, grid + 1)
    cx = np.clip(np.minimum(xe[1:], box.x1) - np.maximum(xe[:-1], box.x0), 0, None) / np.diff(xe)
    cy = np.clip(np.minimum(ye[1:], box.y1) - np.maximum(ye[:-1], box.y0), 0, None) / np.diff(ye)
    cover = np.outer(cy, cx)
    hot = rng.uniform(0.5, 2.0)
    background = rng.uniform(0.0, 0.2) * hot
    heat = background + cover * (hot - background) * rng.uniform(0.8, 1.2, (grid, grid))
    heat = np.clip(heat + rng.normal(0, noise * hot, (grid, grid)), 0, None)
    return heat, (width, height), box


def test_recovers_planted_regions_in_200_seeded_cases():
    rng = np.random.default_rng(2024)
    config = SearchConfig(min_size=16)
    ious = []
    for _ in range(200):
        heat, size, box = planted(rng)
        found = best_box(heat, size, config)
        assert 0 <= found.x0 < found.x1 <= size[0] and 0 <= found.y0 < found.y1 <= size[1]
        ious.append(found.iou(box))
    ious = np.array(ious)
    assert (ious >= 0.7).mean() >= 0.95, (
        f"IoU >= 0.7 in {(ious >= 0.7).mean():.1%}; median {np.median(ious):.2f}"
    )


def test_border_regions_are_found_and_clamped():
    heat = np.full((24, 24), 0.05)
    heat[:6, 18:] = 1.0  # top-right corner: 6 rows x 6 cols
    box = best_box(heat, (2400, 1200), SearchConfig(min_size=16))
    assert box.iou(Box(1800, 0, 2400, 300)) >= 0.9
    assert box.x1 <= 2400 and box.y0 >= 0


def test_size_limits():
    heat = np.zeros((24, 24))
    heat[10, 10] = 1.0  # one hot cell of 10 px
    box = best_box(heat, (240, 240), SearchConfig(min_size=60))
    assert box.width >= 60 and box.height >= 60 and box.contains(Box(100, 100, 110, 110))
    # the whole map hot: the box may not exceed max_frac of each side
    box = best_box(np.ones((24, 24)), (1000, 500), SearchConfig(min_size=10, max_frac=0.5))
    assert box.width <= 500 and box.height <= 250
    # aspect ratio limit holds in pixels
    stripe = np.zeros((24, 24))
    stripe[12, :] = 1.0
    box = best_box(stripe, (960, 960), SearchConfig(min_size=8, max_aspect=3.0))
    assert box.width <= 3 * box.height + 1


def test_candidates_are_sorted_and_deterministic():
    heat = np.random.default_rng(0).random((8, 12))
    a = candidates(heat, (1200, 800), SearchConfig(min_size=100), top=5)
    b = candidates(heat, (1200, 800), SearchConfig(min_size=100), top=5)
    assert a == b and [c.score for c in a] == sorted((c.score for c in a), reverse=True)


def test_bad_heatmaps():
    with pytest.raises(GeoMagError, match="2-D"):
        best_box(np.zeros((0, 3)), (10, 10))
    with pytest.raises(GeoMagError, match="NaN"):
        best_box(np.full((4, 4), np.nan), (10, 10))
    with pytest.raises(GeoMagError, match="no pixels"):
        best_box(np.ones((4, 4)), (0, 10))


# ------------------------------------------------------------------------------- peak boxes
def test_peak_boxes_centre_on_separate_peaks_best_first():
    grid = np.zeros((135, 256))  # a 4096x2160 image at 16 px per cell
    grid[40:42, 100:102] = 0.9  # a 32 px blob at (1616, 656)
    grid[100:104, 200:204] = 0.7  # a 64 px blob at (3232, 1632)
    grid[41, 101] = 1.0
    first, second, *rest = peak_boxes(grid, (4096, 2160), k=3, min_side=256)
    assert first.contains(Box(1600, 640, 1632, 672)) and second.contains(Box(3200, 1600, 3264, 1664))
    assert first.width == first.height == 256 and second.width == 256  # 2 x blob, at least min_side
    assert abs((first.x0 + first.x1) / 2 - 1616) <= 16 and abs((first.y0 + first.y1) / 2 - 656) <= 16
    assert all(b.iou(first) == 0 and b.iou(second) == 0 for b in rest)


def test_peak_boxes_grow_with_the_blob_and_stay_inside():
    grid = np.zeros((64, 64))
    grid[0:20, 0:10] = 1.0  # a 320 x 160 px blob in the corner of a 1024 px image
    (box,) = peak_boxes(grid, (1024, 1024), k=1, min_side=128)
    assert box.x0 == 0 and box.y0 == 0 and box.width == box.height == 640  # 2 x 320
    (capped,) = peak_boxes(grid, (1024, 1024), k=1, min_side=128, max_frac=0.5)
    assert capped.width == 512
    with pytest.raises(GeoMagError, match="k must be"):
        peak_boxes(grid, (1024, 1024), k=0)
    with pytest.raises(GeoMagError, match="finite"):
        peak_boxes(np.full((4, 4), np.nan), (64, 64))
