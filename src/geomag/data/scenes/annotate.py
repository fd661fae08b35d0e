"""Ground truth for every task, derived from the drawn objects (never from the layout's intentions)."""

from __future__ import annotations

import numpy as np

from geomag.data.scenes.captions import captions
from geomag.data.scenes.gcg import gcg
from geomag.data.scenes.referring import referring
from geomag.data.scenes.scene import Scene
from geomag.data.scenes.vqa import vqa

MAX_ROC = 30


def roc(scene: Scene, rng: np.random.Generator) -> list[dict]:
    """Referring object classification (DIOR-RSVG style): box -> class, up to MAX_ROC objects."""
    idx = rng.permutation(len(scene.objects))[:MAX_ROC]
    return [
        {"box": list(scene.objects[i].box), "class": scene.objects[i].category, "object": int(i)}
        for i in sorted(idx)
    ]


def annotate(scene: Scene, rng: np.random.Generator) -> None:
    scene.captions = captions(scene, rng)
    # its own stream: the wording of the questions (the one builder's) does not move the draws of
    # the referring expressions and ROC boxes after it
    scene.vqa = vqa(scene, np.random.default_rng([scene.seed, 0x7A5]))
    scene.roc = roc(scene, rng)
    scene.referring = referring(scene, rng)
    scene.gcg = gcg(scene, rng)
