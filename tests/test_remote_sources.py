"""Remote rasters: a COG built from a real GeoTIFF, served over loopback HTTP (a server that honours
Range and counts bytes, and servers that fail as real ones do) and from a loopback S3-compatible
endpoint (moto's server), parsed as the same file read from disk is parsed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import geomag
from geomag.cli import main
from geomag.errors import GeoMagError
from geomag.imaging import Box
from geomag.loopback import FileServer, make_cog
from geomag.sources import RasterSource, ReadLimits, open_source, redact

SECRET = "s3cr3t-never-written"
PROMPT = "Segment the river."


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy for 127.0.0.1 (curl and urllib honour *_proxy variables), short retries."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.1")


@pytest.fixture(scope="module")
def cogs(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with big.tif (a 2048 px COG of the real rasterio_RGB.byte.tif, DEFLATE, 256 px tiles,
    overviews) and striped.tif (the real file itself: not tiled, no overviews)."""
    folder = tmp_path_factory.mktemp("cogs")
    real = real_data / "geotiff" / "rasterio_RGB.byte.tif"
    make_cog(real, folder / "big.tif", side=2048)
    shutil.copy(real, folder / "striped.tif")
    return folder


@pytest.fixture
def server(cogs: Path):
    with FileServer(cogs) as s:  # a new port per test: GDAL's per-URL cache starts empty
        yield s


def test_urls_are_recognised_and_secrets_redacted():
    from geomag.sources import gdal_path, is_remote

    assert all(is_remote(u) for u in ["https://h/a.tif", "s3://b/k.tif", "/vsicurl/http://h/a", "/vsis3/b/k"])
    assert not is_remote("scenes/a.tif") and not is_remote(Path("https://h/a.tif"))
    assert gdal_path("s3://b/k.tif") == "/vsis3/b/k.tif"
    assert gdal_path("https://h/a.tif") == "/vsicurl/https://h/a.tif"
    shown = redact(f"https://user:{SECRET}@h/a.tif?X-Amz-Signature={SECRET}&x-amz-date=1&sig={SECRET}")
    assert SECRET not in shown and shown.startswith("https://h/a.tif?") and "x-amz-date=1" in shown
    from geomag.sources import remote_error

    raw = f"https://h/a.tif?sig={SECRET}"
    gdal = f"'/vsicurl/{raw}' not recognized as a supported file format (X-Amz-Signature={SECRET})"
    message = remote_error(redact(raw), gdal, [raw, f"/vsicurl/{raw}"])
    assert SECRET not in message and message.startswith(
        "cannot read https://h/a.tif?sig=REDACTED as a raster"
    )


def test_a_window_read_over_http_equals_the_local_file_and_fetches_only_its_tiles(cogs, server):
    local = RasterSource(cogs / "big.tif")
    remote = open_source(f"{server.url}/big.tif")
    assert isinstance(remote, RasterSource) and remote.size == local.size == (2048, 2048)
    assert remote.crs == local.crs and remote.transform == local.transform
    box = Box(1000, 700, 1256, 956)
    assert np.array_equal(np.asarray(remote.read(box)), np.asarray(local.read(box)))
    assert np.array_equal(np.asarray(remote.read(None, (256, 256))), np.asarray(local.read(None, (256, 256))))
    size = (cogs / "big.tif").stat().st_size
    assert 0 < server.sent["big.tif"] <= 0.1 * size  # header, one tile row, an overview


