"""Mask saliency: where the pixel decoder finds a prompt's target, as a heatmap for MagCrop's PSC.

Why: a LLaVA-style input sees a 4K image at a few hundred pixels, so a target of a few dozen pixels is
invisible to its attention (Eq. 4's map), while the mask head runs on the frozen encoder's stride-4..32
maps and can run at full resolution. The [SEG] prompt comes from ONE VLM pass over the whole image with
the referring answer teacher-forced; the encoder and mask head then run on SAHI-style tiles of `tile`
px (default: the encoder's input size; `overlap` between neighbours, the last ones shifted inward),
overlaps keep the maximum. Cost: one LLM forward plus one encoder and mask-head pass per tile; the
encoder features do not depend on the prompt, so `TileFeatures` keeps them for the next prompt on the
same image (`GeoMagPredictor`).

The model is reached through `ReferringSegmenter`, a small protocol `GeoMagModel` satisfies.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from geomag.imaging import Box, tile_boxes

SALIENCY_STRIDE = 8  # original pixels per cell of `mask_saliency`'s grid


class ReferringSegmenter(Protocol):
    """What the mask saliency needs of a model (`geomag.model.geomag.GeoMagModel` has it)."""

    @property
    def encoder_input_size(self) -> int: ...

    def referring_prompts(self, image: Image.Image, prompt: str) -> torch.Tensor: ...

    def encode(self, images: list[Image.Image]) -> list[torch.Tensor]: ...

    def tile_mask_logits(self, prompts: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor: ...


class TileFeatures:
    """Encoder features of tiles of one image view, by (view size, tile box): prompt-independent."""

    def __init__(self) -> None:
        self._cache: dict[tuple[tuple[int, int], Box], list[torch.Tensor]] = {}

    def get(
        self, segmenter: ReferringSegmenter, image: Image.Image, boxes: list[Box]
    ) -> list[list[torch.Tensor]]:
        """Per box, the encoder features of that tile (one batch for the tiles not cached yet)."""
        missing = [b for b in boxes if (image.size, b) not in self._cache]
        if missing:
            features = segmenter.encode([image.crop(b.to_tuple()) for b in missing])
            for i, b in enumerate(missing):
                self._cache[(image.size, b)] = [f[i : i + 1] for f in features]
        return [self._cache[(image.size, b)] for b in boxes]


@torch.no_grad()
def mask_saliency(
    segmenter: ReferringSegmenter,
    image: Image.Image,
    prompt: str,
    tile: int | None = None,
    overlap: float = 0.0,
    batch_size: int = 8,
    features: TileFeatures | None = None,
) -> np.ndarray:
    """The mask probability of `prompt`'s target on a grid of 1/`SALIENCY_STRIDE` of `image`'s
    pixels, in [0, 1] (see the module docstring)."""
    image = image.convert("RGB")
    prompts = segmenter.referring_prompts(image, prompt)
    features = features or TileFeatures()
    width, height = image.size
    stride = SALIENCY_STRIDE
    grid = np.zeros((max(1, height // stride), max(1, width // stride)), dtype=np.float32)
    boxes = tile_boxes(width, height, tile or segmenter.encoder_input_size, overlap)
    for k in range(0, len(boxes), batch_size):
        chunk = boxes[k : k + batch_size]
        per_tile = features.get(segmenter, image, chunk)
        stacked = [torch.cat(level) for level in zip(*per_tile, strict=True)]
        logits = segmenter.tile_mask_logits(prompts, stacked)
        for i, b in enumerate(chunk):
            r0, c0 = b.y0 // stride, b.x0 // stride
            r1 = min(grid.shape[0], max(r0 + 1, b.y1 // stride))
            c1 = min(grid.shape[1], max(c0 + 1, b.x1 // stride))
            prob = torch.sigmoid(
                F.interpolate(logits[i][None, None].float(), size=(r1 - r0, c1 - c0), mode="bilinear")
            )
            np.maximum(grid[r0:r1, c0:c1], prob[0, 0].cpu().numpy(), out=grid[r0:r1, c0:c1])
    return grid
