"""Shared fixtures: tiny Hugging Face models built once per test run, and the real data in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """../shared/data/real (REAL benchmark files); tests that need it skip when it is absent."""
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real data folder {SHARED_REAL.resolve()} is absent (it ships with ../shared)")
    return SHARED_REAL.resolve()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_llava(tiny_dir: Path) -> Path:
    """Folder of a tiny LlavaForConditionalGeneration + LlavaProcessor (save_pretrained output)."""
    from geomag.testing import build_tiny_llava

    return build_tiny_llava(tiny_dir / "llava")


@pytest.fixture(scope="session")
def tiny_sam2(tiny_dir: Path) -> Path:
    from geomag.testing import build_tiny_sam2

    return build_tiny_sam2(tiny_dir / "sam2")


@pytest.fixture(scope="session")
def tiny_bert(tiny_dir: Path) -> Path:
    from geomag.testing import build_tiny_bert

    return build_tiny_bert(tiny_dir / "bert")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_llava: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GeoMag checkpoint folder: the tiny LLaVA + the real EfficientNet-Lite0 mask encoder at 64 px,
    untrained decoder (seeded)."""
    import torch

    from geomag.model.geomag import GeoMagModel
    from geomag.model.presets import ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(
        vlm=str(tiny_llava), seg_encoder="efficientnet_lite0", seg_image_size=64, decoder_dim=16
    )
    return GeoMagModel.from_config(cfg).save_pretrained(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="session")
def court_image(real_data: Path) -> Path:
    """A real 800x800 GeoPixelD image with tennis courts."""
    return real_data / "geopixel" / "data" / "GeoPixelD" / "train" / "P0224_0_800_0_800.png"
