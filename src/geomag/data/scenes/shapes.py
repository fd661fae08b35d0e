"""Object sprites: each class drawn analytically in a small local patch (never full-frame).

A sprite is (mask, rgb): `mask` bool h x w is exactly the pixels the object paints, `rgb` their colour.
Coordinates: u along the object's length (front = +u), v across it; `angle` rotates u from the x axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

COLOURS = {
    "white": (232, 232, 228),
    "gray": (140, 142, 146),
    "black": (38, 40, 44),
    "red": (178, 44, 38),
    "blue": (44, 84, 168),
    "yellow": (226, 192, 44),
    "green": (58, 132, 72),
    "orange": (214, 118, 44),
    "brown": (128, 84, 56),
}


@dataclass
class Sprite:
    mask: np.ndarray  # bool (h, w)
    rgb: np.ndarray  # float32 (h, w, 3)
    cx: int  # patch pixel that sits on the object's centre
    cy: int


def _frame(length: float, width: float, angle: float) -> tuple[np.ndarray, np.ndarray, int]:
    r = int(np.ceil(0.5 * np.hypot(length, width))) + 1
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    return xx * c + yy * s, -xx * s + yy * c, r


def _finish(
    mask: np.ndarray, rgb: np.ndarray, r: int, rng: np.random.Generator, grain: float = 0.04
) -> Sprite:
    rgb = rgb * (1 + grain * rng.standard_normal(mask.shape, dtype=np.float32))[..., None]
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:  # sub-pixel object: keep the centre pixel so it exists in the image
        mask = mask.copy()
        mask[r, r] = True
        ys, xs = np.array([r]), np.array([r])
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return Sprite(mask[y0:y1, x0:x1], np.clip(rgb[y0:y1, x0:x1], 0, 255), r - x0, r - y0)


def _paint(shape: tuple[int, int], colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.float32), (*shape, 3)).copy()


def airplane(length: float, width: float, angle: float, colour, rng, **_) -> Sprite:
    u, v, r = _frame(length, max(length, width), angle)
    h = length / 2
    t, s = u / h, np.abs(v) / h
    span = width / length  # half-span in units of half-length
    fw = 0.075
    fus = (t > -1) & (t < 1) & (s < fw * np.clip((1 - t) / 0.25, 0, 1) ** 0.6)
    le = 0.28 - 0.55 * s  # swept leading edge
    chord = 0.3 - 0.18 * s / span
    wings = (s < span) & (t < le) & (t > le - chord)
    tail_le = -0.72 - 0.4 * s
    tail = (s < 0.32 * span) & (t < tail_le) & (t > tail_le - 0.16)
    eng = ((t - (0.2 - 0.55 * 0.38 * span)) / 0.1) ** 2 + ((s - 0.38 * span) / 0.04) ** 2 < 1
    mask = fus | wings | tail | eng
    rgb = _paint(mask.shape, colour)
    rgb[wings & ~fus] *= 0.93
    rgb[eng] *= 0.6
    rgb[fus & (t > 0.82)] *= 0.8  # cockpit
    return _finish(mask, rgb, r, rng, 0.02)


def ship(length: float, width: float, angle: float, colour, rng, **_) -> Sprite:
    u, v, r = _frame(length, width, angle)
    t, s = u / (length / 2), np.abs(v) / (width / 2)
    profile = np.where(t < 0.35, 1.0, np.sqrt(np.clip((1 - t) / 0.65, 0, 1)))
    stern = np.where(t < -0.9, np.sqrt(np.clip((t + 1) / 0.1, 0, 1)) * 0.3 + 0.7, 1.0)
    mask = (t > -1) & (s < profile * stern)
    rgb = _paint(mask.shape, colour)
    deck = (s < 0.72 * profile) & mask
    rgb[deck] *= 0.9 if sum(colour) > 500 else 1.12
    bridge = (t > -0.85) & (t < -0.5) & (s < 0.62)
    rgb[bridge] = (
        np.array([235, 235, 232], np.float32) if sum(colour) < 500 else np.array([150, 152, 156], np.float32)
    )
    if length > 40:  # cargo hatches
        hatch = (t > -0.4) & (t < 0.6) & (s < 0.5) & ((np.floor((t + 0.4) * 7) % 2) == 0)
        rgb[hatch] *= 0.75
    return _finish(mask, rgb, r, rng, 0.03)


def vehicle(length: float, width: float, angle: float, colour, rng, **_) -> Sprite:
    u, v, r = _frame(length, width, angle)
    t, s = u / (length / 2), np.abs(v) / (width / 2)
    corner = np.clip(np.abs(t) - 0.8, 0, None) / 0.2
    mask = (np.abs(t) < 1) & (s < np.sqrt(np.clip(1 - corner**2, 0, 1)) * 0.95 + 0.05)
    rgb = _paint(mask.shape, colour)
    rgb[(t > 0.2) & (t < 0.45) & (s < 0.85)] = np.array([40, 44, 52], np.float32)
    rgb[(t > -0.7) & (t < -0.55) & (s < 0.8)] = np.array([50, 54, 60], np.float32)
    return _finish(mask, rgb, r, rng, 0.03)


def storage_tank(length: float, width: float, angle: float, colour, rng, sun=(1.0, 0.0), **_) -> Sprite:
    u, v, r = _frame(length, length, 0.0)
    rad = np.sqrt(u * u + v * v) / (length / 2)
    mask = rad < 1
    rgb = _paint(mask.shape, colour)
    lit = (u * sun[0] + v * sun[1]) / (length / 2)
    rgb *= (1.0 - 0.12 * lit)[..., None]
    rgb[(rad > 0.86) & mask] *= 0.8
    if rng.random() < 0.5:  # floating roof, slightly darker disc
        rgb[rad < 0.7] *= 0.9
    return _finish(mask, rgb, r, rng, 0.02)


def _lines(u, v, segments, lw) -> np.ndarray:
    """Union of axis-aligned line segments ((u0, v0, u1, v1) in px) of width lw."""
    out = np.zeros(u.shape, bool)
    for u0, v0, u1, v1 in segments:
        out |= (
            (u >= min(u0, u1) - lw / 2)
            & (u <= max(u0, u1) + lw / 2)
            & (v >= min(v0, v1) - lw / 2)
            & (v <= max(v0, v1) + lw / 2)
        )
    return out


def tennis_court(length: float, width: float, angle: float, colour, rng, gsd=0.5, **_) -> Sprite:
    u, v, r = _frame(length, width, angle)
    mask = (np.abs(u) < length / 2) & (np.abs(v) < width / 2)
    rgb = _paint(mask.shape, colour)
    k = length / 36.0  # px per metre of this court
    inner = (np.abs(u) < 11.9 * k) & (np.abs(v) < 5.5 * k)
    rgb[mask & ~inner] *= 0.78
    lw = max(1.0, 0.12 * k)
    a, b, c, d = 11.885 * k, 5.485 * k, 4.115 * k, 6.4 * k
    segs = [
        (-a, -b, a, -b),
        (-a, b, a, b),
        (-a, -b, -a, b),
        (a, -b, a, b),
        (-a, -c, a, -c),
        (-a, c, a, c),
        (-d, -c, -d, c),
        (d, -c, d, c),
        (-d, 0, d, 0),
        (0, -b - 0.5 * k, 0, b + 0.5 * k),
    ]
    rgb[_lines(u, v, segs, lw) & mask] = np.array([236, 236, 236], np.float32)
    return _finish(mask, rgb, r, rng, 0.02)


def basketball_court(length: float, width: float, angle: float, colour, rng, **_) -> Sprite:
    u, v, r = _frame(length, width, angle)
    mask = (np.abs(u) < length / 2) & (np.abs(v) < width / 2)
    rgb = _paint(mask.shape, colour)
    k = length / 32.0
    a, b = 14 * k, 7.5 * k
    inner = (np.abs(u) < a) & (np.abs(v) < b)
    rgb[mask & ~inner] *= 0.8
    lw = max(1.0, 0.1 * k)
    segs = [
        (-a, -b, a, -b),
        (-a, b, a, b),
        (-a, -b, -a, b),
        (a, -b, a, b),
        (0, -b, 0, b),
        (-a, -2.45 * k, -a + 5.8 * k, -2.45 * k),
        (-a, 2.45 * k, -a + 5.8 * k, 2.45 * k),
        (-a + 5.8 * k, -2.45 * k, -a + 5.8 * k, 2.45 * k),
        (a, -2.45 * k, a - 5.8 * k, -2.45 * k),
        (a, 2.45 * k, a - 5.8 * k, 2.45 * k),
        (a - 5.8 * k, -2.45 * k, a - 5.8 * k, 2.45 * k),
    ]
    lines = _lines(u, v, segs, lw)
    rc = np.sqrt(u * u + v * v)
    lines |= np.abs(rc - 1.8 * k) < lw / 2
    for sgn in (-1, 1):
        rb = np.sqrt((u - sgn * (a - 1.575 * k)) ** 2 + v * v)
        lines |= (np.abs(rb - 6.75 * k) < lw / 2) & (sgn * u < a - 1.575 * k) & inner
    rgb[lines & mask] = np.array([236, 236, 236], np.float32)
    return _finish(mask, rgb, r, rng, 0.02)


def swimming_pool(length: float, width: float, angle: float, colour, rng, **_) -> Sprite:
    u, v, r = _frame(length, width, angle)
    t, s = np.abs(u) / (length / 2), np.abs(v) / (width / 2)
    ex = 4.0
    shape = t**ex + s**ex
    mask = shape < 1
    rgb = _paint(mask.shape, colour)
    rgb *= (1.1 - 0.2 * np.clip(u / (length / 2), -1, 1) * 0.5)[..., None]
    edge = max(1.0, 0.5 / max(1e-3, min(length, width)) * 10)
    rim = mask & ((np.abs(u) > length / 2 - edge) | (np.abs(v) > width / 2 - edge) | (shape > 0.8))
    rgb[rim] = np.array([214, 216, 210], np.float32)
    return _finish(mask, rgb, r, rng, 0.02)


def building(length: float, width: float, angle: float, colour, rng, roof="gable", **_) -> Sprite:
    u, v, r = _frame(length, width, angle)
    mask = (np.abs(u) < length / 2) & (np.abs(v) < width / 2)
    if roof == "lshape":  # cut one corner away
        mask &= ~((u > length * 0.1) & (v > width * 0.05))
    rgb = _paint(mask.shape, colour)
    if roof == "gable":
        rgb[v > 0] *= 0.78
        rgb[np.abs(v) < 0.6] *= 1.06
    else:
        edge = max(1.0, 0.04 * min(length, width))
        rgb[mask & ((np.abs(u) > length / 2 - edge) | (np.abs(v) > width / 2 - edge))] *= 0.82
        if min(length, width) > 12:
            for _ in range(int(rng.integers(2, 7))):
                bu, bv = rng.uniform(-0.35, 0.35) * length, rng.uniform(-0.35, 0.35) * width
                bs = max(1.0, 0.05 * min(length, width))
                rgb[(np.abs(u - bu) < bs) & (np.abs(v - bv) < bs) & mask] *= 0.72
    return _finish(mask, rgb, r, rng, 0.025)


def harbor(length: float, width: float, angle: float, colour, rng, **_) -> Sprite:
    u, v, r = _frame(length, width * 3, angle)
    body = (np.abs(u) < length / 2) & (np.abs(v) < width / 2)
    head = (u > length / 2 - width * 1.2) & (u < length / 2) & (np.abs(v) < width * 1.5)
    mask = body | head
    rgb = _paint(mask.shape, colour)
    lw = max(1.0, width * 0.1)
    rgb[mask & (np.abs(np.abs(v) - width / 2 + lw) < lw / 2)] *= 0.85
    return _finish(mask, rgb, r, rng, 0.03)


def bridge(length: float, width: float, angle: float, colour, rng, **_) -> Sprite:
    u, v, r = _frame(length, width, angle)
    mask = (np.abs(u) < length / 2) & (np.abs(v) < width / 2)
    rgb = _paint(mask.shape, colour)
    lw = max(1.0, width * 0.07)
    rgb[mask & (np.abs(v) > width / 2 - lw)] *= 1.2  # parapets
    dash = (np.floor(u / max(2.0, width * 0.6)) % 2 == 0) & (np.abs(v) < lw / 2 + 0.3)
    rgb[mask & dash] = np.array([226, 226, 220], np.float32)
    return _finish(mask, rgb, r, rng, 0.03)


def tree(length: float, width: float, angle: float, colour, rng, **_) -> Sprite:
    u, v, r = _frame(length, length, 0.0)
    rad = np.sqrt(u * u + v * v) / (length / 2)
    lobes = 0.85 + 0.15 * np.cos(5 * np.arctan2(v, u) + rng.uniform(0, 6.28))
    mask = rad < lobes
    rgb = _paint(mask.shape, colour)
    rgb *= (1.15 - 0.45 * np.clip(rad, 0, 1) + 0.15 * np.clip((u - v) / (length / 2), -1, 1))[..., None]
    return _finish(mask, rgb, r, rng, 0.12)


DRAW: dict[str, Callable[..., Sprite]] = {
    "airplane": airplane,
    "ship": ship,
    "vehicle": vehicle,
    "storage tank": storage_tank,
    "tennis court": tennis_court,
    "basketball court": basketball_court,
    "swimming pool": swimming_pool,
    "building": building,
    "harbor": harbor,
    "bridge": bridge,
    "tree": tree,
}
