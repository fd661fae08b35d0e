"""PSC heatmap (Eq. 4) on a tiny LLaVA saved and reloaded with the real loading code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from geomag.attention import psc_heatmap
from geomag.errors import GeoMagError
from geomag.model.vlm import VLM

PROMPT = "Where is the white ship in the harbor?"


@pytest.fixture(scope="module")
def vlm(tiny_llava):
    return VLM.from_pretrained(tiny_llava)


@pytest.fixture(scope="module")
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8))


def test_heatmap_shape_sign_and_model_untouched(vlm, image):
    before = {k: v.clone() for k, v in vlm.model.state_dict().items()}
    heat = psc_heatmap(vlm, image, PROMPT)
    grid = vlm.patch_grid(int(vlm.config.image_seq_length))
    assert heat.shape == grid == (4, 4)
    assert heat.dtype == np.float32 and np.isfinite(heat).all()
    assert (heat >= 0).all() and heat.sum() > 0
    after = vlm.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in vlm.model.parameters())
    assert not vlm.model.training
    assert torch.is_grad_enabled()  # the no_grad/graph switch is undone


def test_heatmap_under_no_grad_and_inference_mode(vlm, image):
    ref = psc_heatmap(vlm, image, PROMPT)
    with torch.no_grad():
        np.testing.assert_array_equal(psc_heatmap(vlm, image, PROMPT), ref)
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        np.testing.assert_array_equal(psc_heatmap(vlm, image, PROMPT), ref)
        assert torch.is_inference_mode_enabled()


def test_heatmap_is_deterministic_across_reloads(vlm, image, tiny_llava):
    again = VLM.from_pretrained(tiny_llava)
    np.testing.assert_array_equal(psc_heatmap(vlm, image, PROMPT), psc_heatmap(again, image, PROMPT))
    other = psc_heatmap(vlm, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), PROMPT)
    assert not np.array_equal(other, psc_heatmap(vlm, image, PROMPT))  # the map depends on the image


def test_heatmap_matches_a_full_graph_reference(vlm, image):
    """The cheap graph (from the chosen layer's input) gives the same dL/dA as a full-graph pass."""
    inputs = vlm.prepare(image, PROMPT)
    embeds = vlm.model.get_input_embeddings()(inputs["input_ids"]).detach().requires_grad_(True)
    ids = inputs["input_ids"][0]
    out = vlm.model(
        inputs_embeds=embeds,
        pixel_values=inputs["pixel_values"],
        attention_mask=inputs["attention_mask"],
        output_attentions=True,
        use_cache=False,
    )
    # inputs_embeds path: the image features are scattered into the image-token positions of embeds
    attn = out.attentions[-1]
    logits = out.logits[0, -1:]
    loss = torch.nn.functional.cross_entropy(logits, logits.argmax(-1))
    (grad,) = torch.autograd.grad(loss, attn)
    img = torch.nonzero(ids == vlm.image_token_id, as_tuple=True)[0]
    rows = torch.arange(int(img[-1]) + 1, ids.shape[0])
    ref = (torch.relu(grad[0][:, rows][:, :, img]) * attn[0][:, rows][:, :, img]).mean((0, 1))
    np.testing.assert_allclose(
        psc_heatmap(vlm, image, PROMPT), ref.detach().numpy().reshape(4, 4), rtol=1e-4, atol=1e-9
    )
    assert all(p.grad is None for p in vlm.model.parameters())


def test_layer_and_answer_tokens_options(vlm, image):
    first = psc_heatmap(vlm, image, PROMPT, layer=0)
    assert first.shape == (4, 4) and (first >= 0).all()
    assert not np.array_equal(first, psc_heatmap(vlm, image, PROMPT))
    longer = psc_heatmap(vlm, image, PROMPT, answer_tokens=3)
    assert longer.shape == (4, 4) and (longer >= 0).all()
    with pytest.raises(GeoMagError, match="layer 7"):
        psc_heatmap(vlm, image, PROMPT, layer=7)
    with pytest.raises(GeoMagError, match="answer_tokens"):
        psc_heatmap(vlm, image, PROMPT, answer_tokens=0)
    with pytest.raises(GeoMagError, match="empty"):
        psc_heatmap(vlm, image, "  ")


def test_grid_comes_from_the_config(tmp_path, image):
    from geomag.testing import build_tiny_llava

    vlm6 = VLM.from_pretrained(build_tiny_llava(tmp_path / "llava84", image_size=84))
    assert psc_heatmap(vlm6, image, PROMPT).shape == (6, 6)


def test_sdpa_attention_fails_loudly(tiny_llava, image):
    vlm = VLM.from_pretrained(tiny_llava, attn="sdpa")
    with pytest.raises(GeoMagError, match="eager"):
        psc_heatmap(vlm, image, PROMPT)
