"""Training settings for the GeoMag model (the "train" section of a config / preset)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from geomag.errors import GeoMagError


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
        from geomag.model.presets import _checked

        return cls(**_checked(cls, d, "train"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d
