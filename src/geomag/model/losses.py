"""Mask losses as LISA / GLaMM / GeoPixel use them: per-pixel BCE (mean) and Dice, averaged over masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
