"""Scene types drive the layout: which ground, which roads, which objects where.

Each scene type has a `plan_*` (terrain geometry) and a `place_*` (objects on that terrain, checked
against the land-cover map so ships float and cars drive). Sizes are in metres, turned into pixels by
the ground sample distance `gsd`. Placement never lets two objects overlap unless the layout asks for
it (vehicles on a bridge), so every annotated object stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geomag.data.scenes.classes import CLASSES
from geomag.data.scenes.scene import LC
from geomag.data.scenes.terrain import TerrainPlan

SCENE_TYPES = (
    "airport",
    "harbor",
    "residential",
    "industrial",
    "parking lot",
    "farmland",
    "forest",
    "sports ground",
    "river bridge",
    "beach",
)
# Short side of a 512 px scene, in metres (so the gsd follows); (low, high).
EXTENT_M = {
    "airport": (700, 1100),
    "harbor": (300, 550),
    "residential": (180, 320),
    "industrial": (300, 500),
    "parking lot": (110, 180),
    "farmland": (500, 900),
    "forest": (250, 500),
    "sports ground": (120, 200),
    "river bridge": (250, 450),
    "beach": (200, 350),
}
MAX_PER_CLASS = {"vehicle": 260, "building": 160, "tree": 220, "ship": 90, "airplane": 40, "storage tank": 60}


@dataclass
class Spec:
    """One object to draw: pixel centre, length along `angle`, width across, colour name."""

    category: str
    colour: str
    cx: float
    cy: float
    length: float
    width: float
    angle: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ctx:
    width: int
    height: int
    gsd: float
    rng: np.random.Generator
    tiny: bool = False

    def px(self, metres: float) -> float:
        return metres / self.gsd

    def zone(
        self, frac_w: float, frac_h: float, max_w_m: float, max_h_m: float
    ) -> tuple[float, float, float, float]:
        """A random axis-aligned zone (x0, y0, x1, y1): a share of the frame, capped in metres."""
        zw = min(frac_w * self.width, self.px(max_w_m))
        zh = min(frac_h * self.height, self.px(max_h_m))
        x0 = self.rng.uniform(0.04 * self.width, max(0.04 * self.width + 1, 0.96 * self.width - zw))
        y0 = self.rng.uniform(0.04 * self.height, max(0.04 * self.height + 1, 0.96 * self.height - zh))
        return x0, y0, x0 + zw, y0 + zh

    def colour(self, category: str) -> str:
        c = CLASSES[category]
        return str(self.rng.choice(c.colours, p=np.array(c.weights) / sum(c.weights)))


class Placer:
    """Keeps placed objects' footprints (circles) apart and on the right land cover."""

    def __init__(self, ctx: Ctx, landcover: np.ndarray):
        self.ctx, self.lc = ctx, landcover
        self.specs: list[Spec] = []
        self.xy = np.zeros((0, 2), np.float32)
        self.rad = np.zeros(0, np.float32)
        self.cat: list[str] = []
        self.n_of: dict[str, int] = {}

    def count(self, category: str) -> int:
        return self.n_of.get(category, 0)

    def fits(
        self,
        cx: float,
        cy: float,
        rad: float,
        on: tuple[str, ...] | None,
        ignore: tuple[str, ...] = (),
        gap: float = 1.0,
    ) -> bool:
        w, h = self.ctx.width, self.ctx.height
        if cx - rad < 1 or cy - rad < 1 or cx + rad > w - 1 or cy + rad > h - 1:
            return False
        if on is not None:
            codes = [LC[n] for n in on]
            for ang in np.linspace(0, 2 * np.pi, 9)[:-1]:
                for f in (0.0, 0.8):
                    x = int(cx + f * rad * np.cos(ang))
                    y = int(cy + f * rad * np.sin(ang))
                    if self.lc[y, x] not in codes:
                        return False
        if len(self.rad):
            d = np.hypot(self.xy[:, 0] - cx, self.xy[:, 1] - cy) - self.rad - rad - gap
            if ignore:
                keep = np.array([c not in ignore for c in self.cat])
                d = d[keep]
            if (d < 0).any():
                return False
        return True

    def add(self, spec: Spec, rad: float | None = None, capsule: float = 0.0) -> None:
        """Record a placed object; `capsule` > 0 makes long thin objects a chain of circles of that radius."""
        if capsule > 0:
            n = max(2, int(np.ceil(spec.length / capsule)) + 1)
            ts = np.linspace(-0.5, 0.5, n) * max(0.0, spec.length - 2 * capsule)
            pts = np.stack([spec.cx + ts * np.cos(spec.angle), spec.cy + ts * np.sin(spec.angle)], 1)
            rads = np.full(n, capsule, np.float32)
        else:
            r = 0.5 * float(np.hypot(spec.length, spec.width)) if rad is None else rad
            pts, rads = np.array([[spec.cx, spec.cy]]), np.array([r], np.float32)
        self.specs.append(spec)
        self.xy = np.vstack([self.xy, pts]).astype(np.float32)
        self.rad = np.append(self.rad, rads)
        self.cat.extend([spec.category] * len(rads))
        self.n_of[spec.category] = self.n_of.get(spec.category, 0) + 1

    def place(
        self,
        spec: Spec,
        on: tuple[str, ...] | None,
        ignore: tuple[str, ...] = (),
        rad: float | None = None,
        capsule: float = 0.0,
    ) -> bool:
        """Add the object if it fits (inside the frame, on allowed land cover, clear of others)."""
        limit = MAX_PER_CLASS.get(spec.category)
        if limit is not None and self.count(spec.category) >= limit:
            return False
        if spec.length < 1.5:
            return False
        if capsule > 0:
            probe = Spec(spec.category, spec.colour, spec.cx, spec.cy, spec.length, spec.width, spec.angle)
            n = max(2, int(np.ceil(spec.length / capsule)) + 1)
            for t in np.linspace(-0.5, 0.5, n) * max(0.0, spec.length - 2 * capsule):
                if not self.fits(
                    probe.cx + t * np.cos(spec.angle), probe.cy + t * np.sin(spec.angle), capsule, on, ignore
                ):
                    return False
            self.add(spec, capsule=capsule)
            return True
        r = 0.5 * float(np.hypot(spec.length, spec.width)) if rad is None else rad
        if not self.fits(spec.cx, spec.cy, r, on, ignore):
            return False
        self.add(spec, r)
        return True

    def scatter(
        self,
        category: str,
        n: int,
        on: tuple[str, ...],
        length_m: tuple[float, float],
        aspect: tuple[float, float],
        box: tuple[float, float, float, float] | None = None,
        angle: float | None = None,
        tries: int = 8,
        **extra,
    ) -> int:
        """Put up to n objects at random spots of the allowed land cover (inside box if given)."""
        ctx, rng = self.ctx, self.ctx.rng
        x0, y0, x1, y1 = box if box is not None else (0, 0, ctx.width, ctx.height)
        placed = 0
        for _ in range(n * tries):
            if placed >= n:
                break
            length = ctx.px(rng.uniform(*length_m))
            width = length * rng.uniform(*aspect)
            a = rng.uniform(0, np.pi * 2) if angle is None else angle + rng.normal(0, 0.05)
            spec = Spec(
                category,
                ctx.colour(category) if category != "tree" else "green",
                rng.uniform(x0, x1),
                rng.uniform(y0, y1),
                length,
                width,
                a,
                dict(extra),
            )
            placed += self.place(spec, on)
        return placed


