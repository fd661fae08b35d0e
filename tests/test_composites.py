"""Copy-paste composites: exact masks, honest counts, seeded, train / held-out disjoint, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geomag.data.composites.paste import compose, paste_patch, transform_patch


def _disc(r: int, colour: tuple[int, int, int]) -> np.ndarray:
    yy, xx = np.mgrid[: 2 * r, : 2 * r]
    rgba = np.zeros((2 * r, 2 * r, 4), np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = (np.hypot(yy - r + 0.5, xx - r + 0.5) < r) * 255
    return rgba


def test_planted_paste_mask_is_the_alpha_footprint_and_occlusion_removes_covered_pixels():
    canvas = np.full((100, 120, 3), 90, np.uint8)
    ids = np.full((100, 120), -1, np.int32)
    a, b = _disc(15, (250, 0, 0)), _disc(10, (0, 0, 250))
    fp_a = paste_patch(canvas, ids, a, 20, 30, 0, feather=1.0)
    expected = np.zeros((100, 120), bool)
    expected[30:60, 20:50] = a[..., 3] > 127
    assert np.array_equal(fp_a, expected)
    assert np.array_equal(ids == 0, expected)
    fp_b = paste_patch(canvas, ids, b, 40, 35, 1, feather=1.0)  # covers a's right edge
    assert (fp_b & fp_a).any()
    assert np.array_equal(ids == 0, fp_a & ~fp_b)  # a's visible mask lost exactly b's pixels
    assert np.array_equal(ids == 1, fp_b)
    # the pixels are the objects': red where only a lies, blue in b, the background far away
    assert canvas[45, 28, 0] > 200 and canvas[45, 28, 2] < 50
    assert canvas[45, 50, 2] > 200 and canvas[45, 50, 0] < 50
    assert canvas[5, 5].tolist() == [90, 90, 90]


def test_compose_masks_match_the_pasted_pixels():
    rng = np.random.default_rng(3)
    canvas = np.full((256, 256, 3), 100, np.uint8)
    from geomag.data.composites.objects import ObjectPatch

    red = ObjectPatch("storage tank", _disc(12, (255, 0, 0)), "test", "k", "train", 1.0)
    pasted = compose(canvas, [red] * 4, px_per_metre=1.0, rng=rng, blur=0.0)
    assert len(pasted) >= 2
    union = np.zeros((256, 256), bool)
    for p in pasted:
        assert p.visible is not None and p.visible.sum() >= 0.7 * p.footprint.sum()
        union |= p.visible
    # inside every visible mask (away from its edge) the pixels are the red object, far outside grey
    from PIL import ImageFilter

    core = np.asarray(Image.fromarray(union.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(5))) > 0
    far = ~(np.asarray(Image.fromarray(union.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(9))) > 0)
    assert canvas[core][:, 0].min() > 150 and canvas[core][:, 1].max() < 90
    assert (canvas[far] == 100).all()


def test_transform_patch_keeps_a_hard_alpha():
    out = transform_patch(_disc(20, (10, 200, 10)), 0.7, 33.0, np.random.default_rng(0), blur=0.8)
    assert set(np.unique(out[..., 3]).tolist()) <= {0, 255}
    assert abs((out[..., 3] > 0).sum() - np.pi * 14**2) < 0.1 * np.pi * 14**2


@pytest.fixture(scope="module")
def bank_and_pools(real_data: Path):
    from geomag.data.composites.backgrounds import backgrounds_of
    from geomag.data.composites.objects import objects_of

    return {s: (objects_of(real_data, s), backgrounds_of(real_data, s)) for s in ("train", "heldout")}


def test_train_and_heldout_objects_and_backgrounds_are_disjoint(real_data, bank_and_pools):
    from geomag.data.loaders.nwpu import read_split
    from geomag.train.nano_data import aid_split

    keys = {s: {o.key for objs in bank.values() for o in objs} for s, (bank, _) in bank_and_pools.items()}
    assert keys["train"] and keys["heldout"] and not keys["train"] & keys["heldout"]
    test_stems = {f"nwpu/{s}" for s in read_split(real_data / "nwpu-vhr10", "test")}
    assert not test_stems & (keys["train"] | keys["heldout"])  # NWPU's test split is never cut
    paths = {s: {b.path for b in pool} for s, (_, pool) in bank_and_pools.items()}
    assert not paths["train"] & paths["heldout"]
    train_aid, held_aid = aid_split(real_data / "aid-150")
    aid_paths = {s: {p for p in paths[s] if "/aid-150/" in p} for s in paths}
    assert aid_paths["heldout"] <= {s.image for s in held_aid}
    assert aid_paths["train"] <= {s.image for s in train_aid}
    for split, (bank, _) in bank_and_pools.items():  # every source class has objects in both splits
        assert {"airplane", "ship", "vehicle", "tennis court", "tree"} <= set(bank), split


@pytest.fixture(scope="module")
def composites(bank_and_pools):
    from geomag.data.composites.generate import make_composite

    bank, pool = bank_and_pools["heldout"]
    return [make_composite(7, "heldout", i, bank, pool) for i in range(5)]


def test_classes_are_pasted_only_where_the_background_rules_them_out(real_data, composites):
    from geomag.data.composites.backgrounds import all_backgrounds

    absent = {b.path: set(b.absent) for b in all_backgrounds(str(real_data))}
    for comp in composites:
        assert set(comp.known) == absent[comp.background]
        assert {o.category for o in comp.objects} <= set(comp.known)


def test_counts_presence_and_expressions_match_the_masks(composites):
    from geomag.data.loaders.nwpu import plural
    from geomag.data.scenes.referring import Facts, evaluate

    for comp in composites:
        w, h = comp.size
        union = np.zeros((h, w), np.int32)
        for o in comp.objects:
            union += o.full_mask(w, h)
        assert union.max() <= 1  # visible masks never overlap
        for q in comp.vqa:
            cls = next(
                c
                for c in comp.known
                if f" {c} " in q["question"]
                or f" {plural(c)} " in q["question"]
                or q["question"].endswith((f" {c}?", f" {plural(c)}?"))
            )
            if q["type"] == "count":
                assert int(q["answer"]) == comp.count(cls)
            if q["type"] == "presence":
                assert q["answer"] == ("yes" if comp.count(cls) else "no")
        facts = Facts(comp.objects, w, h)
        for ref in comp.referring:
            assert evaluate(ref["constraints"], facts) == [ref["object"]]


def test_the_one_instance_builder_on_a_composite(composites, tmp_path):
    """The composite as an InstanceImage gives every task of the one builder (test_instance_tasks)."""
    from geomag.data.composites.tasks import composite_instances
    from test_instance_tasks import all_tasks, check_formats

    comp = next(c for c in composites if len({o.category for o in c.objects}) >= 2)
    comp.image.save(tmp_path / "comp.png")
    img = composite_instances(comp, tmp_path / "comp.png")
    assert [o.category for o in img.instances] == [o.category for o in comp.objects]
    for o, so in zip(img.instances, comp.objects, strict=True):
        assert np.array_equal(o.mask(), so.full_mask(*comp.size))
    check_formats(img, all_tasks(img))
    # the composite's own records come from the same builder
    assert comp.gcg["text"].count("[SEG]") == len(comp.gcg["objects"]) == len(comp.gcg["phrases"])
    assert {q["type"] for q in comp.vqa} >= {"presence", "count"}


def test_composites_are_seeded(bank_and_pools, composites):
    from geomag.data.composites.generate import make_composite

    bank, pool = bank_and_pools["heldout"]
    again = make_composite(7, "heldout", 1, bank, pool)
    assert np.array_equal(np.asarray(again.image), np.asarray(composites[1].image))
    assert [r["expression"] for r in again.referring] == [r["expression"] for r in composites[1].referring]
    other = make_composite(8, "heldout", 1, bank, pool)
    assert not np.array_equal(np.asarray(other.image)[:64, :64], np.asarray(again.image)[:64, :64])


def test_cli_generate_show_and_eval_formats(real_data, tmp_path):
    from geomag.cli import main
    from geomag.data.loaders import load_benchmark
    from geomag.data.samples import read_jsonl

    out = tmp_path / "comp"
    args = [
        "composites",
        "generate",
        "--n",
        "3",
        "--split",
        "heldout",
        "--seed",
        "5",
        "--out",
        str(out),
        "--real",
        str(real_data),
    ]
    assert main(args) == 0
    manifest = json.loads((out / "composites.json").read_text())
    samples = list(read_jsonl(out / "samples.jsonl"))
    assert {s.task for s in samples} == {"vqa", "roc", "refseg", "gcg"}
    for s in samples:
        if s.task in ("refseg", "gcg"):
            w, h = Image.open(s.image).size
            assert all(m.any() for m in s.mask_arrays(w, h))
    stamp = (out / "samples.jsonl").stat().st_mtime_ns
    assert main(args) == 0  # the same request is the cache
    assert (out / "samples.jsonl").stat().st_mtime_ns == stamp
    assert sum(manifest["objects"].values()) > 0
    bench = out / "benchmark"
    assert load_benchmark("rsvqa-lr", bench / "vqa")
    assert load_benchmark("refsegrs", bench / "refseg" / "refsegrs")
    roc = load_benchmark("dior-rsvg", bench / "roc")
    assert {s.answer for s in roc} <= set(manifest["objects"])
    assert load_benchmark("geopixeld", bench / "gcg")
    assert main(["composites", "show", str(out), "--out", str(tmp_path / "m.png")]) == 0
    assert Image.open(tmp_path / "m.png").size[0] > 0
    assert main(["composites", "show", str(tmp_path)]) == 2  # not a composites folder: one clear line
    assert main(["composites", "generate", "--n", "2", "--out", str(out), "--real", str(real_data)]) == 2
