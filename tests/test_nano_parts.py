"""The CNN vision tower inside LLaVA, the cached SmolLM2 and the assembled GeoMag-nano VLM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from geomag.errors import GeoMagError
from geomag.model.backbones import efficientnet_lite0
from geomag.model.cnn_tower import GeoCnnVisionConfig, GeoCnnVisionModel


@pytest.fixture(scope="module")
def aid_image(real_data: Path) -> Image.Image:
    return Image.open(real_data / "aid-150" / "Airport" / "airport_1.jpg").convert("RGB")


def test_cnn_tower_in_llava_forward_generate_save_reload(tmp_path: Path, aid_image: Image.Image) -> None:
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    from geomag.model.vlm import load_vlm
    from geomag.testing import build_tiny_llava

    build_tiny_llava(tmp_path, vision=GeoCnnVisionConfig(image_size=128, token_grid=4))
    # a plain transformers load: the tower's weights come from the package, not the checkpoint
    eager = {"text_config": "eager", "vision_config": "eager"}  # attention maps, as PSC reads them
    model = LlavaForConditionalGeneration.from_pretrained(tmp_path, attn_implementation=eager).eval()
    processor = LlavaProcessor.from_pretrained(tmp_path)
    package = efficientnet_lite0().state_dict()
    tower = model.model.vision_tower
    assert isinstance(tower, GeoCnnVisionModel)
    assert all(torch.equal(package[k], v) for k, v in tower.backbone.state_dict().items())

    inputs = processor(images=[aid_image], text=["USER: <image>\nDescribe. ASSISTANT:"], return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_index).sum()) == 16
    # the processor reproduces the backbone's own (x - 127) / 128 scaling at the tower's input size
    expected = efficientnet_lite0().preprocess([aid_image], 128)
    assert torch.allclose(inputs["pixel_values"], expected, atol=1e-5)

    # the lead's VLM wrapper reads input size, image-token positions and the token grid from it
    from geomag.model.vlm import VLM

    vlm = VLM(model, processor)
    assert vlm.input_size == (128, 128)
    prepared = vlm.prepare(aid_image, "Describe.")
    assert int(vlm.image_token_mask(prepared["input_ids"]).sum()) == 16
    assert vlm.patch_grid(16) == (4, 4)

    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
        tokens = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.attentions[-1].shape[-1] == inputs["input_ids"].shape[1]
    assert tokens.shape[1] == inputs["input_ids"].shape[1] + 3

    # the checkpoint holds no backbone weights; GeoMag's loader fills them from the package as well
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "backbone" in k]  # noqa: SIM118
    reloaded, reprocessor = load_vlm(tmp_path)
    assert all(
        torch.equal(package[k], v) for k, v in reloaded.model.vision_tower.backbone.state_dict().items()
    )
    again = reprocessor(images=[aid_image], text=["USER: <image>\nDescribe. ASSISTANT:"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(reloaded(**again).logits, out.logits)


def test_tower_frozen_but_differentiable_and_geoembed_option() -> None:
    vision = GeoCnnVisionConfig(
        backbone="geoembed_resnet18", feature="last_stage", image_size=32, token_grid=2
    )
    assert vision.hidden_size == 512 and vision.patch_size == 16
    tower = GeoCnnVisionModel(GeoCnnVisionConfig.from_dict(vision.to_dict()))
    tower.train()
    assert not tower.backbone.training  # BatchNorm keeps its running statistics
    assert not any(p.requires_grad for p in tower.parameters())
    pixels = torch.randn(1, 3, 32, 32, requires_grad=True)
    out = tower(pixels)
    assert out.last_hidden_state.shape == (1, 4, 512) and out.hidden_states[-1] is out.last_hidden_state
    (grad,) = torch.autograd.grad(out.last_hidden_state.sum(), pixels)  # PSC needs input gradients
    assert grad.abs().sum() > 0


def test_tower_config_errors() -> None:
    with pytest.raises(GeoMagError, match="unknown CNN backbone"):
        GeoCnnVisionConfig(backbone="vit")
    with pytest.raises(GeoMagError, match="no feature"):
        GeoCnnVisionConfig(backbone="geoembed_resnet18", feature="head")
    with pytest.raises(GeoMagError, match="multiple of token_grid"):
        GeoCnnVisionConfig(image_size=100, token_grid=8)


@pytest.mark.slow
def test_nano_vlm_real_parts(tmp_path: Path, aid_image: Image.Image) -> None:
    """Real SmolLM2 (dequantised once into the user cache) + real EfficientNet: answers, generates, round-trips."""
    from geomag.model.nano import build_nano_vlm
    from geomag.model.smollm import smollm2_path
    from geomag.model.vlm import load_vlm

    model, processor = build_nano_vlm()
    folder = smollm2_path()
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight  # tied, as SmolLM2

    tok = processor.tokenizer
    text = [{"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}]
    prompt = processor.apply_chat_template(text, add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        answer = model.generate(**ids, max_new_tokens=10, do_sample=False)
    assert "Paris" in tok.decode(answer[0, ids["input_ids"].shape[1] :])

    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=[aid_image], text=[prompt], return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_index).sum()) == 64
    with torch.no_grad():
        logits = model(**inputs).logits
        tokens = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert tokens.shape[1] > inputs["input_ids"].shape[1]

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "backbone" in k]  # noqa: SIM118
    reloaded, reprocessor = load_vlm(tmp_path)
    again = reprocessor(images=[aid_image], text=[prompt], return_tensors="pt")
    assert torch.equal(again["input_ids"], inputs["input_ids"])
    with torch.no_grad():
        assert torch.equal(reloaded(**again).logits, logits)
