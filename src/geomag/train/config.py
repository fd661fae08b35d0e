"""Training settings (`TrainConfig`) and the named presets: a "model" and a "train" section each.

`paper`: the paper's setup on a GPU (LLaVA-1.5-7B + SAM2 Hiera-L + LoRA r8, weights by Hugging Face id,
never downloaded). `nano`: the embedded default, CPU. `tiny-sam2`, `tiny-cnn`: the same code path on tiny
random models for tests and benchmarks; they name no VLM / SAM2 folder: pass one (tests build them with
`geomag.testing`), e.g. `load_config("tiny-cnn", vlm=PATH)` or `geomag train model --vlm PATH`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from geomag.errors import GeoMagError
from geomag.model.presets import MODEL_PRESETS, ModelConfig, checked_settings


@dataclass
class TrainConfig:
    """AdamW with linear warm-up then linear decay to 0 at the last step (LISA's WarmupDecayLR)."""

    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    batch_size: int = 2  # samples per micro-batch
    grad_accum: int = 10  # micro-batches per optimizer step
    grad_clip: float = 1.0
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    decay: bool = True  # linear decay to 0 after warm-up (False: constant lr)
    seed: int = 0
    save_every: int = 0  # optimizer steps between resumable checkpoints (0: only at the end)
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", ...
    # Keep prepared inputs (tokens, frozen-encoder features, mask targets) in memory across epochs.
    # Correct because the encoder is frozen and preparation has no randomness; for small sets only.
    cache_inputs: bool = False

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        for name in ("batch_size", "grad_accum", "epochs"):
            if int(getattr(self, name)) < 1:
                raise GeoMagError(f"train setting {name} must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise GeoMagError("train setting max_steps must be >= 1")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return cls(**checked_settings(cls, d, "train"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


# The tiny presets' training: a few fast steps for tests and benchmarks.
TINY_TRAIN = {
    "lr": 3e-3,
    "warmup_steps": 2,
    "batch_size": 1,
    "grad_accum": 1,
    "max_steps": 20,
    "device": "cpu",
}

# The training section of each named preset; the model sections are `geomag.model.presets.MODEL_PRESETS`.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "lr": 3e-4,
        "warmup_steps": 100,
        "batch_size": 2,
        "grad_accum": 10,
        "grad_clip": 1.0,
        "epochs": 1,
        "device": "cuda",
    },
    "nano": {
        "lr": 5e-4,
        "warmup_steps": 30,
        "batch_size": 1,  # padding makes larger CPU batches slower per sample
        "grad_accum": 8,
        "grad_clip": 1.0,
        "max_steps": 900,  # ~2.5 h on 2 CPU cores at ~1.2 s per sample
        "save_every": 20,
        "device": "cpu",
    },
    "tiny-sam2": dict(TINY_TRAIN),
    "tiny-cnn": dict(TINY_TRAIN),
}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    name: {"model": MODEL_PRESETS[name], "train": train} for name, train in TRAIN_PRESETS.items()
}


def load_config(name_or_file: str | Path, **model_overrides: Any) -> dict[str, dict[str, Any]]:
    """{"model": {...}, "train": {...}} from a preset name or a JSON file; overrides set model keys
    (None values are ignored). Sections are checked against ModelConfig / TrainConfig."""
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
    checked_settings(ModelConfig, config["model"], "model")
    checked_settings(TrainConfig, config["train"], "train")
    return config
