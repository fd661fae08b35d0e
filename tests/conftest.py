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


@pytest.fixture(scope="session")
def seg_checkpoint(tiny_llava: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint whose language model answers [SEG] to everything, so its (random, untrained)
    pixel decoder gives real masks for every window: the merge has something to merge.

    The residual stream carries a constant in dimension 0 (every token embedding), the final norm
    keeps only that dimension, and the lm_head reads it with weight 1 for every token but 2 for [SEG].
    """
    import shutil

    import torch
    from transformers import LlavaForConditionalGeneration

    from geomag.model.geomag import GeoMagModel
    from geomag.model.presets import ModelConfig

    vlm = tmp_path_factory.mktemp("seg_llava") / "llava"
    shutil.copytree(tiny_llava, vlm)
    llava = LlavaForConditionalGeneration.from_pretrained(vlm)
    with torch.no_grad():
        text = llava.model.language_model
        text.embed_tokens.weight[:, 0] = 30.0
        text.norm.weight.zero_()
        text.norm.weight[0] = 1.0
        llava.lm_head.weight.zero_()
        llava.lm_head.weight[:, 0] = 1.0
    llava.save_pretrained(vlm)
    torch.manual_seed(0)
    config = ModelConfig(vlm=str(vlm), seg_encoder="efficientnet_lite0", seg_image_size=64, decoder_dim=16)
    model = GeoMagModel.from_config(config)
    rows = model.llm.base_model.model.lm_head.token_adapter.trainable_tokens_delta["default"]
    with torch.no_grad():  # rows of [SEG], <p>, </p> (sorted ids)
        rows.zero_()
        rows[sorted(model.token_ids.values()).index(model.seg_token_id), 0] = 2.0
    return model.save_pretrained(tmp_path_factory.mktemp("seg_ckpt"))


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole test run (2 CPUs, no dashboard, no usage stats)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
