"""Referring expressions that single out exactly one object, and the rules they are judged by.

Grammar (fixed word order): "the [largest|smallest] [isolated] [<colour>] <class> [<position>]
[closest to the <class>]". Meanings, all computed from the visible masks:
- position: the 3 x 3 cell of the image holding the mask centroid ("at the top left", "in the center").
- largest / smallest: most / fewest visible pixels among the objects matching the rest, at least
  MARGIN times the runner-up (else the phrase is ambiguous and is not used).
- isolated: no other object of its class within ISOLATION x the image diagonal (centroid distance).
- closest to the <anchor>: the anchor class occurs once; the target's centroid distance to it is at
  least MARGIN times shorter than the runner-up's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geomag.data.scenes.scene import Scene, SceneObject

MARGIN = 1.3
ISOLATION = 0.15
BORDER = 0.03  # keep position phrases away from the 3 x 3 cell borders (share of width/height)
MIN_AREA = 12  # pixels: smaller targets are not referred to
CELLS = {
    (0, 0): "at the top left",
    (0, 1): "at the top",
    (0, 2): "at the top right",
    (1, 0): "on the left",
    (1, 1): "in the center",
    (1, 2): "on the right",
    (2, 0): "at the bottom left",
    (2, 1): "at the bottom",
    (2, 2): "at the bottom right",
}


def cell_of(x: float, y: float, w: int, h: int) -> tuple[int, int]:
    return min(2, int(3 * y / h)), min(2, int(3 * x / w))


def near_border(x: float, y: float, w: int, h: int) -> bool:
    fx, fy = 3 * x / w, 3 * y / h
    return any(abs(fx - b) < 3 * BORDER for b in (1, 2)) or any(abs(fy - b) < 3 * BORDER for b in (1, 2))


class Facts:
    """Per-object arrays (class, colour, area, centroid, cell, isolation) for fast rule evaluation."""

    def __init__(self, objects: list[SceneObject], w: int, h: int):
        self.cat = np.array([o.category for o in objects], dtype=object)
        self.col = np.array([o.colour for o in objects], dtype=object)
        self.area = np.array([o.area for o in objects], np.float64)
        xy = np.array([o.centre for o in objects], np.float64).reshape(-1, 2)
        self.x, self.y = xy[:, 0], xy[:, 1]
        self.cell = np.array([CELLS[cell_of(x, y, w, h)] for x, y in xy], dtype=object)
        self.isolated = np.zeros(len(objects), bool)
        diag = float(np.hypot(w, h))
        for c in set(self.cat):
            idx = np.nonzero(self.cat == c)[0]
            if len(idx) < 2:
                continue
            d = np.hypot(self.x[idx, None] - self.x[None, idx], self.y[idx, None] - self.y[None, idx])
            np.fill_diagonal(d, np.inf)
            self.isolated[idx] = d.min(1) >= ISOLATION * diag


def evaluate(c: dict[str, Any], f: Facts) -> list[int]:
    """Indices of the objects that constraints `c` select (the generator keeps those with exactly one)."""
    sel = f.cat == c["class"]
    if "colour" in c:
        sel &= f.col == c["colour"]
    if "position" in c:
        sel &= f.cell == c["position"]
    if c.get("isolated"):
        sel &= f.isolated
    cand = np.nonzero(sel)[0]
    if len(cand) > 1 and "size" in c:
        order = cand[np.argsort(-f.area[cand] if c["size"] == "largest" else f.area[cand], kind="stable")]
        a0, a1 = f.area[order[0]], f.area[order[1]]
        ok = a0 >= MARGIN * a1 if c["size"] == "largest" else a1 >= MARGIN * a0
        return [int(order[0])] if ok else [int(i) for i in cand]
    if len(cand) and "anchor" in c:
        anchors = np.nonzero(f.cat == c["anchor"])[0]
        if len(anchors) != 1:
            return []
        d = np.hypot(f.x[cand] - f.x[anchors[0]], f.y[cand] - f.y[anchors[0]])
        order = np.argsort(d, kind="stable")
        if len(cand) > 1 and d[order[1]] < MARGIN * d[order[0]]:
            return [int(i) for i in cand]
        return [int(cand[order[0]])]
    return [int(i) for i in cand]


def phrase(c: dict[str, Any]) -> str:
    words = ["the"]
    if "size" in c:
        words.append(c["size"])
    if c.get("isolated"):
        words.append("isolated")
    if "colour" in c:
        words.append(c["colour"])
    words.append(c["class"])
    if "position" in c:
        words.append(c["position"])
    if "anchor" in c:
        words.append(f"closest to the {c['anchor']}")
    return " ".join(words)


def _candidates(o: SceneObject, scene: Scene, counts: dict[str, int]) -> list[dict[str, Any]]:
    w, h = scene.size
    base = {"class": o.category}
    col = {**base, "colour": o.colour}
    out = [
        base,
        col,
        {**base, "size": "largest"},
        {**base, "size": "smallest"},
        {**col, "size": "largest"},
        {**col, "size": "smallest"},
        {**base, "isolated": True},
        {**col, "isolated": True},
    ]
    if not near_border(*o.centre, w, h):
        pos = CELLS[cell_of(*o.centre, w, h)]
        out += [{**base, "position": pos}, {**col, "position": pos}]
    for anchor, n in counts.items():
        if n == 1 and anchor != o.category:
            out += [{**base, "anchor": anchor}, {**col, "anchor": anchor}]
    return out


def referring(
    scene: Scene, rng: np.random.Generator, max_refs: int = 10, min_area: int = MIN_AREA
) -> list[dict[str, Any]]:
    """Up to `max_refs` expressions, each selecting exactly one object, over varied objects and forms."""
    w, h = scene.size
    facts = Facts(scene.objects, w, h)
    counts: dict[str, int] = {}
    by_class: dict[str, list[int]] = {}
    for i in rng.permutation(len(scene.objects)):
        o = scene.objects[int(i)]
        counts[o.category] = counts.get(o.category, 0) + 1
        by_class.setdefault(o.category, []).append(int(i))
    # round robin over classes (rarest first) so a scene's refs are not all vehicles; visit at most 80
    queues = sorted(by_class.values(), key=len)
    order = [q[k] for k in range(max(map(len, queues), default=0)) for q in queues if k < len(q)][:80]
    refs: list[dict[str, Any]] = []
    for i in order:
        if len(refs) >= max_refs:
            break
        o = scene.objects[i]
        if o.area < min_area or (o.category == "harbor" and counts["harbor"] > 1 and len(refs) > 2):
            continue
        valid = [c for c in _candidates(o, scene, counts) if evaluate(c, facts) == [o.index]]
        if not valid:
            continue
        # prefer the shorter forms a person would say, with some variety
        valid.sort(key=len)
        c = valid[int(rng.integers(min(3, len(valid))))]
        refs.append(
            {"expression": phrase(c), "object": o.index, "box": list(o.box), "mask": o.mask, "constraints": c}
        )
    return refs
