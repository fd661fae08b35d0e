"""GeoScenes: exact ground truth (checked independently of the generator) and real-format writers."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image, ImageDraw

from geomag.cli import main
from geomag.data.scenes import SCENE_TYPES, generate_scene, small_target_split
from geomag.data.scenes.generate import build
from geomag.errors import GeoMagError

SIZE = (320, 288)
COLOURS = ("white", "gray", "black", "red", "blue", "yellow", "green", "orange", "brown")
CLASSES = (
    "harbor",
    "bridge",
    "tennis court",
    "basketball court",
    "swimming pool",
    "vehicle",
    "ship",
    "storage tank",
    "building",
    "airplane",
)
PLURALS = {c: c + "s" for c in CLASSES}
POS = {
    "at the top left": (0, 0),
    "at the top": (0, 1),
    "at the top right": (0, 2),
    "on the left": (1, 0),
    "in the center": (1, 1),
    "on the right": (1, 2),
    "at the bottom left": (2, 0),
    "at the bottom": (2, 1),
    "at the bottom right": (2, 2),
}
CL = "|".join(CLASSES)
REF = re.compile(
    rf"^the (?:(?P<size>largest|smallest) )?(?P<iso>isolated )?(?:(?P<col>{'|'.join(COLOURS)}) )?(?P<cls>{CL})"
    rf"(?: (?P<pos>{'|'.join(POS)}))?(?: closest to the (?P<anchor>{CL}))?$"
)


@pytest.fixture(scope="module")
def scenes():
    return [generate_scene(100 + i, SIZE, t) for i, t in enumerate(SCENE_TYPES)]


def _facts(scene):
    """Area and centroid of each object straight from its mask (not from the generator's helpers)."""
    out = []
    for o in scene.objects:
        ys, xs = np.nonzero(o.mask)
        out.append((len(xs), xs.mean() + o.box[0] + 0.5, ys.mean() + o.box[1] + 0.5))
    return out


def check_expression(expr: str, scene) -> list[int]:
    """Re-evaluate an expression's words against the object list; returns the matching objects."""
    m = REF.match(expr)
    assert m, f"expression outside the grammar: {expr!r}"
    w, h = scene.size
    facts = _facts(scene)
    cand = [
        o.index
        for o in scene.objects
        if o.category == m["cls"] and (m["col"] is None or o.colour == m["col"])
    ]
    if m["pos"]:
        r, c = POS[m["pos"]]
        cand = [
            i for i in cand if (min(2, int(3 * facts[i][2] / h)), min(2, int(3 * facts[i][1] / w))) == (r, c)
        ]
    if m["iso"]:
        same = [o.index for o in scene.objects if o.category == m["cls"]]
        diag = np.hypot(w, h)
        cand = [
            i
            for i in cand
            if len(same) > 1
            and all(
                j == i or np.hypot(facts[i][1] - facts[j][1], facts[i][2] - facts[j][2]) >= 0.15 * diag
                for j in same
            )
        ]
    if m["size"] and len(cand) > 1:
        areas = sorted(((facts[i][0], i) for i in cand), reverse=m["size"] == "largest")
        big, small = (areas[0][0], areas[1][0]) if m["size"] == "largest" else (areas[1][0], areas[0][0])
        return [areas[0][1]] if big >= 1.3 * small else cand
    if m["anchor"] and cand:
        anchors = [o.index for o in scene.objects if o.category == m["anchor"]]
        assert len(anchors) == 1
        a = facts[anchors[0]]
        d = sorted((np.hypot(facts[i][1] - a[1], facts[i][2] - a[2]), i) for i in cand)
        return [d[0][1]] if len(d) == 1 or d[1][0] >= 1.3 * d[0][0] else cand
    return cand


def test_deterministic_per_seed_and_sizes():
    a, b = generate_scene(7, (256, 256)), generate_scene(7, (256, 256))
    assert (
        a.image.tobytes() == b.image.tobytes()
        and a.referring[0]["expression"] == b.referring[0]["expression"]
    )
    assert generate_scene(8, (256, 256)).image.tobytes() != a.image.tobytes()
    wide = generate_scene(3, (700, 300), "harbor")
    assert wide.image.size == (700, 300) and wide.landcover.shape == (300, 700)
    with pytest.raises(GeoMagError):
        generate_scene(1, (10, 10))
    with pytest.raises(GeoMagError):
        generate_scene(1, (256, 256), "moon base")


def test_every_scene_type_has_full_ground_truth(scenes):
    for s in scenes:
        assert s.objects, s.scene_type
        assert len(s.captions) == 5 and len(set(s.captions)) == 5
        assert s.referring and s.vqa and s.roc
        assert s.gcg["text"].count("[SEG]") == len(s.gcg["objects"]) == len(s.gcg["phrases"])
        for r in s.roc:
            o = s.objects[r["object"]]
            assert r["class"] == o.category and r["box"] == list(o.box)
        # the image really varies (texture), it is not flat colour
        px = np.asarray(s.image, np.float32)
        assert px.std(axis=(0, 1)).min() > 8


def test_referring_expressions_single_out_their_object(scenes):
    n = 0
    for s in scenes:
        for r in s.referring:
            assert check_expression(r["expression"], s) == [r["object"]], (s.scene_type, r["expression"])
            o = s.objects[r["object"]]
            assert np.array_equal(r["mask"], o.mask) and r["box"] == list(o.box)
            n += 1
    assert n >= 30


def test_masks_equal_drawn_pixels():
    """Redraw each scene with every object in a unique flat colour (twice, two codings) and compare."""
    for i, stype in enumerate(SCENE_TYPES):
        seed = 100 + i
        scene = generate_scene(seed, SIZE, stype)
        _, _, specs, _, _, _, _, _ = build(seed, SIZE, stype, False)
        codes = [
            {k: (k % 256, k // 256, 255) for k in range(len(specs))},
            {k: (255, 7 + k % 200, 200 - k // 200) for k in range(len(specs))},
        ]
        imgs = [build(seed, SIZE, stype, False, flat=c)[0] for c in codes]
        by_draw = {o.attributes["draw_id"]: o for o in scene.objects}
        for k, spec in enumerate(specs):
            drawn = np.ones(SIZE[::-1], bool)
            for img, code in zip(imgs, codes, strict=True):
                drawn &= (img == np.array(code[k], np.uint8)).all(-1)
            if spec.category == "tree":
                continue
            if k in by_draw:
                assert np.array_equal(drawn, scene.full_mask(by_draw[k].index)), (stype, spec.category)
            else:
                assert not drawn.any(), f"{stype}: a drawn {spec.category} has no annotation"


def test_vqa_answers_are_right_on_recount(scenes):
    lc_codes = {"water area": 4, "road": 5, "forest": 1, "farmland": 7}
    for s in scenes:
        counts = {c: sum(1 for o in s.objects if o.category == c and o.mask.any()) for c in CLASSES}
        for q in s.vqa:
            text, ans = q["question"], q["answer"]
            if q["type"] == "rural_urban":
                built = (
                    np.isin(s.landcover, [5, 6]).mean()
                    + sum(o.mask.sum() for o in s.objects if o.category == "building") / s.landcover.size
                )
                assert ans == ("urban" if built >= 0.15 else "rural")
            elif q["type"] == "count":
                cls = next(c for c in CLASSES if f" {PLURALS[c]} " in f" {text[:-1]} ")
                assert ans == str(counts[cls]), text
            elif q["type"] == "presence":
                lc = next((k for k in lc_codes if f"a {k} present" in text), None)
                if lc is not None:
                    assert ans == ("yes" if (s.landcover == lc_codes[lc]).mean() >= 0.005 else "no"), text
                else:
                    m = re.match(
                        r"^(?:Is an? (.+) present|Is there an? (.+?)|Are there (.+?))(?: in this image)?\?$",
                        text,
                    )
                    name = next(g for g in m.groups() if g)
                    cls = next(c for c in CLASSES if name in (c, PLURALS[c]))
                    assert ans == ("yes" if counts[cls] else "no"), text
            else:
                a, b = (
                    next(c for c in CLASSES if PLURALS[c] == m)
                    for m in re.findall("|".join(PLURALS.values()), text)
                )
                want = (
                    counts[a] > counts[b]
                    if "more" in text
                    else counts[a] < counts[b]
                    if "less" in text
                    else counts[a] == counts[b]
                )
                assert ans == ("yes" if want else "no"), text


def test_small_target_split_4k():
    ((scene, refs),) = small_target_split(1, seed=5)
    assert scene.image.size == (4096, 2160)
    for r in refs:
        x0, y0, x1, y1 = r["box"]
        assert (x1 - x0) * (y1 - y0) < 0.0005 * 4096 * 2160
        assert check_expression(r["expression"], scene) == [r["object"]]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("gs") / "ds"
    assert (
        main(["scenes", "generate", "--n", "3", "--size", "256x224", "--seed", "40", "--out", str(out)]) == 0
    )
    return out, [generate_scene(40 + i, (256, 224)) for i in range(3)]


def test_writers_match_real_formats(dataset, real_data):
    out, scenes = dataset
    real_cap = json.loads((real_data / "ucm-captions/dataset_ucm_modified.json").read_text())["images"][0]
    cap = json.loads((out / "caption/dataset.json").read_text())["images"]
    assert set(cap[0]) == set(real_cap) and set(cap[0]["sentences"][0]) == set(real_cap["sentences"][0])
    assert [c["sentences"][0]["raw"].rstrip(" .") for c in cap] == [s.captions[0].rstrip(".") for s in scenes]
    real_x = ET.parse(real_data / "dior-rsvg/Annotations/00001.xml").getroot()
    x = ET.parse(out / "roc/Annotations/00000.xml").getroot()
    assert [e.tag for e in x][:4] == [e.tag for e in real_x][:4]
    assert {e.tag for e in x.find("object")} == {e.tag for e in real_x.find("object")}
    for kind in ("images", "questions", "answers"):
        real = json.loads((real_data / f"rsvqa-lr/configilm_subset/LR_split_test_{kind}.json").read_text())[
            kind
        ]
        mine = json.loads((out / f"vqa/LR_split_test_{kind}.json").read_text())[kind]
        real_active = next(e for e in real if e.get("active"))
        assert set(mine[0]) <= set(real_active) | {"original_name"}
    real_g = json.loads((real_data / "geopixel/data/GeoPixelD.json").read_text())[0]
    mine_g = json.loads((out / "gcg/data/GeoPixelD.json").read_text())[0]
    assert set(mine_g) == set(real_g) and [c["from"] for c in mine_g["conversations"]] == ["human", "bot"]


def test_writers_round_trip_through_loaders(dataset):
    from geomag.data.loaders import load_benchmark

    out, scenes = dataset
    w, h = 256, 224
    caps = load_benchmark("ucm-captions", out / "caption", "test")
    written = {c.removesuffix(".") + " ." for c in scenes[0].captions}  # UCM style: "... ."
    assert caps and {c for s in caps for c in ([s.answer, *s.meta.get("references", [])])} <= written | {""}
    got = load_benchmark("aid", out / "scene", "test")
    assert sorted(s.answer for s in got) == sorted(s.label for s in scenes)
    qa = load_benchmark("rsvqa-lr", out / "vqa", "test")
    assert len(qa) == len(scenes[0].vqa) and {s.answer for s in qa} == {q["answer"] for q in scenes[0].vqa}
    roc = load_benchmark("dior-rsvg", out / "roc", "test")
    assert [s.meta["description"] for s in roc] == [r["expression"] for r in scenes[0].referring]
    for s, r in zip(roc, scenes[0].referring, strict=True):
        x0, y0, x1, y1 = r["box"]
        assert s.meta["box"] == [x0, y0, x1 - 1, y1 - 1]
        assert s.answer == scenes[0].objects[r["object"]].category
    for name in ("rrsis-d", "refsegrs"):
        root = out / "refseg" / ("rrsisd" if name == "rrsis-d" else "refsegrs")
        samples = load_benchmark(name, root, "test")
        assert [s.meta["expression"] for s in samples] == [r["expression"] for r in scenes[0].referring]
        for s, r in zip(samples, scenes[0].referring, strict=True):
            assert np.array_equal(s.mask_arrays(w, h)[0], scenes[0].full_mask(r["object"]))
    gcg = load_benchmark("geopixeld", out / "gcg", "test")
    assert len(gcg) == 1
    masks = gcg[0].mask_arrays(w, h)
    for m, i in zip(masks, scenes[0].gcg["objects"], strict=True):
        truth = scenes[0].full_mask(i)
        # vertices sit on pixel corners: the filled outline adds at most the next column/row
        grown = truth.copy()
        grown[:, 1:] |= truth[:, :-1]
        grown[1:, :] |= grown[:-1, :]
        assert (m & truth).sum() == truth.sum() and not (m & ~grown).any()


def test_polygons_redraw_to_the_mask(dataset):
    out, scenes = dataset
    ann = json.loads(next((out / "gcg/data/GeoPixelD").glob("*/scene_000000.json")).read_text())
    for polys, i in zip(ann["polygons"], scenes[0].gcg["objects"], strict=True):
        canvas = Image.new("L", scenes[0].size, 0)
        for p in polys:
            ImageDraw.Draw(canvas).polygon([tuple(v) for v in p], fill=1, outline=1)
        drawn, truth = np.asarray(canvas) > 0, scenes[0].full_mask(i)
        assert (drawn & truth).sum() == truth.sum()  # every mask pixel inside the outline


def test_cli_protects_data_and_shows(dataset, tmp_path, capsys):
    out, _ = dataset
    assert main(["scenes", "generate", "--n", "1", "--out", str(out)]) == 2
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    assert main(["scenes", "generate", "--n", "1", "--out", str(user), "--overwrite"]) == 2
    assert (user / "notes.txt").read_text() == "keep"
    assert main(["scenes", "generate", "--n", "1", "--size", "12x12", "--out", str(tmp_path / "x")]) == 2
    assert (
        main(["scenes", "generate", "--n", "1", "--tasks", "caption,bogus", "--out", str(tmp_path / "y")])
        == 2
    )
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert "error" in capsys.readouterr().err
    assert main(["scenes", "show", str(out), "--out", str(tmp_path / "m.png")]) == 0
    assert Image.open(tmp_path / "m.png").size[0] == 3 * 512
