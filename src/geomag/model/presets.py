"""Named GeoMag configurations: flat, JSON-loadable dicts with a "model" and a "train" section.

`paper`: the paper's setup on a GPU: LLaVA-1.5-7B + SAM2 Hiera-L + LoRA r8 (weights by Hugging Face
id; they must be in the local cache, GeoMag never downloads). Expected GPU memory (an ESTIMATE from
parameter counts, not measured here): the 7B VLM in bf16 is ~14 GB of weights (7.06B x 2 bytes),
SAM2-L ~0.45 GB (224M x 2 bytes); trainable parts (~47M: LoRA q/v 4.2M, projector 21M, text projection
17.8M, mask decoder ~4M) with fp32 AdamW state ~0.8 GB; activations for batch 2 x ~900 tokens without
gradient checkpointing ~8-12 GB, SAM2 at 1024 px under no_grad ~2-3 GB. Total roughly 25-30 GB: a
40 GB or 80 GB A100/H100 (the paper used one A100 80 GB).

`tiny-sam2`, `tiny-cnn`: the same code path on tiny random models for tests and benchmarks. They
name no VLM / SAM2 folder: pass one (tests build them with geomag.testing.build_tiny_llava /
build_tiny_sam2), e.g. `load_config("tiny-cnn", vlm=PATH)` or `geomag train model --vlm PATH`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

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
        return cls(**_checked(cls, d, "model"))

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
        import torch

        return getattr(torch, self.dtype)


def _checked(cls: type, d: dict[str, Any], section: str) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise GeoMagError(
            f"unknown {section} setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return dict(d)


# The tiny presets' training: a few fast steps for tests and benchmarks.
TINY_TRAIN = {
    "lr": 3e-3,
    "warmup_steps": 2,
    "batch_size": 1,
    "grad_accum": 1,
    "max_steps": 20,
    "device": "cpu",
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "model": {
            "vlm": "llava-hf/llava-1.5-7b-hf",
            "seg_encoder": "sam2",
            "seg_model": "facebook/sam2-hiera-large",
            "dtype": "bfloat16",
            "lora_r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.05,
        },
        "train": {
            "lr": 3e-4,
            "warmup_steps": 100,
            "batch_size": 2,
            "grad_accum": 10,
            "grad_clip": 1.0,
            "epochs": 1,
            "device": "cuda",
        },
    },
    # GeoMag-nano, the embedded default: the nano VLM (EfficientNet-Lite0 tower + SmolLM2-135M, built
    # once from PyPI-shipped parts) and the same CNN's stage maps as the frozen mask encoder. CPU.
    "nano": {
        "model": {
            "vlm": "geomag-nano-base",
            "seg_encoder": "efficientnet_lite0",
            "seg_image_size": 384,
            "decoder_dim": 64,
            "lora_r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.05,
        },
        "train": {
            "lr": 5e-4,
            "warmup_steps": 30,
            "batch_size": 1,  # padding makes larger CPU batches slower per sample
            "grad_accum": 8,
            "grad_clip": 1.0,
            "max_steps": 900,  # ~2.5 h on 2 CPU cores at ~1.2 s per sample
            "save_every": 20,
            "device": "cpu",
        },
    },
    "tiny-sam2": {
        "model": {"vlm": None, "seg_encoder": "sam2", "seg_model": None, "lora_r": 8, "lora_alpha": 16},
        "train": dict(TINY_TRAIN),
    },
    "tiny-cnn": {
        "model": {
            "vlm": None,
            "seg_encoder": "efficientnet_lite0",
            "seg_image_size": 128,
            "decoder_dim": 32,
            "lora_r": 8,
            "lora_alpha": 16,
        },
        "train": dict(TINY_TRAIN),
    },
}


def load_config(name_or_file: str | Path, **model_overrides: Any) -> dict[str, dict[str, Any]]:
    """{"model": {...}, "train": {...}} from a preset name or a JSON file; overrides set model keys
    (None values are ignored). Sections are checked against ModelConfig / TrainConfig."""
    from geomag.train.config import TrainConfig

    path = Path(name_or_file)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise GeoMagError(f"config file not found: {path}")
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise GeoMagError(f"{path} is not valid JSON: {exc}") from None
    elif str(name_or_file) in PRESETS:
        config = copy.deepcopy(PRESETS[str(name_or_file)])
    else:
        raise GeoMagError(f"'{name_or_file}' is neither a config file nor a preset ({', '.join(PRESETS)})")
    if not isinstance(config, dict) or set(config) - {"model", "train"}:
        raise GeoMagError(f"{name_or_file}: a config is {{'model': {{...}}, 'train': {{...}}}}")
    config.setdefault("model", {})
    config.setdefault("train", {})
    config["model"].update({k: v for k, v in model_overrides.items() if v is not None})
    _checked(ModelConfig, config["model"], "model")
    _checked(TrainConfig, config["train"], "train")
    return config
