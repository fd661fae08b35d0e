"""GeoMag on a CUDA GPU: the same numbers as on the CPU, training, and the commands with --device.

The paper's setup trains and evaluates on a GPU (the `paper` preset's device is cuda); these tests
run the same code paths on tiny models (tiny LLaVA + tiny SAM2, as the paper's encoder) and skip
on machines without CUDA.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geomag.cli import main
from geomag.data.samples import Sample
from geomag.model.geomag import GeoMagModel
from geomag.model.presets import ModelConfig
from geomag.train.collate import prepare_batch
from geomag.train.config import TrainConfig
from geomag.train.loop import train
from geomag.train.losses import training_loss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tennis_courts_P0224.png"
COURT = [[[60, 560], [230, 560], [230, 760], [60, 760]]]  # a box around the bottom-left courts


@pytest.fixture(autouse=True)
def no_tf32():
    """Full float32 on the GPU, so that CPU and GPU results are comparable."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _config(tiny_llava: Path, tiny_sam2: Path, dtype: str = "float32") -> ModelConfig:
    return ModelConfig(
        vlm=str(tiny_llava), seg_encoder="sam2", seg_model=str(tiny_sam2), decoder_dim=16, dtype=dtype
    )


@pytest.fixture(scope="module")
def checkpoint(tiny_llava, tiny_sam2, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = GeoMagModel.from_config(_config(tiny_llava, tiny_sam2))
    return model.save_pretrained(tmp_path_factory.mktemp("cuda_ckpt"))


def _sample() -> Sample:
    return Sample(
        str(EXAMPLE), "Segment the tennis court.", "Sure, it is [SEG].", "refseg", [{"polygons": COURT}]
    )


def test_forward_on_cuda_matches_cpu(checkpoint):
    cpu = GeoMagModel.from_pretrained(checkpoint)
    gpu = GeoMagModel.from_pretrained(checkpoint, device="cuda")
    assert {p.device.type for p in gpu.parameters()} == {"cuda"}
    with torch.no_grad():
        batch_a, batch_b = prepare_batch(cpu, [_sample()]), prepare_batch(gpu, [_sample()])
        a, b = cpu(batch_a), gpu(batch_b)
        loss_a = training_loss(a, batch_a, cpu.config).loss
        loss_b = training_loss(b, batch_b, gpu.config).loss
    assert loss_b.device.type == "cuda"
    torch.testing.assert_close(b.logits.cpu(), a.logits, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(b.mask_logits[0].cpu(), a.mask_logits[0], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(loss_b.cpu(), loss_a, rtol=1e-3, atol=1e-4)
    image = Image.open(EXAMPLE)
    masks_a = cpu.predict_masks(image, "Segment the tennis court.", "Sure, it is [SEG].")
    masks_b = gpu.predict_masks(image, "Segment the tennis court.", "Sure, it is [SEG].")
    assert len(masks_a) == len(masks_b) == 1
    assert np.mean(masks_a[0] != masks_b[0]) < 1e-3  # pixels on the threshold may flip


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_training_on_cuda(dtype, tiny_llava, tiny_sam2, tmp_path):
    torch.manual_seed(0)
    model = GeoMagModel.from_config(_config(tiny_llava, tiny_sam2, dtype))
    cfg = TrainConfig(lr=1e-3, warmup_steps=1, max_steps=3, grad_accum=2, device="cuda", save_every=2)
    last = train(model, [_sample()], cfg, tmp_path / "run", progress=False)
    assert np.isfinite(last["loss"]) and last["mask_loss"] > 0 and last["step"] == 3
    assert all(p.device.type == "cuda" for p in model.parameters())
    reloaded = GeoMagModel.from_pretrained(tmp_path / "run")  # on the CPU
    trained = model.trainable_state_dict()
    for name, tensor in reloaded.trainable_state_dict().items():
        assert torch.equal(tensor, trained[name].cpu()), name
    resumed = GeoMagModel.from_config(_config(tiny_llava, tiny_sam2, dtype))
    cfg.max_steps = 4
    assert train(resumed, [_sample()], cfg, tmp_path / "run", resume=True, progress=False)["step"] == 4


@pytest.mark.parametrize(
    "prompt, granularity, extra",
    [
        ("Are there tennis courts?", "region", []),  # Eq. 4 attention PSC: gradients on the GPU
        ("Segment the tennis court.", "pixel", []),  # mask saliency, candidates, zoom
        ("Segment the tennis court.", "pixel", ["--pixel-saliency", "attention"]),
    ],
)
def test_parse_on_cuda_writes_what_the_cpu_writes(prompt, granularity, extra, checkpoint, tmp_path, capsys):
    results = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        argv = ["parse", str(EXAMPLE), prompt, "--model", str(checkpoint), "--granularity", granularity]
        assert main([*argv, *extra, "--max-new-tokens", "8", "--device", device, "--out", str(out)]) == 0
        results[device] = json.loads((out / "result.json").read_text())
        assert (out / "overlay.png").is_file()
    capsys.readouterr()
    cpu, gpu = results["cpu"], results["cuda"]
    assert gpu["granularity"] == cpu["granularity"] == granularity
    assert gpu["boxes"].keys() == cpu["boxes"].keys() and gpu["boxes"]
    for name, box in cpu["boxes"].items():  # the same crops, up to a pixel of rounding
        assert np.abs(np.subtract(gpu["boxes"][name], box)).max() <= 2, (name, box, gpu["boxes"][name])


def test_eval_on_cuda(checkpoint, tmp_path, capsys):
    from geomag.data.scenes import generate_scene
    from geomag.data.writers import DatasetWriter

    data = tmp_path / "scenes"
    writer = DatasetWriter(data, ("vqa",))
    for k in range(2):
        writer.add(generate_scene(k, (256, 256)), 10 * k)  # index % 10 == 0: the test split
    writer.close()
    argv = ["eval", "rsvqa-lr", "--data", str(data / "vqa"), "--model", str(checkpoint), "--limit", "4"]
    assert main([*argv, "--device", "cuda", "--max-new-tokens", "4", "--out", str(tmp_path / "eval")]) == 0
    assert len((tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()) == 4
    capsys.readouterr()
