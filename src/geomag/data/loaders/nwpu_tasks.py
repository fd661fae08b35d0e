"""NWPU VHR-10 as GeoMag tasks: referring segmentation, VQA, box classification and GCG benchmarks
(`nwpu-refseg`, `nwpu-vqa`, `nwpu-roc`, `nwpu-gcg`, default split "test") and training samples.

NWPU does NOT annotate every object of its ten classes in an image: each image was annotated for its
theme (e.g. 083.jpg: four baseball diamonds annotated; a tennis court and a full parking lot beside
them are not). So a class missing from an image's annotation is a true "no" (and a count of 0) only
where the image's annotated classes make it implausible: HIDDEN_BY[x] lists the classes whose images
may show an unannotated x. Vehicles appear unannotated almost everywhere and are never asked absent.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import numpy as np

from geomag.data.instance_tasks import (
    comparison_questions,
    count_questions,
    gcg_sample,
    presence_questions,
    refseg_samples,
    roc_samples,
    training_samples,
    vqa_samples,
)
from geomag.data.instances import Instance, InstanceImage
from geomag.data.loaders.nwpu import NWPU_CLASSES, NwpuImage, read_nwpu
from geomag.data.samples import Sample

_SPORTS = ("baseball diamond", "tennis court", "basketball court", "ground track field")
_WATER = ("ship", "harbor", "bridge", "storage tank")
HIDDEN_BY: dict[str, tuple[str, ...]] = {
    "airplane": ("storage tank", "ship", "harbor", "bridge", "vehicle"),
    "ship": ("harbor", "bridge", "storage tank", "airplane", "vehicle"),
    "storage tank": ("ship", "harbor", "bridge", "airplane", "vehicle"),
    "harbor": ("ship", "bridge", "storage tank", "airplane"),
    "bridge": (*_SPORTS, *_WATER, "vehicle"),
    **{s: (*_SPORTS, "bridge", "harbor", "vehicle") for s in _SPORTS},
    "vehicle": NWPU_CLASSES,
}
BENCHMARK_SEED = 0  # the benchmarks' seeded choices (absent classes asked, expression forms)
REFSEG_PER_IMAGE = 5  # benchmark: at most this many expressions per image (crowded ones don't dominate)
ROC_PER_IMAGE = 5


def known_absent(present: set[str]) -> tuple[str, ...]:
    """The classes an image annotated with `present` certainly does not show."""
    return tuple(c for c in NWPU_CLASSES if c not in present and not present & set(HIDDEN_BY[c]))


def to_instances(image: NwpuImage) -> InstanceImage:
    objects = [
        Instance.from_mask(o.category, o.mask(image.width, image.height), o.bbox)
        for o in image.objects
        if o.polygons
    ]
    present = {o.category for o in objects}
    return InstanceImage(
        image.image, image.width, image.height, tuple(objects), known_absent(present), "nwpu"
    )


def nwpu_instances(root: str | Path, split: str = "test", progress: bool = False) -> list[InstanceImage]:
    """The split's images with exact instance masks and their known-absent classes."""
    from tqdm import tqdm  # here: the CLI builds `geomag eval`'s choices from the loaders

    images = read_nwpu(root, split)
    return [to_instances(i) for i in tqdm(images, desc=f"NWPU {split}", unit="image", disable=not progress)]


def image_rng(seed: int, stem: str) -> np.random.Generator:
    """One generator per (seed, image): an image's samples do not depend on the others."""
    return np.random.default_rng([seed, zlib.crc32(stem.encode())])


def spread(samples: list[Sample]) -> list[Sample]:
    """The samples in a fixed shuffled order: NWPU's images are numbered by class (001-... are
    airplanes), so in file order `geomag eval --limit N` would score one class only."""
    out = list(samples)
    random.Random(BENCHMARK_SEED).shuffle(out)
    return out


def load_nwpu_refseg(root: Path, split: str = "test") -> list[Sample]:
    """One expression per referred instance, up to REFSEG_PER_IMAGE per image (single instances, as
    RRSIS-D; the "all the <class>" form is a training form only), in `spread` order."""
    return spread(
        [
            s
            for img in nwpu_instances(root, split)
            for s in refseg_samples(img, image_rng(BENCHMARK_SEED, img.stem), max_refs=REFSEG_PER_IMAGE)
        ]
    )


def load_nwpu_vqa(root: Path, split: str = "test") -> list[Sample]:
    """Per image: balanced presence, exact counts (1..COUNT_CAP) and up to 2 comparisons (`spread`)."""
    out = []
    for img in nwpu_instances(root, split):
        rng = image_rng(BENCHMARK_SEED, img.stem)
        qs = presence_questions(img, rng) + count_questions(img, rng) + comparison_questions(img, rng, 2)
        out += vqa_samples(img, qs)
    return spread(out)


def load_nwpu_roc(root: Path, split: str = "test") -> list[Sample]:
    return spread(
        [
            s
            for img in nwpu_instances(root, split)
            for s in roc_samples(img, image_rng(BENCHMARK_SEED, img.stem), n=ROC_PER_IMAGE)
        ]
    )


def load_nwpu_gcg(root: Path, split: str = "test") -> list[Sample]:
    return spread([s for img in nwpu_instances(root, split) if (s := gcg_sample(img)) is not None])


def nwpu_training_samples(root: str | Path, seed: int = 0, progress: bool = True) -> list[Sample]:
    """Training samples of the train split (454 images): per image up to 3 referring expressions (+ an
    "all the <class>" one half the time), balanced presence, counts, 2 comparisons, 2 ROC, 1 GCG.
    Deterministic per seed."""
    return [
        s
        for img in nwpu_instances(root, "train", progress=progress)
        for s in training_samples(img, image_rng(seed, img.stem))
    ]
