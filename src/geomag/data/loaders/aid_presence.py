"""Weak but real presence questions on AID images: the scene class implies or rules out objects
(geomag.data.scene_objects), e.g. "Is there a bridge in this image?" -> "no" on a Forest image.

`aid_presence_samples` turns scene samples (geomag.data.loaders.classfolders, `meta["label"]` the
AID class folder) into VQA samples of type "presence", balanced between yes and no: every implied
object is asked ("yes"), and as many ruled-out ones ("no"), spread over the images. The benchmark
`aid-presence` reads a class-folder root (e.g. the held-out AID copy of benchmarks/nano_eval.py).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from geomag.data.instance_tasks import presence_question
from geomag.data.loaders.classfolders import load_class_folders
from geomag.data.loaders.common import VQA_PROMPT
from geomag.data.samples import Sample
from geomag.data.scene_objects import absent, present

BENCHMARK_SEED = 0


def aid_presence_samples(samples: Sequence[Sample], seed: int = 0, per_image: int = 2) -> list[Sample]:
    """Presence questions of AID scene samples: all implied objects (yes; at most `per_image` per
    image) and an equal number of ruled-out ones (no), at most `per_image` questions per image,
    the "no" spread round robin over the images in a seeded order. Fixed wording; deterministic."""
    rng = random.Random(seed)
    asked: dict[int, list[tuple[str, str]]] = {}
    for k, s in enumerate(samples):
        asked[k] = [(c, "yes") for c in present(s.meta["label"])][:per_image]
    n_yes = sum(len(v) for v in asked.values())
    pools = {}
    for k, s in enumerate(samples):
        outs = list(absent(s.meta["label"]))
        rng.shuffle(outs)
        pools[k] = outs
    order = list(range(len(samples)))
    rng.shuffle(order)
    n_no = 0
    while n_no < n_yes:
        added = False
        for k in order:
            if n_no >= n_yes:
                break
            if pools[k] and len(asked[k]) < per_image:
                asked[k].append((pools[k].pop(), "no"))
                n_no += 1
                added = True
        if not added:
            break
    out = []
    for k, s in enumerate(samples):
        for category, answer in asked[k]:
            q = presence_question(category)
            out.append(
                Sample(
                    image=s.image,
                    prompt=VQA_PROMPT.format(question=q),
                    answer=answer,
                    task="vqa",
                    meta={
                        "id": f"{s.meta['id']}/{category}",
                        "type": "presence",
                        "question": q,
                        "category": category,
                        "label": s.meta["label"],
                    },
                )
            )
    return out


def load_aid_presence(root: Path, split: str = "test") -> list[Sample]:
    """The `aid-presence` benchmark: balanced presence questions on an AID class-folder root."""
    return aid_presence_samples(load_class_folders(root, split), BENCHMARK_SEED)
