"""`--device`: checked up front, with one clear line when this machine lacks it."""

from __future__ import annotations

import pytest
import torch

from geomag.cli import main
from geomag.device import torch_device
from geomag.errors import GeoMagError


def test_torch_device_checks_what_this_machine_has():
    assert torch_device("cpu") == torch.device("cpu")
    for name in ("tpu", "cuda:x", "", "meta"):
        with pytest.raises(GeoMagError):
            torch_device(name)
    if not torch.cuda.is_available():
        with pytest.raises(GeoMagError, match="sees no CUDA GPU"):
            torch_device("cuda")
    else:
        with pytest.raises(GeoMagError, match="CUDA GPU"):
            torch_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("command", ["parse", "magcrop", "eval"])
def test_commands_refuse_a_missing_device_before_any_work(
    command, tiny_checkpoint, court_image, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = {
        "parse": ["parse", str(court_image), "Is there a court?", "--model", str(tiny_checkpoint)],
        "magcrop": [
            "magcrop",
            str(court_image),
            "--prompt",
            "Is there a court?",
            "--model",
            str(tiny_checkpoint),
        ],
        "eval": ["eval", "aid", "--data", str(tmp_path), "--model", str(tiny_checkpoint)],
    }[command]
    assert main([*argv, "--out", str(out), "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err
    assert not out.exists()


def test_from_pretrained_places_the_model(tiny_checkpoint):
    from geomag.model.geomag import GeoMagModel

    model = GeoMagModel.from_pretrained(tiny_checkpoint, device="cpu")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    with pytest.raises(GeoMagError, match="unknown device"):
        GeoMagModel.from_pretrained(tiny_checkpoint, device="tpu")


def test_a_served_job_runs_on_the_servers_device_unless_it_names_one(monkeypatch):
    from geomag import server

    seen = []
    monkeypatch.setattr(server, "parse_to_folder", lambda *a, options, **k: seen.append(options.device))
    monkeypatch.setattr(server, "summary_line", lambda result, out: "")
    job = {"image": "x.png", "prompt": "p", "out": "o"}
    server.run_parse_job({**job, "options": {"device": None}}, device="cuda")
    server.run_parse_job({**job, "options": {"device": "cpu"}}, device="cuda")
    assert seen == ["cuda", "cpu"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_training_on_a_missing_gpu_is_one_clear_error(tiny_checkpoint, tmp_path):
    from geomag.data.samples import Sample
    from geomag.model.geomag import GeoMagModel
    from geomag.train.config import TrainConfig
    from geomag.train.loop import train

    model = GeoMagModel.from_pretrained(tiny_checkpoint)
    sample = Sample("unused.png", "p", "a", "vqa")
    with pytest.raises(GeoMagError, match="sees no CUDA GPU"):
        train(model, [sample], TrainConfig(max_steps=1, device="cuda"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
