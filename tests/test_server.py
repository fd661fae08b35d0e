"""`geomag serve` + `geomag parse --server`: the same job as a local parse, run in a warm process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from geomag.cli import main
from geomag.server import make_server, run_parse_job


@pytest.fixture(scope="module")
def server_url():
    server = make_server({"parse": run_parse_job}, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _outputs(folder):
    result = json.loads((folder / "result.json").read_text())
    masks = {p.name: p.read_bytes() for p in sorted(folder.glob("mask_*.png"))}
    return result, masks


def test_parse_through_server_equals_local_parse(
    tiny_checkpoint, court_image, server_url, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # relative --out: the client resolves it, not the server
    argv = [
        "parse",
        str(court_image),
        "Segment the tennis court.",
        "--model",
        str(tiny_checkpoint),
        "--max-new-tokens",
        "4",
    ]
    assert main([*argv, "--out", "local"]) == 0
    local_printed = capsys.readouterr().out
    for name in ("served", "served_again"):  # twice: the cached model is not changed by a job
        assert main([*argv, "--out", name, "--server", server_url]) == 0
        printed = capsys.readouterr().out
        assert printed.splitlines()[0] == local_printed.splitlines()[0]
        assert f"-> {tmp_path / name}" in printed
        (local, local_masks), (served, served_masks) = _outputs(tmp_path / "local"), _outputs(tmp_path / name)
        for key in ("text", "granularity", "boxes", "image_size", "masks"):
            assert served[key] == local[key], key
        assert served["extra"]["candidates"] == local["extra"]["candidates"]
        assert served_masks == local_masks and (tmp_path / name / "overlay.png").is_file()


def test_server_reports_user_errors_and_keeps_serving(
    tiny_checkpoint, court_image, server_url, tmp_path, capsys
):
    rc = main(["parse", str(tmp_path / "missing.png"), "Is there a ship?", "--model", str(tiny_checkpoint),
               "--out", str(tmp_path / "out"), "--server", server_url])  # fmt: skip
    assert rc == 2 and "not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with urllib.request.urlopen(server_url + "/health") as response:
        assert json.loads(response.read())["geomag"]
    # the address without its scheme works too
    bare = server_url.removeprefix("http://")
    argv = ["parse", str(court_image), "Is there a ship?", "--model", str(tiny_checkpoint)]
    assert main([*argv, "--max-new-tokens", "2", "--out", str(tmp_path / "bare"), "--server", bare]) == 0


def test_server_refuses_another_geomag_version(server_url):
    body = json.dumps({"geomag": "0.0.0-other", "job": {}}).encode()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(server_url + "/parse", data=body))
    assert info.value.code == 400 and "restart `geomag serve`" in json.loads(info.value.read())["error"]


def test_parse_without_a_server_says_how_to_start_one(court_image, tmp_path, capsys):
    server = make_server({}, port=0)  # take a free port, then free it again: nothing listens there
    port = server.server_address[1]
    server.server_close()
    rc = main(["parse", str(court_image), "Is there a ship?", "--out", str(tmp_path / "o"),
               "--server", f"http://127.0.0.1:{port}"])  # fmt: skip
    assert rc == 2 and "start one with `geomag serve`" in capsys.readouterr().err


def test_serve_command_runs_until_interrupted(tiny_checkpoint, court_image, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "geomag.cli", "serve", "--model", str(tiny_checkpoint), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert first.startswith("GeoMag server at http://127.0.0.1:"), first + proc.stderr.read()
        url = first.split()[3]
        out = tmp_path / "out"
        rc = main(["parse", str(court_image), "Is there a tennis court?", "--model", str(tiny_checkpoint),
                   "--max-new-tokens", "3", "--out", str(out), "--server", url])  # fmt: skip
        assert rc == 0 and json.loads((out / "result.json").read_text())["granularity"] == "region"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0


def test_serve_bad_model_or_port_exits_2(tiny_checkpoint, tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "nope"), "--port", "0"]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert main(["serve", "--model", str(tiny_checkpoint), "--port", "99999"]) == 2
    assert "--port must be between 0 and 65535" in capsys.readouterr().err
    taken = make_server({}, port=0)
    try:
        port = str(taken.server_address[1])
        assert main(["serve", "--model", str(tiny_checkpoint), "--port", port]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    finally:
        taken.server_close()
