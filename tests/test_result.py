from __future__ import annotations

import json

import numpy as np
from PIL import Image

from geomag.imaging import Box
from geomag.result import Result


def test_result_json_round_trip(tmp_path):
    mask = np.zeros((20, 30), dtype=bool)
    mask[5:10, 7:12] = True
    r = Result(
        text="a ship [SEG]",
        granularity="pixel",
        image_size=(30, 20),
        boxes={"crop1": Box(2, 3, 20, 15)},
        masks=[mask],
        scores=[0.87],
        phrases=["a ship"],
        timings={"generate": 0.1234567},
    )
    path = r.save(tmp_path)
    d = json.loads(path.read_text())
    assert d["masks"][0] == {
        "index": 0,
        "area": 25,
        "bbox": [7, 5, 12, 10],
        "phrase": "a ship",
        "score": 0.87,
        "file": "mask_00.png",
    }
    assert d["boxes"]["crop1"] == [2, 3, 20, 15]
    back = Result.from_dict(d)
    assert (
        back.boxes == r.boxes
        and back.phrases == r.phrases
        and back.scores == [0.87]
        and back.image_size == (30, 20)
    )
    png = np.asarray(Image.open(tmp_path / "mask_00.png")) > 0
    assert (png == mask).all()