def _rot(cx: float, cy: float, ang: float, a: float, b: float) -> tuple[float, float]:
    return cx + a * np.cos(ang) - b * np.sin(ang), cy + a * np.sin(ang) + b * np.cos(ang)


def _grid_roads(
    ctx: Ctx, ang: float, spacing: float, width: float
) -> list[tuple[list[tuple[float, float]], float]]:
    cx, cy, big = ctx.width / 2, ctx.height / 2, float(np.hypot(ctx.width, ctx.height))
    off = ctx.rng.uniform(0, spacing)
    roads = []
    for k in np.arange(-big / 2 + off, big / 2, spacing):
        roads.append(([_rot(cx, cy, ang, -big, k), _rot(cx, cy, ang, big, k)], width))
        roads.append(([_rot(cx, cy, ang, k, -big), _rot(cx, cy, ang, k, big)], width))
    return roads


def _line_across(ctx: Ctx, ang: float, offset: float) -> list[tuple[float, float]]:
    cx, cy, big = ctx.width / 2, ctx.height / 2, float(np.hypot(ctx.width, ctx.height))
    return [_rot(cx, cy, ang, -big, offset), _rot(cx, cy, ang, big, offset)]


def _trees(p: Placer, n: int, on=("grass", "soil")) -> None:
    p.scatter("tree", n, on, (4, 10), (1, 1))


