"""Frozen seg encoders, text projection, per-scale mask heads and the learned fusion of Eq. 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from geomag.errors import GeoMagError
from geomag.model.pixel_decoder import (
    ConvMaskHead,
    PixelDecoder,
    Sam2MaskHead,
    TextProjection,
    build_pixel_decoder,
)
from geomag.model.seg_encoder import CnnSegEncoder, Sam2SegEncoder, build_seg_encoder
from geomag.train.losses import bce_loss, dice_loss, mask_iou


@pytest.fixture(scope="module")
def sam2_encoder(tiny_sam2):
    return Sam2SegEncoder.from_pretrained(tiny_sam2)


@pytest.fixture(scope="module")
def cnn_encoder():
    return CnnSegEncoder("efficientnet_lite0", image_size=64)


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)) for _ in range(2)]


def test_sam2_encoder_preprocess_and_three_scales(sam2_encoder):
    grey = Image.new("RGB", (30, 20), (124, 116, 104))  # ImageNet mean * 255 -> ~0 after normalising
    px = sam2_encoder.preprocess([grey])
    assert px.shape == (1, 3, 128, 128) and px.abs().max() < 0.01
    feats = sam2_encoder.features(sam2_encoder.preprocess(_images()))
    assert [tuple(f.shape[1:]) for f in feats] == [(4, 32, 32), (8, 16, 16), (32, 8, 8)]
    assert sam2_encoder.channels == [4, 8, 32] and sam2_encoder.strides == [4, 8, 16]
    assert all(not f.requires_grad for f in feats)
    assert build_seg_encoder(sam2_encoder.spec()).spec() == sam2_encoder.spec()


def test_cnn_encoder_stage_maps_and_frozen(cnn_encoder):
    feats = cnn_encoder.features(cnn_encoder.preprocess(_images()))
    assert [tuple(f.shape[1:]) for f in feats] == [(24, 16, 16), (40, 8, 8), (112, 4, 4), (320, 2, 2)]
    assert not any(p.requires_grad for p in cnn_encoder.parameters())
    cnn_encoder.train()
    assert not cnn_encoder.training and not cnn_encoder.backbone.training  # BatchNorm stats never move
    with pytest.raises(GeoMagError, match="multiple of 32"):
        CnnSegEncoder("efficientnet_lite0", image_size=100)
    with pytest.raises(GeoMagError, match="unknown seg encoder"):
        build_seg_encoder({"type": "vit"})


def test_text_projection_is_lisa_mlp():
    proj = TextProjection(64, 256)
    assert [type(m).__name__ for m in proj] == ["Linear", "ReLU", "Linear"]
    assert proj[0].weight.shape == (64, 64) and proj[2].weight.shape == (256, 64)


def test_conv_decoder_fusion_is_softmax_weighted_sum(cnn_encoder):
    decoder = build_pixel_decoder(cnn_encoder, hidden_size=64, prompt_dim=32, dim=16)
    assert isinstance(decoder.head, ConvMaskHead)
    with torch.no_grad():
        decoder.scale_weights.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        decoder.seg_weights.copy_(torch.tensor([1.0, -1.0, 0.0, 0.0]))
    feats = cnn_encoder.features(cnn_encoder.preprocess(_images()[:1]))
    states = [torch.randn(1, 64), torch.randn(2, 64)]  # two targets, the second with two [SEG]
    fused, per_scale = decoder(states, feats)
    assert fused.shape == (2, 16, 16) and per_scale.shape == (2, 4, 16, 16)
    w = torch.softmax(decoder.scale_weights, 0)
    assert torch.allclose(fused, (w[None, :, None, None] * per_scale).sum(1), atol=1e-5)
    b = torch.softmax(torch.tensor([1.0, -1.0]), 0)
    p = decoder.text_projection(states[1])
    assert torch.allclose(decoder.prompts(states)[1], b[0] * p[0] + b[1] * p[1], atol=1e-5)
    with pytest.raises(GeoMagError, match=r"fuses 1\.\.4"):
        decoder.prompts([torch.randn(5, 64)])


def test_fusion_weights_registered_and_trained(cnn_encoder):
    """w and b are registered Parameters (saved, optimised) and move under training (not PixelLM's list)."""
    torch.manual_seed(0)
    decoder = build_pixel_decoder(cnn_encoder, hidden_size=32, prompt_dim=32, dim=16)
    names = dict(decoder.named_parameters())
    assert "scale_weights" in names and "seg_weights" in names
    assert {"scale_weights", "seg_weights"} <= set(decoder.state_dict())
    feats = cnn_encoder.features(cnn_encoder.preprocess(_images()[:1]))
    target = torch.zeros(2, 16, 16)
    target[0, 4:10, 2:8] = 1
    target[1, 8:14, 9:15] = 1
    states = [torch.randn(2, 32), torch.randn(1, 32)]
    w0, b0 = decoder.scale_weights.detach().clone(), decoder.seg_weights.detach().clone()
    opt = torch.optim.AdamW(decoder.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        fused, _ = decoder(states, feats)
        loss = 2.0 * bce_loss(fused, target) + 0.5 * dice_loss(fused, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert not torch.allclose(decoder.scale_weights, w0)
    assert not torch.allclose(decoder.seg_weights[:2], b0[:2])  # b of a two-[SEG] target moved


def test_sam2_head_uses_sam2_mask_decoder_with_sparse_prompt(sam2_encoder):
    sam = sam2_encoder.sam
    decoder = build_pixel_decoder(sam2_encoder, hidden_size=64)
    assert isinstance(decoder.head, Sam2MaskHead) and decoder.head.prompt_dim == 32
    assert decoder.head.decoder is not sam.mask_decoder  # a trainable copy; SAM2 stays frozen
    feats = sam2_encoder.features(sam2_encoder.preprocess(_images()[:1]))
    states = [torch.randn(1, 64, requires_grad=True), torch.randn(1, 64)]
    fused, per_scale = decoder(states, feats)
    assert fused.shape == (2, 32, 32) and per_scale.shape == (2, 3, 32, 32)
    # scale 0 (all skips) is SAM2's usual single-mask output for this sparse prompt
    prompts = decoder.prompts(states)
    stability = sam.mask_decoder.dynamic_multimask_via_stability
    sam.mask_decoder.dynamic_multimask_via_stability = False  # eval mode would otherwise pick by stability
    try:
        with torch.no_grad():
            ref = sam.mask_decoder(
                image_embeddings=feats[-1],
                image_positional_embeddings=sam.get_image_wide_positional_embeddings(),
                sparse_prompt_embeddings=prompts[None, :, None, :],
                dense_prompt_embeddings=sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                    1, -1, 8, 8
                ),
                multimask_output=False,
                high_resolution_features=feats[:-1],
            )[0][0, :, 0]
    finally:
        sam.mask_decoder.dynamic_multimask_via_stability = stability
    assert torch.allclose(per_scale[:, 0], ref, atol=1e-5)
    fused.sum().backward()
    assert states[0].grad is not None and states[0].grad.abs().sum() > 0  # gradient reaches the prompt
    assert decoder.head.decoder.output_hypernetworks_mlps[0].layers[0].weight.grad is not None
    assert decoder.scale_weights.grad is not None
    assert all(p.grad is None for p in sam.parameters())


def test_pixel_decoder_rejects_unknown_encoder():
    with pytest.raises(GeoMagError, match="no pixel decoder"):
        build_pixel_decoder(object(), 64)
    assert isinstance(PixelDecoder(8, ConvMaskHead([4], 8, 8)).seg_weights, torch.nn.Parameter)


def test_losses_known_values():
    logits = torch.tensor([[[10.0, -10.0], [-10.0, -10.0]]])
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert bce_loss(logits, target) < 1e-3
    assert dice_loss(logits, target) < 1e-3
    assert abs(dice_loss(-logits, target).item() - (1 - 1 / (1 + 3 + 1))) < 1e-3  # P ~ 3 wrong pixels
    pred = torch.tensor([[[True, True], [False, False]]])
    assert mask_iou(pred, target.bool()).item() == 0.5
    assert (
        mask_iou(torch.zeros(1, 2, 2, dtype=torch.bool), torch.zeros(1, 2, 2, dtype=torch.bool)).item() == 1.0
    )
