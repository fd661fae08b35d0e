"""Named models in one place (as segment-anything's `build_sam` registry and timm's `create_model`).

`create_model(name_or_path)` is how every surface gets a model:
- a registered name: `nano` (the GeoMag-nano checkpoint shipped in the package, CPU, offline), or a
  preset built untrained from its base models (`paper`: LLaVA-1.5-7B + SAM2 Hiera-L from the Hugging
  Face cache; `tiny-cnn`, `tiny-sam2`: tiny random models for tests, which need `vlm=` (and for
  `tiny-sam2` `seg_model=`) folders, e.g. from `geomag.testing`);
- a folder with `geomag_model.json`: a GeoMag checkpoint (`GeoMagModel.from_pretrained`);
- any other folder or cached hub id: a plain LLaVA-style VLM (text answers only; PSC by Eq. 4).
`list_models()` lists the names; `model_key` is the identity a run records (resolved path or name).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from geomag.device import torch_device
from geomag.errors import GeoMagError
from geomag.hub import resolve_model
from geomag.model.geomag import GeoMagModel, is_checkpoint
from geomag.model.presets import MODEL_PRESETS, ModelConfig
from geomag.model.vlm import VLM

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_MODEL = "nano"
Model = GeoMagModel | VLM


@dataclass(frozen=True)
class RegisteredModel:
    """A name `create_model` knows: a checkpoint shipped in the package, or a preset's model section."""

    name: str
    description: str
    checkpoint: Path | None = None
    preset: str | None = None


REGISTRY: dict[str, RegisteredModel] = {
    "nano": RegisteredModel(
        "nano",
        "GeoMag-nano, the embedded default: SmolLM2-135M + EfficientNet-Lite0 + LoRA r8, CPU, offline",
        checkpoint=ASSETS / "nano",
    ),
    "paper": RegisteredModel(
        "paper",
        "the paper's setup, untrained: LLaVA-1.5-7B + SAM2 Hiera-L + LoRA r8 (Hugging Face cache, GPU)",
        preset="paper",
    ),
    "tiny-cnn": RegisteredModel(
        "tiny-cnn", "tests: a tiny VLM (vlm=FOLDER) + EfficientNet-Lite0 mask encoder", preset="tiny-cnn"
    ),
    "tiny-sam2": RegisteredModel(
        "tiny-sam2", "tests: a tiny VLM (vlm=FOLDER) + a tiny SAM2 (seg_model=FOLDER)", preset="tiny-sam2"
    ),
}


def list_models() -> list[str]:
    """Names `create_model` accepts (besides checkpoint folders, VLM folders and cached hub ids)."""
    return list(REGISTRY)


def shipped_checkpoint() -> Path | None:
    """The GeoMag-nano checkpoint inside the package, or None when this build ships none."""
    path = REGISTRY[DEFAULT_MODEL].checkpoint
    return path if path is not None and is_checkpoint(path) else None


def checkpoint_folder(name_or_path: str | os.PathLike[str]) -> Path | None:
    """The GeoMag checkpoint folder a name or path stands for, or None (a preset or a plain VLM)."""
    entry = REGISTRY.get(str(name_or_path))
    if entry is not None:
        if entry.checkpoint is None:
            return None
        if not is_checkpoint(entry.checkpoint):
            raise GeoMagError(
                f"this build ships no '{entry.name}' weights: pass a checkpoint folder "
                "(made by `geomag train nano` or `geomag train model`)"
            )
        return entry.checkpoint
    folder = Path(name_or_path).expanduser()
    return folder if is_checkpoint(folder) else None


def model_key(name_or_path: str | os.PathLike[str]) -> str:
    """What a run records as its model: a registered name as is, a folder as its resolved path."""
    if str(name_or_path) in REGISTRY:
        return str(name_or_path)
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else str(name_or_path)


def create_model(
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    device: str = "cpu",
    vlm: str | None = None,
    seg_model: str | None = None,
) -> Model:
    """The model a name or path stands for, on `device`, in eval mode (see the module docstring).
    `vlm` / `seg_model` replace the base models a checkpoint or preset names (e.g. after moving them)."""
    target = torch_device(device)  # checked before minutes of loading
    checkpoint = checkpoint_folder(name_or_path)
    if checkpoint is not None:
        return GeoMagModel.from_pretrained(checkpoint, vlm=vlm, seg_model=seg_model, device=str(target))
    entry = REGISTRY.get(str(name_or_path))
    if entry is not None and entry.preset is not None:
        config = ModelConfig.from_dict(
            {
                **MODEL_PRESETS[entry.preset],
                **({"vlm": vlm} if vlm else {}),
                **({"seg_model": seg_model} if seg_model else {}),
            }
        )
        if not config.vlm or (config.seg_encoder == "sam2" and not config.seg_model):
            raise GeoMagError(
                f"'{entry.name}' names no base model folders: pass vlm= (and seg_model= for a SAM2 encoder)"
            )
        model = GeoMagModel.from_config(config)
        model.to(target)
        return model.eval()
    folder = resolve_model(name_or_path, "model")
    if not (folder / "config.json").is_file():
        raise GeoMagError(
            f"{name_or_path} is not a GeoMag checkpoint (no geomag_model.json) nor a Hugging Face model "
            f"folder (no config.json); models by name: {', '.join(REGISTRY)}"
        )
    return VLM.from_pretrained(folder).to(str(target))