def _vehicles_on_roads(p: Placer, roads, n: int) -> None:
    ctx, rng = p.ctx, p.ctx.rng
    for _ in range(n * 6):
        if n <= 0 or not roads:
            break
        pts, width = roads[int(rng.integers(len(roads)))]
        (x0, y0), (x1, y1) = pts[0], pts[-1]
        t = rng.uniform(0, 1)
        ang = float(np.arctan2(y1 - y0, x1 - x0))
        lane = width * 0.22 * (1 if rng.random() < 0.5 else -1)
        cx, cy = x0 + (x1 - x0) * t - lane * np.sin(ang), y0 + (y1 - y0) * t + lane * np.cos(ang)
        length = ctx.px(rng.uniform(4.2, 5.2))
        spec = Spec(
            "vehicle", ctx.colour("vehicle"), cx, cy, length, length * 0.42, ang + (np.pi if lane < 0 else 0)
        )
        n -= p.place(spec, ("road", "paved"), ignore=("bridge",))


# ---------------------------------------------------------------- per scene type


def plan_parking_lot(ctx: Ctx) -> tuple[TerrainPlan, dict]:
    z = ctx.zone(0.85, 0.8, 170, 120)
    x0, y0, x1, y1 = z
    poly = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    marks = []
    row_pitch = ctx.px(16.0)  # two rows of 5 m stalls + 6 m aisle
    stall = ctx.px(2.6)
    lw = max(1.0, ctx.px(0.15))
    rows = []
    y = y0 + ctx.px(1.0)
    while y + row_pitch <= y1:
        for band in (y, y + ctx.px(11.0)):
            rows.append(band)
            for x in np.arange(x0 + ctx.px(1), x1 - ctx.px(1), stall):
                marks.append(([(x, band), (x, band + ctx.px(5.0))], lw, (225, 225, 220), 0.0))
        y += row_pitch
    road_y = y1 + ctx.px(6) if y1 + ctx.px(10) < ctx.height else y0 - ctx.px(6)
    roads = [([(-10, road_y), (ctx.width + 10, road_y)], ctx.px(8))]
    plan = TerrainPlan(
        cover=[("grass", 0.7), ("soil", 0.3)],
        patch_cell=ctx.px(60),
        paved=[poly],
        roads=roads,
        markings=marks,
    )
    return plan, {"zone": z, "rows": rows, "stall": stall, "roads": roads}


def place_parking_lot(p: Placer, info: dict) -> None:
    ctx, rng = p.ctx, p.ctx.rng
    x0, _y0, x1, _y1 = info["zone"]
    fill = rng.uniform(0.45, 0.9)
    for band in info["rows"]:
        for x in np.arange(
            x0 + ctx.px(1) + info["stall"] / 2, x1 - ctx.px(1) - info["stall"] / 2, info["stall"]
        ):
            if rng.random() > fill:
                continue
            length = ctx.px(rng.uniform(4.2, 5.0))
            spec = Spec(
                "vehicle",
                ctx.colour("vehicle"),
                x,
                band + ctx.px(2.5),
                length,
                length * 0.42,
                np.pi / 2 + (np.pi if rng.random() < 0.5 else 0) + rng.normal(0, 0.04),
            )
            p.place(spec, ("paved",), rad=0.5 * length * 0.9)
    _vehicles_on_roads(p, info["roads"], int(rng.integers(0, 6)))
    p.scatter("building", int(rng.integers(1, 4)), ("grass", "soil"), (14, 30), (0.5, 0.9), roof="flat")
    _trees(p, int(rng.integers(10, 40)))


def plan_residential(ctx: Ctx) -> tuple[TerrainPlan, dict]:
    ang = float(ctx.rng.choice([0.0, np.pi / 2, ctx.rng.uniform(-0.5, 0.5)]))
    spacing = ctx.px(ctx.rng.uniform(70, 95))
    roads = _grid_roads(ctx, ang, spacing, ctx.px(8))
    plan = TerrainPlan(
        cover=[("grass", 0.75), ("soil", 0.1), ("forest", 0.15)], patch_cell=ctx.px(80), roads=roads
    )
    return plan, {"ang": ang, "spacing": spacing, "roads": roads}


