"""NWPU VHR-10, iSAID and AID presence as GeoMag tasks, checked on the real files in ../shared."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from geomag.data.instances import Instance, plural
from geomag.data.loaders import load_benchmark
from geomag.data.loaders.aid_presence import aid_presence_samples
from geomag.data.loaders.classfolders import load_class_folders
from geomag.data.loaders.isaid import isaid_samples, read_isaid
from geomag.data.loaders.nwpu import NWPU_CLASSES, read_nwpu
from geomag.data.loaders.nwpu_tasks import HIDDEN_BY, nwpu_instances
from geomag.data.refexpr import BORDER, EXTREME_GAP, Facts, select
from geomag.data.scene_objects import absent, present
from geomag.data.scenes.referring import CELLS, cell_of
from geomag.model.answers import REFSEG_ANSWER, gcg_phrases

README_TOTALS = dict(
    zip(NWPU_CLASSES, (757, 298, 662, 391, 524, 159, 163, 239, 124, 604), strict=True)
)  # ../shared/data/real/README.md, the COCO file's instances per class


@pytest.fixture(scope="module")
def nwpu_root(real_data: Path) -> Path:
    return real_data / "nwpu-vhr10"


@pytest.fixture(scope="module")
def test_images(nwpu_root: Path) -> dict[str, object]:
    return {str(i.image): i for i in nwpu_instances(nwpu_root, "test")}


def test_nwpu_splits_and_counts(nwpu_root: Path) -> None:
    train, test = read_nwpu(nwpu_root, "train"), read_nwpu(nwpu_root, "test")
    assert (len(train), len(test)) == (454, 196)
    assert {i.stem for i in train}.isdisjoint({i.stem for i in test})
    assert sum(len(i.objects) for i in train) == 2813 and sum(len(i.objects) for i in test) == 1108
    totals = Counter(o.category for i in train + test for o in i.objects)
    assert totals == README_TOTALS


def test_nwpu_masks_are_exact(nwpu_root: Path) -> None:
    ratios = []
    for img in read_nwpu(nwpu_root, "test")[::4]:
        for o in img.objects:
            m = o.mask(img.width, img.height)
            ys, xs = np.nonzero(m)
            x0, y0, x1, y1 = o.bbox
            assert xs.min() >= x0 - 1 and ys.min() >= y0 - 1 and xs.max() < x1 + 1 and ys.max() < y1 + 1
            ratios.append(m.sum() / o.area)  # COCO's area is the polygon's; rasterised pixels a bit less
    assert min(ratios) > 0.8 and max(ratios) <= 1.0 and np.median(ratios) > 0.93


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    ys, xs = np.nonzero(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    return cols[0] + float(xs.mean()) + 0.5, rows[0] + float(ys.mean()) + 0.5


def test_refseg_expressions_name_exactly_one_instance(nwpu_root: Path, test_images: dict) -> None:
    samples = load_benchmark("nwpu-refseg", nwpu_root)
    assert len(samples) > 300 and all(s.answer == REFSEG_ANSWER and len(s.masks) == 1 for s in samples)
    forms: Counter[str] = Counter()
    decoded: dict[int, np.ndarray] = {}

    def mask(o: Instance) -> np.ndarray:  # each instance decoded once
        if id(o) not in decoded:
            decoded[id(o)] = o.mask()
        return decoded[id(o)]

    for s in samples:
        img = test_images[s.image]
        c = s.meta["constraints"]
        target = s.mask_arrays(img.width, img.height)[0]
        same = [o for o in img.instances if o.category == c["class"]]
        # the mask is one instance of the named class, the expression the prompt
        hit = [k for k, o in enumerate(same) if np.array_equal(mask(o), target)]
        assert len(hit) == 1 and s.prompt == f"Segment {s.meta['expression']}."
        assert select(c, Facts(img.instances, img.size)) == [img.instances.index(same[hit[0]])]
        # and independently, from the geometry of the masks
        tx, ty = _centroid(target)
        others = [_centroid(mask(o)) for k, o in enumerate(same) if k != hit[0]]
        kind = next((k for k in ("size", "extreme", "position", "anchor") if k in c), "class")
        forms[kind] += 1
        if kind == "class":
            assert not others
        elif kind == "extreme":
            side = c["extreme"]
            axis, sign = (
                (0, 1)
                if side == "left"
                else (0, -1)
                if side == "right"
                else (1, 1)
                if side == "top"
                else (1, -1)
            )
            gap = EXTREME_GAP * img.size[axis]
            assert all(sign * (o[axis] - (tx, ty)[axis]) >= gap - 1e-6 for o in others)
        elif kind == "position":
            w, h = img.size
            assert CELLS[cell_of(tx, ty, w, h)] == c["position"]
            for ox, oy in others:  # no other one even near the cell
                near = {
                    CELLS[
                        cell_of(
                            min(max(ox + a * BORDER * w, 0), w - 1),
                            min(max(oy + b * BORDER * h, 0), h - 1),
                            w,
                            h,
                        )
                    ]
                    for a in (-1, 0, 1)
                    for b in (-1, 0, 1)
                }
                assert c["position"] not in near
        elif kind == "size":
            areas = sorted(o.area for o in same)
            assert target.sum() > 0 and (areas[-1] >= 1.3 * areas[-2] or areas[1] >= 1.3 * areas[0])
    assert len(forms) >= 4, forms  # varied forms, not only one


def test_vqa_answers_follow_the_counts(nwpu_root: Path, test_images: dict) -> None:
    samples = load_benchmark("nwpu-vqa", nwpu_root)
    types = Counter(s.meta["type"] for s in samples)
    assert set(types) == {"presence", "count", "comp"} and min(types.values()) > 150
    by_image: dict[str, Counter] = {}
    for s in samples:
        img = test_images[s.image]
        counts = img.counts()
        q = s.meta
        if q["type"] == "presence":
            c = q["category"]
            assert s.answer == ("yes" if counts.get(c) else "no")
            if s.answer == "no":  # asked only where the annotation rules it out
                assert c != "vehicle" and not set(counts) & set(HIDDEN_BY[c])
            by_image.setdefault(s.image, Counter())[s.answer] += 1
        elif q["type"] == "count":
            assert 1 <= int(s.answer) <= 10 and int(s.answer) == counts[q["category"]]
            assert s.meta["question"] == f"How many {plural(q['category'])} are there?"
        else:
            na, nb = counts.get(q["first"], 0), counts.get(q["second"], 0)
            text = q["question"]
            want = na > nb if "more" in text else na < nb if "less" in text else na == nb
            assert s.answer == ("yes" if want else "no")
            for cls in (q["first"], q["second"]):
                assert cls in counts or cls in img.absent
    assert all(v["no"] <= v["yes"] for v in by_image.values())
    yes = sum(v["yes"] for v in by_image.values())
    no = sum(v["no"] for v in by_image.values())
    assert 0.8 < no / yes <= 1.0  # balanced presence: an always-"no" model scores about half


def test_roc_and_gcg(nwpu_root: Path, test_images: dict) -> None:
    roc = load_benchmark("nwpu-roc", nwpu_root)
    assert len(roc) > 400
    for s in roc[::7]:
        img = test_images[s.image]
        assert s.answer in {o.category for o in img.instances if list(o.box) == s.meta["box"]}
    gcg = load_benchmark("nwpu-gcg", nwpu_root)
    assert len(gcg) == 196
    for s in gcg[::9]:
        img = test_images[s.image]
        phrases = gcg_phrases(s.answer)
        assert phrases == s.meta["phrases"] and len(phrases) == len(s.masks) == s.answer.count("[SEG]")
        for p, m in zip(phrases, s.mask_arrays(img.width, img.height), strict=True):
            cls = p.rsplit("-", 1)[0] if p[-1].isdigit() else p
            assert any(o.category == cls and np.array_equal(o.mask(), m) for o in img.instances)


def test_training_samples_are_deterministic(nwpu_root: Path) -> None:
    from geomag.data.instance_tasks import training_samples
    from geomag.data.loaders.nwpu_tasks import image_rng, to_instances

    imgs = [to_instances(i) for i in read_nwpu(nwpu_root, "train")[:20]]
    a = [s.to_dict() for i in imgs for s in training_samples(i, image_rng(3, i.stem))]
    b = [s.to_dict() for i in imgs for s in training_samples(i, image_rng(3, i.stem))]
    c = [s.to_dict() for i in imgs for s in training_samples(i, image_rng(4, i.stem))]
    assert a == b and a != c
    assert {s["task"] for s in a} == {"refseg", "vqa", "roc", "gcg"}
    assert len({s["meta"]["id"] for s in a}) == len(a)


ISAID_README = {
    "P0003": {"large vehicle": 40, "small vehicle": 18, "storage tank": 1},
    "P0004": {"large vehicle": 92, "small vehicle": 24},
    "P0005": {"large vehicle": 99, "small vehicle": 32},
}


def test_isaid_instances_as_the_readme_counts(real_data: Path) -> None:
    images = read_isaid(real_data / "isaid-samples")
    assert {i.stem: i.counts() for i in images} == ISAID_README
    for img in images:
        masks = [o.mask() for o in img.instances]
        assert all(m.shape == (img.height, img.width) and m.any() for m in masks)
        assert np.sum(masks, axis=0).max() == 1  # one id per pixel: the masks do not overlap
        samples = isaid_samples(img, np.random.default_rng(0))
        for s in samples:
            if s.task == "vqa" and s.meta["type"] == "count":
                assert int(s.answer) == img.counts().get(s.meta["category"], 0)
            if s.task == "refseg" and s.meta["form"] == "all":
                union = s.mask_arrays(img.width, img.height)[0]
                assert union.sum() == sum(
                    m.sum()
                    for o, m in zip(img.instances, masks, strict=True)
                    if o.category == s.meta["category"]
                )


def test_aid_presence_balanced_and_true_to_the_table(real_data: Path) -> None:
    scenes = load_class_folders(real_data / "aid-150")[::5]
    qs = aid_presence_samples(scenes, seed=0)
    answers = Counter(s.answer for s in qs)
    assert answers["yes"] == answers["no"] > 100
    for s in qs:
        label, c = s.meta["label"], s.meta["category"]
        assert s.meta["type"] == "presence" and c in (present(label) if s.answer == "yes" else absent(label))
    assert max(Counter(s.image for s in qs).values()) <= 2
    assert [s.to_dict() for s in aid_presence_samples(scenes, seed=0)] == [s.to_dict() for s in qs]


def test_eval_runs_on_nwpu_vqa(nwpu_root: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    from geomag.eval.runner import run_eval

    res = run_eval("nwpu-vqa", nwpu_root, str(tiny_checkpoint), tmp_path / "out", limit=6, progress=False)
    m = res["metrics"]
    assert res["n"] == 6 and m["dataset"] is None and m["counts"] == "exact"
    assert {"presence", "count"} <= set(m["per_type"]) and 0 <= m["OA"] <= 1
    assert (tmp_path / "out" / "results.md").read_text().startswith("## NWPU VHR-10 VQA (test, 6 samples)")