def test_a_small_window_parse_of_a_remote_cog_gives_the_local_masks_and_reads_under_10_percent(
    cogs, server, seg_checkpoint
):
    """A batch window job's parse (MagCrop on: it plans on the overviews) on a 2048 px COG."""
    from geomag.batch.window import WindowSource

    size = (cogs / "big.tif").stat().st_size
    box = Box(768, 768, 1152, 1152)
    options = {"granularity": "pixel", "max_new_tokens": 2}
    local_source = WindowSource(open_source(str(cogs / "big.tif")), box)
    local = geomag.parse(local_source, PROMPT, model=str(seg_checkpoint), **options)
    server.reset()
    remote_source = WindowSource(open_source(f"{server.url}/big.tif"), box)
    remote = geomag.parse(remote_source, PROMPT, model=str(seg_checkpoint), **options)
    fetched = server.sent["big.tif"]
    assert 0 < fetched <= 0.1 * size, f"fetched {fetched} of {size} bytes"
    assert remote.text == local.text and remote.boxes == local.boxes and len(local.masks) > 0
    assert len(remote.masks) == len(local.masks)
    for a, b in zip(remote.masks, local.masks, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()  # byte-identical masks


def test_geomag_parse_takes_a_url_and_writes_no_secret(cogs, server, seg_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    url = f"{server.url}/big.tif?X-Amz-Signature={SECRET}"  # the server ignores the query
    argv = ["parse", url, PROMPT, "--out", str(out), "--model", str(seg_checkpoint)]
    assert main([*argv, "--granularity", "pixel", "--max-new-tokens", "2", "--mask-geotiff"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["extra"]["image"] == f"{server.url}/big.tif?X-Amz-Signature=REDACTED"
    assert all(SECRET not in p.read_bytes().decode("latin-1") for p in out.iterdir())
    assert SECRET not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mode", "name", "expected"),
    [
        ("range", "missing.tif", "remote raster not found (HTTP 404)"),
        ("forbidden", "big.tif", "access denied (HTTP 403)"),
        ("no-range", "big.tif", "ignores HTTP Range requests"),
        ("stall", "big.tif", "timed out (1 s; set GDAL_HTTP_TIMEOUT"),
    ],
)
def test_remote_failures_are_one_clear_line(cogs, mode, name, expected, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    with FileServer(cogs, mode=mode, stall_s=2.5) as s:
        with pytest.raises(GeoMagError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            open_source(f"{s.url}/{name}")
        out = tmp_path / "out"
        assert main(["parse", f"{s.url}/{name}?token={SECRET}", "x", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err and SECRET not in err
    assert not out.exists()  # nothing written


def test_transient_server_errors_are_retried(cogs, monkeypatch):
    with FileServer(cogs, mode="flaky") as s:  # 503 to the first request
        monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
        with pytest.raises(GeoMagError, match=r"answered HTTP 503 after 0 retries"):
            open_source(f"{s.url}/big.tif")
    with FileServer(cogs, mode="flaky") as s:
        monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "2")
        assert open_source(f"{s.url}/big.tif").size == (2048, 2048)


def test_a_remote_file_that_is_not_a_cog_is_warned_about_or_refused(cogs, server):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = open_source(f"{server.url}/striped.tif")
    assert source.size == (791, 718)
    assert any("not a Cloud-Optimized GeoTIFF (striped, not tiled)" in str(w.message) for w in caught)
    with pytest.raises(GeoMagError, match=r"not a Cloud-Optimized GeoTIFF .* over the limit of"):
        open_source(f"{server.url}/striped.tif", limits=ReadLimits(decoded_pixels=100_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a COG: no warning
        open_source(f"{server.url}/big.tif")


# --- s3:// on a loopback S3-compatible endpoint (moto's server) --------------------------------------
@pytest.fixture(scope="module")
def s3_endpoint(cogs: Path, tmp_path_factory: pytest.TempPathFactory):
    """moto's S3 server on 127.0.0.1 with bucket `scenes` holding big.tif; the AWS_* variables GDAL
    and boto read point at it (no ~/.aws files, no EC2 metadata lookup)."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] (dev extra) is not installed")
    boto3 = pytest.importorskip("boto3")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    nowhere = tmp_path_factory.mktemp("aws") / "none"
    env = {
        "AWS_ACCESS_KEY_ID": "geomag-test-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(nowhere),
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
        "CPL_AWS_AUTODETECT_EC2": "NO",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    saved = {k: os.environ.get(k) for k in [*env, "AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING"]}
    os.environ.update(env)
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
    client.create_bucket(Bucket="scenes")
    client.upload_file(str(cogs / "big.tif"), "scenes", "cogs/big.tif")
    yield f"http://{host}:{port}"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_s3_urls_read_through_gdal_with_the_aws_variables(cogs, s3_endpoint, monkeypatch):
    host_port = s3_endpoint.removeprefix("http://")
    monkeypatch.setenv("AWS_S3_ENDPOINT", host_port)  # GDAL's own names
    monkeypatch.setenv("AWS_HTTPS", "NO")
    monkeypatch.setenv("AWS_VIRTUAL_HOSTING", "FALSE")
    local = RasterSource(cogs / "big.tif")
    box = Box(512, 512, 768, 768)
    for url in ["s3://scenes/cogs/big.tif", "/vsis3/scenes/cogs/big.tif"]:
        remote = open_source(url)
        assert remote.size == local.size and remote.crs == local.crs
        assert np.array_equal(np.asarray(remote.read(box)), np.asarray(local.read(box)))
    with pytest.raises(GeoMagError, match=r"remote raster not found \(HTTP 404\): s3://scenes/cogs/nope.tif"):
        open_source("s3://scenes/cogs/nope.tif")


def test_s3_endpoint_of_boto_s_variable_and_a_batch_writes_no_credentials(
    cogs, s3_endpoint, tiny_checkpoint, monkeypatch, tmp_path
):
    for name in ("AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # boto's name: mapped to GDAL's
    out = tmp_path / "D"
    argv = ["batch", "s3://scenes/cogs/big.tif", "--prompt", "What is this?", "--out", str(out)]
    assert (
        main(
            [
                *argv,
                "--model",
                str(tiny_checkpoint),
                "--max-new-tokens",
                "2",
                "--no-progress",
                "--granularity",
                "image",
            ]
        )
        == 0
    )
    (record,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert "error" not in record and record["input"] == "s3://scenes/cogs/big.tif"
    assert record["input_size"] == [2048, 2048] and record["crs"] == "EPSG:32618"
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# --- the server's `url` field (geomag serve --allow-url PREFIX) -----------------------------------------
def test_the_server_reads_urls_only_under_its_allow_url_prefixes(cogs, server, tiny_checkpoint):
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from geomag.serve.app import ServeSettings, create_app
    from geomag.serve.worker import start_worker

    worker = start_worker(str(tiny_checkpoint), "cpu", max_waiting=2)
    settings = ServeSettings(model=str(tiny_checkpoint))
    data = {"prompt": "What is this?", "granularity": "image", "max_new_tokens": "2"}

    def post(client: TestClient, url: str):
        response = client.post("/v1/parse", data={**data, "url": url})
        return response.status_code, response.json()

    try:
        with TestClient(create_app(settings, worker), raise_server_exceptions=False) as c:
            status, body = post(c, f"{server.url}/big.tif")
            assert status == 403 and "--allow-url" in body["error"]
        allowed = replace(settings, allow_urls=(f"{server.url}/",))
        with TestClient(create_app(allowed, worker), raise_server_exceptions=False) as c:
            status, body = post(c, f"{server.url}/big.tif")
            assert status == 200 and body["image_size"] == [2048, 2048]
            for outside in (
                "http://127.0.0.2:1/big.tif",
                f"{server.url}/../etc/passwd",
                "/vsicurl/x",
                "file:///x",
            ):
                status, body = post(c, outside)
                assert status == 403, (outside, body)
            status, body = post(c, f"{server.url}/missing.tif")
            assert status == 422 and "remote raster not found (HTTP 404)" in body["error"]
    finally:
        worker.stop()