def place_residential(p: Placer, info: dict) -> None:
    ctx, rng = p.ctx, p.ctx.rng
    ang, sp = info["ang"], info["spacing"]
    cx, cy, big = ctx.width / 2, ctx.height / 2, float(np.hypot(ctx.width, ctx.height))
    lot = ctx.px(rng.uniform(18, 24))
    for a in np.arange(-big / 2, big / 2, lot):
        for b0 in np.arange(-big / 2, big / 2, sp):
            for b in (b0 + ctx.px(13), b0 + sp - ctx.px(13)):
                x, y = _rot(cx, cy, ang, a, b)
                if not (0 <= x < ctx.width and 0 <= y < ctx.height) or rng.random() < 0.12:
                    continue
                length, width = ctx.px(rng.uniform(10, 16)), ctx.px(rng.uniform(8, 11))
                spec = Spec(
                    "building",
                    ctx.colour("building"),
                    x,
                    y,
                    length,
                    width,
                    ang + rng.normal(0, 0.03),
                    {"roof": "lshape" if rng.random() < 0.2 else "gable"},
                )
                if p.place(spec, ("grass", "soil", "forest")) and rng.random() < 0.25:
                    back = 1 if b < b0 + sp / 2 else -1
                    px_, py_ = _rot(cx, cy, ang, a + rng.uniform(-3, 3), b + back * ctx.px(11))
                    pl = ctx.px(rng.uniform(7, 12))
                    p.place(
                        Spec(
                            "swimming pool",
                            "blue",
                            px_,
                            py_,
                            pl,
                            pl * rng.uniform(0.45, 0.6),
                            ang + rng.normal(0, 0.03),
                        ),
                        ("grass", "soil", "forest"),
                    )
    if rng.random() < 0.4:
        p.scatter("tennis court", 1, ("grass", "soil"), (34, 36), (0.5, 0.5), angle=ang)
    _vehicles_on_roads(p, info["roads"], int(rng.integers(5, 30)))
    _trees(p, int(rng.integers(30, 120)), ("grass", "soil", "forest"))


def plan_industrial(ctx: Ctx) -> tuple[TerrainPlan, dict]:
    ang = float(ctx.rng.choice([0.0, np.pi / 2]))
    roads = _grid_roads(ctx, ang, ctx.px(ctx.rng.uniform(160, 220)), ctx.px(12))
    z = ctx.zone(0.45, 0.5, 200, 160)
    x0, y0, x1, y1 = z
    plan = TerrainPlan(
        cover=[("soil", 0.4), ("paved", 0.35), ("grass", 0.25)],
        patch_cell=ctx.px(120),
        roads=roads,
        paved=[[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]],
    )
    return plan, {"tanks": z, "roads": roads, "ang": ang}


def place_industrial(p: Placer, info: dict) -> None:
    ctx, rng = p.ctx, p.ctx.rng
    x0, y0, x1, y1 = info["tanks"]
    d = ctx.px(rng.uniform(16, 32))
    pitch = d * rng.uniform(1.25, 1.6)
    for x in np.arange(x0 + pitch / 2, x1 - pitch / 2 + 1, pitch):
        for y in np.arange(y0 + pitch / 2, y1 - pitch / 2 + 1, pitch):
            if rng.random() < 0.85:
                dd = d * rng.uniform(0.75, 1.1) if rng.random() < 0.3 else d
                p.place(Spec("storage tank", ctx.colour("storage tank"), x, y, dd, dd, 0.0), ("paved",))
    p.scatter(
        "building",
        int(rng.integers(6, 30)),
        ("soil", "paved", "grass"),
        (25, 80),
        (0.4, 0.8),
        angle=info["ang"],
        roof="flat",
    )
    p.scatter("vehicle", int(rng.integers(5, 30)), ("paved",), (8, 14), (0.25, 0.32), angle=info["ang"])
    _vehicles_on_roads(p, info["roads"], int(rng.integers(3, 20)))
    _trees(p, int(rng.integers(5, 30)))


def plan_harbor(ctx: Ctx) -> tuple[TerrainPlan, dict]:
    ang = float(ctx.rng.choice([0, np.pi / 2, np.pi, 3 * np.pi / 2]) + ctx.rng.normal(0, 0.05))
    off = ctx.rng.uniform(-0.3, 0.1)
    plan = TerrainPlan(
        cover=[("paved", 0.55), ("soil", 0.25), ("grass", 0.2)],
        patch_cell=ctx.px(100),
        water=("coast", ang, off),
        shore_noise=0.015,
    )
    return plan, {"ang": ang, "off": off}


def _shore(ctx: Ctx, ang: float, off: float) -> tuple[tuple[float, float], tuple[float, float], float]:
    """A point on the straight part of a coast, its inward normal (into the water) and its half-length."""
    w, h = ctx.width, ctx.height
    half = 0.5 * (abs(w * np.cos(ang)) + abs(h * np.sin(ang)))
    n = (float(np.cos(ang)), float(np.sin(ang)))
    base = (w / 2 + n[0] * off * half, h / 2 + n[1] * off * half)
    along = 0.5 * (abs(w * np.sin(ang)) + abs(h * np.cos(ang)))
    return base, n, along


