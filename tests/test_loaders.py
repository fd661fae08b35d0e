"""Benchmark loaders on the REAL files in ../shared/data/real, and on small fixtures in the released
layouts where no real file is available (RESISC-45, RRSIS-D, RefSegRS, a multi-file DIOR-RSVG)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geomag.data.loaders import (
    BENCHMARKS,
    load_benchmark,
    load_class_folders,
    load_dior_rsvg,
    load_karpathy,
    load_refsegrs,
    load_rrsisd,
    load_rsvqa,
)
from geomag.data.samples import mask_to_rle
from geomag.errors import GeoMagError


def save_png(path: Path, size=(32, 24), value=90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


# ------------------------------------------------------------------------------- captions
def test_ucm_and_sydney_captions_real(real_data):
    train = load_karpathy(real_data / "ucm-captions", split="train")
    test = load_karpathy(real_data / "ucm-captions", split="test")
    assert (len(train), len(test)) == (1680, 210)
    first = train[0]
    assert first.task == "caption" and first.meta["id"] == "1.tif"
    assert (
        first.meta["references"][0] == "There is a piece of farmland ." and len(first.meta["references"]) == 5
    )
    assert first.load_image().size == (256, 256)  # the real UCM image 1.tif
    sydney = load_benchmark("sydney-captions", real_data / "sydney-captions")
    assert len(sydney) == 58 and all(len(s.meta["references"]) == 5 for s in sydney)


def test_captions_missing_files(tmp_path):
    with pytest.raises(GeoMagError, match=r"dataset\.json"):
        load_karpathy(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"images": []}))
    with pytest.raises(GeoMagError, match="images"):
        load_karpathy(tmp_path)


# ------------------------------------------------------------------------------- class folders
def test_aid_class_folders_real(real_data):
    samples = load_benchmark("aid", real_data / "aid-150")
    classes = samples[0].meta["classes"]
    assert len(classes) == 30 and "dense residential" in classes and "storage tanks" in classes
    # round-robin order: the first 30 samples are one per class
    assert len({s.meta["label"] for s in samples[:30]}) == 30
    dense = next(s for s in samples if s.meta["label"] == "DenseResidential")
    assert dense.answer == "dense residential" and "dense residential" in dense.prompt
    assert dense.load_image().size == (150, 150)


def test_resisc45_class_folders(tmp_path):
    root = tmp_path / "NWPU-RESISC45"
    for label, n in [("dense_residential", 3), ("airport", 2), ("tennis_court", 1)]:
        for i in range(n):
            save_png(root / label / f"{label}_{i + 1:03d}.jpg")
    samples = load_benchmark("resisc45", tmp_path)  # steps into the single top folder
    assert [s.meta["label"] for s in samples] == [
        "airport",
        "dense_residential",
        "tennis_court",
        "airport",
        "dense_residential",
        "dense_residential",
    ]
    assert samples[2].answer == "tennis court"
    with pytest.raises(GeoMagError, match="only a 'test' split"):
        load_class_folders(root, split="train")


# ------------------------------------------------------------------------------- RSVQA
def test_rsvqa_lr_and_hr_real(real_data):
    lr = load_benchmark("rsvqa-lr", real_data / "rsvqa-lr" / "configilm_subset")
    assert len(lr) == 400  # 4 active test images x 100 questions; 21 inactive images skipped
    assert {s.meta["type"] for s in lr} == {"presence", "comp", "count", "rural_urban"}
    s = lr[0]
    assert (
        s.meta["id"] == "23608"
        and s.answer == "rural"
        and s.prompt.startswith("Is it a rural or an urban area?")
    )
    assert s.load_image().size == (256, 256)
    t1 = load_benchmark("rsvqa-hr-test1", real_data / "rsvqa-hr" / "configilm_subset")
    t2 = load_benchmark("rsvqa-hr-test2", real_data / "rsvqa-hr" / "configilm_subset")
    assert (len(t1), len(t2)) == (300, 201)
    assert {s.meta["type"] for s in t1} == {"presence", "comp", "count", "area"}
    assert Path(t2[0].image).name == "10212.tif" and Path(t2[0].image).is_file()


def test_rsvqa_only_active_entries_and_missing_file(tmp_path):
    images = {"images": [{"id": 1, "active": True, "questions_ids": [10, 11]}, {"id": 2, "active": False}]}
    questions = {
        "questions": [
            {
                "id": 10,
                "img_id": 1,
                "type": "presence",
                "question": "Is there a road?",
                "answers_ids": [10],
                "active": True,
            },
            {
                "id": 11,
                "img_id": 1,
                "type": "comp",
                "question": "Is x?",
                "answers_ids": [11],
                "active": False,
            },
        ]
    }
    answers = {"answers": [{"id": 10, "question_id": 10, "answer": "yes", "active": True}]}
    for kind, data in [("images", images), ("questions", questions), ("answers", answers)]:
        (tmp_path / f"LR_split_test_{kind}.json").write_text(json.dumps(data))
    save_png(tmp_path / "Images_LR" / "1.png")
    samples = load_rsvqa(tmp_path, "LR", "test")
    assert [(s.meta["id"], s.answer) for s in samples] == [("10", "yes")]
    (tmp_path / "LR_split_test_answers.json").unlink()
    with pytest.raises(GeoMagError, match=r"LR_split_test_answers\.json"):
        load_rsvqa(tmp_path, "LR", "test")


# ------------------------------------------------------------------------------- DIOR-RSVG
def test_dior_rsvg_real_sample(real_data):
    samples = load_dior_rsvg(real_data / "dior-rsvg", split="test", partial=True)
    assert len(samples) == 1
    s = samples[0]
    assert s.answer == "golf field" and s.meta["class"] == "golffield"
    assert s.meta["box"] == [133, 237, 684, 672] and s.meta["description"] == "A green and brown golf field"
    assert "[17, 30, 86, 84]" in s.prompt  # the box in percent of the 800x800 image
    assert s.load_image().size == (800, 800)
    with pytest.raises(GeoMagError, match="annotation files are missing"):
        load_dior_rsvg(real_data / "dior-rsvg", split="test")


def write_voc(path: Path, filename: str, objects: list[tuple[str, list[int], str]]) -> None:
    objs = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox><description>{d}</description></object>"
        for n, b, d in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><filename>{filename}</filename><size><width>100</width><height>50</height>"
        f"<depth>3</depth></size>{objs}</annotation>"
    )


def test_dior_rsvg_global_object_index(tmp_path):
    write_voc(tmp_path / "Annotations" / "00002.xml", "00002.jpg", [("vehicle", [0, 0, 10, 10], "a car")])
    write_voc(
        tmp_path / "Annotations" / "00001.xml",
        "00001.jpg",
        [
            ("storagetank", [10, 5, 60, 45], "the large tank"),
            ("Expressway-toll-station", [0, 0, 50, 25], "toll"),
        ],
    )
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "test.txt").write_text("1\n2\n")
    samples = load_benchmark("dior-rsvg", tmp_path)
    assert [(s.meta["id"], s.answer) for s in samples] == [("1", "expressway toll station"), ("2", "vehicle")]
    assert Path(samples[1].image).name == "00002.jpg"


# ------------------------------------------------------------------------------- RRSIS-D
def make_rrsisd(root: Path) -> np.ndarray:
    """RRSIS-D layout with one RLE and one polygon segmentation; returns the RLE mask."""
    save_png(root / "images" / "rrsisd" / "JPEGImages" / "00001.jpg", size=(40, 30))
    save_png(root / "images" / "rrsisd" / "JPEGImages" / "00002.jpg", size=(40, 30))
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:15, 10:30] = True
    instances = {
        "images": [
            {"id": 1, "file_name": "00001.jpg", "width": 40, "height": 30},
            {"id": 2, "file_name": "00002.jpg", "width": 40, "height": 30},
        ],
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [mask_to_rle(mask)],
                "bbox": [10, 5, 20, 10],
            },
            {
                "id": 8,
                "image_id": 2,
                "category_id": 1,
                "segmentation": [[0, 0, 20, 0, 20, 10, 0, 10]],
                "bbox": [0, 0, 20, 10],
            },
        ],
        "categories": [{"id": 1, "name": "vehicle"}],
    }
    refs = [
        {
            "ref_id": 0,
            "ann_id": 7,
            "image_id": 1,
            "split": "test",
            "sentences": [
                {"sent": "the vehicle in the middle", "sent_id": 0},
                {"sent": "the grey car", "sent_id": 1},
            ],
        },
        {
            "ref_id": 1,
            "ann_id": 8,
            "image_id": 2,
            "split": "test",
            "sentences": [{"sent": "the top left car", "sent_id": 2}],
        },
        {
            "ref_id": 2,
            "ann_id": 8,
            "image_id": 2,
            "split": "train",
            "sentences": [{"sent": "a car", "sent_id": 3}],
        },
    ]
    (root / "rrsisd").mkdir(parents=True)
    (root / "rrsisd" / "instances.json").write_text(json.dumps(instances))
    (root / "rrsisd" / "refs(unc).json").write_text(json.dumps(refs))
    return mask


def test_rrsisd_json_layout(tmp_path):
    rle_mask = make_rrsisd(tmp_path)
    samples = load_benchmark("rrsis-d", tmp_path)
    assert [s.meta["id"] for s in samples] == ["0_0", "0_1", "1_2"]
    assert samples[0].prompt == "Segment the vehicle in the middle." and samples[0].answer.count("[SEG]") == 1
    assert (samples[0].mask_arrays(40, 30)[0] == rle_mask).all()
    poly = samples[2].mask_arrays(40, 30)[0]
    assert poly[0:10, 0:20].all() and poly.sum() == 21 * 11  # polygon vertices inclusive
    assert len(load_rrsisd(tmp_path, split="train")) == 1


def test_rrsisd_refuses_the_pickle(tmp_path):
    make_rrsisd(tmp_path)
    (tmp_path / "rrsisd" / "refs(unc).json").unlink()
    (tmp_path / "rrsisd" / "refs(unc).p").write_bytes(b"not read")
    with pytest.raises(GeoMagError, match=r"does not unpickle.*refs\(unc\)\.json"):
        load_rrsisd(tmp_path)


# ------------------------------------------------------------------------------- RefSegRS
def make_refsegrs(root: Path) -> None:
    for stem, box in [("12", (2, 2, 10, 8)), ("40", (0, 10, 16, 16))]:
        save_png(root / "images" / f"{stem}.tif", size=(16, 16))
        m = np.zeros((16, 16), dtype=np.uint8)
        m[box[1] : box[3], box[0] : box[2]] = 255
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(m).save(root / "masks" / f"{stem}.tif")
    (root / "output_phrase_test.txt").write_text(
        "12 vehicle on the road\n40 road along the river\n12 the car\n"
    )


def test_refsegrs_layout(tmp_path):
    make_refsegrs(tmp_path)
    samples = load_benchmark("refsegrs", tmp_path)
    assert [s.meta["id"] for s in samples] == ["0_12", "1_40", "2_12"]
    assert samples[1].prompt == "Segment road along the river."
    m = samples[0].mask_arrays(16, 16)[0]
    assert m.sum() == 8 * 6 and m[2:8, 2:10].all()
    with pytest.raises(GeoMagError, match=r"output_phrase_val\.txt"):
        load_refsegrs(tmp_path, split="val")


# ------------------------------------------------------------------------------- GeoPixelD
def test_geopixeld_real(real_data):
    folder = load_benchmark("geopixeld", real_data / "geopixel", split="train")
    conv = load_benchmark("geopixeld", real_data / "geopixel" / "data" / "GeoPixelD.json")
    for samples in (folder, conv):
        assert len(samples) == 1
        s = samples[0]
        assert s.task == "gcg" and s.meta["phrases"][0] == "tennis court-1" and len(s.masks) == 4
    assert folder[0].answer == conv[0].answer
    masks = folder[0].mask_arrays(800, 800)
    assert all(m.any() for m in masks)
    with pytest.raises(GeoMagError, match="GeoPixelD split folder not found"):
        load_benchmark("geopixeld", real_data / "geopixel")  # no test split in the real sample


def test_registry():
    paper = [n for n in BENCHMARKS if not n.startswith(("nwpu-", "aid-presence"))]
    assert len(paper) == 11  # ten benchmarks, RSVQA-HR with its two test sets
    assert len(BENCHMARKS) == 16  # + GeoMag's real-data ones (NWPU VHR-10 x 4, AID presence)
    with pytest.raises(GeoMagError, match="unknown benchmark"):
        load_benchmark("coco", ".")


def test_loaders_read_geoscenes_output(tmp_path):
    """The GeoScenes writers (geomag.data.writers) write these formats; every loader reads them back."""
    from geomag.cli import main

    out = tmp_path / "gs"
    assert (
        main(["scenes", "generate", "--n", "1", "--size", "256x256", "--seed", "5", "--out", str(out)]) == 0
    )
    for name, sub in [
        ("ucm-captions", "caption"),
        ("rsvqa-lr", "vqa"),
        ("dior-rsvg", "roc"),
        ("rrsis-d", "refseg/rrsisd"),
        ("refsegrs", "refseg/refsegrs"),
        ("geopixeld", "gcg"),
    ]:
        samples = load_benchmark(name, out / sub)
        assert samples, name
        s = samples[-1]
        img = s.load_image()
        assert img.size == (256, 256), name
        if s.masks:
            assert all(m.any() for m in s.mask_arrays(*img.size)), name
