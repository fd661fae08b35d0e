"""`geomag serve` + `geomag parse --server`: the image is uploaded, the answer comes back, and the
same files as a local parse are written on the client's side."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from geomag.cli import main
from geomag.serve.app import ServeSettings, create_app
from geomag.serve.limits import ServeLimits
from geomag.serve.runner import BackgroundServer, bind
from geomag.serve.worker import start_worker

GEOTIFF = Path(__file__).resolve().parents[1] / "examples" / "neon_osbs029.tif"
TOKEN = "a-token-of-more-than-16-chars"
# the served and the local parse compared byte for byte run on the same thread count: float sums in
# another order differ in their last digits (the load-based default can differ between the two)
SERVER_THREADS = 1


@pytest.fixture(scope="module")
def server_url(tiny_checkpoint):
    worker = start_worker(str(tiny_checkpoint), threads=SERVER_THREADS)
    app = create_app(ServeSettings(model=str(tiny_checkpoint)), worker)
    with BackgroundServer(app, ServeLimits()) as url:
        yield url
    worker.stop()


def _outputs(folder):
    result = json.loads((folder / "result.json").read_text())
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "result.json"}
    return result, files


def _layers(folder):
    import pyogrio
    import pyogrio.raw

    path = folder / "vectors.gpkg"
    if not path.exists():
        return None
    out = []
    for layer, _ in pyogrio.list_layers(path):
        meta, _, geometry, fields = pyogrio.raw.read(path, layer=layer)
        out.append((layer, meta["crs"], [bytes(g) for g in geometry], [list(f) for f in fields]))
    return out


@pytest.mark.parametrize(
    ("image", "extra"),
    [
        ("court", ["--granularity", "pixel", "--pixel-saliency", "attention"]),
        ("geotiff", ["--granularity", "region", "--geojson", "--mask-geotiff"]),
    ],
)
def test_parse_through_server_writes_what_a_local_parse_writes(
    image, extra, tiny_checkpoint, court_image, server_url, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # relative --out: the client resolves it
    path = court_image if image == "court" else GEOTIFF
    argv = ["parse", str(path), "Segment the tennis court.", "--model", str(tiny_checkpoint),
            "--max-new-tokens", "4", *extra]  # fmt: skip
    monkeypatch.setenv("GEOMAG_THREADS", str(SERVER_THREADS))  # the local parse's count, restored after
    assert main([*argv, "--out", "local"]) == 0
    local_printed = capsys.readouterr().out
    for name in ("served", "served_again"):  # twice: a job does not change the server's model
        assert main([*argv, "--out", name, "--server", server_url]) == 0
        printed = capsys.readouterr().out
        assert printed.splitlines()[0] == local_printed.splitlines()[0]
        assert f"-> {tmp_path / name}" in printed
        (local, local_files), (served, served_files) = _outputs(tmp_path / "local"), _outputs(tmp_path / name)
        for key in ("text", "granularity", "boxes", "image_size", "masks"):
            assert served[key] == local[key], key
        assert {k: v for k, v in served["extra"].items() if k != "model"} == {
            k: v for k, v in local["extra"].items() if k != "model"
        }
        # mask PNGs, overlay.png and (GeoTIFF) masks/boxes GeoJSON and mask GeoTIFFs: byte for byte
        # a GeoPackage holds its write time: compared by its layers, features and fields instead
        assert _layers(tmp_path / name) == _layers(tmp_path / "local")
        served_files.pop("vectors.gpkg", None)
        local_files.pop("vectors.gpkg", None)
        assert served_files == local_files and "overlay.png" in served_files
    if image == "geotiff":
        import pyogrio

        boxes = json.loads((tmp_path / "served" / "boxes.geojson").read_text())
        assert "crs" not in boxes  # RFC 7946: WGS84 (the tiny model's flat map may keep no crop box)
        for feature in boxes["features"]:
            lon, lat = feature["geometry"]["coordinates"][0][0]
            assert -90 < lon < -75 and 25 < lat < 35  # on the map, not in pixels
        assert pyogrio.read_info(tmp_path / "served" / "vectors.gpkg", layer="masks")["crs"] == "EPSG:32617"


def test_server_reports_user_errors_and_keeps_serving(
    tiny_checkpoint, court_image, server_url, tmp_path, capsys
):
    rc = main(["parse", str(tmp_path / "missing.png"), "Is there a ship?", "--out", str(tmp_path / "out"),
               "--server", server_url])  # fmt: skip
    assert rc == 2 and "not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    argv = ["parse", str(court_image), "Is there a ship?", "--granularity", "region"]
    rc = main([*argv, "--candidates", "8", "--out", str(tmp_path / "bad"), "--server", server_url])
    assert rc == 2 and "candidates must be at most 4 on this server" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    rc = main([*argv, "--model", "nano", "--out", str(tmp_path / "other"), "--server", server_url])
    assert rc == 2 and "this server runs the model" in capsys.readouterr().err
    # the address without its scheme works too
    bare = server_url.removeprefix("http://")
    assert main([*argv, "--max-new-tokens", "2", "--out", str(tmp_path / "bare"), "--server", bare]) == 0


def test_parse_without_a_server_says_how_to_start_one(court_image, tmp_path, capsys):
    sock = bind("127.0.0.1", 0)  # take a free port, then free it again: nothing listens there
    port = sock.getsockname()[1]
    sock.close()
    rc = main(["parse", str(court_image), "Is there a ship?", "--out", str(tmp_path / "o"),
               "--server", f"http://127.0.0.1:{port}"])  # fmt: skip
    assert rc == 2 and "start one with `geomag serve`" in capsys.readouterr().err


def test_the_client_imports_no_torch():
    """`geomag parse --server` is a new process per call: it uploads and writes without torch."""
    code = (
        "import sys; import geomag.client, geomag.commands.parse; "
        "print(sorted(m for m in ('torch', 'transformers', 'fastapi', 'geomag.predictor') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_serve_command_runs_until_interrupted(tiny_checkpoint, court_image, tmp_path):
    uploads = tmp_path / "tmp"
    uploads.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GEOMAG_TOKEN": TOKEN, "TMPDIR": str(uploads)}
    cmd = [sys.executable, "-m", "geomag.cli", "serve", "--model", str(tiny_checkpoint), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert first.startswith("GeoMag server at http://127.0.0.1:"), first + proc.stderr.read()
        url = first.split()[3]
        out = tmp_path / "out"
        argv = ["parse", str(court_image), "Is there a tennis court?", "--model", str(tiny_checkpoint),
                "--max-new-tokens", "3", "--out", str(out), "--server", url]  # fmt: skip
        assert main([*argv, "--token", "wrong-token-but-long-enough"]) == 2 and not out.exists()
        assert main([*argv, "--token", TOKEN]) == 0
        assert json.loads((out / "result.json").read_text())["granularity"] == "region"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    assert "Traceback" not in proc.stderr.read()
    assert not list(uploads.glob("geomag-serve-*"))  # every upload's folder is gone


def test_serve_stops_on_sigterm_and_removes_uploads_in_flight(tiny_checkpoint, court_image, tmp_path):
    """SIGTERM (what a service manager sends) while a job runs: exit 0, no upload left behind."""
    uploads = tmp_path / "tmp"
    uploads.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(uploads)}
    cmd = [sys.executable, "-m", "geomag.cli", "serve", "--model", str(tiny_checkpoint), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().split()[3]
        # a long job (the tiny model writes up to 200 tokens of noise), its answer never awaited
        form = {"prompt": "Describe the image.", "granularity": "image", "max_new_tokens": "200"}

        def post() -> None:
            with open(court_image, "rb") as f, contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{url}/v1/parse", data=form, files={"image": f}, timeout=120)

        threading.Thread(target=post, daemon=True).start()
        deadline = time.monotonic() + 60
        while not httpx.get(f"{url}/health").json()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(uploads.glob("geomag-serve-*"))  # the running job's upload
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert not list(uploads.glob("geomag-serve-*"))


def test_serve_bad_model_port_or_host_exits_2(tiny_checkpoint, tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "nope"), "--port", "0"]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert main(["serve", "--model", str(tiny_checkpoint), "--port", "99999"]) == 2
    assert "--port must be between 0 and 65535" in capsys.readouterr().err
    taken = bind("127.0.0.1", 0)
    try:
        port = str(taken.getsockname()[1])
        assert main(["serve", "--model", str(tiny_checkpoint), "--port", port]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    finally:
        taken.close()
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "give --token" in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--token", "short", "--port", "0"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
