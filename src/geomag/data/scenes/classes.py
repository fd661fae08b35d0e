"""The object classes: real-world size, height (for shadows), colours, drawing order, DIOR-RSVG name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectClass:
    name: str
    colours: tuple[str, ...]  # the colours it comes in, most common first
    weights: tuple[float, ...]
    height_m: float  # for the cast shadow
    z: int  # drawing order: higher covers lower
    dior: str  # DIOR / DIOR-RSVG class name (or our own where DIOR has none)


CLASSES: dict[str, ObjectClass] = {
    c.name: c
    for c in [
        ObjectClass("harbor", ("gray", "brown"), (0.7, 0.3), 1.0, 0, "harbor"),
        ObjectClass("bridge", ("gray",), (1.0,), 4.0, 1, "bridge"),
        ObjectClass("tennis court", ("green", "blue", "red"), (0.5, 0.3, 0.2), 0.0, 1, "tenniscourt"),
        ObjectClass(
            "basketball court", ("orange", "blue", "green"), (0.4, 0.3, 0.3), 0.0, 1, "basketballcourt"
        ),
        ObjectClass("swimming pool", ("blue",), (1.0,), 0.0, 1, "swimmingpool"),
        ObjectClass(
            "vehicle",
            ("white", "black", "gray", "red", "blue", "yellow"),
            (0.3, 0.2, 0.2, 0.12, 0.12, 0.06),
            1.5,
            2,
            "vehicle",
        ),
        ObjectClass(
            "ship", ("white", "gray", "red", "blue", "black"), (0.45, 0.2, 0.12, 0.13, 0.1), 3.0, 2, "ship"
        ),
        ObjectClass("storage tank", ("white", "gray"), (0.7, 0.3), 12.0, 3, "storagetank"),
        ObjectClass(
            "building",
            ("red", "gray", "white", "blue", "brown"),
            (0.25, 0.3, 0.15, 0.15, 0.15),
            7.0,
            3,
            "building",
        ),
        ObjectClass(
            "airplane",
            ("white", "gray", "yellow", "blue", "red"),
            (0.55, 0.2, 0.1, 0.1, 0.05),
            6.0,
            4,
            "airplane",
        ),
    ]
}
PLURAL = {
    "harbor": "harbors",
    "bridge": "bridges",
    "tennis court": "tennis courts",
    "basketball court": "basketball courts",
    "swimming pool": "swimming pools",
    "vehicle": "vehicles",
    "ship": "ships",
    "storage tank": "storage tanks",
    "building": "buildings",
    "airplane": "airplanes",
}
