"""Generic sample format and the GeoPixelD loader on the REAL sample."""

from __future__ import annotations

import numpy as np
import pytest

from geomag.data.samples import (
    Sample,
    decode_mask,
    gcg_phrases,
    load_geopixeld,
    mask_to_rle,
    polygons_to_mask,
    read_jsonl,
    write_jsonl,
)
from geomag.errors import GeoMagError


def test_polygon_rle_png_agree(tmp_path):
    from PIL import Image

    square = [[[2, 3], [9, 3], [9, 7], [2, 7]]]
    m = polygons_to_mask(square, 12, 10)
    assert m[3:8, 2:10].all() and m.sum() == 8 * 5
    assert (decode_mask({"rle": mask_to_rle(m)}, 12, 10) == m).all()
    Image.fromarray(m.astype(np.uint8) * 255).save(tmp_path / "m.png")
    assert (decode_mask({"png": "m.png"}, 12, 10, root=tmp_path) == m).all()
    with pytest.raises(GeoMagError, match="does not match"):
        decode_mask({"png": "m.png"}, 11, 10, root=tmp_path)


def test_seg_count_must_match_masks():
    with pytest.raises(GeoMagError, match="2 masks"):
        Sample(image="x.png", prompt="p", answer="a [SEG]", task="refseg", masks=[{"polygons": []}] * 2)


def test_jsonl_round_trip(tmp_path):
    s = Sample(
        image="a.png",
        prompt="segment the ship",
        answer="[SEG]",
        task="refseg",
        masks=[{"polygons": [[[0, 0], [3, 0], [3, 3]]]}],
    )
    path = write_jsonl([s, s], tmp_path / "s.jsonl")
    assert list(read_jsonl(path)) == [s, s]


def test_geopixeld_real_sample(real_data):
    samples = load_geopixeld(real_data / "geopixel" / "data" / "GeoPixelD.json")
    assert len(samples) == 1
    s = samples[0]
    assert s.task == "gcg" and s.granularity == "pixel"
    assert s.meta["phrases"] == ["tennis court-1", "tennis court-2", "tennis court-3", "tennis court-4"]
    img = s.load_image()
    assert img.size == (800, 800)
    masks = s.mask_arrays(*img.size)
    assert len(masks) == 4 and all(m.any() for m in masks)
    # the four courts are separate objects
    for i in range(4):
        for j in range(i + 1, 4):
            assert (masks[i] & masks[j]).sum() < 0.05 * min(masks[i].sum(), masks[j].sum())
    assert gcg_phrases(s.answer) == s.meta["phrases"]
