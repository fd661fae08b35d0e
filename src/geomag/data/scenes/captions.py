"""Five varied UCM-Captions-style sentences per scene, built from what is really in it."""

from __future__ import annotations

import numpy as np

from geomag.data.scenes.classes import PLURAL
from geomag.data.scenes.scene import LC, Scene

NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
OPENERS = {
    "airport": [
        "this is an airport",
        "it is an airport with a long runway",
        "an airport with a runway and a terminal",
    ],
    "harbor": ["this is a harbor", "it is a port by the sea", "a harbor with piers reaching into the water"],
    "residential": [
        "this is a residential area",
        "it is a neighborhood of houses along the streets",
        "a residential area with many houses",
    ],
    "industrial": [
        "this is an industrial area",
        "it is an industrial zone with large factory buildings",
        "an industrial area with storage tanks",
    ],
    "parking lot": [
        "this is a parking lot",
        "it is a large parking lot",
        "a parking lot with rows of parking spaces",
    ],
    "farmland": [
        "this is a piece of farmland",
        "it is farmland divided into fields",
        "several pieces of cropland are here",
    ],
    "forest": ["this is a forest", "it is a dense forest", "lots of trees form a dense forest"],
    "sports ground": [
        "this is a sports ground",
        "it is a sports area with courts",
        "some sports courts are here",
    ],
    "river bridge": [
        "this is a bridge over a river",
        "a river runs through the area",
        "it is a river with a bridge over it",
    ],
    "beach": ["this is a beach", "it is a beach by the sea", "a sandy beach lies along the sea"],
}
WHERE = {
    "ship": ["in the water", "on the water", "near the shore"],
    "airplane": ["on the apron", "at the airport", "near the terminal"],
    "vehicle": ["on the road", "in the area", "parked here"],
    "building": ["in the area", "beside the road", "here"],
    "storage tank": ["in the area", "close to each other", "here"],
    "harbor": ["along the shore", "in the water", "here"],
}


def quantity(n: int, rng: np.random.Generator) -> str:
    if n == 1:
        return "a"
    if n <= 3:
        return NUMBERS[n]
    if n <= 6:
        return str(rng.choice(["several", "some", NUMBERS[n]]))
    return str(rng.choice(["many", "lots of", "a lot of"]))


def _noun(c: str, n: int) -> str:
    return c if n == 1 else PLURAL[c]


def captions(scene: Scene, rng: np.random.Generator) -> list[str]:
    counts: dict[str, int] = {}
    colours: dict[str, dict[str, int]] = {}
    for o in scene.objects:
        counts[o.category] = counts.get(o.category, 0) + 1
        colours.setdefault(o.category, {}).setdefault(o.colour, 0)
        colours[o.category][o.colour] += 1
    main = sorted(counts, key=lambda c: -counts[c])
    sentences: list[str] = []
    openers = list(OPENERS[scene.scene_type])
    rng.shuffle(openers)
    sentences.append(openers[0])
    for c in main[:3]:
        n = counts[c]
        top, k = max(colours[c].items(), key=lambda kv: kv[1])
        verb = "is" if n == 1 else "are"
        where = str(rng.choice(WHERE.get(c, ["here", "in the area"])))
        if k == n and rng.random() < 0.7:
            sentences.append(f"there {verb} {quantity(n, rng)} {top} {_noun(c, n)} {where}")
        else:
            sentences.append(f"there {verb} {quantity(n, rng)} {_noun(c, n)} {where}")
    lc = scene.landcover
    extras = []
    if (lc == LC["water"]).mean() > 0.02:
        extras.append(
            str(
                rng.choice(
                    [
                        "the water is dark green",
                        "part of the image is covered by water",
                        "there is some water",
                    ]
                )
            )
        )
    if (lc == LC["forest"]).mean() > 0.05:
        extras.append(
            str(
                rng.choice(
                    [
                        "some green trees are around",
                        "there are many green trees",
                        "a patch of forest is nearby",
                    ]
                )
            )
        )
    if (lc == LC["road"]).mean() > 0.01:
        extras.append(
            str(rng.choice(["a road goes through the area", "some roads cross the scene", "there is a road"]))
        )
    if (lc == LC["cropland"]).mean() > 0.1:
        extras.append("the fields have different colors")
    if len(main) >= 2:
        a, b = main[0], main[1]
        extras.append(f"{_noun(a, counts[a])} and {_noun(b, counts[b])} are in the scene")
    if not main:
        extras.append("there are no buildings or vehicles")
    sentences += extras
    sentences += openers[1:]
    out: list[str] = []
    for s in sentences:
        s = s[0].upper() + s[1:] + "."
        if s not in out:
            out.append(s)
    return out[:5]
