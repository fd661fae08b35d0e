"""Text Projection + Pixel Decoder + learned scale / seg-token fusion (GeoMag Eq. 1).

    Mask = sum_l  w_l * PixelDecoder( sum_n b_n * proj(h_seg^n) ,  f_img^l )

- `TextProjection`: Linear(H, H) -> ReLU -> Linear(H, D), as LISA / GLaMM / GeoPixel (D = 256 for SAM2).
- A mask head predicts one mask per feature scale from a prompt embedding (D):
  * `Sam2MaskHead` (SAM2 encoder): SAM2's own mask decoder (a trainable copy), the projected [SEG]
    as its sparse prompt, the no-mask dense embedding. Our reading of "one mask per scale" for SAM2's
    decoder, which always works on the stride-16 embedding and upsamples with two skip maps: the mask
    of scale l uses the embedding plus the skip maps down to scale l (finer skips zeroed). So scale 0
    (stride 4) is SAM2's usual output, scale 1 uses only the stride-8 skip, scale 2 the embedding alone.
  * `ConvMaskHead` (CNN encoders): per scale a 1x1 lateral conv to `dim` channels and two 3x3 convs
    (shared by all targets of an image), then FiLM with the prompt (scale and shift per channel, ReLU)
    and a dot product with a prompt-generated kernel: one logit map per scale. Cheap because the
    convolutions run once per image and only the FiLM + dot product run per target.
- w (one per scale) and b (one per [SEG] of a target, up to `max_seg_per_target`) are registered
  nn.Parameters, softmax-normalised, so they are trained and saved (PixelLM kept them in a plain list).
  Several [SEG] that refer to one target are fused with b AFTER the text projection.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geomag.errors import GeoMagError
from geomag.model.seg_encoder import CnnSegEncoder, Sam2SegEncoder


class TextProjection(nn.Sequential):
    """[SEG] hidden state (H) -> prompt embedding (D): Linear(H, H) -> ReLU -> Linear(H, D)."""

    def __init__(self, hidden_size: int, out_dim: int) -> None:
        super().__init__(nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, out_dim))


class Sam2MaskHead(nn.Module):
    """SAM2's mask decoder as the per-scale mask head (a trainable copy; SAM2 itself stays frozen)."""

    def __init__(self, sam: Any) -> None:
        super().__init__()
        self.decoder = copy.deepcopy(sam.mask_decoder).float()
        self.decoder.requires_grad_(True)  # the copy of a frozen SAM2 starts frozen too
        # One mask token, same in train and eval (SAM2 otherwise swaps masks by stability in eval).
        self.decoder.dynamic_multimask_via_stability = False
        # conv_s0 / conv_s1 are applied inside the frozen encoder (Sam2Model.get_image_features).
        for module in (self.decoder.conv_s0, self.decoder.conv_s1):
            module.requires_grad_(False)
        with torch.no_grad():
            image_pe = sam.get_image_wide_positional_embeddings().float()
            no_mask = sam.prompt_encoder.no_mask_embed.weight.detach().float().reshape(1, -1, 1, 1)
        # Derived from the frozen SAM2, so not saved: rebuilt from the base model on load.
        self.register_buffer("image_pe", image_pe, persistent=False)
        self.register_buffer("no_mask", no_mask, persistent=False)
        self.prompt_dim = int(sam.config.mask_decoder_config.hidden_size)
        self.n_scales = 3

    def forward(self, features: list[torch.Tensor], prompts: torch.Tensor) -> torch.Tensor:
        """features: SAM2's [s0 (stride 4), s1 (stride 8), embedding (stride 16)] of ONE image;
        prompts [T, D] -> logits [T, 3, h, w] at stride 4, scales finest first."""
        s0, s1, embedding = (f.float() for f in features)
        sparse = prompts[None, :, None, :]  # [1, T, 1, D]: one sparse token per target
        dense = self.no_mask.expand(1, -1, *embedding.shape[-2:])
        skips = [(s0, s1), (torch.zeros_like(s0), s1), (torch.zeros_like(s0), torch.zeros_like(s1))]
        masks = []
        for high_res in skips:
            out = self.decoder(
                image_embeddings=embedding,
                image_positional_embeddings=self.image_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
                high_resolution_features=list(high_res),
            )
            masks.append(out[0][0, :, 0])  # [T, h, w]
        return torch.stack(masks, dim=1)


def _with_coords(f: torch.Tensor) -> torch.Tensor:
    """Append x and y coordinate channels (pixel centres, -1..1) to a [B, C, h, w] map."""
    b, _, h, w = f.shape
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=f.device, dtype=f.dtype)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=f.device, dtype=f.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))  # [2, h, w]: x, y
    return torch.cat([f, grid.expand(b, -1, -1, -1)], dim=1)


