"""Helpers shared by the benchmark loaders: file checks with clear errors, and the task prompts
(defined in geomag.data.prompts, re-exported here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from geomag.data.prompts import CAPTION_PROMPT as CAPTION_PROMPT  # the prompts: re-exported
from geomag.data.prompts import REFSEG_PROMPT as REFSEG_PROMPT
from geomag.data.prompts import ROC_PROMPT as ROC_PROMPT
from geomag.data.prompts import SCENE_PROMPT as SCENE_PROMPT
from geomag.data.prompts import VQA_PROMPT as VQA_PROMPT
from geomag.data.prompts import box_text as box_text
from geomag.errors import GeoMagError


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