def place_harbor(p: Placer, info: dict) -> None:
    ctx, rng = p.ctx, p.ctx.rng
    (bx, by), (nx, ny), along = _shore(ctx, info["ang"], info["off"])
    tx, ty = -ny, nx
    gap = ctx.px(rng.uniform(45, 80))
    for s in np.arange(-along + gap, along - gap / 2, gap):
        if p.count("harbor") >= 8:
            break
        length = ctx.px(rng.uniform(70, 160))
        width = ctx.px(rng.uniform(6, 10))
        cx, cy = bx + tx * s + nx * (length / 2 - ctx.px(8)), by + ty * s + ny * (length / 2 - ctx.px(8))
        pier = Spec("harbor", ctx.colour("harbor"), cx, cy, length, width, float(np.arctan2(ny, nx)))
        if not p.place(pier, None, capsule=max(width * 1.5, 2.0)):
            continue
        for side in (-1, 1):
            u = ctx.px(12)
            while u < length - ctx.px(20):
                sl = ctx.px(rng.uniform(14, 45)) if rng.random() < 0.8 else ctx.px(rng.uniform(50, 90))
                sw = sl * rng.uniform(0.22, 0.3)
                if u + sl > length:
                    break
                if rng.random() < 0.75:
                    off = width / 2 + sw / 2 + ctx.px(1.5)
                    sx = bx + tx * s - nx * ctx.px(8) + nx * (u + sl / 2) + tx * side * off
                    sy = by + ty * s - ny * ctx.px(8) + ny * (u + sl / 2) + ty * side * off
                    a = float(np.arctan2(ny, nx)) + (0 if rng.random() < 0.5 else np.pi)
                    p.place(
                        Spec("ship", ctx.colour("ship"), sx, sy, sl, sw, a),
                        ("water",),
                        ignore=("harbor",),
                        capsule=sw / 2 + 1,
                    )
                u += sl + ctx.px(rng.uniform(3, 10))
    p.scatter("ship", int(rng.integers(2, 9)), ("water",), (15, 110), (0.18, 0.26))
    p.scatter("storage tank", int(rng.integers(0, 8)), ("paved", "soil"), (12, 25), (1, 1))
    p.scatter(
        "building",
        int(rng.integers(4, 16)),
        ("paved", "soil", "grass"),
        (20, 60),
        (0.4, 0.8),
        angle=info["ang"],
        roof="flat",
    )
    p.scatter(
        "vehicle", int(rng.integers(5, 30)), ("paved",), (4.2, 12), (0.3, 0.42), angle=info["ang"] + np.pi / 2
    )
    _trees(p, int(rng.integers(0, 15)))


def plan_airport(ctx: Ctx) -> tuple[TerrainPlan, dict]:
    rng = ctx.rng
    ang = float(rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.15))
    rw = ctx.px(45)
    off_rw = rng.uniform(-0.25, 0.25) * min(ctx.width, ctx.height)
    off_tw = off_rw + ctx.px(120) * (1 if rng.random() < 0.5 else -1)
    side = np.sign(off_tw - off_rw)
    cx, cy, big = ctx.width / 2, ctx.height / 2, float(np.hypot(ctx.width, ctx.height))
    apron_len = min(big * 0.5, ctx.px(700))
    a0 = rng.uniform(-apron_len / 2, 0) if not ctx.tiny else rng.uniform(-apron_len, apron_len / 2)
    b0, b1 = off_tw + side * ctx.px(20), off_tw + side * ctx.px(170)
    apron = [
        _rot(cx, cy, ang, a, b) for a, b in ((a0, b0), (a0 + apron_len, b0), (a0 + apron_len, b1), (a0, b1))
    ]
    runway = [
        _rot(cx, cy, ang, a, b)
        for a, b in (
            (-big, off_rw - rw / 2),
            (big, off_rw - rw / 2),
            (big, off_rw + rw / 2),
            (-big, off_rw + rw / 2),
        )
    ]
    marks = [
        (_line_across(ctx, ang, off_rw), max(1.0, ctx.px(0.9)), (230, 230, 225), ctx.px(30)),
        (_line_across(ctx, ang, off_tw), max(1.0, ctx.px(0.5)), (210, 190, 60), 0.0),
    ]
    for e in (-1, 1):  # side stripes
        marks.append(
            (_line_across(ctx, ang, off_rw + e * rw * 0.45), max(1.0, ctx.px(0.9)), (225, 225, 220), 0.0)
        )
    plan = TerrainPlan(
        cover=[("grass", 0.75), ("soil", 0.25)],
        patch_cell=ctx.px(250),
        paved=[runway, apron],
        roads=[(_line_across(ctx, ang, off_tw), ctx.px(23))],
        markings=marks,
    )
    return plan, {"ang": ang, "a0": a0, "len": apron_len, "b0": b0, "b1": b1, "side": side, "off_tw": off_tw}