class ConvMaskHead(nn.Module):
    """Light per-scale decoder for CNN stage maps: lateral 1x1 + 2 x conv3x3, FiLM, dot product."""

    def __init__(self, channels: list[int], prompt_dim: int = 256, dim: int = 64) -> None:
        super().__init__()
        groups = 8 if dim % 8 == 0 else 1
        self.lateral = nn.ModuleList(nn.Conv2d(c + 2, dim, 1) for c in channels)
        self.body = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(dim, dim, 3, padding=1),
                nn.GroupNorm(groups, dim),
                nn.ReLU(),
                nn.Conv2d(dim, dim, 3, padding=1),
            )
            for _ in channels
        )
        self.film = nn.ModuleList(nn.Linear(prompt_dim, 2 * dim) for _ in channels)
        self.kernel = nn.ModuleList(nn.Linear(prompt_dim, dim + 1) for _ in channels)
        self.prompt_dim = prompt_dim
        self.dim = dim
        self.n_scales = len(channels)

    def forward(self, features: list[torch.Tensor], prompts: torch.Tensor) -> torch.Tensor:
        """features: maps of ONE image, finest first; prompts [T, D] -> logits [T, L, h0, w0] on the
        finest map's grid (coarser masks bilinearly upsampled)."""
        size = features[0].shape[-2:]
        masks = []
        for i, f in enumerate(features):
            g = self.body[i](self.lateral[i](_with_coords(f.float())))  # [1, dim, h, w], once per image
            gamma, beta = self.film[i](prompts).chunk(2, dim=-1)  # [T, dim] each
            x = F.relu(g * (1 + gamma)[:, :, None, None] + beta[:, :, None, None])  # [T, dim, h, w]
            k = self.kernel[i](prompts)  # [T, dim + 1]
            m = torch.einsum("tc,tchw->thw", k[:, : self.dim], x) + k[:, self.dim, None, None]
            if m.shape[-2:] != size:
                m = F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
            masks.append(m)
        return torch.stack(masks, dim=1)

    def tiles(self, features: list[torch.Tensor], prompt: torch.Tensor) -> torch.Tensor:
        """One prompt [1, D] on N images' maps (features [N, C, h, w] per scale) -> logits
        [N, L, h0, w0], in one batched pass: `forward` for each image, without a loop over images
        (the mask saliency's tiles). GroupNorm and the convolutions work per image, so each row
        equals that image's `forward`."""
        size = features[0].shape[-2:]
        masks = []
        for i, f in enumerate(features):
            g = self.body[i](self.lateral[i](_with_coords(f.float())))  # [N, dim, h, w]
            gamma, beta = self.film[i](prompt).chunk(2, dim=-1)  # [1, dim] each
            x = F.relu(g * (1 + gamma)[:, :, None, None] + beta[:, :, None, None])  # [N, dim, h, w]
            k = self.kernel[i](prompt)[0]  # [dim + 1]
            m = torch.einsum("c,nchw->nhw", k[: self.dim], x) + k[self.dim]
            if m.shape[-2:] != size:
                m = F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
            masks.append(m)
        return torch.stack(masks, dim=1)


class PixelDecoder(nn.Module):
    """Text projection, a per-scale mask head and the learned fusion weights w (scales), b (seg tokens)."""

    def __init__(self, hidden_size: int, head: nn.Module, max_seg_per_target: int = 4) -> None:
        super().__init__()
        self.text_projection = TextProjection(hidden_size, head.prompt_dim)
        self.head = head
        self.scale_weights = nn.Parameter(torch.zeros(head.n_scales))  # w in Eq. 1 (softmax)
        self.seg_weights = nn.Parameter(torch.zeros(max_seg_per_target))  # b in Eq. 1 (softmax)

    @property
    def max_seg_per_target(self) -> int:
        return self.seg_weights.numel()

    def prompts(self, seg_states: list[torch.Tensor]) -> torch.Tensor:
        """One prompt embedding per target [T, D] from its [SEG] hidden states (each [n, H]), fused by b."""
        out = []
        for states in seg_states:
            n = states.shape[0]
            if not 1 <= n <= self.max_seg_per_target:
                raise GeoMagError(
                    f"a target has {n} [SEG] tokens; this decoder fuses 1..{self.max_seg_per_target}"
                )
            projected = self.text_projection(states.float())  # [n, D]
            b = torch.softmax(self.seg_weights[:n], dim=0)
            out.append((b[:, None] * projected).sum(dim=0))
        return torch.stack(out)

    def forward(
        self, seg_states: list[torch.Tensor], features: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(fused logits [T, h, w], per-scale logits [T, L, h, w]) for the targets of ONE image."""
        return self.decode(self.prompts(seg_states), features)

    def decode(
        self, prompts: torch.Tensor, features: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` from prompt embeddings [T, D] (`prompts`): one embedding can decode many images."""
        per_scale = self.head(features, prompts)
        w = torch.softmax(self.scale_weights, dim=0)
        return torch.einsum("l,tlhw->thw", w, per_scale), per_scale

    def decode_tiles(self, prompt: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """Fused logits [N, h, w] of ONE prompt embedding [1, D] on N images' features: one batched
        pass where the head has one (`ConvMaskHead.tiles`), else `decode` image by image."""
        w = torch.softmax(self.scale_weights, dim=0)
        if isinstance(self.head, ConvMaskHead):
            return torch.einsum("l,nlhw->nhw", w, self.head.tiles(features, prompt[:1]))
        n = features[0].shape[0]
        return torch.stack(
            [self.decode(prompt[:1], [f[i : i + 1] for f in features])[0][0] for i in range(n)]
        )


def build_pixel_decoder(
    seg_encoder: Any, hidden_size: int, prompt_dim: int = 256, dim: int = 64, max_seg_per_target: int = 4
) -> PixelDecoder:
    """The pixel decoder that fits `seg_encoder`: SAM2's mask decoder for SAM2, ConvMaskHead otherwise.

    `prompt_dim` and `dim` apply to the CNN head only (SAM2's decoder fixes its own width).
    """

    if isinstance(seg_encoder, Sam2SegEncoder):
        head: nn.Module = Sam2MaskHead(seg_encoder.sam)
    elif isinstance(seg_encoder, CnnSegEncoder):
        head = ConvMaskHead(seg_encoder.channels, prompt_dim, dim)
    else:
        raise GeoMagError(f"no pixel decoder for {type(seg_encoder).__name__}")
    return PixelDecoder(hidden_size, head, max_seg_per_target)
