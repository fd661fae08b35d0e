"""The PyTorch ports of the two pretrained CNNs reproduce their originals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geomag.errors import GeoMagError
from geomag.model.backbones import (
    BACKBONES,
    build_backbone,
    efficientnet_lite0,
    efficientnet_lite0_weights,
    geoembed_resnet18,
    geoembed_state_dict,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One cache per test run: the .pth -> safetensors conversion is exercised, never the user's cache."""
    monkeypatch.setenv("GEOMAG_CACHE", str(tmp_path_factory.getbasetemp() / "geomag_cache"))


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return efficientnet_lite0()


def test_efficientnet_weights_cached_as_safetensors_with_all_keys(lite0: torch.nn.Module) -> None:
    from safetensors.torch import load_file

    path = efficientnet_lite0_weights()
    assert path.suffix == ".safetensors" and path.is_file()
    stored = load_file(str(path))
    assert set(stored) == set(lite0.state_dict())  # every key matched, none left over
    assert sum(p.numel() for p in lite0.parameters()) == 4_652_008


# ImageNet class indices (see e.g. timm/data/_info/imagenet_synsets.txt): CC0 photos, see data/photos/README.md
@pytest.mark.parametrize(
    ("photo", "classes"),
    [("chelsea.jpg", {281, 282, 285}), ("coffee.jpg", {967})],  # tabby / tiger / Egyptian cat; espresso
)
def test_efficientnet_imagenet_top1_on_real_photos(
    lite0: torch.nn.Module, photo: str, classes: set[int]
) -> None:
    image = Image.open(DATA / "photos" / photo)
    with torch.no_grad():
        probs = lite0(lite0.preprocess([image])).softmax(-1)[0]
    assert int(probs.argmax()) in classes
    assert float(probs[list(classes)].sum()) > 0.5


def test_efficientnet_stage_maps_at_strides_4_to_32(lite0: torch.nn.Module) -> None:
    x = torch.zeros(2, 3, 256, 192)
    with torch.no_grad():
        maps = lite0.forward_features(x)
    assert [m.shape[1] for m in maps] == lite0.stage_channels == [24, 40, 112, 320]
    assert [(m.shape[2], m.shape[3]) for m in maps] == [(256 // s, 192 // s) for s in (4, 8, 16, 32)]
    assert lite0.forward_head_features(x).shape == (2, 1280, 8, 6)


def test_geoembed_all_keys_and_reference_embedding(real_data: Path) -> None:
    state, sizes = geoembed_state_dict()
    model = geoembed_resnet18()
    assert set(state) == set(model.state_dict())
    assert sizes == {"base_channels": 64, "pool_size": 4, "embed_dim": 256}
    # embeddings computed by the geoembed package's own forward (tests/data/make_geoembed_reference.py)
    ref = np.load(DATA / "geoembed_v3_reference.npz")
    images = [Image.open(real_data / "aid-150" / str(name)) for name in ref["images"]]
    with torch.no_grad():
        ours = model(model.preprocess(images)).numpy()
    assert np.abs(ours - ref["embeddings"]).max() < 1e-4
    with torch.no_grad():
        maps = model.forward_features(model.preprocess(images[:1]))
    assert [m.shape[1:] for m in maps] == [(64, 128, 128), (128, 64, 64), (256, 32, 32), (512, 16, 16)]
    assert model.strides == (1, 2, 4, 8)


def test_build_backbone_registry() -> None:
    assert set(BACKBONES) == {"efficientnet_lite0", "geoembed_resnet18"}
    net = build_backbone("efficientnet_lite0", pretrained=False)
    assert not net.training and len(net.stage_channels) == 4
    with pytest.raises(GeoMagError, match="unknown backbone"):
        build_backbone("resnet50")


def test_folding_batchnorm_keeps_the_outputs(lite0: torch.nn.Module) -> None:
    """The frozen mask encoder folds its BatchNorms into the convolutions: same maps, also for input
    sizes whose TF "SAME" padding is asymmetric (100 px) and symmetric (96 px)."""
    import copy

    folded = copy.deepcopy(lite0).fold_batchnorm()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    for size in (96, 100):
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            for a, b in zip(lite0.forward_features(x), folded.forward_features(x), strict=True):
                torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
