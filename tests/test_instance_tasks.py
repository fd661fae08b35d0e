"""The one instance-task builder (geomag.data.instance_tasks) on every instance source: NWPU VHR-10,
iSAID, DOTA, a real-texture composite (in test_composites.py, which cuts the object bank once) and
a GeoScene all become `InstanceImage`s and give refseg, presence, count, comparison, ROC and GCG
samples in the benchmarks' formats; the NWPU / iSAID benchmark samples are byte-identical to those
of the builders before they were merged."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from geomag.data.instance_tasks import TASKS, instance_samples
from geomag.data.instances import Instance, InstanceImage, plural
from geomag.data.loaders.common import REFSEG_PROMPT, ROC_PROMPT, VQA_PROMPT
from geomag.data.loaders.geopixeld import GCG_PROMPT
from geomag.data.samples import Sample
from geomag.model.answers import REFSEG_ANSWER, gcg_phrases


def test_from_crop_is_from_mask_without_the_full_frame() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(3, 40, size=2))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))
        full = np.zeros((h, w), bool)
        full[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.6  # often touching top and bottom
        if not full.any():
            continue
        a = Instance.from_mask("ship", full)
        b = Instance.from_crop("ship", full[y0:y1, x0:x1], (x0, y0), (w, h))
        assert (a.rle, a.box, a.area, a.centre) == (b.rle, b.box, b.area, b.centre)
        checked += 1
    assert checked > 250


def _question_class(q: str, img: InstanceImage) -> list[str]:
    known = set(img.counts()) | set(img.absent)
    return [c for c in known if re.search(rf"\b({re.escape(c)}|{re.escape(plural(c))})\b", q)]


def check_formats(img: InstanceImage, samples: list[Sample]) -> None:
    """Every task is there, in the benchmark's prompt and answer format, and true of the instances."""
    vqa_types = {s.meta["type"] for s in samples if s.task == "vqa"}
    tasks = {s.task for s in samples if s.task != "vqa"} | {
        {"presence": "presence", "count": "count", "comp": "comparison"}[t] for t in vqa_types
    }
    assert tasks == set(TASKS), (img.source, tasks)
    assert len({s.meta["id"] for s in samples}) == len(samples)
    masks = [o.mask() for o in img.instances]
    counts = img.counts()
    for s in samples:
        assert s.image == str(img.image)
        if s.task == "refseg":
            expression = s.meta["expression"]
            assert s.prompt == REFSEG_PROMPT.format(expression=expression) and s.answer == REFSEG_ANSWER
            (m,) = s.mask_arrays(img.width, img.height)
            assert any(np.array_equal(m, k) for k in masks) or s.meta["form"] == "all"
        elif s.task == "vqa":
            q = s.meta["question"]
            assert s.prompt == VQA_PROMPT.format(question=q)
            if s.meta["type"] == "presence":
                assert s.answer == ("yes" if counts.get(s.meta["category"], 0) else "no")
                assert s.meta["category"] in _question_class(q, img)
            elif s.meta["type"] == "count":
                assert s.answer == str(counts.get(s.meta["category"], 0))
            else:
                a, b = counts.get(s.meta["first"], 0), counts.get(s.meta["second"], 0)
                truth = a > b if " more " in q else a < b if " less " in q else a == b
                assert s.answer == ("yes" if truth else "no")
        elif s.task == "roc":
            assert s.prompt.startswith(ROC_PROMPT.split("{")[0]) and s.answer == s.meta["class"]
            assert any(o.category == s.answer and list(o.box) == s.meta["box"] for o in img.instances)
        else:
            assert s.task == "gcg" and s.prompt == GCG_PROMPT
            phrases = gcg_phrases(s.answer)
            assert phrases == s.meta["phrases"] and len(phrases) == len(s.masks) == s.answer.count("[SEG]")
            for p, m in zip(phrases, s.mask_arrays(img.width, img.height), strict=True):
                name = p.rsplit("-", 1)[0] if p[-1].isdigit() else p
                assert any(
                    name.endswith(o.category) and np.array_equal(k, m)
                    for o, k in zip(img.instances, masks, strict=True)
                )


