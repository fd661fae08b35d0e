"""`geomag serve` against slow, malformed and malicious clients (issue 31's table, one test per row).

Every server here is the test's own, on 127.0.0.1 with a free port (`BackgroundServer`), with the
tiny checkpoint; the slow clients are bounded in count (100) and time (a few seconds).
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from geomag.errors import GeoMagError
from geomag.serve.app import ServeSettings, create_app
from geomag.serve.limits import ServeLimits
from geomag.serve.runner import BackgroundServer
from geomag.serve.security import check_exposure
from geomag.serve.worker import start_worker

ROOT = Path(__file__).resolve().parents[1]
COURT = ROOT / "examples" / "tennis_courts_P0224.png"
GEOTIFF = ROOT / "examples" / "neon_osbs029.tif"
FAST = {
    "granularity": "region",
    "max_new_tokens": "4",
    "region_saliency": "attention",
    "region_skip_below": "0",
}
TOKEN = "a-test-token-of-32-characters-xx"


@pytest.fixture(scope="module")
def worker(tiny_checkpoint):
    worker = start_worker(str(tiny_checkpoint), "cpu", max_waiting=8)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def settings(tiny_checkpoint):
    return ServeSettings(model=str(tiny_checkpoint))


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """Uploads' folders land here: a test sees that they are removed and that no message names them."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def one_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"} and body["request_id"] == response.headers["x-request-id"]
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    assert "geomag-serve-" not in body["error"] and tempfile.gettempdir() not in body["error"]
    return body["error"]


def upload(client, name: str, data: bytes, **fields: str) -> httpx.Response:
    return client.post("/v1/parse", data={"prompt": "Is there a court?", **FAST, **fields},
                       files={"image": (name, data)})  # fmt: skip


def test_slow_clients_cannot_stall_the_server(worker, settings):
    """100 connections sending their head one byte at a time: /health answers 200 within 1 s, one
    real parse completes, and the slow ones are closed after --header-timeout."""
    limits = ServeLimits(header_timeout=3.0)
    with BackgroundServer(create_app(replace(settings, limits=limits), worker), limits) as url:
        port = int(url.rsplit(":", 1)[1])
        slow = []
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHo")
            slow.append(s)
        stop = threading.Event()

        def dribble() -> None:
            while not stop.wait(0.5):
                for s in slow:
                    with contextlib.suppress(OSError):
                        s.sendall(b"s")

        threading.Thread(target=dribble, daemon=True).start()
        try:
            time.sleep(0.5)
            t = time.perf_counter()
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
            assert time.perf_counter() - t < 1.0
            with httpx.Client(base_url=url, timeout=60) as client:
                response = upload(client, COURT.name, COURT.read_bytes())
            assert response.status_code == 200, response.text
            assert response.json()["image_size"] == [800, 800]
            # after the head deadline every slow connection has been closed by the server
            time.sleep(limits.header_timeout + 1.0)
            closed = 0
            for s in slow:
                s.settimeout(2)
                try:
                    closed += s.recv(1) == b""
                except (ConnectionResetError, BrokenPipeError):
                    closed += 1
            assert closed == 100
        finally:
            stop.set()
            for s in slow:
                s.close()


def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_protocol_errors_have_the_error_shape(worker, settings):
    """`Content-Length: -1` and other unparsable requests: JSON with X-Request-ID, not plain text."""
    import json

    with BackgroundServer(create_app(settings, worker), settings.limits) as url:
        for request in (
            b"POST /v1/parse HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"GARBAGE\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000,  # a head over 16 KB
        ):
            status, headers, body = _raw(url, request)
            assert status == 400 and headers["content-type"] == "application/json"
            answer = json.loads(body)
            assert answer["request_id"] == headers["x-request-id"] and "not valid HTTP" in answer["error"]
        assert httpx.get(f"{url}/health").status_code == 200


