"""The regression set: the shipped nano on 11 prompts of every granularity on three real images (one a
GeoTIFF) gives what `geomag parse` gave when the set was recorded (tests/data/regression/expected.json,
written by record.py there for the shipped checkpoint)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "data" / "regression"
ROOT = HERE.parents[2]
CASES = json.loads((HERE / "cases.json").read_text())["cases"]
EXPECTED = json.loads((HERE / "expected.json").read_text())
sys.path.insert(0, str(HERE))
from record import summary  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_parse_gives_the_recorded_result(case: dict, tmp_path: Path) -> None:
    from geomag.cli import main as geomag

    image = ROOT / case["image"]
    if not image.is_file():
        pytest.skip(f"{case['image']} is absent (it ships with ../shared)")
    out = tmp_path / "out"
    assert geomag(["parse", str(image), case["prompt"], *case["args"], "--out", str(out)]) == 0
    got, want = summary(out), EXPECTED[case["id"]]
    assert got["text"] == want["text"]
    assert got["granularity"] == want["granularity"]
    assert got["boxes"] == want["boxes"]
    assert [m["rle"] for m in got["masks"]] == [m["rle"] for m in want["masks"]]
    assert [m["score"] for m in got["masks"]] == pytest.approx([m["score"] for m in want["masks"]], abs=1e-3)
    assert [c["boxes"] for c in got["candidates"]] == [c["boxes"] for c in want["candidates"]]
    assert [c["score"] for c in got["candidates"]] == pytest.approx(
        [c["score"] for c in want["candidates"]], abs=1e-3
    )
