"""Compositing: terrain, then every object in drawing order with its soft cast shadow, into one image.

An id map records which object painted each pixel last, so an object's mask is exactly its visible
pixels (occlusion included). Objects are drawn into their own small patch of the frame only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from geomag.data.scenes.classes import CLASSES
from geomag.data.scenes.layout import Spec
from geomag.data.scenes.shapes import COLOURS, DRAW, Sprite

TREE_GREENS = [(50, 78, 42), (62, 90, 48), (44, 68, 40), (70, 96, 56)]
BACKGROUND = -1


def z_order(spec: Spec) -> float:
    return 2.5 if spec.category == "tree" else CLASSES[spec.category].z


def draw_sprite(
    spec: Spec,
    gsd: float,
    sun: tuple[float, float],
    rng: np.random.Generator,
    flat: tuple[int, int, int] | None = None,
) -> Sprite:
    """The object's pixels; `flat` paints them one plain colour (used to check masks against drawn pixels)."""
    if spec.category == "tree":
        colour = TREE_GREENS[int(rng.integers(len(TREE_GREENS)))]
    else:
        colour = COLOURS[spec.colour]
    sprite = DRAW[spec.category](
        spec.length, spec.width, spec.angle, colour, rng, gsd=gsd, sun=sun, **spec.extra
    )
    if flat is not None:
        sprite.rgb[:] = np.array(flat, np.float32)
    return sprite


def _soft(mask: np.ndarray, pad: int) -> np.ndarray:
    """Box-blurred float copy of a mask, padded by `pad` (soft shadow edge)."""
    m = np.pad(mask.astype(np.float32), pad + 1)
    out = np.zeros_like(m)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out += np.roll(np.roll(m, dy, 0), dx, 1)
    return out / 9.0


def composite(
    image: np.ndarray,
    specs: list[Spec],
    gsd: float,
    sun_azimuth: float,
    sun_factor: float,
    rng: np.random.Generator,
    flat: dict[int, tuple[int, int, int]] | None = None,
) -> tuple[np.ndarray, list[tuple[int, int, int, int] | None]]:
    """Draw `specs` (already in drawing order) into `image` (uint8 H x W x 3, modified in place).

    Returns the id map (index into specs, BACKGROUND elsewhere) and each spec's patch box (or None when
    it fell outside the frame). `flat` maps spec index -> plain colour for mask checks.
    """
    h, w = image.shape[:2]
    idmap = np.full((h, w), BACKGROUND, np.int32)
    boxes: list[tuple[int, int, int, int] | None] = []
    sun = (float(np.cos(sun_azimuth)), float(np.sin(sun_azimuth)))
    for k, spec in enumerate(specs):
        sprite = draw_sprite(spec, gsd, (-sun[0], -sun[1]), rng, None if flat is None else flat.get(k))
        sh, sw = sprite.mask.shape
        x0, y0 = round(spec.cx) - sprite.cx, round(spec.cy) - sprite.cy
        height_px = CLASSES[spec.category].height_m / gsd if spec.category != "tree" else spec.length * 0.8
        if height_px * sun_factor >= 0.7:
            _shadow(image, sprite.mask, x0, y0, height_px * sun_factor, sun)
        bx0, by0, bx1, by1 = max(0, x0), max(0, y0), min(w, x0 + sw), min(h, y0 + sh)
        if bx1 <= bx0 or by1 <= by0:
            boxes.append(None)
            continue
        m = sprite.mask[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0]
        region = image[by0:by1, bx0:bx1]
        region[m] = sprite.rgb[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0][m].astype(np.uint8)
        idmap[by0:by1, bx0:bx1][m] = k
        boxes.append((bx0, by0, bx1, by1))
    return idmap, boxes


def _shadow(
    image: np.ndarray, mask: np.ndarray, x0: int, y0: int, length: float, sun: tuple[float, float]
) -> None:
    """Darken the ground where the object's footprint, pushed away from the sun, falls (soft edge)."""
    h, w = image.shape[:2]
    dx, dy = round(sun[0] * length), round(sun[1] * length)
    steps = max(1, int(max(abs(dx), abs(dy))))
    pad = steps + 2
    m = np.zeros((mask.shape[0] + 2 * pad, mask.shape[1] + 2 * pad), bool)
    for i in range(1, steps + 1, max(1, steps // 6)):  # sweep: a tall object's shadow is a smear
        oy, ox = pad + round(dy * i / steps), pad + round(dx * i / steps)
        m[oy : oy + mask.shape[0], ox : ox + mask.shape[1]] |= mask
    soft = _soft(m, 0)[1:-1, 1:-1]
    sx0, sy0 = x0 - pad, y0 - pad
    bx0, by0, bx1, by1 = max(0, sx0), max(0, sy0), min(w, sx0 + m.shape[1]), min(h, sy0 + m.shape[0])
    if bx1 <= bx0 or by1 <= by0:
        return
    s = soft[by0 - sy0 : by1 - sy0, bx0 - sx0 : bx1 - sx0]
    region = image[by0:by1, bx0:bx1]
    region[:] = (region.astype(np.float32) * (1 - 0.5 * s)[..., None]).astype(np.uint8)


def camera(image: np.ndarray, rng: np.random.Generator, blur: float = 0.6) -> Image.Image:
    """Slight optical blur, as every aerial image has."""
    return Image.fromarray(image).filter(ImageFilter.GaussianBlur(blur))
