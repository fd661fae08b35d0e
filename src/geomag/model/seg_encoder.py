"""Frozen multi-scale image encoders for the pixel decoder (the role SAM2's image encoder plays in GeoMag).

One small interface, two implementations:

- `Sam2SegEncoder`: a `transformers` `Sam2Model`; its image encoder gives three maps, finest first
  (stride 4 and 8 maps already reduced by SAM2's `conv_s0` / `conv_s1`, and the stride-16 image
  embedding with SAM2's no-memory embedding added), exactly what SAM2's own mask decoder consumes.
- `CnnSegEncoder`: a pretrained CNN from `geomag.model.backbones`; its stage maps are the scales.

Both are frozen: parameters never require grad, features are computed under `torch.no_grad()`, and
`train()` keeps them in eval mode (BatchNorm statistics never move). They are not part of a GeoMag
checkpoint: `spec()` names them, and `build_seg_encoder(spec)` loads them again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch import nn

from geomag.errors import GeoMagError
from geomag.hub import resolve_model, safetensors_folder
from geomag.imaging import resize_batch
from geomag.model.backbones import build_backbone


def _tensor_batch(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    return torch.from_numpy(resize_batch(list(images), size))


# ImageNet mean / std, the defaults of transformers' Sam2ImageProcessor (which needs torchvision).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SegEncoder(nn.Module):
    """A frozen image encoder that gives multi-scale feature maps, finest first.

    `image_size`: the square input side; `channels` / `strides`: one entry per scale.
    """

    image_size: int
    channels: list[int]
    strides: list[int]

    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> SegEncoder:
        """Always eval: the encoder is frozen, so dropout and BatchNorm statistics must not change."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Pixel values [B, 3, image_size, image_size] for `features`."""
        raise NotImplementedError

    def features(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps [B, C_l, H_l, W_l], finest first, without gradient."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """JSON-safe description from which `build_seg_encoder` rebuilds this encoder."""
        raise NotImplementedError


class Sam2SegEncoder(SegEncoder):
    """SAM2's image encoder (`Sam2Model.get_image_embeddings`): maps at strides 4, 8, 16.

    The whole `Sam2Model` is kept (frozen) because the pixel decoder copies its mask decoder, prompt
    encoder's no-mask embedding and positional encoding from it (see pixel_decoder.Sam2MaskHead).
    Preprocessing is done here (bilinear resize to the model's image size, /255, ImageNet mean/std),
    as transformers' Sam2ImageProcessor would, but without torchvision.
    """

    def __init__(self, sam: Any, model_id: str | None = None) -> None:
        super().__init__()
        self.sam = sam
        self.model_id = model_id or str(getattr(sam.config, "_name_or_path", "") or "")
        self.image_size = int(sam.config.prompt_encoder_config.image_size)
        hidden = int(sam.config.mask_decoder_config.hidden_size)
        sizes = [int(s[0]) for s in sam.config.vision_config.backbone_feature_sizes]
        self.strides = [self.image_size // s for s in sizes]
        self.channels = [hidden // 8, hidden // 4, hidden]  # after conv_s0 / conv_s1; the embedding
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)
        self._freeze()

    @classmethod
    def from_pretrained(cls, id_or_path: str | os.PathLike[str], dtype: Any = None) -> Sam2SegEncoder:
        return cls(load_seg_encoder(id_or_path, dtype=dtype), model_id=str(id_or_path))

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        x = _tensor_batch(images, self.image_size).to(self.device)
        return ((x - self.mean) / self.std).to(self.dtype)

    @torch.no_grad()
    def features(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        return list(self.sam.get_image_embeddings(pixel_values.to(self.dtype)))

    def spec(self) -> dict[str, Any]:
        return {"type": "sam2", "model": self.model_id}


class CnnSegEncoder(SegEncoder):
    """A pretrained CNN backbone (`geomag.model.backbones`); its four stage maps are the scales."""

    def __init__(self, name: str, image_size: int | None = None, pretrained: bool = True) -> None:
        super().__init__()

        self.name = name
        self.pretrained = pretrained
        self.backbone = build_backbone(name, pretrained=pretrained)
        if hasattr(self.backbone, "fold_batchnorm"):  # frozen for good: BN folded into the convs
            self.backbone.fold_batchnorm()
        self.image_size = int(image_size or self.backbone.input_size)
        self.channels = [int(c) for c in self.backbone.stage_channels]
        self.strides = [int(s) for s in self.backbone.strides]
        if self.image_size % max(self.strides):
            raise GeoMagError(
                f"seg encoder image size {self.image_size} must be a multiple of {max(self.strides)} for {name}"
            )
        self._freeze()

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        x = self.backbone.preprocess(list(images), self.image_size)
        return x.to(device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def features(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        return list(self.backbone.forward_features(pixel_values.to(self.dtype)))

    def spec(self) -> dict[str, Any]:
        return {
            "type": "cnn",
            "backbone": self.name,
            "image_size": self.image_size,
            "pretrained": self.pretrained,
        }


def build_seg_encoder(spec: dict[str, Any], dtype: Any = None) -> SegEncoder:
    """The encoder a `spec()` describes: {"type": "sam2", "model": ID_OR_PATH} or
    {"type": "cnn", "backbone": NAME, "image_size": N, "pretrained": true}."""
    kind = spec.get("type")
    if kind == "sam2":
        if not spec.get("model"):
            raise GeoMagError("a SAM2 seg encoder needs 'model': a Hugging Face id or a local folder")
        return Sam2SegEncoder.from_pretrained(spec["model"], dtype=dtype)
    if kind == "cnn":
        encoder = CnnSegEncoder(spec["backbone"], spec.get("image_size"), spec.get("pretrained", True))
        return encoder.to(dtype) if dtype is not None else encoder
    raise GeoMagError(f"unknown seg encoder type '{kind}'; expected 'sam2' or 'cnn'")


def load_seg_encoder(id_or_path: str | os.PathLike[str], *, dtype: Any = None) -> Any:
    """A SAM2 model (`Sam2Model`) whose image encoder gives the multi-scale mask features."""
    # imported here: transformers' SAM2 code takes ~1.4 s to import, and nano (the default) never
    # needs it; at module top it made every `geomag parse` start that much slower (measured)
    from transformers import Sam2Model

    folder = safetensors_folder(resolve_model(id_or_path, "SAM2 model"), "SAM2 model")
    model = Sam2Model.from_pretrained(folder, dtype=dtype or torch.float32, use_safetensors=True)
    model.eval()
    return model