def test_the_token_is_checked_before_the_body_is_read(worker, settings):
    """A 256 MB body with no or a wrong token: 401 from the headers; the body is never sent."""
    with BackgroundServer(create_app(replace(settings, token=TOKEN), worker), settings.limits) as url:
        for auth in (b"", b"Authorization: Bearer wrong-token-wrong-token-xx\r\n"):
            head = (b"POST /v1/parse HTTP/1.1\r\nHost: x\r\n" + auth
                    + b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 268435456\r\n\r\n")  # fmt: skip
            t = time.perf_counter()
            status, headers, body = _raw(url, head)  # no byte of the body sent: the answer comes anyway
            assert status == 401 and b"missing or wrong token" in body
            assert headers["www-authenticate"] == "Bearer" and time.perf_counter() - t < 2


@pytest.mark.parametrize("token", [" " * 16, "short", "sixteen chars ok", "\t" * 20])
def test_a_token_is_16_characters_without_spaces(token):
    with pytest.raises(GeoMagError, match="at least 16 characters without spaces: make one with"):
        check_exposure("0.0.0.0", token)
    check_exposure("0.0.0.0", "0123456789abcdef")


def test_a_huge_sparse_geotiff_is_refused_from_its_header(worker, settings, tmp_path):
    """150000 x 150000 (a sparse file of a few hundred KB): 422 at once, nothing read."""
    import rasterio

    huge = tmp_path / "huge.tif"
    with rasterio.open(huge, "w", driver="GTiff", width=150_000, height=150_000, count=1, dtype="uint8",
                       tiled=True, blockxsize=1024, blockysize=1024, sparse_ok=True, BIGTIFF="YES"):  # fmt: skip
        pass
    assert huge.stat().st_size < 2_000_000
    with TestClient(create_app(settings, worker), raise_server_exceptions=False) as client:
        t = time.perf_counter()
        message = one_error(upload(client, "huge.tif", huge.read_bytes()), 422)
        assert time.perf_counter() - t < 10
        assert "the upload 'image' (huge.tif) is 150000x150000 with 1 band(s)" in message
        assert "--max-raster-mp" in message
        assert client.get("/health").json()["running"] is False


def test_errors_name_the_upload_and_the_form_fields_never_a_server_path(worker, settings, private_tmp):
    truncated = COURT.read_bytes()[:5000]
    with TestClient(create_app(settings, worker), raise_server_exceptions=False) as client:
        message = one_error(upload(client, "court.png", truncated), 422)
        assert message == "cannot read the upload 'image' (court.png) as an image: image file is truncated"
        message = one_error(upload(client, "n.tif", GEOTIFF.read_bytes(), bands="4"), 422)
        assert "bands=4 but the file has 3 band(s)" in message and "--bands" not in message
        message = one_error(upload(client, "n.tif", GEOTIFF.read_bytes(), bands="x"), 422)
        assert "--bands" not in message and "bands='x'" in message
        message = one_error(upload(client, "court.png", COURT.read_bytes(), nodata="0"), 422)
        assert message.startswith(
            "the upload 'image' (court.png): the field 'bands' / the field 'nodata' apply"
        )
        # a path field with a NUL byte, a prompt of spaces, an image sent as a text part
        allowed = replace(settings, allow_dir=private_tmp)
    with TestClient(create_app(allowed, worker), raise_server_exceptions=False) as client:
        data = {"prompt": "Is there a court?", "path": "a\0b.png"}
        assert "without NUL bytes" in one_error(client.post("/v1/parse", data=data), 422)
        assert (
            one_error(upload(client, "c.png", COURT.read_bytes(), prompt=" "), 422) == "the prompt is empty"
        )
        text_part = client.post("/v1/parse", files={"prompt": (None, "x"), "image": (None, "not a file")})
        assert "the field 'image' must be a file" in one_error(text_part, 422)
    assert not list(private_tmp.glob("geomag-serve-*"))


def test_a_job_past_its_timeout_is_stopped_and_health_says_so(worker, settings):
    """The tiny model's parse takes ~1 s; with a 0.2 s limit the client gets 504 and the job is
    stopped within a fraction of a second (not run to its end), the next job runs as usual."""
    limits = ServeLimits(job_timeout=0.2)
    stopped_before = worker.stopped_jobs
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1600, 1600, 3), dtype=np.uint8))
    import io

    data = io.BytesIO()
    big.save(data, format="PNG")
    with TestClient(create_app(replace(settings, limits=limits), worker), raise_server_exceptions=False) as c:
        assert "longer than this server's limit" in one_error(upload(c, "big.png", data.getvalue()), 504)
        t = time.perf_counter()
        while c.get("/health").json()["running"] and time.perf_counter() - t < 10:
            time.sleep(0.02)
        overrun = time.perf_counter() - t
        health = c.get("/health").json()
        assert health["running"] is False and health["stopped_jobs"] == stopped_before + 1
        assert overrun < 1.0, overrun
    with TestClient(create_app(settings, worker), raise_server_exceptions=False) as c:
        assert upload(c, COURT.name, COURT.read_bytes()).status_code == 200


def test_a_python_job_is_stopped_between_two_lines(worker):
    def forever(_):
        while True:
            time.sleep(0.01)

    future = worker.submit(forever)
    time.sleep(0.2)
    assert worker.running and worker.stop_job(future)
    assert worker.submit(lambda _: 42).result(timeout=5) == 42
    with pytest.raises(RuntimeError, match="stopped"):
        future.result(timeout=1)


def test_every_status_in_the_schema(worker, settings):
    """The statuses the guard and the HTTP layer give are documented on every route."""
    with TestClient(create_app(settings, worker)) as client:
        paths = client.get("/openapi.json").json()["paths"]
    for path, methods in paths.items():
        for method, operation in methods.items():
            assert {"400", "401", "408", "413", "500", "503"} <= set(operation["responses"]), (path, method)
    parse = paths["/v1/parse"]["post"]
    assert {"403", "415", "422", "504"} <= set(parse["responses"])


def test_a_truncated_png_is_one_error_before_any_model_is_built(tmp_path, capfd, monkeypatch):
    """`geomag parse` and `geomag.parse` check the input first: one line, no model built."""
    import geomag
    import geomag.api
    from geomag.cli import main

    def no_model(*_args, **_kwargs):
        raise AssertionError("a model was built for a bad input")

    monkeypatch.setattr(geomag.api, "_predictor", no_model)
    truncated = tmp_path / "t.png"
    truncated.write_bytes(COURT.read_bytes()[:5000])
    assert main(["parse", str(truncated), "Is there a court?", "--out", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "image file is truncated" in err and not (tmp_path / "out").exists()
    with pytest.raises(GeoMagError, match="truncated"):
        geomag.parse(truncated, "Is there a court?")


def test_the_library_is_quiet_by_default(tiny_checkpoint, capfd):
    """`geomag.parse` in a notebook: nothing on stderr (no FutureWarning, no "Loading weights" bar);
    the bars come back with progress=True."""
    import subprocess
    import sys

    code = (
        "import geomag, logging; from PIL import Image;"
        f"r = geomag.parse(Image.new('RGB', (64, 64)), 'Is there a ship?', model={str(tiny_checkpoint)!r},"
        " granularity='image', max_new_tokens=2); print('ok', r.granularity)"
    )
    import os

    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}  # the CLI sets it
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "ok image", quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code.replace("max_new_tokens=2", "max_new_tokens=2, progress=True")],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert loud.returncode == 0 and "Loading weights" in loud.stderr
