"""Stage 2 of the nano recipe: the pixel decoder trained on frozen [SEG] hidden states.

Why a second stage: in the joint stage a CPU sees a few hundred mask samples in hours, because every
sample pays a full LLM forward and backward. Once LoRA is fixed, the [SEG] hidden state of a
(image, prompt, answer) is fixed too, so we compute it ONCE per sample (an LLM forward under no_grad)
and then train only the text projection + mask head on many passes of those states against the
frozen seg encoder's features. Inference is unchanged: it is the same model, with the same [SEG]
states and the same decoder.

Files in the stage folder (`out`):
  seg_states.safetensors     the [SEG] states, one tensor [n, H] per target ("<sample>.<target>")
  seg_states.json            which samples they belong to (image + prompt), to refuse a stale cache
  checkpoint/                resumable state after each epoch: trainable.safetensors, optimizer, JSON
No pickle: tensors in safetensors, the rest in JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from geomag.data.samples import Sample
from geomag.errors import GeoMagError
from geomag.model.geomag import WEIGHTS_FILE
from geomag.train.collate import mask_targets, prepare_batch
from geomag.train.loop import OPTIMIZER_FILE, epoch_order, load_optimizer, write_checkpoint
from geomag.train.losses import bce_loss, dice_loss, mask_iou

STATES_FILE = "seg_states.safetensors"
INDEX_FILE = "seg_states.json"
CHECKPOINT = "checkpoint"
STATE_FILE = "decoder_state.json"


@dataclass
class DecoderStageConfig:
    """Flat settings of the decoder stage."""

    epochs: int = 6
    lr: float = 1e-3
    weight_decay: float = 1e-4
    images_per_step: int = 4  # gradient accumulation over this many images
    bce_weight: float = 2.0
    dice_weight: float = 2.0  # heavier than the joint stage's 0.5: GeoScenes targets are a few pixels
    seed: int = 0


def _fingerprint(samples: Sequence[Sample]) -> list[str]:
    return [f"{s.image}\t{s.prompt}\t{s.answer}" for s in samples]


@torch.no_grad()
def collect_states(
    model: Any, samples: Sequence[Sample], out: Path, root: str | os.PathLike[str] | None = None
) -> list[list[torch.Tensor]]:
    """[SEG] states per sample and target (LLM forward, teacher-forced answer), cached in `out`.

    A cache written for other samples is refused, not silently reused.
    """
    out.mkdir(parents=True, exist_ok=True)
    index = out / INDEX_FILE
    keys = _fingerprint(samples)
    if index.is_file():
        saved = json.loads(index.read_text())
        if saved["samples"] != keys:
            raise GeoMagError(f"{out / STATES_FILE} was computed for other samples; use a new stage folder")
        tensors = load_file(str(out / STATES_FILE))
        return [[tensors[f"{i}.{t}"] for t in range(n)] for i, n in enumerate(saved["targets"])]
    model.eval()
    states: list[list[torch.Tensor]] = []
    for s in tqdm(samples, desc="[SEG] states", unit="sample"):
        batch = prepare_batch(model, [s], root, masks=False)
        states.append([x.float().clone() for x in model.seg_states(batch)])
    tensors = {f"{i}.{t}": x.contiguous() for i, per in enumerate(states) for t, x in enumerate(per)}
    save_file(tensors, str(out / STATES_FILE))
    index.write_text(json.dumps({"samples": keys, "targets": [len(p) for p in states]}))
    return states


def _image_groups(samples: Sequence[Sample]) -> list[list[int]]:
    """Sample indices grouped by image (first-seen order): one encoder pass serves all their targets."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.image, []).append(i)
    return list(groups.values())


