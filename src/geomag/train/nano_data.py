"""The training mixture of GeoMag-nano: REAL data from ../shared/data/real plus generated GeoScenes.

Every sample uses the same prompt wording as evaluation (geomag.data.loaders.common), so the model
is trained on the questions it is scored on. Real sources:
  AID (scene classification; a fixed 80 % of each class, the rest is held out: `aid_split`),
  RSVQA-LR / RSVQA-HR (train + val questions), NEON tree boxes (referring object classification),
  UCM / Sydney caption images (the few real images shipped with their captions), GeoPixelD (GCG).
GeoScenes adds all six tasks with exact masks. Output: JSONL files of `Sample`s plus the PNGs.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from geomag.data.loaders import load_benchmark
from geomag.data.loaders.captions import SPLITS, load_karpathy
from geomag.data.loaders.common import (
    CAPTION_PROMPT,
    REFSEG_PROMPT,
    ROC_PROMPT,
    SCENE_PROMPT,
    VQA_PROMPT,
    box_text,
    readable_class,
)
from geomag.data.loaders.geopixeld import GCG_PROMPT
from geomag.data.loaders.rsvqa import load_rsvqa
from geomag.data.samples import Sample, load_geopixeld, mask_to_rle, write_jsonl
from geomag.errors import GeoMagError
from geomag.model.answers import REFSEG_ANSWER

AID_TRAIN_FRACTION = 0.8


def aid_split(root: Path) -> tuple[list[Sample], list[Sample]]:
    """(train, held-out) AID samples: per class, the first 80 % of the sorted files train."""
    samples = load_benchmark("aid", root)
    by_class: dict[str, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.meta["label"], []).append(s)
    train, held = [], []
    for items in by_class.values():
        items.sort(key=lambda s: s.image)
        k = round(AID_TRAIN_FRACTION * len(items))
        train += items[:k]
        held += items[k:]
    return train, held


def rsvqa_train(root: Path, variant: str) -> list[Sample]:
    """RSVQA train + val questions (the test splits stay for evaluation)."""
    return load_rsvqa(root, variant, "train") + load_rsvqa(root, variant, "val")


def neon_roc(root: Path) -> list[Sample]:
    """'What is the object at [box]?' -> 'tree' for every NEON tree box on OSBS_029."""
    from PIL import Image

    csv_path = root / "OSBS_029.csv"
    image = root / "OSBS_029.png"
    if not csv_path.is_file() or not image.is_file():
        return []
    w, h = Image.open(image).size
    samples = []
    with csv_path.open() as f:
        for i, row in enumerate(csv.DictReader(f)):
            box = tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
            samples.append(
                Sample(
                    image=str(image),
                    prompt=ROC_PROMPT.format(box=box_text(box, w, h)),
                    answer="tree",
                    task="roc",
                    meta={"id": f"neon/{i}", "source": "neon"},
                )
            )
    return samples


def real_captions(root: Path) -> list[Sample]:
    """One caption sample per reference sentence of the real caption images shipped in ../shared."""
    out = []
    for name in ("ucm-captions", "sydney-captions"):
        if not (root / name).is_dir():
            continue
        records = [s for split in SPLITS for s in load_karpathy(root / name, split)]
        for rec in sorted(records, key=lambda s: s.meta["imgid"]):
            if Path(rec.image).is_file():
                out += [
                    Sample(rec.image, CAPTION_PROMPT, ref, "caption", meta={"id": f"{name}/{rec.meta['id']}"})
                    for ref in rec.meta["references"]
                ]
    return out


def refseg_sample(scene: Any, ref: dict[str, Any], image: str, meta: dict[str, Any]) -> Sample:
    """The referring-segmentation sample of one GeoScenes expression: its exact mask as COCO RLE."""
    return Sample(
        image,
        REFSEG_PROMPT.format(expression=ref["expression"]),
        REFSEG_ANSWER,
        "refseg",
        masks=[{"rle": mask_to_rle(scene.full_mask(ref["object"]))}],
        meta=meta,
    )


def scene_samples(seed: int, size: tuple[int, int], image_dir: Path, rng: random.Random) -> Iterator[Sample]:
    """Samples of all six tasks from one generated scene (its PNG is written to image_dir)."""
    from geomag.data.scenes import SCENE_TYPES, generate_scene

    scene = generate_scene(seed, size)
    path = image_dir / f"scene_{seed:06d}.png"
    scene.image.save(path)
    w, h = scene.image.size
    image = str(path)
    meta = {"source": "geoscenes", "seed": seed}
    yield Sample(image, CAPTION_PROMPT, rng.choice(scene.captions), "caption", meta=meta)
    classes = ", ".join(readable_class(t) for t in SCENE_TYPES)
    yield Sample(
        image, SCENE_PROMPT.format(classes=classes), readable_class(scene.scene_type), "scene", meta=meta
    )
    for q in rng.sample(scene.vqa, min(3, len(scene.vqa))):
        yield Sample(
            image,
            VQA_PROMPT.format(question=q["question"].rstrip("?") + "?"),
            q["answer"],
            "vqa",
            meta={**meta, "type": q["type"]},
        )
    for r in rng.sample(scene.roc, min(2, len(scene.roc))):
        yield Sample(image, ROC_PROMPT.format(box=box_text(r["box"], w, h)), r["class"], "roc", meta=meta)
    for r in rng.sample(scene.referring, min(2, len(scene.referring))):
        yield refseg_sample(scene, r, image, meta)
    if scene.gcg and scene.gcg.get("objects"):
        masks = [{"rle": mask_to_rle(scene.full_mask(i))} for i in scene.gcg["objects"]]
        yield Sample(image, GCG_PROMPT, scene.gcg["text"], "gcg", masks=masks, meta=meta)


DECODER_SEED_OFFSET = 500_000  # the decoder stage's extra scenes: seeds the mixture never reaches


def referring_samples(
    n_scenes: int, seed: int, image_dir: Path, sizes: tuple[int, ...] = (512, 768), per_scene: int = 4
) -> list[Sample]:
    """Referring-segmentation samples (up to `per_scene` expressions each) from extra GeoScenes, for the
    decoder stage, which needs thousands of masks the joint stage cannot afford."""
    from geomag.data.scenes import generate_scene

    image_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out = []
    for i in tqdm(range(n_scenes), desc="GeoScenes (refseg)", unit="scene"):
        scene_seed = seed * 1_000_003 + DECODER_SEED_OFFSET + i
        side = sizes[i % len(sizes)]
        scene = generate_scene(scene_seed, (side, side))
        path = image_dir / f"scene_{scene_seed:06d}.png"
        scene.image.save(path)
        meta = {"source": "geoscenes", "seed": scene_seed}
        out += [
            refseg_sample(scene, r, str(path), meta)
            for r in rng.sample(scene.referring, min(per_scene, len(scene.referring)))
        ]
    return out


def real_sources(real_root: Path) -> dict[str, list[Sample]]:
    """The mixture's REAL samples by source, in the mixture's order: what `build_mixture` trains on and
    what `geomag.train.manifest` lists as the files a checkpoint was trained on (no GeoScenes here)."""
    return {
        "aid": aid_split(real_root / "aid-150")[0],
        "rsvqa-lr": rsvqa_train(real_root / "rsvqa-lr" / "configilm_subset", "LR"),
        "rsvqa-hr": rsvqa_train(real_root / "rsvqa-hr" / "configilm_subset", "HR"),
        "neon-trees": neon_roc(real_root / "neon-trees"),
        "captions": real_captions(real_root),
        "geopixeld": load_geopixeld(real_root / "geopixel" / "data" / "GeoPixelD.json"),
    }


def build_mixture(
    real_root: str | Path,
    out_dir: str | Path,
    n_scenes: int = 2000,
    seed: int = 0,
    sizes: tuple[int, ...] = (512, 768),
) -> dict[str, Path]:
    """Write train.jsonl (+ heldout_aid.jsonl) under out_dir; returns the paths. Deterministic per seed."""
    real_root, out_dir = Path(real_root), Path(out_dir)
    if not real_root.is_dir():
        raise GeoMagError(f"real data folder not found: {real_root} (it ships as ../shared/data/real)")
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    _, aid_held = aid_split(real_root / "aid-150")
    samples = [s for source in real_sources(real_root).values() for s in source]
    for i in tqdm(range(n_scenes), desc="GeoScenes", unit="scene"):
        side = sizes[i % len(sizes)]
        samples += list(scene_samples(seed * 1_000_003 + i, (side, side), image_dir, rng))
    rng.shuffle(samples)
    return {
        "train": write_jsonl(samples, out_dir / "train.jsonl"),
        "heldout_aid": write_jsonl(aid_held, out_dir / "heldout_aid.jsonl"),
    }


# --- real objects: NWPU VHR-10 and iSAID instances, AID's weak presence labels (the fine-tuning mixture) ---


def object_sources(real_root: Path, seed: int) -> dict[str, list[Sample]]:
    """The real-object samples the fine-tuning mixture adds to `real_sources`: NWPU VHR-10's train
    split (its test split is held out), iSAID's train image, presence questions on AID's train split."""
    import numpy as np

    from geomag.data.loaders.aid_presence import aid_presence_samples
    from geomag.data.loaders.isaid import isaid_samples, read_isaid
    from geomag.data.loaders.nwpu_tasks import nwpu_training_samples

    isaid = real_root / "isaid-samples"
    rng = np.random.default_rng(seed)
    return {
        "nwpu-vhr10": nwpu_training_samples(real_root / "nwpu-vhr10", seed)
        if (real_root / "nwpu-vhr10").is_dir()
        else [],
        "isaid": [s for img in read_isaid(isaid, "train") for s in isaid_samples(img, rng)]
        if (isaid / "train").is_dir()
        else [],
        "aid-presence": aid_presence_samples(aid_split(real_root / "aid-150")[0], seed),
    }


OBJECT_MIXTURE_AID = 1500  # AID scene-classification samples replayed by the "objects" mixture
OBJECT_MIXTURE_COMPOSITES = 400  # real-texture composites (train split) in the "objects" mixture
OBJECT_MIXTURE_COMPOSITE_SAMPLES = 2000  # of their samples, a seeded share (each has ~14)


def build_object_mixture(
    real_root: str | Path,
    out_dir: str | Path,
    n_scenes: int = 100,
    seed: int = 0,
    sizes: tuple[int, ...] = (512, 768),
) -> dict[str, Path]:
    """The fine-tuning mixture: every real-object sample (`object_sources`), samples of real-texture
    composites (`geomag.data.composites`, train split: objects and backgrounds the held-out split
    never uses) and a replay of the base mixture (its real sources with AID cut to
    OBJECT_MIXTURE_AID, and the first `n_scenes` of its GeoScenes), so that what the checkpoint knew is
    kept. Writes train.jsonl (+ heldout_aid.jsonl)."""
    from geomag.data.composites import training_samples

    real_root, out_dir = Path(real_root), Path(out_dir)
    if not real_root.is_dir():
        raise GeoMagError(f"real data folder not found: {real_root} (it ships as ../shared/data/real)")
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    base = real_sources(real_root)
    base["aid"] = rng.sample(base["aid"], min(OBJECT_MIXTURE_AID, len(base["aid"])))
    samples = [s for source in (*base.values(), *object_sources(real_root, seed).values()) for s in source]
    composites = training_samples(OBJECT_MIXTURE_COMPOSITES, seed, out_dir / "composites", real_root)
    samples += rng.sample(composites, min(OBJECT_MIXTURE_COMPOSITE_SAMPLES, len(composites)))
    for i in tqdm(range(n_scenes), desc="GeoScenes", unit="scene"):
        side = sizes[i % len(sizes)]
        samples += list(scene_samples(seed * 1_000_003 + i, (side, side), image_dir, rng))
    rng.shuffle(samples)
    _, aid_held = aid_split(real_root / "aid-150")
    return {
        "train": write_jsonl(samples, out_dir / "train.jsonl"),
        "heldout_aid": write_jsonl(aid_held, out_dir / "heldout_aid.jsonl"),
    }


def region_targets(real_root: Path, seed: int) -> list[Sample]:
    """Masks for region questions, for the decoder stage: a presence or count question about a class
    of an NWPU VHR-10 train image, with the referring answer and the union of that class's instances.
    Region plans take their crop from the decoder's mask for the question itself (mask saliency,
    `geomag.magcrop`), so the decoder learns where a question's objects are."""
    import numpy as np

    from geomag.data.instance_tasks import count_question, presence_question
    from geomag.data.instances import union_spec
    from geomag.data.loaders.nwpu_tasks import nwpu_instances

    root = real_root / "nwpu-vhr10"
    if not root.is_dir():
        return []
    rng = np.random.default_rng(seed)
    out = []
    for img in nwpu_instances(root, "train"):
        by_class: dict[str, list[Any]] = {}
        for o in img.instances:
            by_class.setdefault(o.category, []).append(o)
        category = sorted(by_class)[int(rng.integers(len(by_class)))]
        ask = presence_question if rng.random() < 0.5 else count_question
        out.append(
            Sample(
                str(img.image),
                VQA_PROMPT.format(question=ask(category, rng)),
                REFSEG_ANSWER,
                "refseg",
                masks=[union_spec(by_class[category])],
                meta={"source": "nwpu-vhr10", "id": f"nwpu-region/{img.stem}", "category": category},
            )
        )
    return out
