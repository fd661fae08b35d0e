"""Helpers shared by the benchmark loaders: file checks with clear errors and the task prompts.

The prompts are the single place that says how a benchmark sample is asked; training data
(GeoScenes) and evaluation should use the same wording.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from geomag.errors import GeoMagError

CAPTION_PROMPT = "Describe the image in one sentence."
SCENE_PROMPT = (
    "Classify the image into one of the following classes: {classes}. Answer with the class name only."
)
VQA_PROMPT = "{question} Answer with one word or a number."
ROC_PROMPT = "What is the object at {box}? Answer with its class."
REFSEG_PROMPT = "Segment {expression}."


def require_file(path: Path, what: str, hint: str = "") -> Path:
    """`path` if it is a file, else a GeoMagError that names it (and the expected layout)."""
    if not path.is_file():
        raise GeoMagError(f"{what} not found: {path}" + (f" ({hint})" if hint else ""))
    return path


def require_dir(path: Path, what: str, hint: str = "") -> Path:
    if not path.is_dir():
        raise GeoMagError(f"{what} folder not found: {path}" + (f" ({hint})" if hint else ""))
    return path


def read_json(path: Path, what: str) -> Any:
    require_file(path, what)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GeoMagError(f"{path} is not valid JSON ({exc})") from None


MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)


@contextmanager
def record_of(path: Path | str, record: object) -> Iterator[None]:
    """Reading one record of a benchmark file: a missing or mistyped field becomes one GeoMagError
    that names the file and the record (instead of a KeyError deep in a loader)."""
    try:
        yield
    except MALFORMED as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise GeoMagError(f"{path}: record {record} is malformed ({what})") from None


def readable_class(name: str) -> str:
    """'DenseResidential' / 'dense_residential' / 'storage-tank' -> 'dense residential' / 'storage tank'."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return re.sub(r"[\s_\-]+", " ", spaced).strip().lower()


def box_text(box: tuple[float, float, float, float], width: int, height: int) -> str:
    """A pixel box as '[x0, y0, x1, y1]' in percent of the image size (0..100, integers).

    Relative coordinates, because the VLM sees the image resized to its own input size.
    """
    x0, y0, x1, y1 = box
    vals = [x0 / width, y0 / height, x1 / width, y1 / height]
    return "[" + ", ".join(str(round(100 * v)) for v in vals) + "]"
