"""What a GeoMag model is made of (`ModelConfig`), saved in every checkpoint's geomag_model.json.

The named presets (`paper`, `nano`, `tiny-cnn`, `tiny-sam2`: a model and a training section each)
are training's (`geomag.train.config.PRESETS`); `geomag.model.registry` builds models from their model
sections. The `paper` preset measured on an H100: 34.2 GiB peak at micro-batch 2
(`benchmarks/paper_memory.py`, docs/model.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from geomag.errors import GeoMagError

LORA_TARGET = r".*language_model.*\.(q_proj|v_proj)"


@dataclass
class ModelConfig:
    """What a GeoMag model is made of. Saved (as a dict) in every checkpoint's geomag_model.json."""

    vlm: str | None = None  # LLaVA-style VLM: Hugging Face id or local folder
    seg_encoder: str = "sam2"  # "sam2" or a backbone name of geomag.model.backbones
    seg_model: str | None = None  # SAM2: Hugging Face id or local folder of a Sam2Model
    seg_image_size: int | None = None  # CNN encoders: square input side (default: the backbone's)
    seg_pretrained: bool = True  # CNN encoders: load the pretrained weights
    dtype: str = "float32"  # base models' dtype (trainable parts stay float32)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target: str = LORA_TARGET
    train_projector: bool = True  # the multimodal projector is trainable
    seg_hidden: str = "at"  # "at": hidden state at each [SEG]; "before": the one before (LISA)
    prompt_dim: int = 256  # CNN mask head: prompt width (SAM2 uses its decoder's width)
    decoder_dim: int = 64  # CNN mask head: conv width
    max_seg_per_target: int = 4  # how many consecutive [SEG] one target may have (size of b)
    ce_weight: float = 1.0
    bce_weight: float = 2.0
    dice_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.seg_hidden not in ("at", "before"):
            raise GeoMagError(f"seg_hidden must be 'at' or 'before', not '{self.seg_hidden}'")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise GeoMagError(f"dtype must be float32, bfloat16 or float16, not '{self.dtype}'")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**checked_settings(cls, d, "model"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def seg_spec(self) -> dict[str, Any]:
        """The `build_seg_encoder` spec this config names."""
        if self.seg_encoder == "sam2":
            return {"type": "sam2", "model": self.seg_model}
        return {
            "type": "cnn",
            "backbone": self.seg_encoder,
            "image_size": self.seg_image_size,
            "pretrained": self.seg_pretrained,
        }

    def torch_dtype(self) -> Any:

        return getattr(torch, self.dtype)


def checked_settings(cls: type, d: dict[str, Any], section: str) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise GeoMagError(
            f"unknown {section} setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return dict(d)


# The model section of each named preset (its training section: `geomag.train.config.TRAIN_PRESETS`).
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "vlm": "llava-hf/llava-1.5-7b-hf",
        "seg_encoder": "sam2",
        "seg_model": "facebook/sam2-hiera-large",
        "dtype": "bfloat16",
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
    },
    # GeoMag-nano, the embedded default: the nano VLM (EfficientNet-Lite0 tower + SmolLM2-135M, built
    # once from PyPI-shipped parts) and the same CNN's stage maps as the frozen mask encoder. CPU.
    "nano": {
        "vlm": "geomag-nano-base",
        "seg_encoder": "efficientnet_lite0",
        "seg_image_size": 384,
        "decoder_dim": 64,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
    },
    "tiny-sam2": {"vlm": None, "seg_encoder": "sam2", "seg_model": None, "lora_r": 8, "lora_alpha": 16},
    "tiny-cnn": {
        "vlm": None,
        "seg_encoder": "efficientnet_lite0",
        "seg_image_size": 128,
        "decoder_dim": 32,
        "lora_r": 8,
        "lora_alpha": 16,
    },
}
