"""The QGIS plugin (qgis/geomag_qgis), headless: `qgis_process run geomag:parse` (Debian's qgis +
python3-qgis, QT_QPA_PLATFORM=offscreen) against a `geomag serve` with the shipped nano started here,
on a real GeoTIFF. The layer it writes must open with the raster's CRS, hold valid polygons inside
the raster with the fields mask / phrase / class / score, and match the mask raster pixel for pixel;
a missing server, a wrong token and a refused image must each be one clear line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "qgis"
TOKEN = "qgis-test-token-of-24-chars"
PROMPT = "Segment the trees."  # nano finds a mask on rasterio's RGB.byte.tif with MagCrop off
GEOTIFF_NAME = "rasterio_RGB.byte.tif"
QGIS_PYTHON = "/usr/bin/python3"  # Debian's, where python3-qgis installs the bindings


def _qgis_process() -> str:
    # Debian's /usr/bin/qgis_process is a wrapper that adds --noversioncheck from /etc/default/qgis,
    # which qgis_process 3.22 refuses; the binary next to it is the tool itself
    found = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    bindings = (
        Path(QGIS_PYTHON).is_file()
        and subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True).returncode == 0
    )
    if found is None or not bindings:
        missing = "qgis_process" if found is None else "QGIS's Python bindings"
        if os.environ.get("CI"):
            pytest.fail(f"no {missing}: .ci/run installs them with `apt-get install qgis python3-qgis`")
        pytest.skip(f"no {missing} on this machine (apt-get install qgis python3-qgis qgis-providers)")
    return found


@pytest.fixture(scope="module")
def qgis(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """(qgis_process, its environment): a fresh QGIS profile with the plugin enabled."""
    binary = _qgis_process()
    profile = tmp_path_factory.mktemp("qgis_profile")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_CUSTOM_CONFIG_PATH": str(profile),
           "QGIS_PLUGINPATH": str(PLUGINS), "XDG_RUNTIME_DIR": str(profile)}  # fmt: skip
    env.pop("GEOMAG_TOKEN", None)
    env.pop("GEOMAG_SERVER", None)
    done = subprocess.run([binary, "plugins", "enable", "geomag_qgis"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    listed = subprocess.run([binary, "list"], env=env, capture_output=True, text=True, timeout=120)
    if "geomag:parse" not in listed.stdout:
        pytest.fail(f"the plugin did not load:\n{done.stdout}{done.stderr}{listed.stderr}")
    return binary, env


@pytest.fixture(scope="module")
def server():
    """`geomag serve --model nano` on 127.0.0.1 with a token; PNGs over 0.3 MP refused."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "geomag.cli", "serve", "--model", "nano", "--port", "0",
           "--token", TOKEN, "--max-pixels", "0.3"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()
    if not first.startswith("GeoMag server at "):
        proc.kill()
        pytest.fail(first + proc.stderr.read())
    yield first.split()[3]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in proc.stderr.read()


def run(qgis, algorithm: str, token: str | None = TOKEN, **params: str) -> tuple[int, dict, str]:
    """qgis_process run ALGORITHM --json -- K=V ... -> (exit code, its JSON, stderr)."""
    binary, env = qgis
    env = {**env, **({"GEOMAG_TOKEN": token} if token else {})}
    args = [binary, "run", algorithm, "--json", "--", *(f"{k}={v}" for k, v in params.items())]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    try:
        body = json.loads(done.stdout)
    except ValueError:
        body = {}
    return done.returncode, body, done.stdout + done.stderr


@pytest.fixture(scope="module")
def geotiff(real_data) -> Path:
    path = real_data / "geotiff" / GEOTIFF_NAME
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def test_parse_writes_a_layer_in_the_rasters_crs(qgis, server, geotiff, tmp_path):
    import geopandas
    import rasterio
    import rasterio.features
    import shapely

    rc, body, log = run(qgis, "geomag:parse", INPUT=str(geotiff), PROMPT=PROMPT, MAGCROP="0", GRANULARITY="3",
                        SERVER=server, OUTPUT=str(tmp_path / "masks.gpkg"),
                        OUTPUT_MASKS=str(tmp_path / "masks.tif"))  # fmt: skip
    assert rc == 0, log
    results = body["results"]
    assert "[mask 1]" in results["ANSWER"] and "[SEG]" not in results["ANSWER"]
    assert results["GRANULARITY_OUT"] == "pixel" and results["MASK_COUNT"] >= 1
    assert any("answer: " in line for line in body["log"]["info"])  # the answer in QGIS's log too

    layer = geopandas.read_file(tmp_path / "masks.gpkg")
    if shutil.which("ogrinfo"):  # GDAL 3.6 (Debian 12, what QGIS 3.22 uses) opens it without a warning
        info = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(tmp_path / "masks.gpkg")], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert info.returncode == 0 and "Warning" not in info.stderr, info.stderr
    with rasterio.open(geotiff) as src:
        crs, bounds, transform, shape = src.crs, src.bounds, src.transform, src.shape
    assert layer.crs == crs and len(layer) == results["MASK_COUNT"]
    assert {"mask", "phrase", "class", "score"} <= set(layer.columns)
    assert list(layer["mask"]) == list(range(1, len(layer) + 1)) and set(layer["class"]) == {"pixel"}
    assert all(0.0 <= s <= 1.0 for s in layer["score"])
    assert layer.geometry.is_valid.all() and not layer.geometry.is_empty.any()
    assert shapely.box(*bounds).buffer(1e-6).contains(shapely.union_all(layer.geometry))

    with rasterio.open(tmp_path / "masks.tif") as masks:  # one band per mask, on the raster's grid
        assert masks.crs == crs and masks.transform == transform and masks.shape == shape
        assert masks.count == len(layer)
        for i, geometry in enumerate(layer.geometry, start=1):
            burnt = rasterio.features.rasterize([geometry], out_shape=shape, transform=transform)
            assert np.array_equal(burnt, masks.read(i)), "the polygons follow the mask's pixels"


