"""The offline loader: local folders and bundled models load; a missing model fails fast and clearly."""

from __future__ import annotations

import time

import pytest
import torch
from PIL import Image

from geomag import hub
from geomag.errors import GeoMagError
from geomag.model.seg_encoder import load_seg_encoder
from geomag.model.vlm import load_vlm


def test_missing_hub_id_fails_fast_with_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    start = time.perf_counter()
    with pytest.raises(GeoMagError) as err:
        load_vlm("llava-hf/llava-1.5-7b-hf")
    assert time.perf_counter() - start < 5
    msg = str(err.value)
    assert "llava-hf/llava-1.5-7b-hf" in msg and "local folder" in msg and "cache" in msg


def test_missing_local_folder_is_named(tmp_path):
    with pytest.raises(GeoMagError, match="folder not found"):
        hub.resolve_model(str(tmp_path / "nope"), "VLM")


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(GeoMagError, match="is a file"):
        hub.resolve_model(str(f))


def test_hub_cache_snapshot_is_found(tmp_path, monkeypatch, tiny_bert):
    """An id that IS in the cache resolves offline to its snapshot folder."""
    import shutil

    cache = tmp_path / "hub"
    snap = cache / "models--someorg--tiny-bert" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_bert, snap)
    (cache / "models--someorg--tiny-bert" / "refs").mkdir(parents=True)
    (cache / "models--someorg--tiny-bert" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    assert hub.resolve_model("someorg/tiny-bert") == snap
    model, _ = hub.load_text_encoder("someorg/tiny-bert")
    assert model.config.hidden_size == 32


def test_bundled_minilm_loads_offline():
    model, tok = hub.load_text_encoder("all-MiniLM-L6-v2")
    assert model.config.hidden_size == 384
    out = model(**tok("the isolated white ship", return_tensors="pt")).last_hidden_state
    assert out.shape[-1] == 384 and torch.isfinite(out).all()


def test_tiny_llava_reloads_with_eager_attention(tiny_llava):
    model, processor = load_vlm(tiny_llava)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert model.config.text_config._attn_implementation == "eager"
    inputs = processor(
        images=Image.new("RGB", (80, 60), (40, 90, 30)),
        text="USER: <image>\nIs there a ship?",
        return_tensors="pt",
    )
    n_img = int((inputs["input_ids"] == model.config.image_token_index).sum())
    assert n_img == model.config.image_seq_length
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    assert len(out.attentions) == model.config.text_config.num_hidden_layers
    assert out.attentions[-1].shape[-1] == inputs["input_ids"].shape[1]
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 3


def test_tiny_sam2_gives_three_scales(tiny_sam2):
    model = load_seg_encoder(tiny_sam2)
    with torch.no_grad():
        feats = model.get_image_embeddings(torch.zeros(1, 3, 128, 128))
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 32), (16, 16), (8, 8)]


def test_tiny_bert_reloads(tiny_bert):
    model, tok = hub.load_text_encoder(tiny_bert)
    out = model(**tok("segment the ship", return_tensors="pt")).last_hidden_state
    assert out.shape[-1] == 32
