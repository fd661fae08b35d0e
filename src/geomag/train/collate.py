"""Training batches: samples -> tokens with labels, the frozen encoder's features, [SEG] runs and
one mask target per run (the model's `Batch`). Why here and not in the model: collation reads
`Sample`s (the data layer), which the model never imports."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from geomag.data.samples import Sample
from geomag.errors import GeoMagError
from geomag.imaging import Box
from geomag.magcrop import crop_views
from geomag.model.answers import SEG_TOKEN
from geomag.model.geomag import Batch, GeoMagModel, seg_runs


def mask_targets(
    arrays: Sequence[np.ndarray], run_lengths: Sequence[int], size: int, name: str
) -> torch.Tensor:
    """One soft target per [SEG] run [T, size, size] (area-resampled): a run's [SEG] must share a mask."""
    per_target, k = [], 0
    for n in run_lengths:
        group = arrays[k : k + n]
        if len(group) != n or any(not np.array_equal(group[0], m) for m in group[1:]):
            raise GeoMagError(
                f"{name}: consecutive [SEG] tokens refer to one target but have different masks"
            )
        per_target.append(group[0])
        k += n
    t = torch.from_numpy(np.stack(per_target)).float()[:, None]
    return F.interpolate(t, size=(size, size), mode="area")[:, 0]


def view_box(sample: Sample) -> Box:
    """The crop view of a sample (`meta["view"]`: [x0, y0, x1, y1] in original pixels)."""
    return Box(*(int(v) for v in sample.meta["view"]))


def sample_views(image: Image.Image, sample: Sample) -> list[Image.Image]:
    """What the model sees of a training sample: the image, or the image and its crop view
    (`meta["view"]`), as MagCrop's extra views at inference (`geomag.magcrop.crop_views`)."""
    if not sample.meta.get("view"):
        return [image]
    box = view_box(sample)
    try:
        box.check_inside(image.width, image.height)
    except GeoMagError as exc:
        raise GeoMagError(f"{sample.image}: its view box {exc}") from None
    return crop_views(image, box)


def prepare_batch(
    model: GeoMagModel,
    samples: Sequence[Sample],
    root: str | os.PathLike[str] | None = None,
    masks: bool = True,
) -> Batch:
    """Tokenised inputs with labels (prompt and padding -100), seg-encoder features, [SEG] runs and
    mask targets on the seg encoder's grid. `masks=False` skips the encoder and the targets (for
    callers that only need the [SEG] states)."""
    if not samples:
        raise GeoMagError("empty batch")
    rows, images = [], []
    size = model.seg_encoder.image_size
    for s in samples:
        image = s.load_image(root)
        views = sample_views(image, s)
        full = model.vlm.prepare(views, s.prompt, s.answer)
        prompt_ids = model.vlm.prepare(views, s.prompt)["input_ids"][0]
        n_prompt = prompt_ids.numel()
        ids = full["input_ids"][0]
        if not torch.equal(ids[:n_prompt], prompt_ids):
            raise GeoMagError(f"{s.image}: the prompt tokenises differently with the answer appended")
        positions = [p for p in (ids == model.seg_token_id).nonzero().flatten().tolist() if p >= n_prompt]
        if len(positions) != s.answer.count(SEG_TOKEN):
            raise GeoMagError(
                f"{s.image}: {s.answer.count(SEG_TOKEN)} [SEG] in the answer, {len(positions)} tokens"
            )
        runs = seg_runs(positions, ids, model._whitespace_ids, model.config.max_seg_per_target)
        targets = torch.zeros(0, size, size)
        if runs and masks:
            if len(s.masks) != len(positions):
                raise GeoMagError(
                    f"{s.image}: the answer has {len(positions)} [SEG] but {len(s.masks)} masks"
                )
            arrays = s.mask_arrays(image.width, image.height, root)
            if len(views) > 1:  # masks are decoded on the crop view: the targets are its part
                box = view_box(s)
                arrays = [a[box.y0 : box.y1, box.x0 : box.x1] for a in arrays]
            targets = mask_targets(arrays, [len(run) for run in runs], size, s.image)
        labels = ids.clone()
        labels[:n_prompt] = -100
        rows.append((ids, labels, full["pixel_values"], runs, targets))
        images.append(views[-1])
    pad = model.vlm.tokenizer.pad_token_id
    pad = model.vlm.tokenizer.eos_token_id if pad is None else pad
    length = max(r[0].numel() for r in rows)
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    for i, (ids, lab, *_rest) in enumerate(rows):
        input_ids[i, : ids.numel()] = ids
        labels[i, : ids.numel()] = lab
        attention[i, : ids.numel()] = 1
    device = model.device
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": attention.to(device),
        "labels": labels.to(device),
        "pixel_values": torch.cat([r[2] for r in rows]).to(device),  # every view of every sample, in order
        # the encoder is frozen: its features are a function of the image, computed here once,
        # and only for batches that have a target (most nano samples are text-only)
        "seg_features": (
            model.seg_encoder.features(model.seg_encoder.preprocess(images))
            if masks and any(r[3] for r in rows)
            else None
        ),
        "seg_runs": [r[3] for r in rows],
        "mask_targets": [r[4].to(device) for r in rows],
    }
