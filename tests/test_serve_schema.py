"""schemathesis against `geomag serve`'s own `/openapi.json`, in-process (ASGI): every operation,
every check, positive and negative data, a few examples per operation (well under a minute).

The worker runs the tiny checkpoint: a request valid per schema may reach the model (a classify, a
parse of an image schemathesis happens to send), so what is checked is the real server. The
schemathesis pytest plugin (`from_fixture`) does not run under pytest 9 here, so the operations are
walked with its Python API and one Hypothesis test each."""

from __future__ import annotations

import io
import sys
import time

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from geomag.serve.app import ServeSettings, create_app
from geomag.serve.limits import ServeLimits
from geomag.serve.worker import start_worker

EXAMPLES = 6  # per operation and mode


def _image(kind: str, side: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=kind)
    return out.getvalue()


# the image part's media types (the schema's `encoding`): real images of each, so that a request
# valid per schema carries an image the server can read (random bytes are not one)
for media, kind in (("image/png", "PNG"), ("image/jpeg", "JPEG"), ("image/tiff", "TIFF")):
    schemathesis.openapi.media_type(
        media, st.builds(_image, st.just(kind), st.integers(16, 96), st.integers(0, 9))
    )


@pytest.fixture(scope="module")
def api_schema(tiny_checkpoint):
    worker = start_worker(str(tiny_checkpoint), "cpu", max_waiting=8)
    # caps that keep a job short (a valid request runs the model): the schema states them
    limits = ServeLimits(max_new_tokens=4, candidates=2, answer_tokens=2, working_cap=512, job_timeout=60)
    app = create_app(ServeSettings(model=str(tiny_checkpoint), limits=limits), worker)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    worker.stop()


def _is_tiff(image: object) -> bool:
    return isinstance(image, bytes | bytearray) and bytes(image[:4]) in (b"II*\x00", b"MM\x00*")


def _has_parameters(operation) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


def _report(exc: BaseException) -> str:
    parts = [str(exc)]
    for sub in getattr(exc, "exceptions", ()):
        parts.append(f"{type(sub).__name__}: {sub}")
        parts += [f"  response: {getattr(sub, 'status_code', '')}"]
    return "\n".join(parts)


def _check(strategy, positive: bool):
    """One Hypothesis test of an operation's cases: every schemathesis check on every response."""

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        # format=geojson / wgs84 need a georeferenced GeoTIFF: a condition on the image's content
        # that JSON Schema cannot state (its 422 is tested in test_serve_api.py)
        query = case.query or {}
        assume(
            not positive
            or (query.get("format") != "geojson" and query.get("wgs84") in (None, False, "false"))
        )
        # likewise `bands` / `nodata` apply to rasters only (a PNG or JPEG has neither: 422, tested
        # in test_serve_hostile.py)
        body = case.body if isinstance(case.body, dict) else {}
        raster_fields = body.get("bands") is not None or body.get("nodata") is not None
        assume(not positive or not raster_fields or _is_tiff(body.get("image")))
        case.call_and_validate()

    return run


def test_every_operation_keeps_its_schema(api_schema):
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /health", "POST /v1/parse", "POST /v1/classify"}
    for operation in operations:
        for mode in ("positive", "negative"):
            if mode == "negative" and not _has_parameters(operation):
                continue  # nothing to make invalid
            strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))
            t = time.perf_counter()
            try:
                _check(strategy, mode == "positive")()
            except BaseException as exc:  # schemathesis raises a BaseExceptionGroup: its own report
                failures.append(f"{operation.label} ({mode}): {_report(exc)}")
            print(f"{operation.label} ({mode}): {time.perf_counter() - t:.1f} s", file=sys.stderr)
    assert not failures, "\n\n".join(failures)