def place_airport(p: Placer, info: dict) -> None:
    ctx, rng = p.ctx, p.ctx.rng
    ang, side = info["ang"], info["side"]
    cx, cy = ctx.width / 2, ctx.height / 2
    bterm = info["b1"] - side * ctx.px(22)
    a = info["a0"] + ctx.px(30)
    while a < info["a0"] + info["len"] - ctx.px(40):  # terminal along the apron's far edge
        bl = ctx.px(rng.uniform(40, 110))
        x, y = _rot(cx, cy, ang, a + bl / 2, bterm)
        p.place(
            Spec(
                "building",
                "gray" if rng.random() < 0.6 else "white",
                x,
                y,
                bl,
                ctx.px(30),
                ang,
                {"roof": "flat"},
            ),
            ("paved",),
        )
        a += bl + ctx.px(rng.uniform(10, 40))
    a = info["a0"] + ctx.px(30)
    bplane = info["b1"] - side * ctx.px(80)
    while a < info["a0"] + info["len"] - ctx.px(30):
        length = ctx.px(rng.uniform(28, 65))
        if rng.random() < 0.8:
            x, y = _rot(cx, cy, ang, a + length / 2, bplane)
            heading = ang + side * np.pi / 2 + rng.normal(0, 0.04)
            p.place(
                Spec(
                    "airplane", ctx.colour("airplane"), x, y, length, length * rng.uniform(0.9, 1.05), heading
                ),
                ("paved",),
            )
        a += length * 1.15 + ctx.px(rng.uniform(8, 30))
    for _ in range(int(rng.integers(0, 3))):  # taxiing
        length = ctx.px(rng.uniform(28, 65))
        x, y = _rot(cx, cy, ang, rng.uniform(-0.45, 0.45) * ctx.width, info["off_tw"])
        p.place(
            Spec(
                "airplane",
                ctx.colour("airplane"),
                x,
                y,
                length,
                length,
                ang + (0 if rng.random() < 0.5 else np.pi),
            ),
            ("road", "paved", "grass"),
        )
    p.scatter("vehicle", int(rng.integers(4, 20)), ("paved",), (4.5, 9), (0.35, 0.45))
    p.scatter(
        "building", int(rng.integers(2, 8)), ("grass", "soil"), (20, 60), (0.5, 0.9), angle=ang, roof="flat"
    )
    p.scatter("storage tank", int(rng.integers(0, 4)), ("grass", "soil"), (12, 20), (1, 1))


def plan_farmland(ctx: Ctx) -> tuple[TerrainPlan, dict]:
    rng = ctx.rng
    ang = float(rng.uniform(-0.4, 0.4))
    roads = [
        (
            _line_across(
                ctx,
                ang + np.pi / 2 * int(rng.integers(2)),
                rng.uniform(-0.3, 0.3) * min(ctx.width, ctx.height),
            ),
            ctx.px(7),
        )
    ]
    plan = TerrainPlan(
        cover=[("grass", 0.55), ("soil", 0.35), ("forest", 0.1)],
        patch_cell=ctx.px(400),
        farmland=(ang, ctx.px(rng.uniform(70, 160)), ctx.px(rng.uniform(50, 120))),
        roads=roads,
    )
    if rng.random() < 0.3:
        plan.water = (
            "pond",
            rng.uniform(0.2, 0.8) * ctx.width,
            rng.uniform(0.2, 0.8) * ctx.height,
            ctx.px(40),
            ctx.px(28),
        )
    return plan, {"roads": roads, "ang": ang}


def place_farmland(p: Placer, info: dict) -> None:
    _ctx, rng = p.ctx, p.ctx.rng
    p.scatter(
        "building",
        int(rng.integers(2, 10)),
        ("cropland", "grass", "soil"),
        (12, 35),
        (0.5, 0.8),
        angle=info["ang"],
        roof="gable",
    )
    p.scatter("storage tank", int(rng.integers(0, 3)), ("cropland", "soil"), (6, 10), (1, 1))
    _vehicles_on_roads(p, info["roads"], int(rng.integers(0, 6)))
    p.scatter("vehicle", int(rng.integers(0, 4)), ("cropland",), (6, 9), (0.4, 0.5))
    _trees(p, int(rng.integers(5, 30)), ("cropland", "grass", "soil"))


def plan_forest(ctx: Ctx) -> tuple[TerrainPlan, dict]:
    rng = ctx.rng
    ang = float(rng.uniform(0, np.pi))
    roads = [(_line_across(ctx, ang, rng.uniform(-0.3, 0.3) * min(ctx.width, ctx.height)), ctx.px(6))]
    plan = TerrainPlan(
        cover=[("forest", 0.8), ("grass", 0.12), ("soil", 0.08)], patch_cell=ctx.px(150), roads=roads
    )
    if rng.random() < 0.5:
        plan.water = (
            "pond",
            rng.uniform(0.25, 0.75) * ctx.width,
            rng.uniform(0.25, 0.75) * ctx.height,
            ctx.px(50),
            ctx.px(35),
        )
    return plan, {"roads": roads}