def all_tasks(img: InstanceImage, seed: int = 0) -> list[Sample]:
    return instance_samples(img, np.random.default_rng(seed), max_refs=3, with_all=True, zeros=1, roc=2)


@pytest.fixture(scope="module")
def nwpu_images(real_data: Path) -> dict[str, list]:
    from geomag.data.loaders.nwpu import read_nwpu

    return {s: read_nwpu(real_data / "nwpu-vhr10", s) for s in ("train", "test")}


def test_nwpu_images(nwpu_images: dict[str, list]) -> None:
    from geomag.data.loaders.nwpu_tasks import to_instances

    # three test images of two classes or more (comparisons with a "yes" and a "no")
    several = [i for i in nwpu_images["test"] if len({o.category for o in i.objects if o.polygons}) >= 2]
    picked = [to_instances(i) for i in several[:3]]
    samples = [s for i in picked for s in all_tasks(i)]
    assert {s.task for s in samples} == {"refseg", "vqa", "roc", "gcg"}
    for img in picked:
        check_formats(img, [s for s in samples if s.image == str(img.image)])


def test_isaid_image(real_data: Path) -> None:
    from geomag.data.loaders.isaid import read_isaid_image

    img = read_isaid_image(real_data / "isaid-samples/val/images/P0003.png")
    check_formats(img, all_tasks(img))


def test_dota_image_from_oriented_boxes(real_data: Path) -> None:
    from geomag.data.loaders.dota import DOTA_CLASSES, read_dota, read_dota_image, read_dota_labels

    root = real_data / "dota"
    img = read_dota_image(root / "images/P1888.png", root / "labelTxt/P1888.txt")
    assert img.source == "dota" and img.size == (712, 557)
    assert img.counts() == {"small vehicle": 14, "large vehicle": 50}  # 64 vehicles (README)
    assert set(img.absent) == set(DOTA_CLASSES) - {"small vehicle", "large vehicle"}
    for (cls, corners), o in zip(read_dota_labels(root / "labelTxt/P1888.txt"), img.instances, strict=True):
        assert o.category == cls
        x0, y0, x1, y1 = o.box  # the filled quadrilateral: inside the corners' extent, most of it
        assert x0 >= np.floor(corners[:, 0].min()) and x1 <= np.ceil(corners[:, 0].max()) + 1
        assert y0 >= np.floor(corners[:, 1].min()) and y1 <= np.ceil(corners[:, 1].max()) + 1
        xs, ys = corners[:, 0], corners[:, 1]
        quad = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))  # shoelace
        assert 0.7 * quad <= o.area <= quad + 2 * (np.ptp(xs) + np.ptp(ys)) + 4
    check_formats(img, all_tasks(img))
    assert [i.stem for i in read_dota(root)] == ["P0706", "P1888"]  # label files without an image skipped


def test_dota_bad_label_line_is_one_clear_error(tmp_path: Path) -> None:
    from geomag.data.loaders.dota import read_dota_labels
    from geomag.errors import GeoMagError

    bad = tmp_path / "P1.txt"
    bad.write_text("gsd:0.3\n1 2 3 4 small-vehicle 0\n")
    with pytest.raises(GeoMagError, match=r"P1.txt:2: expected"):
        read_dota_labels(bad)
    bad.write_text("1 2 3 4 5 6 7 x small-vehicle 0\n")
    with pytest.raises(GeoMagError, match=r"P1.txt:1: corner coordinates are not numbers"):
        read_dota_labels(bad)
    bad.write_text("1 2 3 4 5 6 7 8 dragon 0\n")
    with pytest.raises(GeoMagError, match="unknown DOTA class 'dragon'"):
        read_dota_labels(bad)