def _inputs(
    model: Any, samples: Sequence[Sample], states: list[list[torch.Tensor]], group: list[int], root: Any
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """(frozen seg-encoder features, [SEG] states per target, mask targets on the encoder grid) of
    all targets of one image's samples. A target's state has one row per [SEG] of its run."""
    image = samples[group[0]].load_image(root)
    size = model.seg_encoder.image_size
    with torch.no_grad():
        features = model.seg_encoder.features(model.seg_encoder.preprocess([image]))
    targets, target_states = [], []
    for i in group:
        arrays = samples[i].mask_arrays(image.width, image.height, root)
        targets.append(mask_targets(arrays, [st.shape[0] for st in states[i]], size, samples[i].image))
        target_states += states[i]
    return features, target_states, torch.cat(targets)


def _logits(model: Any, states: list[torch.Tensor], features: list[torch.Tensor], size: int) -> torch.Tensor:
    """Fused mask logits [T, size, size], upsampled to the encoder grid where the targets live."""
    fused, _ = model.pixel_decoder(states, features)
    return F.interpolate(fused[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def _loss(
    model: Any,
    cfg: DecoderStageConfig,
    states: list[torch.Tensor],
    features: list[torch.Tensor],
    target: torch.Tensor,
) -> torch.Tensor:
    """Mask BCE + Dice of the fused logits, as the joint stage (with this stage's weights)."""
    logits = _logits(model, states, features, target.shape[-1])
    return cfg.bce_weight * bce_loss(logits, target) + cfg.dice_weight * dice_loss(logits, target)


def evaluate(
    model: Any, samples: Sequence[Sample], states: list[list[torch.Tensor]], root: Any = None
) -> dict[str, float]:
    """Mean IoU and P@0.5 of the decoder on the encoder grid (targets thresholded at 0.5)."""
    ious = []
    model.pixel_decoder.eval()
    with torch.no_grad():
        for group in _image_groups(samples):
            features, target_states, target = _inputs(model, samples, states, group, root)
            logits = _logits(model, target_states, features, target.shape[-1])
            ious += mask_iou(logits > 0, target > 0.5).tolist()
    iou = np.asarray(ious)
    return {
        "mIoU": float(iou.mean()) if iou.size else 0.0,
        "P@0.5": float((iou > 0.5).mean()) if iou.size else 0.0,
    }


def train_decoder(
    model: Any,
    samples: Sequence[Sample],
    out: str | os.PathLike[str],
    cfg: DecoderStageConfig | None = None,
    val: Sequence[Sample] = (),
    root: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train `model.pixel_decoder` (everything else frozen) on the samples with masks; resumable per epoch.

    Returns the last epoch's record (train loss, and val mIoU / P@0.5 when `val` is given).
    """
    cfg = cfg or DecoderStageConfig()
    out = Path(out)
    samples = [s for s in samples if s.masks]
    if not samples:
        raise GeoMagError("the decoder stage needs samples with masks")
    ckpt = out / CHECKPOINT
    if resume and not (ckpt / STATE_FILE).is_file():
        raise GeoMagError(f"nothing to resume: {ckpt} holds no {STATE_FILE}")
    if not resume and ckpt.exists():
        raise GeoMagError(f"{ckpt} exists; pass resume to continue it or choose a new folder")
    states = collect_states(model, samples, out, root)
    val = [s for s in val if s.masks]
    val_states = collect_states(model, val, out / "val", root) if val else []

    # Only the decoder is optimised. The rest keeps requires_grad (so checkpoints stay complete GeoMag
    # checkpoints) but gets no gradient: the cached [SEG] states are constants.
    params = dict(model.pixel_decoder.named_parameters())
    names = list(params)
    optimizer = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    groups = _image_groups(samples)
    steps_per_epoch = -(-len(groups) // cfg.images_per_step)
    total = cfg.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))
    epoch, history = 0, []
    if resume:
        state = json.loads((ckpt / STATE_FILE).read_text())
        model.load_trainable(ckpt / WEIGHTS_FILE)
        load_optimizer(optimizer, names, ckpt / OPTIMIZER_FILE, state["optimizer"])
        epoch, history = int(state["epoch"]), state["history"]
        schedule.last_epoch = epoch * steps_per_epoch
        for group in optimizer.param_groups:  # the lr is a function of the step: recompute it
            group["lr"] = group["initial_lr"] * schedule.lr_lambdas[0](schedule.last_epoch)
    torch.manual_seed(cfg.seed + epoch)
    while epoch < cfg.epochs:
        model.pixel_decoder.train()
        order = [groups[k] for k in epoch_order(len(groups), cfg.seed, epoch)]
        total_loss = 0.0
        bar = tqdm(order, desc=f"decoder epoch {epoch + 1}/{cfg.epochs}", unit="image")
        for k, group in enumerate(bar):
            features, target_states, target = _inputs(model, samples, states, group, root)
            loss = _loss(model, cfg, target_states, features, target)
            (loss / cfg.images_per_step).backward()
            total_loss += loss.item()
            if (k + 1) % cfg.images_per_step == 0 or k + 1 == len(order):
                torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                bar.set_postfix(loss=f"{total_loss / (k + 1):.4f}")
        epoch += 1
        record: dict[str, Any] = {"epoch": epoch, "loss": total_loss / max(1, len(order))}
        if val:
            record.update({f"val_{k}": v for k, v in evaluate(model, val, val_states, root).items()})
        history.append(record)
        print(json.dumps(record))
        write_checkpoint(
            model,
            optimizer,
            names,
            ckpt,
            {"epoch": epoch, "history": history, "config": cfg.__dict__},
            STATE_FILE,
        )
    return history[-1] if history else {}