def place_forest(p: Placer, info: dict) -> None:
    rng = p.ctx.rng
    p.scatter(
        "building",
        int(rng.integers(1, 5)),
        ("grass", "soil", "forest"),
        (8, 20),
        (0.5, 0.8),
        tries=30,
        roof="gable",
    )
    _vehicles_on_roads(p, info["roads"], int(rng.integers(1, 6)))
    p.scatter("ship", int(rng.integers(0, 2)), ("water",), (4, 8), (0.3, 0.4))


def plan_sports_ground(ctx: Ctx) -> tuple[TerrainPlan, dict]:
    z = ctx.zone(0.6, 0.55, 100, 80)
    x0, y0, x1, y1 = z
    plan = TerrainPlan(
        cover=[("grass", 0.8), ("soil", 0.2)],
        patch_cell=ctx.px(50),
        paved=[[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]],
        roads=[([(-10, y1 + ctx.px(8)), (ctx.width + 10, y1 + ctx.px(8))], ctx.px(7))],
    )
    return plan, {"zone": z}


def place_sports_ground(p: Placer, info: dict) -> None:
    ctx, rng = p.ctx, p.ctx.rng
    x0, y0, x1, y1 = info["zone"]
    vertical = rng.random() < 0.5
    kinds = ["tennis court"] * int(rng.integers(1, 5)) + ["basketball court"] * int(rng.integers(0, 3))
    rng.shuffle(kinds)
    x, y = x0 + ctx.px(3), y0 + ctx.px(3)
    colour_tennis = ctx.colour("tennis court")
    for k in kinds:
        length, width = (ctx.px(36), ctx.px(18)) if k == "tennis court" else (ctx.px(32), ctx.px(19))
        w, h = (width, length) if vertical else (length, width)
        if (x + w > x1) if vertical else (y + h > y1):
            if vertical:
                x, y = x0 + ctx.px(3), y + h + ctx.px(3)
            else:
                x, y = x + w + ctx.px(3), y0 + ctx.px(3)
        colour = colour_tennis if k == "tennis court" and rng.random() < 0.7 else ctx.colour(k)
        spec = Spec(k, colour, x + w / 2, y + h / 2, length, width, np.pi / 2 if vertical else 0.0)
        p.place(spec, ("paved",), rad=0.5 * min(length, width) + 1)
        if vertical:
            x += w + ctx.px(3)
        else:
            y += h + ctx.px(3)
    p.scatter("swimming pool", int(rng.integers(0, 3)), ("grass", "soil"), (15, 25), (0.4, 0.6), angle=0.0)
    p.scatter(
        "building", int(rng.integers(1, 4)), ("grass", "soil"), (12, 30), (0.5, 0.8), angle=0.0, roof="flat"
    )
    p.scatter("vehicle", int(rng.integers(0, 10)), ("road", "paved"), (4.2, 5.0), (0.4, 0.44), angle=0.0)
    _trees(p, int(rng.integers(15, 50)))


def plan_river_bridge(ctx: Ctx) -> tuple[TerrainPlan, dict]:
    rng = ctx.rng
    ang = float(rng.uniform(0, np.pi))
    width = ctx.px(rng.uniform(40, 110))
    cx, cy, big = ctx.width / 2, ctx.height / 2, float(np.hypot(ctx.width, ctx.height))
    off = rng.uniform(-0.15, 0.15) * min(ctx.width, ctx.height)
    river = [
        _rot(cx, cy, ang, a, off + 0.04 * big * np.sin(a / big * 6 + rng.uniform(0, 6)))
        for a in np.linspace(-big, big, 40)
    ]
    n_br = int(rng.integers(1, 3))
    crossings = sorted(
        rng.uniform(-0.35, 0.35, n_br) * min(ctx.width, ctx.height) * (ctx.width / min(ctx.width, ctx.height))
    )
    if n_br == 2 and abs(crossings[1] - crossings[0]) < ctx.px(80):
        crossings = crossings[:1]
    roads = []
    for a in crossings:
        x, y = _rot(cx, cy, ang, a, off + 0.04 * big * np.sin(a / big * 6))
        roads.append(
            ([_rot(x, y, ang + np.pi / 2, -big, 0), _rot(x, y, ang + np.pi / 2, big, 0)], ctx.px(14))
        )
    plan = TerrainPlan(
        cover=[("grass", 0.5), ("forest", 0.3), ("soil", 0.2)],
        patch_cell=ctx.px(100),
        water=("river", river, width),
        shore_noise=0.03,
        roads=roads,
    )
    return plan, {"ang": ang, "roads": roads, "width": width}


