"""Compose one canvas: a real background, real objects pasted on it, and the exact visible masks.

Every paste writes the object's footprint (its transformed alpha > 0.5) into an instance-id map,
so a later paste takes the covered pixels from an earlier one, and the visible masks are read from
that map: they are the ground truth whatever occludes what. The blend itself uses a feathered alpha
(soft edges, a pixel or two); the mask stays the hard footprint, the 0.5 level of that feather.
A paste that would leave an earlier object with less than KEEP of its pixels, or that would itself
sit more than OVERLAP on other objects, is not made, so no annotated object is mostly hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from geomag.data.composites.backgrounds import Background
from geomag.data.composites.objects import ObjectPatch

KEEP = 0.7  # an earlier object keeps at least this share of its pixels
OVERLAP = 0.15  # a new object lies at most this share on earlier ones
MIN_SIDE = 6  # canvas px: smaller pastes are not made
MAX_UPSCALE = 3.0  # an object is not enlarged more than this (it would be a blur)
MAX_SHARE = 0.45  # an object's long side is at most this share of the canvas side
TILE_UPSCALE = 1.8  # a background tile spans at most this many canvas px per original px
OVERLAP_PX = 48  # crossfade between background tiles
# long side in metres, where the source does not say its resolution (NWPU, GeoPixelD)
CLASS_METRES = {
    "airplane": (25.0, 70.0),
    "ship": (15.0, 120.0),
    "storage tank": (10.0, 40.0),
    "baseball diamond": (70.0, 120.0),
    "tennis court": (28.0, 40.0),
    "basketball court": (26.0, 36.0),
    "ground track field": (150.0, 200.0),
    "harbor": (60.0, 300.0),
    "bridge": (60.0, 300.0),
    "vehicle": (4.0, 12.0),
    "tree": (3.0, 12.0),
}


@dataclass
class Pasted:
    """One pasted object; `footprint` is the full-canvas mask at paste time, `visible` after all pastes."""

    index: int
    category: str
    source: str
    footprint: np.ndarray
    visible: np.ndarray | None = None

    @property
    def area(self) -> int:
        return int((self.visible if self.visible is not None else self.footprint).sum())


def background_canvas(
    pool: list[Background], first: Background, side: int, rng: np.random.Generator
) -> tuple[np.ndarray, float, float]:
    """(uint8 canvas side x side x 3, canvas px per original px, canvas px per stored px). Up to TILE_UPSCALE one image is
    enlarged to the canvas; a larger canvas is a k x k grid of images of `first`'s group, crossfaded."""
    k = max(1, int(np.ceil(side / (first.native_side * TILE_UPSCALE))))
    group = [b for b in pool if b.group == first.group]
    step = int(np.ceil(side / k))
    tile = step + (OVERLAP_PX if k > 1 else 0)
    canvas = Image.new("RGB", (side, side))
    upscale = 1.0
    for i in range(k):
        for j in range(k):
            bg = first if i == j == 0 else group[int(rng.integers(len(group)))]
            im = Image.open(bg.path).convert("RGB")
            w, h = im.size
            crop = min(w, h, bg.native_side)
            if i == j == 0:
                upscale = step / crop
            x0, y0 = int(rng.integers(w - crop + 1)), int(rng.integers(h - crop + 1))
            im = im.crop((x0, y0, x0 + crop, y0 + crop)).resize((tile, tile), Image.BICUBIC)
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            ramp = np.ones((tile, tile), np.float32)
            r = np.minimum(1.0, (np.arange(tile) + 1) / OVERLAP_PX)
            if j > 0:
                ramp *= r[None, :]
            if i > 0:
                ramp *= r[:, None]
            canvas.paste(im, (j * step, i * step), Image.fromarray((255 * ramp).astype(np.uint8)))
    return np.asarray(canvas).copy(), step / first.native_side, upscale


