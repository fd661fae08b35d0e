"""Value noise and fractal (multi-octave) noise in numpy: the texture of every land cover.

Large low-frequency fields are small random grids upsampled by PIL (C speed); fine detail comes from
small periodic tiles repeated over the frame, so a 4K terrain costs a few full-frame operations.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def smooth_field(rng: np.random.Generator, width: int, height: int, cell: float) -> np.ndarray:
    """Bicubic value noise in [0, 1] (roughly) with features about `cell` pixels apart."""
    gw = max(2, int(np.ceil(width / cell)) + 2)
    gh = max(2, int(np.ceil(height / cell)) + 2)
    grid = rng.random((gh, gw), dtype=np.float32)
    box = (0.5, 0.5, 0.5 + width / cell, 0.5 + height / cell)
    return np.asarray(Image.fromarray(grid, "F").resize((width, height), Image.BICUBIC, box=box))


def fbm(
    rng: np.random.Generator, width: int, height: int, cell: float, octaves: int = 4, gain: float = 0.5
) -> np.ndarray:
    """Fractal noise: octaves of value noise, each half the cell size and `gain` times the amplitude.

    Normalised to about [0, 1].
    """
    total = np.zeros((height, width), np.float32)
    amp, norm = 1.0, 0.0
    for _ in range(octaves):
        if cell < 2:
            break
        total += amp * smooth_field(rng, width, height, cell)
        norm += amp
        amp *= gain
        cell /= 2
    return total / norm


def periodic_noise(
    rng: np.random.Generator, size: int, cells: tuple[int, ...], gain: float = 0.6
) -> np.ndarray:
    """A tileable size x size fractal noise tile in [0, 1]; every cell must divide `size`."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    total = np.zeros((size, size), np.float32)
    amp, norm = 1.0, 0.0
    for c in cells:
        n = size // c
        g = rng.random((n, n), dtype=np.float32)
        fx, fy = xs / c, ys / c
        x0, y0 = np.floor(fx).astype(int), np.floor(fy).astype(int)
        tx, ty = fx - x0, fy - y0
        tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
        x0, y0, x1, y1 = x0 % n, y0 % n, (x0 + 1) % n, (y0 + 1) % n
        top = g[y0, x0] * (1 - tx) + g[y0, x1] * tx
        bot = g[y1, x0] * (1 - tx) + g[y1, x1] * tx
        total += amp * (top * (1 - ty) + bot * ty)
        norm += amp
        amp *= gain
    total /= norm
    return (total - total.min()) / max(1e-6, float(total.max() - total.min()))


def tile_to(tile: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Repeat a periodic tile over width x height from a random phase."""
    th, tw = tile.shape[:2]
    oy, ox = int(rng.integers(th)), int(rng.integers(tw))
    reps = (int(np.ceil((height + oy) / th)), int(np.ceil((width + ox) / tw))) + (1,) * (tile.ndim - 2)
    return np.tile(tile, reps)[oy : oy + height, ox : ox + width]


def detail(rng: np.random.Generator, width: int, height: int, fine: int = 2) -> np.ndarray:
    """Full-frame fine texture in [0, 1] from two periodic tiles of co-prime-ish periods (no visible repeat)."""
    cells_a = tuple(c for c in (32, 16, 8, 4, 2, 1) if c >= fine)
    cells_b = tuple(c for c in (24, 12, 6, 3) if c >= fine)
    a = tile_to(periodic_noise(rng, 256, cells_a), width, height, rng)
    b = tile_to(periodic_noise(rng, 192, cells_b), width, height, rng)
    return 0.5 * (a + b)
