"""`geomag serve`'s HTTP API on the tiny checkpoint: every route, every limit, auth, CORS, the queue,
the job timeout, internal errors and a client that stalls mid-body (the last on a real socket)."""

from __future__ import annotations

import io
import logging
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import geomag
from geomag.data.samples import decode_mask
from geomag.errors import GeoMagError
from geomag.predictor import classify_prompt
from geomag.serve.app import ServeSettings, create_app
from geomag.serve.limits import ServeLimits
from geomag.serve.runner import BackgroundServer
from geomag.serve.security import check_exposure
from geomag.serve.worker import start_worker

ROOT = Path(__file__).resolve().parents[1]
COURT = ROOT / "examples" / "tennis_courts_P0224.png"
GEOTIFF = ROOT / "examples" / "neon_osbs029.tif"
PROMPT = "Is there a tennis court in this image?"
# PSC attention without the skip rule and the arbiter on the tiny model (its random maps are flat,
# its confidence noise): ~1 s, with boxes
FAST = {
    "granularity": "region",
    "max_new_tokens": "4",
    "region_saliency": "attention",
    "region_skip_below": "0",
    "arbiter": "false",
}
FAST_OPTIONS = {
    "granularity": "region",
    "max_new_tokens": 4,
    "region_saliency": "attention",
    "region_skip_below": 0.0,
    "arbiter": False,
}


@pytest.fixture(scope="module")
def worker(tiny_checkpoint):
    worker = start_worker(str(tiny_checkpoint), "cpu", max_waiting=8)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def settings(tiny_checkpoint):
    return ServeSettings(model=str(tiny_checkpoint), examples=ROOT / "examples")


