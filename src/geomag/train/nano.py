"""The GeoMag-nano recipe: the `nano` preset trained on the nano mixture (real data + GeoScenes).

Seeded, resumable (the loop's checkpoint/), with a progress bar. `export` turns the latest
checkpoint of a run, finished or not, into a GeoMag checkpoint folder (trainable tensors +
geomag_model.json); shipping copies that into the package (src/geomag/assets/nano), where
`geomag parse` finds it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from geomag.errors import GeoMagError

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "nano"


def shipped_checkpoint() -> Path | None:
    """The nano checkpoint inside the package, or None when none ships."""
    return SHIPPED if (SHIPPED / "geomag_model.json").is_file() else None


def mixture_dir(cache: Path, n_scenes: int, seed: int) -> Path:
    return cache / f"nano-data-s{seed}-n{n_scenes}"


def ensure_mixture(real_root: Path, cache: Path, n_scenes: int, seed: int) -> Path:
    """Build the training mixture once per (seed, n_scenes); returns train.jsonl."""
    from geomag.train.nano_data import build_mixture

    folder = mixture_dir(cache, n_scenes, seed)
    train = folder / "train.jsonl"
    if not train.is_file():
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        paths = build_mixture(real_root, tmp, n_scenes=n_scenes, seed=seed)
        # the JSONL names images by absolute path inside tmp: rewrite them for the final folder
        for p in paths.values():
            p.write_text(p.read_text().replace(str(tmp), str(folder)))
        tmp.rename(folder)
    return train


def build_model(overrides: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """(GeoMagModel, TrainConfig) of the nano preset."""
    from geomag.model.geomag import GeoMagModel
    from geomag.model.presets import ModelConfig, load_config
    from geomag.train.config import TrainConfig

    config = load_config("nano")
    config["train"].update(overrides or {})
    model = GeoMagModel.from_config(ModelConfig.from_dict(config["model"]))
    return model, TrainConfig.from_dict(config["train"])


def export(run_dir: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Write the latest checkpoint of a nano run as a GeoMag checkpoint folder at dest."""
    from geomag.train.loop import CHECKPOINT_DIR

    weights = Path(run_dir) / CHECKPOINT_DIR / "trainable.safetensors"
    if not weights.is_file():
        raise GeoMagError(f"no checkpoint in {run_dir} (expected {weights})")
    model, _ = build_model()
    model.load_trainable(weights)
    return model.save_pretrained(dest)
