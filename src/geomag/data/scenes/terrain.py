"""Land cover: the ground every object stands on (grass, forest, soil, sand, water, roads, pavement, fields).

`render_terrain(plan, ...)` turns a TerrainPlan (what goes where, decided by the layout) into a textured
RGB image and a land-cover code map. It works at a reduced "work" resolution for big frames (ground
texture is soft anyway); objects are drawn later at full resolution.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from geomag.data.scenes import noise
from geomag.data.scenes.scene import LANDCOVER, LC

# Base colour (RGB), large-scale variation and fine-texture strength per land cover.
BASE = {
    "grass": (100, 112, 72),
    "forest": (44, 60, 40),
    "soil": (146, 126, 100),
    "sand": (200, 188, 160),
    "water": (36, 56, 62),
    "road": (88, 89, 91),
    "paved": (152, 150, 144),
    "cropland": (120, 126, 80),
}
LOW_VAR = {
    "grass": 0.45,
    "forest": 0.35,
    "soil": 0.35,
    "sand": 0.2,
    "water": 0.15,
    "road": 0.15,
    "paved": 0.3,
    "cropland": 0.25,
}
FINE_VAR = {
    "grass": 0.5,
    "forest": 0.3,
    "soil": 0.45,
    "sand": 0.25,
    "water": 0.06,
    "road": 0.25,
    "paved": 0.2,
    "cropland": 0.35,
}
GRAIN = 0.06  # per-pixel sensor grain (relative)
NATURAL = ("grass", "forest", "soil", "sand", "cropland")
CROP_COLOURS = [
    (118, 130, 78),
    (146, 142, 96),
    (96, 112, 66),
    (160, 140, 106),
    (112, 100, 78),
    (134, 142, 100),
    (176, 164, 128),
]


@dataclass
class TerrainPlan:
    """Geometry of the ground, in FULL-resolution pixel coordinates."""

    cover: list[tuple[str, float]]  # base land covers and their shares, split by a noise field
    patch_cell: float = 200.0  # size of base land-cover patches (px)
    water: tuple | None = (
        None  # ("coast", normal_angle_rad, offset_frac) | ("river", points, width) | ("pond", cx, cy, rx, ry)
    )
    shore_noise: float = 0.08
    sand_band: float = 0.0  # beach width (px) along water
    farmland: tuple | None = None  # (angle_rad, parcel_w_px, parcel_h_px)
    roads: list[tuple[list[tuple[float, float]], float]] = field(default_factory=list)  # (points, width px)
    paved: list[list[tuple[float, float]]] = field(default_factory=list)  # polygons
    markings: list[tuple[list[tuple[float, float]], float, tuple[int, int, int], float]] = field(
        default_factory=list
    )
    # (points, width px, rgb, dash length px or 0 for solid)


def _draw_mask(w: int, h: int, scale: float, draw_fn) -> np.ndarray:
    img = Image.new("L", (w, h), 0)
    draw_fn(ImageDraw.Draw(img), scale)
    return np.asarray(img) > 127


def _scaled(points, s):
    return [(x / s, y / s) for x, y in points]


def _water_field(plan: TerrainPlan, w: int, h: int, s: float, rng: np.random.Generator) -> np.ndarray | None:
    """Signed field: > 0 is water. Smooth so thresholds give natural shorelines."""
    if plan.water is None:
        return None
    kind = plan.water[0]
    wobble = noise.fbm(rng, w, h, cell=max(w, h) / 3, octaves=5) - 0.5
    if kind == "coast":
        _, ang, off = plan.water
        xs = np.arange(w, dtype=np.float32)[None, :] - w / 2
        ys = np.arange(h, dtype=np.float32)[:, None] - h / 2
        d = xs * np.float32(np.cos(ang)) + ys * np.float32(np.sin(ang))
        half = 0.5 * (abs(w * np.cos(ang)) + abs(h * np.sin(ang)))
        return d * np.float32(1 / half) - np.float32(off) + np.float32(plan.shore_noise * 2) * wobble
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    if kind == "river":
        _, pts, width = plan.water
        draw.line(_scaled(pts, s), fill=255, width=max(1, int(width / s)), joint="curve")
        blur = max(2.0, width / s / 4)
    else:
        _, cx, cy, rx, ry = plan.water
        draw.ellipse([(cx - rx) / s, (cy - ry) / s, (cx + rx) / s, (cy + ry) / s], fill=255)
        blur = max(2.0, min(rx, ry) / s / 3)
    f = np.asarray(img.filter(ImageFilter.GaussianBlur(blur)), np.float32) / 255.0
    return (f - 0.5) * 2 + plan.shore_noise * 4 * wobble


def render_terrain(
    plan: TerrainPlan, width: int, height: int, rng: np.random.Generator, work_scale: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Return (rgb float32 H x W x 3 in 0..255, landcover uint8 H x W) at work resolution."""
    s = float(work_scale)
    w, h = int(np.ceil(width / s)), int(np.ceil(height / s))
    low = noise.fbm(rng, w, h, cell=plan.patch_cell / s, octaves=4)
    fine = noise.detail(rng, w, h)

    # Base covers: split the low-frequency field by its quantiles.
    names = [n for n, _ in plan.cover]
    shares = np.cumsum([p for _, p in plan.cover], dtype=np.float64)
    shares /= shares[-1]
    split_field = noise.fbm(rng, w, h, cell=plan.patch_cell / s, octaves=4)
    cuts = np.quantile(split_field[::4, ::4], shares[:-1]) if len(names) > 1 else []
    lc = np.full((h, w), LC[names[0]], np.uint8)
    for i, cut in enumerate(cuts):
        lc[split_field > cut] = LC[names[i + 1]]

    if plan.farmland is not None:
        ang, pw, ph = plan.farmland
        xs = np.arange(w, dtype=np.float32)[None, :]
        ys = np.arange(h, dtype=np.float32)[:, None]
        u = xs * np.float32(np.cos(ang) * s / pw) + ys * np.float32(np.sin(ang) * s / pw)
        v = xs * np.float32(-np.sin(ang) * s / ph) + ys * np.float32(np.cos(ang) * s / ph)
        iu, iv = np.floor(u).astype(np.int32), np.floor(v).astype(np.int32)
        parcel = (iu * 7919 + iv * 104729) % 997
        crop = (lc == LC["grass"]) | (lc == LC["soil"])
        lc[crop] = LC["cropland"]
    water = _water_field(plan, w, h, s, rng)
    if water is not None:
        if plan.sand_band > 0:
            lc[(water > -plan.sand_band / max(w, h) * s * 2) & (water <= 0)] = LC["sand"]
        lc[water > 0] = LC["water"]
    if plan.paved:
        paved = _draw_mask(w, h, s, lambda d, sc: [d.polygon(_scaled(p, sc), fill=255) for p in plan.paved])
        lc[paved] = LC["paved"]
    if plan.roads:
        roads = _draw_mask(
            w,
            h,
            s,
            lambda d, sc: [
                d.line(_scaled(p, sc), fill=255, width=max(1, round(wd / sc)), joint="curve")
                for p, wd in plan.roads
            ],
        )
        lc[roads & (lc != LC["water"])] = LC["road"]  # over water a road is a bridge (an object)

    # Colour: per-class base with large-scale variation; natural covers blend softly into each other.
    table = np.array([BASE[n] for n in LANDCOVER], np.float32)
    low_amp = np.array([LOW_VAR[n] for n in LANDCOVER], np.float32)[lc]
    rgb = table[lc] * (1.0 + low_amp * (low - 0.5))[..., None]
    if plan.farmland is not None:
        cropm = lc == LC["cropland"]
        cols = np.array(CROP_COLOURS, np.float32)
        rgb[cropm] = cols[parcel[cropm] % len(cols)] * (1.0 + 0.25 * (low[cropm, None] - 0.5))
    natural = np.isin(lc, [LC[n] for n in NATURAL])
    soft = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(max(1.0, 2.5 / s))
    )
    rgb[natural] = np.asarray(soft, np.float32)[natural]

    fine_amp = np.array([FINE_VAR[n] for n in LANDCOVER], np.float32)[lc]
    shade = 1.0 + fine_amp * (fine - 0.5) + GRAIN * (rng.random((h, w), dtype=np.float32) - 0.5)
    forest = lc == LC["forest"]
    if forest.any():
        crowns = noise.tile_to(_crown_tile(rng, max(2.5, 4.0 / s)), w, h, rng)
        shade[forest] *= 0.5 + 0.9 * crowns[forest]
    if plan.farmland is not None:
        along = np.where(parcel[cropm] % 2 == 0, u[cropm] * pw, v[cropm] * ph) / s
        stripes = 0.5 + 0.5 * np.sin(along * (2 * np.pi / max(2.5, 5.0 / s)))
        edge = (
            np.minimum(
                np.minimum(u[cropm] % 1, 1 - u[cropm] % 1) * pw,
                np.minimum(v[cropm] % 1, 1 - v[cropm] % 1) * ph,
            )
            / s
        )
        shade[cropm] *= (0.93 + 0.1 * stripes) * np.where(edge < 1.2, 0.8, 1.0)
    if water is not None:
        wm = lc == LC["water"]
        depth = np.clip(water[wm] / 0.25, 0, 1)[:, None]
        shallow = np.array([72, 98, 92], np.float32)
        rgb[wm] = rgb[wm] * depth + shallow * (1 - depth)
        shade[wm] = 1.0 + 0.1 * (low[wm] - 0.5) + 0.05 * (fine[wm] - 0.5)
    rgb *= shade[..., None]

    if plan.markings:
        rgb = _draw_markings(rgb, plan, s)
    return rgb, lc


