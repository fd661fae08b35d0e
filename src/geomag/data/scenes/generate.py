"""generate_scene: seed -> Scene (image + objects + ground truth for every task). Deterministic per seed."""

from __future__ import annotations

import numpy as np
from PIL import Image

from geomag.data.scenes import annotate
from geomag.data.scenes.layout import EXTENT_M, PLACES, PLANS, SCENE_TYPES, Ctx, Placer
from geomag.data.scenes.render import camera, composite, z_order
from geomag.data.scenes.scene import Scene, SceneObject
from geomag.data.scenes.terrain import render_terrain
from geomag.errors import GeoMagError

MIN_SIDE, MAX_SIDE = 64, 16384
WORK_SIDE = 2048  # terrain texture is computed at most at this resolution, then upsampled


def check_request(size: tuple[int, int], scene_type: str | None) -> None:
    w, h = size
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise GeoMagError(f"scene size {w}x{h} is out of range: each side must be {MIN_SIDE}..{MAX_SIDE} px")
    if scene_type is not None and scene_type not in SCENE_TYPES:
        raise GeoMagError(f"unknown scene type {scene_type!r}; choose from {', '.join(SCENE_TYPES)}")


def _gsd(rng: np.random.Generator, scene_type: str, size: tuple[int, int], tiny: bool) -> float:
    """Metres per pixel. Big frames cover more ground; tiny-target scenes keep the 512 px scale (small objects)."""
    short = min(size)
    lo, hi = EXTENT_M[scene_type]
    extent_512 = rng.uniform(lo, hi)
    scale = short / 512 if tiny else (short / 512) ** 0.5
    return float(extent_512 * scale / short)


def build(
    seed: int,
    size: tuple[int, int],
    scene_type: str | None,
    tiny_targets: bool,
    flat: dict[int, tuple[int, int, int]] | None = None,
) -> tuple[np.ndarray, np.ndarray, list, list, np.ndarray, float, str, np.random.Generator]:
    """Draw a scene; returns (pixels, id map, drawn specs, patch boxes, landcover, gsd, type, rng)."""
    check_request(size, scene_type)
    rng = np.random.default_rng([int(seed), 0x6E05CE])
    stype = scene_type or str(rng.choice(SCENE_TYPES))
    w, h = size
    gsd = _gsd(rng, stype, size, tiny_targets)
    ctx = Ctx(w, h, gsd, rng, tiny_targets)
    plan, info = PLANS[stype](ctx)
    work = max(1, int(np.ceil(max(w, h) / WORK_SIDE)))
    rgb, lc = render_terrain(plan, w, h, rng, work)
    rgb8 = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    lc8 = Image.fromarray(lc)
    if work > 1:
        rgb8 = rgb8.resize((w, h), Image.BILINEAR)
        lc8 = lc8.resize((w, h), Image.NEAREST)
    landcover = np.asarray(lc8)[:h, :w]
    placer = Placer(ctx, landcover)
    PLACES[stype](placer, info)
    specs = sorted(placer.specs, key=z_order)  # stable: placement order within a level
    pixels = np.array(rgb8)
    sun_az = float(rng.uniform(0, 2 * np.pi))
    sun_factor = float(rng.uniform(0.5, 1.1))
    idmap, boxes = composite(pixels, specs, gsd, sun_az, sun_factor if flat is None else 0.0, rng, flat)
    return pixels, idmap, specs, boxes, landcover, gsd, stype, rng


def objects_from(idmap: np.ndarray, specs: list, boxes: list) -> list[SceneObject]:
    """One SceneObject per annotated spec with at least one visible pixel; mask = visible pixels."""
    objects: list[SceneObject] = []
    for k, (spec, box) in enumerate(zip(specs, boxes, strict=True)):
        if spec.category == "tree" or box is None:
            continue
        x0, y0, x1, y1 = box
        vis = idmap[y0:y1, x0:x1] == k
        if not vis.any():
            continue
        ys, xs = np.nonzero(vis)
        tb = (int(x0 + xs.min()), int(y0 + ys.min()), int(x0 + xs.max()) + 1, int(y0 + ys.max()) + 1)
        mask = vis[tb[1] - y0 : tb[3] - y0, tb[0] - x0 : tb[2] - x0].copy()
        attrs = {
            "draw_id": k,
            "length_px": float(spec.length),
            "width_px": float(spec.width),
            "orientation_deg": float(np.degrees(spec.angle) % 360),
        }
        objects.append(SceneObject(len(objects), spec.category, spec.colour, tb, mask, attrs))
    return objects


def generate_scene(
    seed: int, size: tuple[int, int] = (512, 512), scene_type: str | None = None, tiny_targets: bool = False
) -> Scene:
    """A procedural nadir aerial scene with exact ground truth for captions, scene label, VQA,
    referring object classification, referring segmentation and grounded description (GCG).

    `tiny_targets` keeps objects at the scale of a 512 px scene however large the frame, so in a 4K
    frame most objects cover well under 0.05% of the image.
    """
    size = (int(size[0]), int(size[1]))
    pixels, idmap, specs, boxes, landcover, gsd, stype, rng = build(seed, size, scene_type, tiny_targets)
    objects = objects_from(idmap, specs, boxes)
    for o in objects:
        o.attributes["length_m"] = round(o.attributes["length_px"] * gsd, 2)
        o.attributes["width_m"] = round(o.attributes["width_px"] * gsd, 2)
    image = camera(pixels, rng)
    scene = Scene(int(seed), stype, image, objects, landcover, gsd)
    annotate.annotate(scene, np.random.default_rng([int(seed), 0xA77]))
    return scene


def small_target_split(
    n: int, seed: int = 0, size: tuple[int, int] = (4096, 2160), max_area_frac: float = 0.0005
) -> list[tuple[Scene, list[dict]]]:
    """Scenes for a small-target referring benchmark: each with its referring expressions whose target
    covers less than `max_area_frac` of the image (default 0.05%). Scenes without one are skipped."""
    out: list[tuple[Scene, list[dict]]] = []
    s = seed
    area = size[0] * size[1]
    while len(out) < n:
        if s - seed > 20 * n + 20:
            raise GeoMagError(
                f"could not find {n} scenes with targets under {max_area_frac:.4%} of the image"
            )
        scene = generate_scene(s, size, tiny_targets=True)
        s += 1
        small = [
            r for r in scene.referring if _box_area(scene.objects[r["object"]].box) < max_area_frac * area
        ]
        if small:
            out.append((scene, small))
    return out


def _box_area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])
