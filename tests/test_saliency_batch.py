"""The mask saliency decodes its tiles in one batched pass: each tile's logits equal the per-tile
decode they replace (ConvMaskHead; SAM2's head keeps the per-tile loop)."""

from __future__ import annotations

import torch

from geomag.model.pixel_decoder import build_pixel_decoder
from geomag.model.seg_encoder import CnnSegEncoder


def test_batched_tiles_equal_the_per_tile_decode():
    torch.manual_seed(0)
    encoder = CnnSegEncoder("efficientnet_lite0", image_size=64)
    decoder = build_pixel_decoder(encoder, hidden_size=32, prompt_dim=16, dim=16).eval()
    with torch.no_grad():
        decoder.scale_weights.copy_(torch.tensor([0.3, -0.2, 1.0, 0.1]))
        features = encoder.features(torch.randn(5, 3, 64, 64))
        prompt = decoder.prompts([torch.randn(1, 32)])
        batched = decoder.decode_tiles(prompt, features)
        one_by_one = torch.stack(
            [decoder.decode(prompt, [f[i : i + 1] for f in features])[0][0] for i in range(5)]
        )
    assert batched.shape == one_by_one.shape == (5, 16, 16)
    assert torch.allclose(batched, one_by_one, atol=1e-5)
