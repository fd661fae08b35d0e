"""Training loop for the GeoMag model: AdamW, warm-up, grad clip, gradient accumulation, seed, resume.

Out folder layout (`train(..., out_dir)`):
  geomag_model.json + trainable.safetensors   the final model (GeoMagModel.from_pretrained(out_dir))
  checkpoint/                                  the latest resumable state, replaced atomically:
      geomag_model.json, trainable.safetensors  model (trainable tensors only)
      optimizer.safetensors                     AdamW moment tensors, the torch RNG state
      trainer_state.json                        step, data position, optimizer scalars, param order, config
No pickle anywhere: optimizer tensors go to safetensors, scalars to JSON. Resuming restores the
weights, optimizer, learning rate (a function of the step), RNG and data position, so it continues the same run.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from geomag.data.samples import Sample
from geomag.device import torch_device
from geomag.errors import GeoMagError
from geomag.train.collate import prepare_batch
from geomag.train.config import TrainConfig
from geomag.train.losses import training_loss

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_factor(step: int, cfg: TrainConfig, total: int) -> float:
    """Linear warm-up to 1 over warmup_steps, then linear decay to 0 at `total` (or constant)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if not cfg.decay:
        return 1.0
    return max(0.0, (total - step) / max(1, total - cfg.warmup_steps))


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The sample order of one epoch: a permutation fixed by (seed, epoch), so resume can replay it."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def total_steps(n_samples: int, cfg: TrainConfig) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    per_epoch = math.ceil(n_samples / (cfg.batch_size * cfg.grad_accum))
    return per_epoch * cfg.epochs


def _micro_batches(n: int, cfg: TrainConfig, start: tuple[int, int]):
    """Endless (epoch, position, indices) micro-batches from position `start` = (epoch, index)."""
    epoch, pos = start
    while True:
        order = epoch_order(n, cfg.seed, epoch)
        while pos < n:
            idx = order[pos : pos + cfg.batch_size]
            pos += len(idx)
            yield epoch, pos, idx
        epoch, pos = epoch + 1, 0


def save_optimizer(optimizer: torch.optim.Optimizer, names: list[str], path: Path) -> dict[str, Any]:
    """Optimizer moment tensors + RNG to safetensors; returns the JSON-safe scalars."""

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    scalars: dict[str, Any] = {}
    for index, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"state.{names[index]}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{names[index]}.{key}"] = value
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"}
        for g in sd["param_groups"]
    ]
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    return {"param_groups": groups, "state_scalars": scalars}


def load_optimizer(
    optimizer: torch.optim.Optimizer, names: list[str], path: Path, meta: dict[str, Any]
) -> None:

    tensors = load_file(str(path))
    state: dict[int, dict[str, Any]] = {}
    for index, name in enumerate(names):
        entry = {
            key.rsplit(".", 1)[1]: value
            for key, value in tensors.items()
            if key.rsplit(".", 1)[0] == f"state.{name}"
        }
        for key, value in meta["state_scalars"].items():
            if key.rsplit(".", 1)[0] == name:
                entry[key.rsplit(".", 1)[1]] = value
        if entry:
            state[index] = entry
    groups = optimizer.state_dict()["param_groups"]
    if len(groups) != len(meta["param_groups"]):
        raise GeoMagError(f"{path}: optimizer groups do not match this model")
    for group, saved in zip(groups, meta["param_groups"], strict=True):
        group.update({k: (tuple(v) if k == "betas" else v) for k, v in saved.items()})
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])


