"""Record expected.json of the regression set: run every case of cases.json through `geomag parse`.

    python tests/data/regression/record.py [ID ...]     # from the repository root; IDs: only these

Run it only to re-record after a change that is MEANT to change results (and say why in the commit):
tests/test_regression.py compares the pipeline against what this wrote.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def summary(out: Path) -> dict:
    """What a parse wrote, in a comparable form: text, granularity, boxes, masks as COCO RLE."""
    result = json.loads((out / "result.json").read_text())
    masks = []
    for m in result["masks"]:
        array = np.asarray(Image.open(out / m["file"])) > 127
        rle = mask_utils.encode(np.asfortranarray(array.astype(np.uint8)))
        masks.append({"area": int(array.sum()), "rle": rle["counts"].decode(), "score": m.get("score")})
    extra = result.get("extra", {})
    return {
        "text": result["text"],
        "granularity": result["granularity"],
        "image_size": result["image_size"],
        "boxes": result["boxes"],
        "masks": masks,
        "candidates": extra.get("candidates", []),
    }


def main() -> int:
    from geomag.cli import main as geomag

    cases = json.loads((HERE / "cases.json").read_text())["cases"]
    only = set(sys.argv[1:])
    path = HERE / "expected.json"
    expected = json.loads(path.read_text()) if only and path.is_file() else {}
    for case in cases:
        if only and case["id"] not in only:
            continue
        image = ROOT / case["image"]
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            code = geomag(["parse", str(image), case["prompt"], *case["args"], "--out", str(out)])
            if code != 0:
                print(f"{case['id']}: exit {code}", file=sys.stderr)
                return 1
            expected[case["id"]] = summary(out)
    expected = {c["id"]: expected[c["id"]] for c in cases if c["id"] in expected}  # the cases' order
    path.write_text(json.dumps(expected, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
