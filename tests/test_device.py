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


def test_a_served_job_runs_on_the_servers_device(tiny_checkpoint, court_image):
    """`geomag serve --device D` loads one model on D; a request naming another device is refused."""
    from fastapi.testclient import TestClient

    from geomag.serve.app import ServeSettings, create_app
    from geomag.serve.worker import start_worker

    worker = start_worker(str(tiny_checkpoint), "cpu")
    try:
        predictor = worker.submit(lambda p: p).result(30)
        seen = []
        original = predictor.predict
        predictor.predict = lambda prompt, options: seen.append(options.device) or original(prompt, options)
        client = TestClient(create_app(ServeSettings(model=str(tiny_checkpoint), device="cpu"), worker))
        form = {"prompt": "Is there a ship?", "granularity": "image", "max_new_tokens": "2"}
        for device, status in ((None, 200), ("cpu", 200), ("cuda", 422)):
            with open(court_image, "rb") as f:
                data = form if device is None else {**form, "device": device}
                response = client.post("/v1/parse", data=data, files={"image": ("court.png", f)})
            assert response.status_code == status, response.text
        assert "this server runs on cpu, not 'cuda'" in response.json()["error"]
        assert seen == ["cpu", "cpu"]
        assert {p.device.type for p in predictor.model.parameters()} == {"cpu"}
    finally:
        worker.stop()


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
