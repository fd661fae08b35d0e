"""MagCrop = TMRA (Eq. 2-3) + PSC crops (Eq. 4): one adjusted image per (image, prompt, granularity).

    image  : I' = resize(I, 100x100)      (never below the VLM's input side: `image_side`)
    region : I' = C1 (+) D(I)
    pixel  : I' = C2 (+) D(C1) (+) D(D(I))        C2 inside C1 and smaller

C1 is the PSC crop of the image for the prompt; C2 the PSC crop of C1 (a second heatmap over C1).
(+) pastes a crop at its own position; D() = resize to 1/4 and back (`geomag.imaging.degrade`). So a
pixel plan keeps full detail only inside C2, 4x-reduced detail in the rest of C1 and 16x-reduced
detail elsewhere. Region and pixel plans keep the original size, so coordinates map 1:1 and the
`MagCropPlan` record maps masks and boxes back trivially (identity; the image plan maps by scale).

Pixels are read only through an `ImageSource`: the VLM gets a decimated global view at its native
input size, D() reads a 1/4 view, and crops are read by window. Large sources: when the longer side
exceeds `working_cap` (4096 px by default) the adjusted image is built at the scale cap/longer side
("full detail" then means that working scale); the record says so (`working_scale`) and its
`mask_to_original` / `box_to_original` undo it. Nothing reads a huge raster at full resolution.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from geomag.attention import psc_heatmap
from geomag.boxsearch import SearchConfig, best_box, peak_boxes, peakedness
from geomag.errors import GeoMagError
from geomag.imaging import Box, ImageSource, degrade, degraded_read, paste
from geomag.model.vlm import VLM
from geomag.saliency import ReferringSegmenter, TileFeatures, mask_saliency
from geomag.sources import ImageInput, as_source

GRANULARITIES = ("image", "region", "pixel")
PIXEL_SALIENCY = ("auto", "mask", "attention")
IMAGE_PLAN_SIZE = (100, 100)  # Eq. 2's image plan, the paper's size
CROP_NAMES = ("crop1", "crop2")


@dataclass(frozen=True)
class MagCropConfig:
    """Flat MagCrop settings. Pixel sizes are in the ORIGINAL image's pixels."""

    min_crop: int = 64  # smallest crop side (the inner crop may go below it to stay inside crop1)
    max_frac: float = 0.75  # largest crop side as a fraction of the side of what it is cut from
    max_aspect: float = 3.0
    size_power: float = 0.5  # box score, see geomag.boxsearch
    layer: int = -1  # decoder layer of the PSC attention (-1: the last, as in the paper)
    answer_tokens: int = 1  # greedy tokens in the PSC loss
    degrade_factor: int = 4  # D() of Eq. 3
    working_cap: int = 4096  # longer side above which the adjusted image is built at a reduced scale
    # image plans: the side of I' = resize(I). None: the paper's 100 px, but never below the VLM's own
    # input side: a fixed-input VLM (LLaVA-1.5, nano) resizes to that side anyway, so a smaller plan
    # saves no token and only blurs (nano's AID accuracy: 78 % at 100 px vs 82 % unresized, 100 images)
    image_side: int | None = None
    # pixel plans: where PSC looks. "attention": Eq. 4's map (the paper); "mask": the pixel decoder's
    # mask probability over tiles of the image reduced to `saliency_cap` (`geomag.saliency`; needs a
    # `segmenter`); "auto": mask with a segmenter (GeoMag checkpoints: measured better on small
    # targets, docs/magcrop.md), attention without one (plain LLaVA-style VLMs)
    pixel_saliency: str = "auto"
    # region plans: the same choice ("auto": the decoder's mask saliency for the prompt's target with a
    # segmenter, Eq. 4 attention without one)
    region_saliency: str = "auto"
    candidates: int = 2  # plans with mask saliency: crops tried (`MagCrop.plans`), best first
    # the skip rule: a plan whose saliency does not single out its crop (`geomag.boxsearch.peakedness`
    # below this) keeps the whole image instead of degrading it; 0 never skips. Chosen per
    # granularity on a validation split (benchmarks/magcrop_skip.py, docs/magcrop.md)
    region_skip_below: float = 0.4
    pixel_skip_below: float = 0.25
    saliency_tile: int | None = None  # tile side of the mask saliency (default: the encoder's input)
    # longer side the image is reduced to for the mask saliency: on the validation split (docs/magcrop.md)
    # 2048 px found the 4K targets as often as full resolution in a third of the time
    saliency_cap: int = 2048
    # smallest crop2 side of mask-saliency plans; default: the VLM input side with crop views, 2 x it
    # with the canvas (512 px GeoScenes seen at 256 px: chosen on a validation split, docs/magcrop.md)
    mask_crop: int | None = None
    # what a region / pixel plan shows the VLM: "extra" = the global view plus the crop as a second
    # view at the model's input size (`crop_views`); "canvas" = the paper's composed canvas (Eq. 2)
    views: str = "extra"

    def __post_init__(self) -> None:
        for name in ("pixel_saliency", "region_saliency"):
            if getattr(self, name) not in PIXEL_SALIENCY:
                raise GeoMagError(
                    f"{name} must be one of {', '.join(PIXEL_SALIENCY)}, not '{getattr(self, name)}'"
                )
        if self.views not in VIEWS:
            raise GeoMagError(f"views must be one of {', '.join(VIEWS)}, not '{self.views}'")
        for name in ("region_skip_below", "pixel_skip_below"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise GeoMagError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.candidates < 1:
            raise GeoMagError(f"candidates must be at least 1, got {self.candidates}")
        if self.min_crop < 1:
            raise GeoMagError(f"min_crop must be at least 1 pixel, got {self.min_crop}")
        if self.image_side is not None and self.image_side < 1:
            raise GeoMagError(f"image_side must be at least 1 pixel, got {self.image_side}")
        if self.working_cap < 100:
            raise GeoMagError(f"working_cap must be at least 100 pixels, got {self.working_cap}")

    def saliency_for(self, has_segmenter: bool, granularity: str = "pixel") -> str:
        """The saliency of `granularity`'s plans with or without a segmenter ("auto" resolved)."""
        choice = self.region_saliency if granularity == "region" else self.pixel_saliency
        if choice == "auto":
            return "mask" if has_segmenter else "attention"
        return choice

    def skip_below(self, granularity: str) -> float:
        """The skip rule's threshold of `granularity`'s plans."""
        return self.pixel_skip_below if granularity == "pixel" else self.region_skip_below

    def search(self, min_size: int) -> SearchConfig:
        return SearchConfig(
            min_size=min_size, max_frac=self.max_frac, max_aspect=self.max_aspect, size_power=self.size_power
        )


@dataclass
class MagCropPlan:
    """What MagCrop did: boxes (ORIGINAL pixels), sizes, scales, heatmaps and timings (seconds)."""

    granularity: str
    original_size: tuple[int, int]  # (width, height)
    adjusted_size: tuple[int, int]
    working_scale: float = 1.0  # region/pixel: adjusted px per original px (1.0 below working_cap)
    boxes: dict[str, Box] = field(default_factory=dict)
    box_source: str = "none"  # "psc" (Eq. 4 attention) | "mask" (mask saliency) | "given" | "none"
    heatmaps: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # "crop1": over the image; "crop2": over crop1
    timings: dict[str, float] = field(default_factory=dict)
    degrade_factor: int = 4
    # the image that came with the plan is this crop of the adjusted image (what a zoomed model
    # sees, composed without the rest of the canvas: `tmra(..., only=)`), or None: all of it
    only: str | None = None
    # how strongly the saliency singles out the plan's crop (`geomag.boxsearch.peakedness`), and why
    # the plan is skipped (the skip rule: the model should see the whole image), or None
    peakedness: float | None = None
    skipped: str | None = None

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): adjusted-image pixels per original pixel along x and y."""
        return (
            self.adjusted_size[0] / self.original_size[0],
            self.adjusted_size[1] / self.original_size[1],
        )

    @property
    def is_identity(self) -> bool:
        """True when the adjusted image has the original's pixel grid (region/pixel under the cap)."""
        return tuple(self.adjusted_size) == tuple(self.original_size)

    @property
    def full_detail_fraction(self) -> float:
        """Share of the original's area shown at full (working-scale) detail: C1 / C2 / none."""
        if self.granularity == "image":
            return 0.0
        inner = self.boxes["crop2" if self.granularity == "pixel" else "crop1"]
        return inner.area / float(self.original_size[0] * self.original_size[1])

    def box_to_original(self, box: Box) -> Box:
        """A box on the adjusted image -> the original pixel grid (clamped)."""
        if self.is_identity:
            return box.clamp(*self.original_size)
        sx, sy = self.scale
        return box.scale(1 / sx, 1 / sy).clamp(*self.original_size)

    def box_to_adjusted(self, box: Box) -> Box:
        """A box on the original -> the adjusted image's grid (rounded outward, clamped)."""
        if self.is_identity:
            return box.clamp(*self.adjusted_size)
        return box.scale(*self.scale).clamp(*self.adjusted_size)

    def mask_to_original(self, mask: np.ndarray) -> np.ndarray:
        """A boolean mask on the adjusted image -> the original grid (nearest neighbour)."""
        m = np.asarray(mask, dtype=bool)
        if m.shape != (self.adjusted_size[1], self.adjusted_size[0]):
            raise GeoMagError(f"mask shape {m.shape} does not match the adjusted image {self.adjusted_size}")
        if self.is_identity:
            return m.copy()
        img = Image.fromarray(m.astype(np.uint8) * 255).resize(self.original_size, Image.Resampling.NEAREST)
        return np.asarray(img) > 127

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (heatmaps as nested lists: they are small patch grids)."""
        return {
            "granularity": self.granularity,
            "original_size": list(self.original_size),
            "adjusted_size": list(self.adjusted_size),
            "scale": [round(s, 6) for s in self.scale],
            "working_scale": round(self.working_scale, 6),
            "degrade_factor": self.degrade_factor,
            "boxes": {k: b.to_list() for k, b in self.boxes.items()},
            "box_source": self.box_source,
            "peakedness": None if self.peakedness is None else round(self.peakedness, 4),
            "skipped": self.skipped,
            "full_detail_fraction": round(self.full_detail_fraction, 6),
            "heatmaps": {k: np.round(h.astype(float), 8).tolist() for k, h in self.heatmaps.items()},
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
        }


VIEW_READ_CAP = (
    1024  # longer side a crop view is read at: the VLM (256 / 336) and the mask encoder resize below it
)
VIEWS = ("extra", "canvas")


def read_global_view(source: ImageSource, working_cap: int = VIEW_READ_CAP) -> Image.Image:
    """The whole image as the model sees it. The VLM and the mask encoder resize it to their input side
    (256-1024 px), so it is read at most at VIEW_READ_CAP (and the working cap), like a crop view: a
    large raster or a remote COG is then read from its overviews (issue 35: read at the working
    scale, 98 % of a 4096 px COG was fetched for the arbiter's whole-image candidate)."""
    return source.read(None, working_size(source.size, min(working_cap, VIEW_READ_CAP))[0])


def crop_views(
    image: ImageInput | ImageSource, box: Box, global_view: Image.Image | None = None
) -> list[Image.Image]:
    """The views a fixed-input VLM sees of a region or pixel plan: the whole image (`global_view`, or
    read here at most at VIEW_READ_CAP) and the crop `box` (ORIGINAL pixels) read on its own, so that
    at the model's input size the crop ADDS detail beside the global view instead of being resized
    away inside a canvas of the original's size (the paper's C1 (+) D(I), `tmra`, which a 256 px
    input shrinks back to the global view's detail). Masks decode on the last view (the crop) and
    paste back at `box`. Training builds its two-view samples with this same function."""
    source = as_source(image)
    whole = global_view or read_global_view(source)
    size, _ = working_size((box.width, box.height), VIEW_READ_CAP)
    return [whole, source.read(box, size)]


def skips(peakedness: float | None, threshold: float) -> bool:
    """The skip rule: a plan whose saliency singles out its crop less than `threshold` keeps the whole
    image; 0 never skips (a peakedness can be negative); given boxes (no saliency) never skip."""
    return peakedness is not None and threshold > 0 and peakedness < threshold


def working_size(size: tuple[int, int], cap: int) -> tuple[tuple[int, int], float]:
    """((width, height), scale) of the canvas: the original size, or scaled so the longer side is cap."""
    w, h = size
    if max(w, h) <= cap:
        return (w, h), 1.0
    s = cap / max(w, h)
    return (max(1, round(w * s)), max(1, round(h * s))), s


def _check_boxes(granularity: str, boxes: dict[str, Box], size: tuple[int, int]) -> None:
    needed = {"image": 0, "region": 1, "pixel": 2}[granularity]
    missing = [n for n in CROP_NAMES[:needed] if n not in boxes]
    if missing:
        raise GeoMagError(f"a {granularity} plan needs the box(es) {', '.join(missing)}")
    for name in CROP_NAMES[:needed]:
        try:
            boxes[name].check_inside(*size)
        except GeoMagError as exc:
            raise GeoMagError(f"{name}: {exc}") from None
    if needed == 2:
        c1, c2 = boxes["crop1"], boxes["crop2"]
        if not c1.contains(c2) or c2.area >= c1.area:
            raise GeoMagError(
                f"crop2 {c2.to_list()} must lie inside crop1 {c1.to_list()} and be smaller (Eq. 2, pixel plan)"
            )


def tmra(
    source: ImageSource,
    granularity: str,
    boxes: dict[str, Box] | None = None,
    *,
    degrade_factor: int = 4,
    working_cap: int = 4096,
    only: str | None = None,
    image_side: int = IMAGE_PLAN_SIZE[0],
) -> tuple[Image.Image, MagCropPlan]:
    """Eq. 2: the adjusted image for `granularity`, given the crop boxes (ORIGINAL pixels); image
    plans are `image_side` x `image_side` (the paper: 100).

    `only` ("crop1" or "crop2", pixel plans): return just that crop of the adjusted image, equal to
    `adjusted.crop(plan.box_to_adjusted(boxes[only]))` but without composing the rest of the canvas
    (a zoomed model sees nothing else; ~0.15 s saved per 4K plan).
    """
    if granularity not in GRANULARITIES:
        raise GeoMagError(f"granularity must be one of {', '.join(GRANULARITIES)}, got '{granularity}'")
    size = tuple(int(v) for v in source.size)
    if size[0] < 1 or size[1] < 1:
        raise GeoMagError(f"the image has zero size ({size[0]}x{size[1]})")
    if only is not None and (granularity != "pixel" or only not in CROP_NAMES):
        raise GeoMagError(f"only='{only}' needs a pixel plan and 'crop1' or 'crop2'")
    boxes = dict(boxes or {})
    _check_boxes(granularity, boxes, size)
    t0 = time.perf_counter()
    if granularity == "image":
        side = (int(image_side), int(image_side))
        adjusted = source.read(None, side)
        plan = MagCropPlan("image", size, side, degrade_factor=degrade_factor)
    else:
        canvas_size, s = working_size(size, working_cap)
        plan = MagCropPlan(
            granularity, size, canvas_size, working_scale=s, boxes=boxes, degrade_factor=degrade_factor
        )
        c1 = plan.box_to_adjusted(boxes["crop1"])
        if only is not None:
            plan.only = only
            c2 = plan.box_to_adjusted(boxes["crop2"])
            adjusted = source.read(boxes["crop2"], (c2.width, c2.height))
            if only == "crop1":
                d_c1 = degraded_read(source, boxes["crop1"], (c1.width, c1.height), degrade_factor)
                adjusted = paste(d_c1, adjusted, c2.shift(-c1.x0, -c1.y0))
        elif granularity == "region":
            canvas = degraded_read(source, None, canvas_size, degrade_factor)  # D(I)
            adjusted = paste(canvas, source.read(boxes["crop1"], (c1.width, c1.height)), c1)
        else:
            canvas = degrade(degraded_read(source, None, canvas_size, degrade_factor), degrade_factor)
            d_c1 = degraded_read(source, boxes["crop1"], (c1.width, c1.height), degrade_factor)  # D(C1)
            canvas = paste(canvas, d_c1, c1)
            c2 = plan.box_to_adjusted(boxes["crop2"])
            adjusted = paste(canvas, source.read(boxes["crop2"], (c2.width, c2.height)), c2)
    plan.timings["compose"] = time.perf_counter() - t0
    return adjusted, plan


class MagCrop:
    """PSC + TMRA around one VLM: `plans(source, prompt, granularity)` -> [(adjusted image, plan)].

    `vlm` is needed only to find crops (region/pixel plans without given boxes). `segmenter` (the
    GeoMag model, through `geomag.saliency.ReferringSegmenter`) is needed for mask saliency; with
    `pixel_saliency="auto"` it decides: mask with one, Eq. 4 attention without. The granularity is
    the caller's (`geomag.predictor` asks the classifier), so MagCrop crops what it is told.
    """

    def __init__(
        self,
        vlm: VLM | None = None,
        config: MagCropConfig | None = None,
        segmenter: ReferringSegmenter | None = None,
    ) -> None:
        self.vlm = vlm
        self.config = config or MagCropConfig()
        self.segmenter = segmenter
        self.pixel_saliency = self.config.saliency_for(segmenter is not None, "pixel")
        self.region_saliency = self.config.saliency_for(segmenter is not None, "region")
        vlm_sides = list(vlm.input_size) if vlm is not None else []
        self.image_side = self.config.image_side or max([IMAGE_PLAN_SIZE[0], *vlm_sides])
        # encoder features of saliency tiles: prompt-independent, kept while the image is the same
        self.tile_features = TileFeatures()

    # --- pieces ----------------------------------------------------------------------------------
    def heatmap(self, source: ImageSource, prompt: str, box: Box | None = None) -> np.ndarray:
        """PSC heatmap of `box` (default: the whole image), read at the VLM's native input size."""
        if self.vlm is None:
            raise GeoMagError(
                "PSC needs a VLM to find crops: pass a LLaVA-style model (--model ID_OR_PATH), "
                "or give the crop boxes"
            )
        view = source.read(box, self.vlm.input_size)
        return psc_heatmap(
            self.vlm, view, prompt, layer=self.config.layer, answer_tokens=self.config.answer_tokens
        )

    def find_boxes(
        self, source: ImageSource, prompt: str, granularity: str
    ) -> tuple[dict[str, Box], dict[str, np.ndarray], dict[str, float]]:
        """PSC crops (ORIGINAL pixels): crop1 over the image; for pixel plans crop2 inside crop1."""
        cfg = self.config
        boxes: dict[str, Box] = {}
        heatmaps: dict[str, np.ndarray] = {}
        timings: dict[str, float] = {}
        n = {"image": 0, "region": 1, "pixel": 2}[granularity]
        parent: Box | None = None
        for i in range(n):
            name = CROP_NAMES[i]
            t0 = time.perf_counter()
            heat = self.heatmap(source, prompt, parent)
            timings[f"heatmap_{name}"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            area = source.size if parent is None else (parent.width, parent.height)
            # the inner crop must stay smaller than crop1, so its minimum gives way if crop1 is small
            min_size = cfg.min_crop if parent is None else min(cfg.min_crop, _max_side(area, cfg.max_frac))
            box = best_box(heat, area, cfg.search(min_size))
            if parent is not None:
                box = box.shift(parent.x0, parent.y0)
            timings[f"search_{name}"] = time.perf_counter() - t0
            boxes[name], heatmaps[name], parent = box, heat, box
        return boxes, heatmaps, timings

    def mask_candidates(
        self, source: ImageSource, prompt: str, granularity: str = "pixel"
    ) -> tuple[list[dict[str, Box]], dict[str, np.ndarray], dict[str, float], list[float]]:
        """Crops (ORIGINAL pixels) from the mask saliency, best first, with the peakedness of each: the
        inner crop is a square around a peak of the decoder's mask probability for the prompt's
        target (on the image reduced to `saliency_cap`), twice the blob's extent and at least
        `mask_crop` px. Pixel plans: that is crop2 and crop1 doubles it; region plans: it is crop1."""
        if self.segmenter is None or self.vlm is None:
            raise GeoMagError(
                "pixel_saliency='mask' needs a GeoMag checkpoint, not a plain VLM "
                "(MagCrop(model.vlm, config, segmenter=model))"
            )
        cfg = self.config
        canvas_size, scale = working_size(source.size, min(cfg.working_cap, cfg.saliency_cap))
        t0 = time.perf_counter()
        view = source.read(None, canvas_size)
        heat = mask_saliency(
            self.segmenter, view, prompt, tile=cfg.saliency_tile, features=self.tile_features
        )
        timings = {"heatmap_crop1": time.perf_counter() - t0}
        t0 = time.perf_counter()
        # smallest crop: the model's input side for crop views (a smaller crop would only be upsampled),
        # twice that for the canvas (the scale the model's 512 px training scenes are seen at)
        views_factor = 1 if cfg.views == "extra" else 2
        side = max(1, round((cfg.mask_crop or views_factor * max(self.vlm.input_size)) * scale))
        found, peaked = [], []
        for c2 in peak_boxes(heat, canvas_size, cfg.candidates, side, cfg.max_frac):
            inner = c2.scale(1 / scale, 1 / scale).clamp(*source.size)
            if granularity == "pixel":
                found.append({"crop1": _grown(inner, 2, source.size), "crop2": inner})
            else:
                found.append({"crop1": inner})
            peaked.append(peakedness(heat, canvas_size, c2))
        timings["search_crop1"] = time.perf_counter() - t0
        return found, {"crop1": _pooled(heat, 64)}, timings, peaked

    # --- the whole thing -------------------------------------------------------------------------
    def adjust(
        self,
        image: ImageInput | ImageSource,
        prompt: str,
        granularity: str,
        boxes: dict[str, Box] | None = None,
    ) -> tuple[Image.Image, MagCropPlan]:
        """The MagCrop-adjusted image and its plan. `boxes` skips PSC (all boxes the plan needs)."""
        return self.plans(image, prompt, granularity, boxes)[0]

    def plans(
        self,
        image: ImageInput | ImageSource,
        prompt: str,
        granularity: str,
        boxes: dict[str, Box] | None = None,
        zoom: str | None = None,
    ) -> list[tuple[Image.Image, MagCropPlan]]:
        """`adjust` for every candidate crop, best first: one plan, or up to `config.candidates` for
        pixel plans with mask saliency (`geomag.predictor` ranks them and answers the best one).
        `zoom` ("crop1" / "crop2"): pixel plans come with only that crop of their adjusted image
        (`tmra(..., only=zoom)`, `MagCropPlan.only`); other plans are whole."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise GeoMagError("the prompt is empty")
        if granularity not in GRANULARITIES:
            raise GeoMagError(f"granularity must be one of {', '.join(GRANULARITIES)}, got '{granularity}'")
        t_start = time.perf_counter()
        source = as_source(image)
        timings: dict[str, float] = {}
        heatmaps: dict[str, np.ndarray] = {}
        box_source = "none"
        options: list[dict[str, Box] | None] = [None]
        peaked: list[float | None] = [None]
        saliency = self.pixel_saliency if granularity == "pixel" else self.region_saliency
        if granularity != "image":
            if boxes:
                box_source, options = "given", [boxes]
            elif saliency == "mask":
                options, heatmaps, found, peaked = self.mask_candidates(source, prompt, granularity)
                timings.update(found)
                box_source = "mask"
            else:
                found_boxes, heatmaps, found = self.find_boxes(source, prompt, granularity)
                options = [found_boxes]
                # the outer crop decides what is degraded: its share of the heat says whether it should
                peaked = [peakedness(heatmaps["crop1"], source.size, found_boxes["crop1"])]
                timings.update(found)
                box_source = "psc"
        out = []
        for option, peak in zip(options, peaked, strict=True):
            adjusted, plan = tmra(
                source,
                granularity,
                option,
                degrade_factor=self.config.degrade_factor,
                working_cap=self.config.working_cap,
                only=zoom if granularity == "pixel" else None,
                image_side=self.image_side,
            )
            plan.heatmaps, plan.box_source, plan.peakedness = heatmaps, box_source, peak
            threshold = self.config.skip_below(granularity)
            if skips(peak, threshold):
                plan.skipped = (
                    f"the saliency does not single out a region (peakedness {peak:.2f} < {threshold:.2f})"
                )
            plan.timings = {**timings, **plan.timings, "total": time.perf_counter() - t_start}
            out.append((adjusted, plan))
        return out

    __call__ = adjust


def _max_side(size: tuple[int, int], max_frac: float) -> int:
    return max(1, math.floor(max_frac * min(size)))


def _grown(box: Box, factor: float, size: tuple[int, int]) -> Box:
    """`box` grown `factor` times about its centre (at most the image), shifted inside the image."""
    w, h = min(size[0], round(factor * box.width)), min(size[1], round(factor * box.height))
    x0 = min(max(0, round((box.x0 + box.x1 - w) / 2)), size[0] - w)
    y0 = min(max(0, round((box.y0 + box.y1 - h) / 2)), size[1] - h)
    return Box(x0, y0, x0 + w, y0 + h)


def _pooled(grid: np.ndarray, cells: int) -> np.ndarray:
    """Max-pool a fine heatmap to at most `cells` cells along its longer side (for the plan record)."""
    f = max(1, math.ceil(max(grid.shape) / cells))
    rows, cols = math.ceil(grid.shape[0] / f), math.ceil(grid.shape[1] / f)
    padded = np.zeros((rows * f, cols * f), dtype=np.float32)
    padded[: grid.shape[0], : grid.shape[1]] = grid
    return padded.reshape(rows, f, cols, f).max(axis=(1, 3))