def write_checkpoint(
    model: Any,
    optimizer: torch.optim.Optimizer,
    names: list[str],
    folder: Path,
    state: dict[str, Any],
    state_file: str = STATE_FILE,
) -> None:
    """Replace `folder` atomically with the model's trainable tensors, the optimizer and `state` (JSON):
    build it in a temporary folder, then swap it in, so a stop mid-write never loses the last one."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    state = {
        **state,
        "optimizer": save_optimizer(optimizer, names, tmp / OPTIMIZER_FILE),
        "param_names": names,
    }
    (tmp / state_file).write_text(json.dumps(state, indent=2))
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old.exists():
        shutil.rmtree(old)


def train(
    model: Any,
    samples: Sequence[Sample],
    cfg: TrainConfig,
    out_dir: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the trainable parts of a GeoMagModel on `samples`; returns the last step's losses.

    `out_dir` must be new or empty unless `resume` (then it must hold a checkpoint/ from this loop).
    """
    out = Path(out_dir)
    if not samples:
        raise GeoMagError("no training samples")
    ckpt = out / CHECKPOINT_DIR
    if resume:
        if not (ckpt / STATE_FILE).is_file():
            raise GeoMagError(f"nothing to resume: {ckpt} holds no {STATE_FILE}")
    elif out.exists() and any(out.iterdir()):
        raise GeoMagError(f"output folder {out} is not empty; choose a new folder or pass --resume")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _train(model, samples, cfg, out, root, resume, progress)
    except BaseException:
        if created and not (out / CHECKPOINT_DIR).exists():
            shutil.rmtree(out, ignore_errors=True)  # no partial output from a run that saved nothing
        raise


def _train(
    model: Any,
    samples: Sequence[Sample],
    cfg: TrainConfig,
    out: Path,
    root: str | os.PathLike[str] | None,
    resume: bool,
    progress: bool,
) -> dict[str, Any]:
    ckpt = out / CHECKPOINT_DIR

    seed_everything(cfg.seed)
    device = torch_device(cfg.device)
    model.to(device)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names = [n for n, _ in named]
    params = [p for _, p in named]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    total = total_steps(len(samples), cfg)
    step, position = 0, (0, 0)
    if resume:
        state = json.loads((ckpt / STATE_FILE).read_text())
        if state["param_names"] != names:
            raise GeoMagError(f"{ckpt} was saved from a model with different trainable parameters")
        model.load_trainable(ckpt / "trainable.safetensors")
        load_optimizer(optimizer, names, ckpt / OPTIMIZER_FILE, state["optimizer"])
        step, position = int(state["step"]), tuple(state["position"])
    model.train()
    batches = _micro_batches(len(samples), cfg, position)
    last: dict[str, Any] = {}
    cache: dict[tuple[int, ...], dict[str, Any]] = {}
    bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not progress)
    try:
        while step < total:
            optimizer.zero_grad(set_to_none=True)
            sums = {"loss": 0.0, "text_loss": 0.0, "mask_loss": 0.0}
            for _ in range(cfg.grad_accum):
                epoch, pos, idx = next(batches)
                key = tuple(idx)
                batch = cache.get(key) if cfg.cache_inputs else None
                if batch is None:
                    batch = prepare_batch(model, [samples[i] for i in idx], root)
                    if cfg.cache_inputs:
                        cache[key] = batch
                output = training_loss(model(batch), batch, model.config)
                (output.loss / cfg.grad_accum).backward()
                sums["loss"] += output.loss.item() / cfg.grad_accum
                for key in ("text_loss", "mask_loss"):
                    value = getattr(output, key)
                    sums[key] += (value.item() if value is not None else 0.0) / cfg.grad_accum
                position = (epoch, pos)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            for group in optimizer.param_groups:  # the schedule is a function of the step: no state
                group["lr"] = cfg.lr * lr_factor(step, cfg, total)
            optimizer.step()
            step += 1
            last = {
                **sums,
                "grad_norm": float(grad_norm),
                "lr": optimizer.param_groups[0]["lr"],
                "step": step,
            }
            bar.update(1)
            bar.set_postfix(loss=f"{sums['loss']:.4f}", mask=f"{sums['mask_loss']:.4f}")
            if (cfg.save_every and step % cfg.save_every == 0) or step == total:
                write_checkpoint(
                    model,
                    optimizer,
                    names,
                    out / CHECKPOINT_DIR,
                    {"step": step, "position": list(position), "train": cfg.to_dict(), "last": last},
                )
    finally:
        bar.close()
    model.save_pretrained(out)
    model.eval()
    return last
