"""Referring expressions over real instances: each names exactly one object, with a margin.

The GeoScenes grammar (geomag.data.scenes.referring: its 3 x 3 position cells and MARGIN) without
colour (real annotations have none), plus the count and extreme forms of RRSIS-D. Forms, each for one
target among the instances of its class (`select` gives every instance a form could mean):
- only:      "the only storage tank" / "the storage tank": the class occurs once.
- size:      "the largest / smallest airplane": area at least MARGIN times the runner-up's.
- extreme:   "the leftmost / rightmost / topmost / bottommost ship": its centroid at least
             EXTREME_GAP of the image side beyond every other one's.
- position:  "the tennis court at the top left": the target's centroid is inside its cell by a BORDER
             margin and no other one's centroid comes within BORDER of that cell.
- neighbour: "the ship closest to the harbor": the anchor class occurs once; the runner-up is at
             least MARGIN times and NEAR_GAP of the diagonal farther (centroid distances).
- all:       "all the tennis courts" (the union of a class with 2+ instances; `class_expression`).
Unlabelled objects cannot be accounted for: the expressions are unique among the annotated ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geomag.data.instances import Instance, plural
from geomag.data.scenes.referring import BORDER, CELLS, MARGIN, cell_of, near_border

EXTREME_GAP = 0.05  # share of the image width (left/right) or height (top/bottom)
NEAR_GAP = 0.05  # share of the image diagonal
MIN_AREA = 16  # pixels: smaller targets are not referred to
EXTREMES = {"left": "leftmost", "right": "rightmost", "top": "topmost", "bottom": "bottommost"}

Constraints = dict[str, Any]


@dataclass(frozen=True)
class Referring:
    expression: str
    index: int  # into the instance list
    constraints: Constraints


def _cells_near(x: float, y: float, w: int, h: int) -> set[str]:
    """Every cell a reader might put a centroid at (x, y) in: its own and those within BORDER."""
    dx, dy = BORDER * w, BORDER * h  # as near_border: within BORDER of a cell line
    return {
        CELLS[cell_of(min(max(x + a, 0), w - 1), min(max(y + b, 0), h - 1), w, h)]
        for a in (-dx, 0, dx)
        for b in (-dy, 0, dy)
    }


class Facts:
    """Per-instance arrays for fast evaluation of the rules."""

    def __init__(self, instances: Sequence[Instance], size: tuple[int, int]):
        self.w, self.h = size
        self.cat = np.array([o.category for o in instances], dtype=object)
        self.area = np.array([o.area for o in instances], np.float64)
        xy = np.array([o.centre for o in instances], np.float64).reshape(-1, 2)
        self.x, self.y = xy[:, 0], xy[:, 1]
        self.cells = [_cells_near(x, y, self.w, self.h) for x, y in xy]
        self.sure_cell = [
            None if near_border(x, y, self.w, self.h) else CELLS[cell_of(x, y, self.w, self.h)] for x, y in xy
        ]


def select(c: Constraints, f: Facts) -> list[int]:
    """Indices of the instances expression `c` could mean (unique when the list has one element)."""
    cand = np.nonzero(f.cat == c["class"])[0]
    if len(cand) < 2:
        return [int(i) for i in cand]
    if "position" in c:
        return [int(i) for i in cand if c["position"] in f.cells[i]]
    if "size" in c:
        order = cand[np.argsort(-f.area[cand] if c["size"] == "largest" else f.area[cand], kind="stable")]
        a0, a1 = f.area[order[0]], f.area[order[1]]
        ok = a0 >= MARGIN * a1 if c["size"] == "largest" else a1 >= MARGIN * a0
        return [int(order[0])] if ok else [int(i) for i in cand]
    if "extreme" in c:
        side = c["extreme"]
        v = f.x[cand] if side in ("left", "right") else f.y[cand]
        v = -v if side in ("right", "bottom") else v
        order = np.argsort(v, kind="stable")
        gap = EXTREME_GAP * (f.w if side in ("left", "right") else f.h)
        return [int(cand[order[0]])] if v[order[1]] - v[order[0]] >= gap else [int(i) for i in cand]
    if "anchor" in c:
        anchors = np.nonzero(f.cat == c["anchor"])[0]
        if len(anchors) != 1:
            return [int(i) for i in cand]
        d = np.hypot(f.x[cand] - f.x[anchors[0]], f.y[cand] - f.y[anchors[0]])
        order = np.argsort(d, kind="stable")
        d0, d1 = d[order[0]], d[order[1]]
        if d1 >= MARGIN * d0 and d1 - d0 >= NEAR_GAP * float(np.hypot(f.w, f.h)):
            return [int(cand[order[0]])]
        return [int(i) for i in cand]
    return [int(i) for i in cand]


def phrase(c: Constraints) -> str:
    name = c["class"]
    if c.get("only"):
        return f"the only {name}"
    if "size" in c:
        return f"the {c['size']} {name}"
    if "extreme" in c:
        return f"the {EXTREMES[c['extreme']]} {name}"
    if "position" in c:
        return f"the {name} {c['position']}"
    if "anchor" in c:
        return f"the {name} closest to the {c['anchor']}"
    return f"the {name}"


def form_of(c: Constraints) -> str:
    """The form of an expression: only, size, extreme, position, anchor or class."""
    return next((k for k in ("only", "size", "extreme", "position", "anchor") if k in c), "class")


def class_expression(category: str) -> str:
    """The class-level expression of a class with several instances: their union is the target."""
    return f"all the {plural(category)}"


def _candidates(i: int, f: Facts, counts: dict[str, int]) -> list[Constraints]:
    base: Constraints = {"class": str(f.cat[i])}
    if counts[base["class"]] == 1:
        out = [base, {**base, "only": True}]
    else:
        out = [{**base, "size": s} for s in ("largest", "smallest")]
        out += [{**base, "extreme": s} for s in EXTREMES]
        if f.sure_cell[i] is not None:
            out.append({**base, "position": f.sure_cell[i]})
    out += [{**base, "anchor": a} for a, n in counts.items() if n == 1 and a != base["class"]]
    return out


def referring_expressions(
    instances: Sequence[Instance],
    size: tuple[int, int],
    rng: np.random.Generator,
    max_refs: int = 10,
    min_area: float = MIN_AREA,
) -> list[Referring]:
    """Up to `max_refs` expressions, each selecting exactly one instance, over varied classes and forms
    (round robin over the classes, rarest first; one expression per target)."""
    if not instances:
        return []
    f = Facts(instances, size)
    counts: dict[str, int] = {}
    by_class: dict[str, list[int]] = {}
    for i in rng.permutation(len(instances)):
        c = instances[int(i)].category
        counts[c] = counts.get(c, 0) + 1
        by_class.setdefault(c, []).append(int(i))
    queues = sorted(by_class.values(), key=len)
    order = [q[k] for k in range(max(map(len, queues))) for q in queues if k < len(q)][:120]
    refs: list[Referring] = []
    for i in order:
        if len(refs) >= max_refs:
            break
        if instances[i].area < min_area:
            continue
        valid: dict[str, list[Constraints]] = {}
        for c in _candidates(i, f, counts):
            if select(c, f) == [i]:
                valid.setdefault(form_of(c), []).append(c)
        if valid:  # a form first (so the four extremes do not crowd out the rest), then its variant
            forms = sorted(valid)
            options = valid[forms[int(rng.integers(len(forms)))]]
            c = options[int(rng.integers(len(options)))]
            refs.append(Referring(phrase(c), i, c))
    return refs
