"""Mask losses as LISA / GLaMM / GeoPixel use them: per-pixel BCE (mean) and Dice, averaged over masks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from geomag.model.geomag import Batch, GeoMagOutput
from geomag.model.presets import ModelConfig


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over pixels, then over masks. logits, targets: [T, H, W]; targets in [0, 1] (may be soft)."""
    per_mask = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).mean(1)
    return per_mask.mean()


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - (2 |P.T| + s) / (|P| + |T| + s) per mask (P = sigmoid(logits)), averaged over masks."""
    p = torch.sigmoid(logits).flatten(1)
    t = targets.flatten(1)
    dice = (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)
    return (1 - dice).mean()


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU per mask of boolean [T, H, W] tensors (an empty pair scores 1.0)."""
    inter = (pred & target).flatten(1).sum(1).float()
    union = (pred | target).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@dataclass
class TrainingLoss:
    """The loss of one batch: ce_weight x text CE + bce_weight x BCE + dice_weight x Dice (LISA's)."""

    loss: torch.Tensor
    text_loss: torch.Tensor | None
    mask_loss: torch.Tensor | None


def training_loss(output: GeoMagOutput, batch: Batch, config: ModelConfig) -> TrainingLoss:
    """Text CE (if the batch has labels) + mask BCE/Dice (if it has targets), with the config's weights.
    Mask logits are resized to the targets' grid (the seg encoder's input)."""
    mask_loss = None
    targets = batch.get("mask_targets")
    if targets is not None and any(t.shape[0] for t in targets):
        logits = torch.cat([m for m in output.mask_logits if m.shape[0]])
        target = torch.cat([t for t in targets if t.shape[0]]).to(logits.dtype)
        logits = F.interpolate(logits[:, None], size=target.shape[-2:], mode="bilinear", align_corners=False)[
            :, 0
        ]
        mask_loss = config.bce_weight * bce_loss(logits, target) + config.dice_weight * dice_loss(
            logits, target
        )
    loss = output.hidden.new_zeros((), dtype=torch.float32)
    if output.text_loss is not None:
        loss = loss + config.ce_weight * output.text_loss.float()
    if mask_loss is not None:
        loss = loss + mask_loss
    return TrainingLoss(loss, output.text_loss, mask_loss)
