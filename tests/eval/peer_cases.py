"""Hand-made inputs of the peer-parity suite (test_peer_conventions.py), as plain data.

Kept apart from the test so the same cases can be written into each peer's own file formats and fed
to that peer's scoring code (that is how the expected figures in the test were recorded).
"""

from __future__ import annotations

import numpy as np

GCG_SIZE = (20, 20)
EMPTY = (0, 0, 0, 0)

# One GCG image: (image id, ground truth [(box, phrase)], predictions [(box, phrase)]); boxes are
# (r0, r1, c0, c1) on a 20x20 grid, EMPTY an empty mask. Listed in the order they are fed to the
# scorer, which is not their names' order.
GcgCase = tuple[str, list[tuple[tuple[int, int, int, int], str]], list[tuple[tuple[int, int, int, int], str]]]

GCG_BASE: list[GcgCase] = [
    (
        "img_c",
        [((0, 8, 0, 8), "red car"), ((10, 18, 10, 18), "white ship")],
        [((0, 8, 0, 8), "red car")],
    ),
    (
        "img_a",
        [((0, 10, 0, 10), "tennis court"), ((10, 20, 10, 20), "swimming pool")],
        [((0, 10, 0, 8), "tennis court"), ((0, 5, 15, 20), "swimming pool")],
    ),
    (
        "img_e",
        [((0, 10, 10, 20), "harbor")],
        [((0, 10, 10, 20), "harbor")],
    ),
    (
        "img_b",
        [((5, 15, 5, 15), "large building")],
        [((12, 20, 0, 5), "tree"), ((5, 15, 5, 14), "a large building")],
    ),
    (
        "img_d",
        [((2, 12, 2, 12), "storage tank")],
        [((2, 12, 8, 18), "storage tank"), ((0, 20, 0, 20), "field")],
    ),
]
# An image without ground-truth masks and one prediction; its name sorts before the others'.
GCG_NO_GT: GcgCase = ("img_0", [], [((0, 5, 0, 5), "ship")])
# An empty ground-truth mask and an empty prediction with the same phrase (GLaMM's IoU is 0 / 0).
GCG_EMPTY_PAIR: GcgCase = ("img_f", [(EMPTY, "shadow")], [(EMPTY, "shadow")])
# A perfect pair beside an empty / empty pair whose phrases differ: GLaMM's matcher takes the 0 / 0
# pair first (NaN is np.argmax's maximum), fails its phrase test and stops, leaving the perfect pair.
GCG_NAN_FIRST: GcgCase = (
    "img_g",
    [((0, 10, 0, 10), "tennis court"), (EMPTY, "shadow")],
    [((0, 10, 0, 10), "tennis court"), (EMPTY, "dark patch")],
)

GCG_SETS: dict[str, list[GcgCase]] = {
    "base": GCG_BASE,
    "base_reversed": GCG_BASE[::-1],
    "no_gt": [*GCG_BASE, GCG_NO_GT],
    "empty_pair": [*GCG_BASE, GCG_EMPTY_PAIR],
    "nan_first": [*GCG_BASE, GCG_NAN_FIRST],
}

# Phrase vectors: bag of words over this vocabulary, compared by cosine (the peers' BERT is not
# available offline; the same vectors stand in for it on both sides).
VOCAB = sorted(
    {w for cases in GCG_SETS.values() for _, gt, pred in cases for _, p in [*gt, *pred] for w in p.split()}
)


def box(b: tuple[int, int, int, int], size: tuple[int, int] = GCG_SIZE) -> np.ndarray:
    m = np.zeros(size, dtype=bool)
    m[b[0] : b[1], b[2] : b[3]] = True
    return m


def bag_of_words(text: str) -> np.ndarray:
    v = np.zeros(len(VOCAB))
    for w in text.split():
        v[VOCAB.index(w)] += 1.0
    return v


# Referring segmentation on a 10x14 grid: (prediction, ground truth) boxes, EMPTY for an empty mask.
REFSEG_SIZE = (10, 14)
REFSEG_PAIRS = [
    ((0, 6, 0, 4), (0, 6, 0, 8)),  # partial
    ((3, 10, 4, 14), (2, 9, 3, 13)),  # shifted
    ((1, 4, 5, 9), (1, 4, 5, 9)),  # exact
    (EMPTY, (4, 7, 2, 11)),  # missed
    (EMPTY, EMPTY),  # no target, nothing predicted
]

# GeoChat scene answers against RESISC-45-style snake_case class folders: (class folder, answer).
SCENE_ANSWERS = [
    ("bare_land", "Bare land"),
    ("bare_land", "bare_land"),
    ("dense_residential", "Dense residential."),
    ("dense_residential", "dense_residential."),
    ("golf_course", "Golf course"),
    ("golf_course", "golf courses"),
    ("airport", "Airport."),
    ("river", "River"),
    ("storage_tank", "storage tanks"),
    ("storage_tank", "Storage_Tank"),
]