def _crown_tile(rng: np.random.Generator, radius: float) -> np.ndarray:
    """A periodic 256 x 256 canopy texture: overlapping round crowns lit from one side, dark gaps."""
    size = 256
    tile = np.zeros((size, size), np.float32)
    n = int(size * size / (radius * radius * 2.2))
    r = int(np.ceil(radius * 1.3))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    for cx, cy, rad in zip(
        rng.integers(0, size, n), rng.integers(0, size, n), rng.uniform(0.7, 1.3, n) * radius, strict=True
    ):
        d = np.sqrt(xx * xx + yy * yy) / rad
        crown = np.clip(1 - d, 0, 1) ** 0.5 * (0.75 + 0.25 * np.clip((xx - yy) / rad, -1, 1))
        ys = (np.arange(cy - r, cy + r + 1)) % size
        xs = (np.arange(cx - r, cx + r + 1)) % size
        sub = tile[np.ix_(ys, xs)]
        tile[np.ix_(ys, xs)] = np.maximum(sub, crown)
    return tile


def _draw_markings(rgb: np.ndarray, plan: TerrainPlan, s: float) -> np.ndarray:
    """Paint road centre lines, runway stripes and parking bays (solid or dashed)."""
    _h, _w = rgb.shape[:2]
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for pts, width, colour, dash in plan.markings:
        pts = _scaled(pts, s)
        lw = max(1, round(width / s))
        if dash <= 0:
            draw.line(pts, fill=tuple(colour), width=lw)
            continue
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            length = float(np.hypot(x1 - x0, y1 - y0))
            step = dash / s
            for t in np.arange(0, length, 2 * step):
                a, b = t / length, min(1.0, (t + step) / length)
                draw.line(
                    [(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)],
                    fill=tuple(colour),
                    width=lw,
                )
    return np.asarray(img, np.float32)