def client_for(worker, settings, **changes) -> TestClient:
    from dataclasses import replace

    return TestClient(create_app(replace(settings, **changes), worker), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(worker, settings):
    with client_for(worker, settings) as c:
        yield c


def upload(client, path=COURT, prompt=PROMPT, query="", **fields):
    data = {"prompt": prompt, **FAST, **{k: str(v) for k, v in fields.items()}}
    with open(path, "rb") as f:
        return client.post(f"/v1/parse{query}", data=data, files={"image": (path.name, f)})


def one_error(response, status: int) -> str:
    """A 4xx/5xx answer is one JSON object with one message and the request's id (no traceback)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"} and body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in body["error"] and "\n" not in body["error"]
    return body["error"]


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Uploads' folders land here, so a test can see that they are removed."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_openapi_health_models_and_page(client, tiny_checkpoint):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/models", "/v1/parse", "/v1/classify"} <= set(paths)
    form = paths["/v1/parse"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]["$ref"].startswith("#/components/schemas/")
    assert "swagger" in client.get("/docs").text.lower()
    health = client.get("/health").json()
    assert health["model"] == str(tiny_checkpoint) and health["device"] == "cpu"
    assert health["geomag"] == geomag.__version__ and health["queue"] == 0
    models = client.get("/v1/models").json()
    assert models["loaded"]["name"] == str(tiny_checkpoint) and "nano" in {
        m["name"] for m in models["models"]
    }
    page = client.get("/")
    assert page.status_code == 200 and 'id="prompt"' in page.text
    assert client.get("/static/demo.js").status_code == 200
    examples = client.get("/v1/examples").json()
    assert {e["name"] for e in examples} >= {COURT.name, GEOTIFF.name}
    assert client.get(f"/examples/{COURT.name}").content == COURT.read_bytes()
    one_error(client.get("/examples/..%2Fpyproject.toml"), 404)


def test_an_upload_gives_the_result_of_geomag_parse(client, tiny_checkpoint, private_tmp):
    response = upload(client)
    assert response.status_code == 200, response.text
    body = response.json()
    local = geomag.parse(str(COURT), PROMPT, model=str(tiny_checkpoint), **FAST_OPTIONS)
    assert body["text"] == local.text and body["granularity"] == "region"
    assert body["boxes"] == {k: b.to_list() for k, b in local.boxes.items()} and body["boxes"]
    assert body["image_size"] == [800, 800] and body["request_id"] == response.headers["x-request-id"]
    masks = [decode_mask({"rle": m["rle"]}, 800, 800) for m in body["masks"]]
    assert len(masks) == len(local.masks) and all(
        np.array_equal(a, b) for a, b in zip(masks, local.masks, strict=True)
    )
    assert {"queue", "classify", "magcrop", "total"} <= set(body["timings"])
    assert not list(private_tmp.glob("geomag-serve-*"))  # the upload's folder is gone


def test_formats_png_geojson_and_the_demos_includes(client, tiny_checkpoint):
    png = upload(client, query="?format=png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    local = geomag.parse(str(COURT), PROMPT, model=str(tiny_checkpoint), **FAST_OPTIONS)
    served = np.asarray(Image.open(io.BytesIO(png.content)))
    assert np.array_equal(served, np.asarray(geomag.api.overlay(local)))

    geo = upload(client, GEOTIFF, "Where are the trees?", query="?format=geojson")
    assert geo.status_code == 200 and geo.headers["content-type"] == "application/geo+json"
    collection = geo.json()
    assert "crs" not in collection  # RFC 7946: WGS84 longitude / latitude, with or without ?wgs84=true
    box = next(f for f in collection["features"] if f["properties"]["kind"] == "box")
    x, y = box["geometry"]["coordinates"][0][0]
    assert -90 < x < -75 and 25 < y < 35
    lonlat = upload(client, GEOTIFF, "Where are the trees?", query="?format=geojson&wgs84=true").json()
    lon, lat = next(f for f in lonlat["features"] if f["properties"]["kind"] == "box")["geometry"][
        "coordinates"
    ][0][0]
    assert -90 < lon < -75 and 25 < lat < 35  # Florida (NEON OSBS)
    assert "georeferenced" in one_error(upload(client, query="?format=geojson"), 422)

    demo = upload(
        client, GEOTIFF, "Where are the trees?", query="?include=overlay,heatmap,geojson,map"
    ).json()
    assert demo["overlay"].startswith("data:image/") and demo["geojson"]["type"] == "FeatureCollection"
    south, west = demo["map"]["bounds"][0]  # the page's map: the raster warped to Web Mercator
    assert demo["map"]["kind"] == "geo" and -90 < west < -75 and 25 < south < 35
    assert demo["map"]["image"].startswith("data:image/png") and demo["map"]["crs"] == "EPSG:32617"
    assert (
        demo["heatmaps"] and demo["heatmaps"][0]["name"] == "crop1" and demo["heatmaps"][0]["source"] == "psc"
    )
    assert "include takes" in one_error(upload(client, query="?include=everything"), 422)


def test_classify(client):
    prompt = "Segment the swimming pool."
    body = client.post("/v1/classify", json={"prompt": prompt}).json()
    granularity, probabilities = classify_prompt(prompt)
    assert body["granularity"] == granularity == "pixel"
    assert body["probabilities"] == pytest.approx(probabilities, abs=1e-4)
    assert one_error(
        client.post("/v1/classify", content=b"{bad", headers={"content-type": "application/json"}), 400
    )
    assert "'prompt' is missing" in one_error(client.post("/v1/classify", json={}), 422)
    assert "empty" in one_error(client.post("/v1/classify", json={"prompt": "  "}), 422)


def test_client_mistakes_are_one_4xx_message_and_no_traceback(client, caplog, private_tmp):
    caplog.set_level(logging.INFO)
    text = ROOT / "README.md"
    cases = [
        (upload(client, text), 415, "not a PNG, JPEG or TIFF"),
        (client.post("/v1/parse", json={"prompt": "x"}), 415, "multipart/form-data"),
        (client.post("/v1/parse", content=b"x", headers={"content-type": "text/plain"}), 415, "multipart"),
        (client.post("/v1/parse", files={"prompt": (None, "x")}), 422, "multipart file field 'image'"),
        (
            client.post("/v1/parse", files={"image": ("a.png", COURT.read_bytes())}),
            422,
            "'prompt' is missing",
        ),
        (upload(client, candidates="abc"), 422, "candidates: Input should be a valid integer"),
        (upload(client, candidates=99), 422, "candidates must be between 1 and 16, not 99"),
        (upload(client, candidates=9), 422, "candidates must be at most 4 on this server"),
        (upload(client, max_new_tokens=0), 422, "max_new_tokens must be between 1"),
        (upload(client, max_new_tokens=1000), 422, "max_new_tokens must be at most 256"),
        (upload(client, min_crop=0), 422, "min_crop must be between 1"),
        (upload(client, working_cap=10**6), 422, "working_cap must be between 100 and 16384"),
        (upload(client, working_cap=10**4), 422, "working_cap must be at most 8192"),
        (upload(client, layer=999), 422, "layer must be between -64 and 63, not 999"),
        (upload(client, layer=50), 422, "layer must be between -3 and 2 on this server (its model has 3"),
        (upload(client, image_side=1000000), 422, "image_side must be between 8 and 4096"),
        (upload(client, zoom="crop9"), 422, "zoom must be one of auto, crop1, crop2, none, not 'crop9'"),
        (upload(client, magcrop="perhaps"), 422, "magcrop: Input should be a valid boolean"),
        (upload(client, colour="red"), 422, "unknown field(s) colour"),
        (upload(client, bands="9"), 422, "bands"),
        (upload(client, GEOTIFF, bands="7,2,1"), 422, "has 3 band(s)"),
        (upload(client, prompt="x" * 2001), 422, "over the limit of 2000"),
        (upload(client, device="cuda"), 422, "this server runs on cpu"),
        (upload(client, model="nano"), 422, "this server runs the model"),
        (upload(client, query="?format=xml"), 422, "format: Input should be"),
        (client.get("/v1/nothing"), 404, "no such endpoint"),
        (client.get("/v1/parse"), 405, "does not take GET"),
    ]
    for response, status, message in cases:
        assert message in one_error(response, status), (status, message)
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not list(private_tmp.glob("geomag-serve-*"))
    assert client.get("/health").json()["status"] == "ok"


def test_size_limits(worker, settings, tmp_path):
    small = ServeLimits(upload_bytes=300_000, decoded_pixels=100_000)
    with client_for(worker, settings, limits=small) as c:
        # the PNG's header says 800x800: refused before it is decoded
        jpeg = tmp_path / "court.jpg"
        Image.open(COURT).convert("RGB").save(jpeg, quality=80)
        assert jpeg.stat().st_size < 300_000
        assert "over the limit of 0 MP" in one_error(upload(c, jpeg), 422)
        # a body over the limit: refused from its Content-Length before it is read ...
        assert "over the limit" in one_error(upload(c, COURT), 413)

        # ... or, sent in chunks without a length, as soon as it passes the limit
        def chunks():
            boundary = b"--x\r\nContent-Disposition: form-data; name=image; filename=a.png\r\n\r\n"
            yield boundary
            for _ in range(100):
                yield b"\0" * 10_000

        chunked = c.post(
            "/v1/parse", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}
        )
        assert "over the limit" in one_error(chunked, 413)


def test_server_side_paths_only_inside_allow_dir(worker, settings, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "court.png").write_bytes(COURT.read_bytes())
    (allowed / "escape.png").symlink_to(COURT)
    data = {"prompt": PROMPT, **FAST}
    with client_for(worker, settings) as c:
        assert "--allow-dir" in one_error(c.post("/v1/parse", data={**data, "path": str(COURT)}), 403)
    with client_for(worker, settings, allow_dir=allowed) as c:
        assert c.post("/v1/parse", data={**data, "path": "court.png"}).json()["image_size"] == [800, 800]
        for outside in (str(COURT), "../allowed/../../x.png", "escape.png"):
            assert "outside" in one_error(c.post("/v1/parse", data={**data, "path": outside}), 403)
        assert "not found" in one_error(c.post("/v1/parse", data={**data, "path": "nope.png"}), 422)


def test_token_and_cors(worker, settings):
    token = "s3cret-token-of-32-characters-xx"
    with client_for(worker, settings, token=token) as c:
        assert c.get("/health").json()["token_required"] is True  # /health and the page stay open
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            assert "token" in one_error(c.get("/v1/models", headers=headers), 401)
            assert one_error(c.post("/v1/classify", json={"prompt": "x"}, headers=headers), 401)
        good = {"Authorization": f"Bearer {token}"}
        assert c.get("/v1/models", headers=good).status_code == 200
        assert c.post("/v1/classify", json={"prompt": "Is there a ship?"}, headers=good).status_code == 200
    preflight = {"Origin": "https://maps.example.org", "Access-Control-Request-Method": "POST"}
    with client_for(worker, settings) as c:
        assert "access-control-allow-origin" not in c.options("/v1/parse", headers=preflight).headers
    with client_for(worker, settings, cors=("https://maps.example.org",)) as c:
        answer = c.options("/v1/parse", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://maps.example.org"
    with pytest.raises(GeoMagError, match="--token"):
        check_exposure("0.0.0.0", None)
    check_exposure("127.0.0.1", None)
    check_exposure("::1", None)
    check_exposure("0.0.0.0", token)


def block(worker, release: threading.Event):
    """Keep the worker busy until `release` is set (returns once the blocking job runs)."""
    started = threading.Event()
    job = worker.submit(lambda predictor: started.set() or release.wait(60))
    assert started.wait(30)
    return job


def test_queue_full_is_503_with_retry_after_and_health_still_answers(client, worker, private_tmp):
    release = threading.Event()
    running = block(worker, release)
    try:
        waiting = [worker.submit(lambda predictor: None) for _ in range(worker.max_waiting)]
        t = time.perf_counter()
        health = client.get("/health").json()
        assert time.perf_counter() - t < 1.0
        assert health["running"] is True and health["queue"] == worker.max_waiting
        response = upload(client)
        assert "busy" in one_error(response, 503) and int(response.headers["retry-after"]) >= 1
    finally:
        release.set()
    running.result(10)
    for job in waiting:
        job.result(10)
    assert upload(client).status_code == 200  # served again once the queue has room
    assert not list(private_tmp.glob("geomag-serve-*"))


def test_job_timeout_is_504_and_the_dropped_job_never_runs(worker, settings, private_tmp):
    release = threading.Event()
    blocker = block(worker, release)
    try:
        with client_for(worker, settings, limits=ServeLimits(job_timeout=0.5)) as c:
            assert "longer than this server's limit of 0.5 s" in one_error(upload(c), 504)
            assert worker.waiting == 0  # the job that gave up is not left waiting
    finally:
        release.set()
    blocker.result(10)
    deadline = time.monotonic() + 10
    while list(private_tmp.glob("geomag-serve-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(private_tmp.glob("geomag-serve-*"))


def test_an_internal_failure_is_500_with_a_logged_request_id(client, worker, monkeypatch, caplog):
    predictor = worker.submit(lambda p: p).result(10)  # the worker's own predictor, to break it once

    def broken(*args, **kwargs):
        raise RuntimeError("a bug on the server's side")

    monkeypatch.setattr(predictor, "predict", broken)
    caplog.set_level(logging.ERROR, logger="geomag.serve")
    response = upload(client)
    message = one_error(response, 500)
    rid = response.json()["request_id"]
    assert rid in message and "bug" not in message  # the client gets the id, not the internals
    logged = [r for r in caplog.records if rid in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the server's log
    monkeypatch.undo()
    assert upload(client).status_code == 200  # and the server goes on


def _stall(url: str, length: int = 200_000) -> socket.socket:
    """A client that sends the headers and half its body, then nothing."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST /v1/parse HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    part = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    sock.sendall(head.encode() + part + b"\0" * (length // 2))
    return sock


def test_a_stalled_client_blocks_nothing_and_gets_408(worker, settings):
    limits = ServeLimits(upload_timeout=3.0)
    with BackgroundServer(client_for(worker, settings, limits=limits).app, limits) as url:
        stalled = [_stall(url) for _ in range(3)]
        try:
            for _ in range(3):
                t = time.perf_counter()
                health = httpx.get(f"{url}/health", timeout=5)
                assert health.status_code == 200 and time.perf_counter() - t < 1.0
            with open(COURT, "rb") as f:
                answer = httpx.post(f"{url}/v1/parse", data={"prompt": PROMPT, **FAST},
                                    files={"image": (COURT.name, f)}, timeout=120)  # fmt: skip
            assert answer.status_code == 200, answer.text
            stalled[0].settimeout(10)
            reply = b""
            while not reply.endswith(b"}"):
                reply += stalled[0].recv(4096)
            reply = reply.decode()
            assert reply.startswith("HTTP/1.1 408") and "sent nothing for 3 s" in reply
        finally:
            for sock in stalled:
                sock.close()


def test_serve_refuses_a_public_host_without_token():
    """Checked before any model is loaded: one line, exit 2."""
    cmd = [sys.executable, "-m", "geomag.cli", "serve", "--host", "0.0.0.0", "--port", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--token" in out.stderr and "Traceback" not in out.stderr
