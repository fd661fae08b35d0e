"""GeoMagModel on tiny reloaded models: tokens, forward on the REAL GeoPixelD sample with both
encoders, what trains, save -> load, masks on the original grid through the predictor, presets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geomag.data.samples import load_geopixeld
from geomag.errors import GeoMagError
from geomag.model.geomag import CONFIG_FILE, WEIGHTS_FILE, GeoMagModel, seg_runs
from geomag.model.presets import ModelConfig
from geomag.predictor import GeoMagPredictor
from geomag.train.collate import prepare_batch
from geomag.train.config import PRESETS, load_config
from geomag.train.losses import training_loss

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _config(kind: str, llava: Path, sam2: Path) -> ModelConfig:
    if kind == "sam2":
        return ModelConfig(vlm=str(llava), seg_encoder="sam2", seg_model=str(sam2))
    return ModelConfig(vlm=str(llava), seg_encoder="efficientnet_lite0", seg_image_size=64, decoder_dim=16)


@pytest.fixture(scope="module", params=["sam2", "cnn"])
def model(request, tiny_llava, tiny_sam2):
    torch.manual_seed(0)
    return GeoMagModel.from_config(_config(request.param, tiny_llava, tiny_sam2)).eval()


@pytest.fixture(scope="module")
def geopixeld(real_data):
    return load_geopixeld(real_data / "geopixel" / "data" / "GeoPixelD.json")[0]


def test_seg_tokens_are_single_special_ids(model):
    tok = model.vlm.tokenizer
    ids = model.token_ids
    assert set(ids) == {"[SEG]", "<p>", "</p>"} and len(set(ids.values())) == 3
    for token, token_id in ids.items():
        assert tok.convert_tokens_to_ids(token) == token_id
        assert tok("a " + token + " b", add_special_tokens=False).input_ids.count(token_id) == 1
    assert model.llm.get_input_embeddings().weight.shape[0] > max(ids.values())


def test_forward_on_real_geopixeld_sample(model, geopixeld):
    batch = prepare_batch(model, [geopixeld])
    assert [len(r) for r in batch["seg_runs"][0]] == [1, 1, 1, 1]  # four [SEG], four targets
    output = model(batch)
    out = training_loss(output, batch, model.config)
    assert out.text_loss is not None and out.mask_loss is not None
    assert torch.isfinite(out.text_loss) and out.text_loss > 0
    assert torch.isfinite(out.mask_loss) and out.mask_loss > 0
    assert output.mask_logits[0].shape[0] == 4
    expected = model.config.ce_weight * out.text_loss + out.mask_loss
    assert torch.allclose(out.loss, expected)
    ids = batch["input_ids"][0]
    for run in batch["seg_runs"][0]:
        assert ids[run[0]].item() == model.seg_token_id  # positions index the [SEG] tokens directly


def test_trainable_and_frozen_parts(model):
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n and "q_proj" in n for n in trainable)
    assert any("lora_B" in n and "v_proj" in n for n in trainable)
    assert any("embed_tokens" in n and "trainable_tokens" in n for n in trainable)
    assert any("lm_head" in n and "trainable_tokens" in n for n in trainable)
    assert any("multi_modal_projector" in n for n in trainable)
    assert any(n.startswith("pixel_decoder.text_projection") for n in trainable)
    assert {"pixel_decoder.scale_weights", "pixel_decoder.seg_weights"} <= set(trainable)
    for name, p in model.named_parameters():
        if "vision_tower" in name or name.startswith("seg_encoder"):
            assert not p.requires_grad, name
        if "lora" not in name and ("language_model" in name and "trainable_tokens" not in name):
            assert not p.requires_grad, name


def test_seg_runs_group_consecutive_seg_tokens():
    ids = torch.tensor([5, 9, 1, 9, 7, 9, 9, 9, 9, 9])  # 9 = [SEG], 1 = whitespace
    assert seg_runs([1, 3, 5, 6, 7, 8, 9], ids, {1}, max_len=4) == [[1, 3], [5, 6, 7, 8], [9]]


def test_save_load_identical_and_only_trainable(model, geopixeld, tmp_path, tiny_llava):
    out = model.save_pretrained(tmp_path / "ckpt")
    meta = json.loads((out / CONFIG_FILE).read_text())
    assert meta["config"]["vlm"] == str(tiny_llava) and meta["tokens"] == model.token_ids
    assert meta["config"]["lora_r"] == 8 and meta["config"]["lora_target"].endswith("(q_proj|v_proj)")
    from safetensors.torch import load_file

    saved = load_file(str(out / WEIGHTS_FILE))
    assert set(saved) == {n for n, p in model.named_parameters() if p.requires_grad}
    full_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    saved_bytes = sum(t.numel() * t.element_size() for t in saved.values())
    assert saved_bytes < 0.3 * full_bytes  # no frozen VLM / encoder weights in the checkpoint
    assert (out / WEIGHTS_FILE).stat().st_size < 0.3 * full_bytes

    with torch.no_grad():  # make the trained parts differ from a fresh model's
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(out)
    loaded = GeoMagModel.from_pretrained(out)
    batch = prepare_batch(model, [geopixeld])
    with torch.no_grad():
        a, b = model(batch), loaded(batch)
    assert torch.equal(a.logits, b.logits)
    assert all(torch.equal(x, y) for x, y in zip(a.mask_logits, b.mask_logits, strict=True))
    image = geopixeld.load_image()
    ma = model.predict_masks(image, geopixeld.prompt, geopixeld.answer)
    mb = loaded.predict_masks(image, geopixeld.prompt, geopixeld.answer)
    assert len(ma) == 4 and all(np.array_equal(x, y) for x, y in zip(ma, mb, strict=True))
    # from_pretrained writes the new tokens' rows into the embedding / lm_head (exact: the logits above
    # are equal); train() takes them out, and loading new weights into a merged model refreshes them
    assert loaded.token_rows_merged() and not model.token_rows_merged()
    assert not loaded.train().token_rows_merged()
    loaded.eval().merge_token_rows()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "trainable_tokens_delta" in n:
                p.add_(1.0)
    model.save_pretrained(out / "again")
    loaded.load_trainable(out / "again" / WEIGHTS_FILE)
    assert loaded.token_rows_merged()
    with torch.no_grad():
        assert torch.equal(model(batch).logits, loaded(batch).logits)


def test_parse_masks_on_original_grid_and_no_seg(model, real_data):
    image = (
        Image.open(real_data / "geopixel" / "images" / "example1.png").convert("RGB").crop((0, 0, 800, 500))
    )
    masks = model.predict_masks(image, "Segment the tennis courts.", "<p> court </p> [SEG] and [SEG] [SEG].")
    assert len(masks) == 3 and all(m.shape == (500, 800) and m.dtype == bool for m in masks)
    assert np.array_equal(masks[1], masks[2])  # one target, its mask repeated per [SEG]
    assert model.predict_masks(image, "Describe the image.", "An airport with no mask.") == []
    predictor = GeoMagPredictor(model)
    predictor.set_image(image)
    result = predictor.predict(
        "Segment the tennis courts.", granularity="pixel", magcrop=False, max_new_tokens=6
    )
    assert result.image_size == (800, 500)
    assert len(result.masks) == result.text.count("[SEG]")  # whatever it wrote: one mask per [SEG]
    assert all(m.shape == (500, 800) for m in result.masks)


def test_image_plan_masks_map_to_original(model, real_data):
    """An image-level MagCrop plan shows the model the whole extent resized: masks come back on the
    original grid."""
    image = (
        Image.open(real_data / "geopixel" / "images" / "example1.png").convert("RGB").crop((0, 0, 640, 400))
    )
    predictor = GeoMagPredictor(model)
    predictor.set_image(image)
    result = predictor.predict("Segment the courts.", granularity="image", max_new_tokens=4)
    assert result.granularity == "image" and "magcrop" in result.timings
    assert all(m.shape == (400, 640) for m in result.masks)


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(GeoMagError, match="not a GeoMag checkpoint"):
        GeoMagModel.from_pretrained(tmp_path)
    with pytest.raises(GeoMagError, match="names no VLM"):
        GeoMagModel.from_config(ModelConfig.from_dict(load_config("tiny-cnn")["model"]))


def test_presets_and_config_files():
    paper = load_config("paper")
    assert paper["model"]["vlm"] == "llava-hf/llava-1.5-7b-hf"
    assert paper["model"]["seg_model"] == "facebook/sam2-hiera-large"
    assert paper["model"]["lora_r"] == 8
    for name in PRESETS:
        file = CONFIGS / f"{name}.json"
        assert file.is_file(), file
        assert load_config(file) == load_config(name)
    with pytest.raises(GeoMagError, match="unknown model setting"):
        load_config("tiny-cnn", lora_rank=4)
    with pytest.raises(GeoMagError, match="neither a config file nor a preset"):
        load_config("huge")
    with pytest.raises(GeoMagError, match="seg_hidden"):
        ModelConfig(seg_hidden="after")


def test_parse_with_real_magcrop(model, real_data):
    """MagCrop (PSC on this model's own VLM, through the LoRA wrapper) then masks on the original grid."""
    image = (
        Image.open(real_data / "geopixel" / "images" / "example1.png").convert("RGB").crop((0, 0, 800, 500))
    )
    predictor = GeoMagPredictor(model)
    predictor.set_image(image)
    result = predictor.predict(  # a random tiny model: the crop path is tested, not the arbiter
        "Segment the white plane.", granularity="pixel", pixel_saliency="attention", arbiter=False
    )
    assert result.granularity == "pixel" and set(result.boxes) == {"crop1", "crop2"}
    assert result.boxes["crop1"].contains(result.boxes["crop2"])
    assert len(result.masks) == result.text.count("[SEG]")
    assert all(m.shape == (500, 800) for m in result.masks)


def test_tied_embeddings_train_the_new_rows_once(tiny_llava, geopixeld, tmp_path):
    """SmolLM2 (GeoMag-nano) ties lm_head to embed_tokens: one trainable-token adapter serves both."""
    import shutil

    from transformers import AutoConfig, LlavaForConditionalGeneration

    folder = tmp_path / "tied"
    shutil.copytree(tiny_llava, folder)
    config = AutoConfig.from_pretrained(folder)
    config.text_config.tie_word_embeddings = True
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    model = GeoMagModel.from_config(
        ModelConfig(vlm=str(folder), seg_encoder="efficientnet_lite0", seg_image_size=64, decoder_dim=16)
    ).eval()
    deltas = [p for n, p in model.named_parameters() if "trainable_tokens_delta" in n]
    assert len(deltas) == 1
    batch = prepare_batch(model, [geopixeld])
    with torch.no_grad():
        before = model(batch).logits[0, -1]
        deltas[0].add_(1.0)
        after = model(batch).logits[0, -1]
    # the new tokens' output rows moved with the (single) delta: the largest logit changes are theirs
    assert set((after - before).abs().topk(3).indices.tolist()) == set(model.token_ids.values())