def place_river_bridge(p: Placer, info: dict) -> None:
    ctx, rng = p.ctx, p.ctx.rng
    water = p.lc == LC["water"]
    for pts, wd in info["roads"]:
        (x0, y0), (x1, y1) = pts
        n = int(np.hypot(x1 - x0, y1 - y0))
        ts = np.linspace(0, 1, max(2, n // 2))
        xs, ys = x0 + (x1 - x0) * ts, y0 + (y1 - y0) * ts
        inside = (xs >= 0) & (xs < ctx.width) & (ys >= 0) & (ys < ctx.height)
        hit = np.zeros_like(inside)
        hit[inside] = water[ys[inside].astype(int), xs[inside].astype(int)]
        if not hit.any():
            continue
        i0, i1 = np.nonzero(hit)[0][[0, -1]]
        margin = ctx.px(15)
        length = float(np.hypot(xs[i1] - xs[i0], ys[i1] - ys[i0])) + 2 * margin
        bx, by = (xs[i0] + xs[i1]) / 2, (ys[i0] + ys[i1]) / 2
        a = float(np.arctan2(y1 - y0, x1 - x0))
        spec = Spec("bridge", "gray", bx, by, length, wd * 1.15, a)
        if p.place(spec, None, capsule=wd * 0.6):
            for _ in range(int(rng.integers(0, 5))):  # traffic on the bridge
                t = rng.uniform(-0.4, 0.4) * length
                lane = wd * 0.22 * (1 if rng.random() < 0.5 else -1)
                vx, vy = _rot(bx, by, a, t, lane)
                vl = ctx.px(rng.uniform(4.2, 5.2))
                p.place(
                    Spec(
                        "vehicle",
                        ctx.colour("vehicle"),
                        vx,
                        vy,
                        vl,
                        vl * 0.42,
                        a + (0 if lane > 0 else np.pi),
                    ),
                    None,
                    ignore=("bridge",),
                )
    p.scatter("ship", int(rng.integers(1, 8)), ("water",), (8, 30), (0.2, 0.3), angle=info["ang"])
    _vehicles_on_roads(p, info["roads"], int(rng.integers(2, 12)))
    p.scatter("building", int(rng.integers(3, 20)), ("grass", "soil"), (10, 25), (0.5, 0.8), roof="gable")
    _trees(p, int(rng.integers(10, 50)))


def plan_beach(ctx: Ctx) -> tuple[TerrainPlan, dict]:
    rng = ctx.rng
    ang = float(rng.choice([0, np.pi / 2, np.pi, 3 * np.pi / 2]) + rng.normal(0, 0.1))
    off = rng.uniform(-0.2, 0.2)
    (bx, by), (nx, ny), _ = _shore(ctx, ang, off - 0.45)
    road = (
        [
            (bx - ny * 3 * ctx.width, by + nx * 3 * ctx.width),
            (bx + ny * 3 * ctx.width, by - nx * 3 * ctx.width),
        ],
        ctx.px(9),
    )
    plan = TerrainPlan(
        cover=[("grass", 0.7), ("soil", 0.15), ("forest", 0.15)],
        patch_cell=ctx.px(80),
        water=("coast", ang, off),
        shore_noise=0.04,
        sand_band=ctx.px(rng.uniform(30, 60)),
        roads=[road],
    )
    return plan, {"ang": ang, "roads": [road]}


def place_beach(p: Placer, info: dict) -> None:
    rng = p.ctx.rng
    p.scatter("ship", int(rng.integers(1, 10)), ("water",), (5, 25), (0.25, 0.35))
    p.scatter(
        "building",
        int(rng.integers(3, 15)),
        ("grass", "soil"),
        (15, 40),
        (0.5, 0.8),
        angle=info["ang"],
        roof="flat",
    )
    p.scatter(
        "swimming pool", int(rng.integers(1, 6)), ("grass", "soil"), (10, 25), (0.4, 0.6), angle=info["ang"]
    )
    _vehicles_on_roads(p, info["roads"], int(rng.integers(2, 12)))
    _trees(p, int(rng.integers(10, 40)), ("grass", "soil", "forest"))


PLANS = {t: globals()[f"plan_{t.replace(' ', '_')}"] for t in SCENE_TYPES}
PLACES = {t: globals()[f"place_{t.replace(' ', '_')}"] for t in SCENE_TYPES}