def test_parse_looks_only_inside_the_extent(qgis, server, geotiff, tmp_path):
    import geopandas
    import rasterio
    import shapely

    with rasterio.open(geotiff) as src:
        b, pixel = src.bounds, max(src.res)
    # the middle third of the raster (x min, x max, y min, y max, as QGIS writes extents)
    x0, x1 = b.left + (b.right - b.left) / 3, b.right - (b.right - b.left) / 3
    y0, y1 = b.bottom + (b.top - b.bottom) / 3, b.top - (b.top - b.bottom) / 3
    rc, _, log = run(qgis, "geomag:parse", INPUT=str(geotiff), PROMPT=PROMPT, MAGCROP="0", GRANULARITY="3",
                        EXTENT=f"{x0},{x1},{y0},{y1}", SERVER=server, OUTPUT=str(tmp_path / "part.gpkg"),
                        OUTPUT_MASKS=str(tmp_path / "part.tif"))  # fmt: skip
    assert rc == 0, log
    with rasterio.open(tmp_path / "part.tif") as part:
        assert part.width < 300 and part.height < 300  # a third of 791 x 718, not the whole raster
        inside = shapely.box(*part.bounds)
    assert shapely.box(x0, y0, x1, y1).buffer(pixel * 1.01).contains(inside)  # the extent, to a pixel
    layer = geopandas.read_file(tmp_path / "part.gpkg")
    assert all(inside.buffer(1e-6).contains(g) for g in layer.geometry)


def test_classify_reads_the_server_from_the_settings(qgis, server, tmp_path):
    _, env = qgis
    ini = Path(env["QGIS_CUSTOM_CONFIG_PATH"]) / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    text = ini.read_text() if ini.exists() else ""
    ini.parent.mkdir(parents=True, exist_ok=True)  # Processing > Options > Providers > GeoMag writes this
    ini.write_text(text + f"\n[Processing]\nConfiguration\\GEOMAG_SERVER_URL={server}\n")
    try:
        rc, body, log = run(qgis, "geomag:classify", PROMPT="Is there a ship in the harbour?")
    finally:
        ini.write_text(text)
    assert rc == 0, log
    assert body["results"]["GRANULARITY"] == "region"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_clear_messages_for_no_server_a_wrong_token_and_a_refused_image(
    qgis, server, geotiff, court_image, tmp_path
):
    out = {"OUTPUT": str(tmp_path / "x.gpkg")}
    rc, _, log = run(qgis, "geomag:parse", INPUT=str(geotiff), PROMPT=PROMPT,
                     SERVER=f"http://127.0.0.1:{_closed_port()}", **out)  # fmt: skip
    assert rc != 0 and "no GeoMag server answers at http://127.0.0.1:" in log and "geomag serve" in log
    rc, _, log = run(qgis, "geomag:classify", token="not-the-token", PROMPT="Is there a ship?", SERVER=server)
    assert rc != 0 and "wants a token and this one is wrong" in log
    rc, _, log = run(qgis, "geomag:parse", INPUT=str(court_image), PROMPT=PROMPT, SERVER=server, **out)
    assert rc != 0 and "the GeoMag server refused the request (HTTP 4" in log and "over the limit" in log
    assert "Traceback" not in log
    assert not (tmp_path / "x.gpkg").exists()


def test_the_plugin_is_an_http_client_and_builds_as_a_zip(tmp_path):
    """No torch and no geomag in QGIS's Python: the plugin only talks HTTP; `make qgis-plugin` zips it."""
    import re
    import zipfile

    for source in (PLUGINS / "geomag_qgis").glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+(torch|geomag)\b", source.read_text(), re.M), source
    done = subprocess.run([sys.executable, str(PLUGINS / "build_zip.py"), str(tmp_path)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    names = zipfile.ZipFile(done.stdout.strip()).namelist()
    assert "geomag_qgis/metadata.txt" in names and "geomag_qgis/__init__.py" in names
    assert not any("__pycache__" in n for n in names)


def test_cancel_stops_a_running_request(qgis, server, geotiff, tmp_path):
    """QGIS's Cancel (the feedback's cancel, from another thread as the dialog's button) stops the
    request at once; the server goes on serving."""
    import httpx

    _, env = qgis
    args = [QGIS_PYTHON, str(PLUGINS / "cancel_check.py"), server, str(geotiff), "1.0"]
    done = subprocess.run(
        args, env={**env, "GEOMAG_TOKEN": TOKEN}, capture_output=True, text=True, timeout=300
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["message"].startswith("canceled: the request to the GeoMag server was stopped"), report
    assert report["seconds"] < 5  # a parse of this raster takes longer (the other tests run it)
    assert httpx.get(server + "/health", timeout=30).json()["status"] == "ok"