def test_geoscene(tmp_path: Path) -> None:
    from geomag.data.instance_tasks import gcg_description
    from geomag.data.scenes import generate_scene
    from geomag.data.scenes.gcg import SCENE_WORDS
    from geomag.data.scenes.instances import scene_instances

    scenes = (generate_scene(k) for k in range(1, 6))
    scene = next(s for s in scenes if len({o.category for o in s.objects}) >= 2)
    scene.image.save(tmp_path / "scene.png")
    img = scene_instances(scene, tmp_path / "scene.png")
    assert all(o.colour for o in img.instances)
    check_formats(img, all_tasks(img))
    d = gcg_description(img, SCENE_WORDS[scene.scene_type], 4, 3, 4)
    assert d is not None and scene.gcg == {"text": d.text, "phrases": d.phrases, "objects": d.objects}
    assert all(p.split()[0] == img.instances[i].colour for p, i in zip(d.phrases, d.objects, strict=True))


def test_same_seed_same_samples(real_data: Path) -> None:
    from geomag.data.loaders.isaid import read_isaid_image

    img = read_isaid_image(real_data / "isaid-samples/val/images/P0003.png")
    a, b, c = (all_tasks(img, seed) for seed in (3, 3, 4))
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b] != [s.to_dict() for s in c]


# Hashes of the samples the builders made BEFORE they were merged into one (commit 4e7a525): the
# benchmarks' NWPU / iSAID samples must not change silently.
BEFORE = {
    "refseg": "6c9ccd82d2363457",
    "vqa": "42b1c55fd988090f",
    "roc": "6b195e8f5a9076a4",
    "gcg": "0f07ea568fb42c3b",
    "train": "98d5833fdfa9a0aa",
    "isaid": "e8260fbe4340115b",
    "isaid-train": "17203e8ff0d06206",
}


def _hash(samples: list[Sample], root: Path) -> str:
    """Of the samples' dicts, image paths relative to `root` (where ../shared resolves may vary)."""
    dicts = ({**s.to_dict(), "image": str(Path(s.image).relative_to(root))} for s in samples)
    return hashlib.sha256("\n".join(json.dumps(d, sort_keys=True) for d in dicts).encode()).hexdigest()[:16]


def test_nwpu_and_isaid_samples_are_unchanged(real_data: Path, nwpu_images: dict[str, list]) -> None:
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
    from geomag.data.loaders.isaid import isaid_samples, read_isaid_image
    from geomag.data.loaders.nwpu_tasks import (
        BENCHMARK_SEED,
        REFSEG_PER_IMAGE,
        ROC_PER_IMAGE,
        image_rng,
        to_instances,
    )

    test = [to_instances(i) for i in nwpu_images["test"][:8]]
    train = [to_instances(i) for i in nwpu_images["train"][:6]]

    def rng(img: InstanceImage) -> np.random.Generator:
        return image_rng(BENCHMARK_SEED, img.stem)

    def vqa(img: InstanceImage) -> list[Sample]:  # as load_nwpu_vqa asks them
        r = rng(img)
        return vqa_samples(
            img, presence_questions(img, r) + count_questions(img, r) + comparison_questions(img, r, 2)
        )

    isa = read_isaid_image(real_data / "isaid-samples/val/images/P0003.png")
    now = {
        "refseg": _hash(
            [s for i in test for s in refseg_samples(i, rng(i), max_refs=REFSEG_PER_IMAGE)], real_data
        ),
        "vqa": _hash([s for i in test for s in vqa(i)], real_data),
        "roc": _hash([s for i in test for s in roc_samples(i, rng(i), n=ROC_PER_IMAGE)], real_data),
        "gcg": _hash([s for i in test if (s := gcg_sample(i)) is not None], real_data),
        "train": _hash([s for i in train for s in training_samples(i, image_rng(0, i.stem))], real_data),
        "isaid": _hash(isaid_samples(isa, np.random.default_rng(0)), real_data),
        "isaid-train": _hash(training_samples(isa, np.random.default_rng(1), count_cap=None), real_data),
    }
    assert now == BEFORE
