"""Training samples that see what MagCrop shows at inference: the global view plus a crop view.

A region or pixel prompt reaches the model as two views of one scene (`geomag.magcrop.crop_views`):
the whole image and a crop around where the target is, each at the model's input size. A model
trained on whole images only has never seen that input, nor objects 2-4x larger than in its
training views, so MagCrop's crops made it worse (docs/magcrop.md). Here a share of the region and
pixel samples get a crop view (`meta["view"]`, original pixels) around their target with jitter:
the oracle crops of inference's upper bound, with size and position varied the way a saliency crop
varies. Masks are decoded on the crop view (`geomag.train.collate`), so a crop always holds its
whole target; a question about the whole scene stays answerable because the global view is there.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from geomag.data.samples import Sample

VIEW_TASKS = ("vqa", "roc", "refseg")
VIEW_SHARE = 0.5  # of the samples of VIEW_TASKS, this share gets a crop view; the rest stay whole
CROP_FACTOR = (1.5, 4.0)  # crop side / target side, drawn uniformly (MagCrop's saliency crops: 2x the blob)
MIN_VIEW = 192  # smallest crop side (px): below the model's 256 px input a crop only upsamples
MIN_IMAGE = 320  # images smaller than this keep their single view (no detail to add)


def target_box(sample: Sample, size: tuple[int, int], root: str | Path | None) -> tuple[int, ...] | None:
    """The sample's target in original pixels (`Sample.target_box`), or None when it does not lie
    inside the image."""
    box = sample.target_box(size[0], size[1], root)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return box if 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1] else None


def jittered_crop(
    target: tuple[int, ...] | None, size: tuple[int, int], rng: random.Random
) -> tuple[int, int, int, int] | None:
    """A square crop (x0, y0, x1, y1) that holds `target` whole, its side CROP_FACTOR x the target's
    longer side (at least MIN_VIEW), placed at random among the positions that keep the target
    inside; without a target, a random square of 30-60 % of the shorter side. None: no crop fits."""
    w, h = size
    short = min(w, h)
    if target is None:
        side = max(MIN_VIEW, round(short * rng.uniform(0.3, 0.6)))
        if side >= short:
            return None
        x0, y0 = rng.randint(0, w - side), rng.randint(0, h - side)
        return x0, y0, x0 + side, y0 + side
    tx0, ty0, tx1, ty1 = target
    extent = max(tx1 - tx0, ty1 - ty0)
    side = max(MIN_VIEW, round(extent * rng.uniform(*CROP_FACTOR)))
    side = min(side, short)
    if side < extent or side >= 0.9 * short:  # the target does not fit, or the crop adds no detail
        return None
    lo_x, hi_x = max(0, tx1 - side), min(tx0, w - side)
    lo_y, hi_y = max(0, ty1 - side), min(ty0, h - side)
    if lo_x > hi_x or lo_y > hi_y:
        return None
    x0, y0 = rng.randint(lo_x, hi_x), rng.randint(lo_y, hi_y)
    return x0, y0, x0 + side, y0 + side


def add_views(
    samples: Iterable[Sample], seed: int, share: float = VIEW_SHARE, root: str | Path | None = None
) -> list[Sample]:
    """The samples, with a crop view on `share` of the region and pixel ones (seeded)."""
    rng = random.Random(seed)
    out = []
    for s in samples:
        if s.task in VIEW_TASKS and rng.random() < share:
            with Image.open(s.image if root is None else Path(root) / s.image) as im:
                size = im.size
            if min(size) >= MIN_IMAGE:
                crop = jittered_crop(target_box(s, size, root), size, rng)
                if crop is not None:
                    s = Sample(s.image, s.prompt, s.answer, s.task, s.masks, {**s.meta, "view": list(crop)})
        out.append(s)
    return out