def jitter_colour(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and per-channel gain, each within about 15 %."""
    x = rgb.astype(np.float32)
    grey = x.mean(-1, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.8, 1.2)  # saturation
    m = x.mean()
    x = m + (x - m) * rng.uniform(0.85, 1.15)  # contrast
    x = x * rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3)  # brightness, gain
    return np.clip(x, 0, 255).astype(np.uint8)


def transform_patch(
    rgba: np.ndarray, scale: float, angle: float, rng: np.random.Generator | None = None, blur: float = 0.0
) -> np.ndarray:
    """Scaled, rotated (degrees), colour-jittered (if rng) and blurred copy; alpha is hard (0/255)."""
    a = rgba[..., 3] > 127
    rgb = rgba[..., :3].copy()
    rgb[~a] = rgb[a].mean(0).astype(np.uint8)  # no dark fringe from the transparent pixels
    if rng is not None:
        rgb = jitter_colour(rgb, rng)
    h, w = a.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    filt = Image.LANCZOS if scale < 1 else Image.BICUBIC
    im = Image.fromarray(rgb).resize(size, filt)
    al = Image.fromarray(a.astype(np.uint8) * 255).resize(size, Image.BILINEAR)
    if angle:
        im = im.rotate(angle, Image.BICUBIC, expand=True)
        al = al.rotate(angle, Image.BILINEAR, expand=True)
    if blur > 0:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    out = np.zeros((im.height, im.width, 4), np.uint8)
    out[..., :3] = np.asarray(im)
    out[..., 3] = (np.asarray(al) > 127) * 255
    ys, xs = np.nonzero(out[..., 3])
    if not len(xs):
        return out[:0, :0]
    return out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def paste_patch(
    canvas: np.ndarray, ids: np.ndarray, rgba: np.ndarray, x0: int, y0: int, index: int, feather: float = 1.0
) -> np.ndarray:
    """Paste `rgba` with its top-left corner at (x0, y0), in place; returns the full-canvas footprint
    (alpha > 127) and writes `index` there into `ids`. `feather` (px) softens the blend, not the mask."""
    h, w = rgba.shape[:2]
    fp = rgba[..., 3] > 127
    pad = int(np.ceil(2 * feather))
    ya, yb = max(0, y0 - pad), min(canvas.shape[0], y0 + h + pad)
    xa, xb = max(0, x0 - pad), min(canvas.shape[1], x0 + w + pad)
    win_fp = np.zeros((yb - ya, xb - xa), bool)
    win_rgb = np.zeros((yb - ya, xb - xa, 3), np.float32)
    sy, sx = y0 - ya, x0 - xa
    cy0, cx0 = max(0, -sy), max(0, -sx)
    cy1, cx1 = min(h, win_fp.shape[0] - sy), min(w, win_fp.shape[1] - sx)
    win_fp[sy + cy0 : sy + cy1, sx + cx0 : sx + cx1] = fp[cy0:cy1, cx0:cx1]
    win_rgb[sy + cy0 : sy + cy1, sx + cx0 : sx + cx1] = rgba[cy0:cy1, cx0:cx1, :3]
    if feather > 0:
        alpha_img = Image.fromarray(win_fp.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(feather))
        alpha = np.asarray(alpha_img, np.float32)[..., None] / 255
        # colours just outside the footprint: the object's edge, spread outwards
        spread = Image.fromarray(win_rgb.astype(np.uint8)).filter(ImageFilter.MaxFilter(2 * pad + 1))
        win_rgb = np.where(win_fp[..., None], win_rgb, np.asarray(spread, np.float32))
    else:
        alpha = win_fp[..., None].astype(np.float32)
    region = canvas[ya:yb, xa:xb].astype(np.float32)
    canvas[ya:yb, xa:xb] = np.clip(region * (1 - alpha) + win_rgb * alpha, 0, 255).astype(np.uint8)
    ids[ya:yb, xa:xb][win_fp] = index
    full = np.zeros(ids.shape, bool)
    full[ya:yb, xa:xb] = win_fp
    return full


def place(
    ids: np.ndarray,
    fp: np.ndarray,
    areas: dict[int, int],
    visible: dict[int, int],
    rng: np.random.Generator,
    tries: int = 30,
) -> tuple[int, int, dict[int, int]] | None:
    """A top-left corner where footprint `fp` fits inside the canvas within the occlusion rules, and
    the pixels it would take from each earlier object ({index: count})."""
    H, W = ids.shape
    h, w = fp.shape
    if h >= H or w >= W:
        return None
    n = int(fp.sum())
    for _ in range(tries):
        x0, y0 = int(rng.integers(W - w + 1)), int(rng.integers(H - h + 1))
        under = ids[y0 : y0 + h, x0 : x0 + w][fp]
        under = under[under >= 0]
        if len(under) > OVERLAP * n:
            continue
        hit = dict(zip(*(v.tolist() for v in np.unique(under, return_counts=True)), strict=True))
        if any(visible[j] - c < KEEP * areas[j] for j, c in hit.items()):
            continue
        return x0, y0, hit
    return None


def target_scale(obj: ObjectPatch, px_per_metre: float, rng: np.random.Generator) -> float:
    """Scale that gives the object its real size on the canvas (source gsd, else the class's size)."""
    if obj.gsd:
        return obj.gsd * px_per_metre * rng.uniform(0.9, 1.1)
    lo, hi = CLASS_METRES[obj.category]
    return rng.uniform(lo, hi) * px_per_metre / obj.long_side


def compose(
    canvas: np.ndarray,
    plan: list[ObjectPatch],
    px_per_metre: float,
    rng: np.random.Generator,
    blur: float,
) -> list[Pasted]:
    """Paste the planned objects in order (skipping those that cannot be placed); visible masks set."""
    side = min(canvas.shape[:2])
    ids = np.full(canvas.shape[:2], -1, np.int32)
    pasted: list[Pasted] = []
    areas: dict[int, int] = {}
    visible: dict[int, int] = {}
    for obj in plan:
        scale = target_scale(obj, px_per_metre, rng)
        long_px = scale * obj.long_side
        if scale > MAX_UPSCALE or long_px < MIN_SIDE or long_px > MAX_SHARE * side:
            continue
        patch = transform_patch(obj.rgba, scale, float(rng.uniform(0, 360)), rng, float(rng.uniform(0, blur)))
        if patch.size == 0 or min(patch.shape[:2]) < 3:
            continue
        spot = place(ids, patch[..., 3] > 127, areas, visible, rng)
        if spot is None:
            continue
        index = len(pasted)
        x0, y0, hit = spot
        fp = paste_patch(canvas, ids, patch, x0, y0, index, feather=float(rng.uniform(0.6, 1.4)))
        for j, c in hit.items():
            visible[j] -= c
        areas[index] = visible[index] = int(fp.sum())
        pasted.append(Pasted(index, obj.category, obj.source, fp))
    for p in pasted:
        p.visible = ids == p.index
    return pasted
