"""`GeoMagPredictor`: the pipeline of one request, in the spirit of segment-anything's `SamPredictor`.

    predictor = GeoMagPredictor(geomag.create_model("nano"))
    predictor.set_image("scene.tif")              # keeps the source and the prompt-independent views
    result = predictor.predict("Segment the bridge.")

`predict` makes every decision of a parse, for every surface (CLI, server, eval, Python): the
granularity (the caller's, or the classifier's), the GCG rule (a grounded description describes the
whole image: no MagCrop, as in the paper), MagCrop's plans (TMRA + PSC, `geomag.magcrop`), the ranking
of candidate crops, the zoom, the answer, the masks on the ORIGINAL pixel grid, and the timings.

`set_image` keeps what does not depend on the prompt: the source, its reduced views (the global
view, D(I), the saliency view) and the mask encoder's features of saliency tiles, so several prompts
on one image do not redo them. Pixels are read only through the source (windowed for rasters), so a
raster larger than memory is never decoded whole.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from geomag.errors import GeoMagError
from geomag.granularity import GranularityClassifier, load_classifier
from geomag.imaging import Box, ImageSource, nearest_mask, paste_mask
from geomag.magcrop import (
    GRANULARITIES,
    MagCrop,
    MagCropPlan,
    crop_views,
    read_global_view,
    working_size,
)
from geomag.model.answers import REFSEG_ANSWER, gcg_phrases, seg_phrases
from geomag.model.geomag import MASK_THRESHOLD, GeoMagModel, mask_view
from geomag.model.registry import Model
from geomag.options import ParseOptions
from geomag.result import Result
from geomag.saliency import TileFeatures
from geomag.sources import ImageInput, as_source

# A grounded description (GCG) describes the whole image: the paper applies no MagCrop to it.
GCG_REQUEST = re.compile(r"(describ|description|caption|analy[sz]|explain).*(mask|segment)", re.I | re.S)
VIEW_CACHE_PIXELS = 2048 * 2048  # reads up to this size are kept per image (views, not crops of 4K)
# Two masks of one answer this alike are one mask. The [SEG] of one target (a run) decode to the very
# same mask (IoU 1); two targets that land on the same object differ only by a few boundary pixels of
# the bilinear upsampling and the threshold. 0.95 merges those and nothing a person would tell apart
# on the overlay; lower (0.5 - 0.9) would merge distinct neighbours that touch or nest (a GCG answer's
# "the roof" and "the building").
DUPLICATE_IOU = 0.95
QUOTE_CHARS = 60  # an answer quoted in a no-mask reason is cut to this length


def is_gcg_request(prompt: str, granularity: str) -> bool:
    """The GCG rule: a pixel-level prompt that asks for a description with masks."""
    return granularity == "pixel" and GCG_REQUEST.search(prompt) is not None


def classify_prompt(
    prompt: str, classifier: GranularityClassifier | None = None
) -> tuple[str, dict[str, float]]:
    """The granularity of `prompt` by the classifier (default: the shipped one) and its probabilities."""
    granularity, probabilities = (classifier or load_classifier()).predict([prompt])[0]
    return granularity, probabilities


class CachedSource:
    """An ImageSource that keeps its reduced reads (box, size) for the next prompt on the same image."""

    def __init__(self, source: ImageSource, max_items: int = 12) -> None:
        self.source = source
        self._reads: dict[tuple[Box | None, tuple[int, int] | None], Image.Image] = {}
        self._max_items = max_items

    @property
    def size(self) -> tuple[int, int]:
        return self.source.size

    def read(self, box: Box | None = None, out_size: tuple[int, int] | None = None) -> Image.Image:
        key = (box, None if out_size is None else (int(out_size[0]), int(out_size[1])))
        if key in self._reads:
            return self._reads[key].copy()
        image = self.source.read(box, out_size)
        if image.width * image.height <= VIEW_CACHE_PIXELS and len(self._reads) < self._max_items:
            self._reads[key] = image.copy()
        return image


@dataclass
class ReferringCheck:
    """The referring answer teacher-forced on one view: how confidently the model finds the target."""

    score: float  # confidence of its mask
    answer_ids: torch.Tensor
    mask_logits: torch.Tensor  # [T, h, w]
    runs: list[list[int]]
    greedy: bool  # greedy decoding writes exactly this answer, then stops

    def fits(self, max_new_tokens: int) -> bool:
        """Within a generation budget (the answer and its end token)."""
        return self.answer_ids.numel() + 1 <= max_new_tokens


@dataclass
class _Option:
    """One candidate input: what the model sees (an image, or views of one scene: `crop_views`), its
    plan (None: the whole image), its boxes (original px) and where the view that masks decode on
    (the last) lies on the original (None: it is the whole image)."""

    seen: Image.Image | list[Image.Image]
    plan: MagCropPlan | None
    boxes: dict[str, Box]
    mask_box: Box | None = None


@dataclass
class _Answer:
    """What the model answered on one option, and what became of its [SEG] (for `Result.extra`)."""

    text: str
    masks: list[np.ndarray]
    scores: list[float]
    phrases: list[str]
    notes: dict[str, object]  # no_mask (why there is none), empty_masks, duplicates_merged, duplicates


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one grid (1.0 for two empty masks), counted in
    the two masks' common bounding box only: cheap for small masks on a 4K grid."""
    boxes = []
    for m in (a, b):
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        boxes.append(None if not rows.size else (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1))
    if boxes[0] is None or boxes[1] is None:
        return 1.0 if boxes[0] is boxes[1] else 0.0
    (ay0, ay1, ax0, ax1), (by0, by1, bx0, bx1) = boxes
    y0, y1, x0, x1 = max(ay0, by0), min(ay1, by1), max(ax0, bx0), min(ax1, bx1)
    inter = int(np.count_nonzero(a[y0:y1, x0:x1] & b[y0:y1, x0:x1])) if y0 < y1 and x0 < x1 else 0
    union = int(np.count_nonzero(a[ay0:ay1, ax0:ax1])) + int(np.count_nonzero(b[by0:by1, bx0:bx1])) - inter
    return inter / union


def merge_duplicates(
    masks: list[np.ndarray],
    scores: list[float],
    phrases: list[str],
    min_iou: float = DUPLICATE_IOU,
    seg_numbers: list[int] | None = None,
) -> tuple[list[np.ndarray], list[float], list[str], list[dict[str, object]]]:
    """One mask for masks of one answer that overlap by `min_iou` or more: the first in the answer's
    order stays, with its own score and phrase; a later one is dropped and listed as {"seg": its
    [SEG] number in the answer (`seg_numbers[j]`, default j), "same_as": the kept mask's index,
    "iou", "phrase"}."""
    kept: list[int] = []
    merged: list[dict[str, object]] = []
    for j, mask in enumerate(masks):
        for k, i in enumerate(kept):
            iou = mask_iou(masks[i], mask)
            if iou >= min_iou:
                phrase = phrases[j] if j < len(phrases) else ""
                merged.append(
                    {
                        "seg": seg_numbers[j] if seg_numbers else j,
                        "same_as": k,
                        "iou": round(iou, 4),
                        **({"phrase": phrase} if phrase else {}),
                    }
                )
                break
        else:
            kept.append(j)
    return (
        [masks[i] for i in kept],
        [scores[i] for i in kept],
        [phrases[i] for i in kept if i < len(phrases)],
        merged,
    )


def quoted(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` on one line, in quotes, cut to `limit` characters."""
    line = " ".join(text.split())
    return '"' + (line if len(line) <= limit else line[: limit - 1] + "…") + '"'


class GeoMagPredictor:
    """Parses prompts on one image at a time with a GeoMag model (or a plain LLaVA-style VLM: text only)."""

    def __init__(
        self,
        model: Model,
        options: ParseOptions | None = None,
        classifier: GranularityClassifier | None = None,
        model_name: str | None = None,
    ) -> None:
        self.model = model
        self.options = options or ParseOptions()
        self.classifier = classifier
        self.model_name = model_name
        self.geomag = model if isinstance(model, GeoMagModel) else None
        self.vlm = model.vlm if isinstance(model, GeoMagModel) else model
        self._source: CachedSource | None = None
        self._tiles = TileFeatures()
        self._magcrops: dict[object, MagCrop] = {}
        # the MagCrop plan the last `predict` answered (None without MagCrop): its heatmaps for a demo
        self.last_plan: MagCropPlan | None = None

    # --- the image ---------------------------------------------------------------------------------
    def set_image(self, image: ImageInput | ImageSource) -> None:
        """Use `image` (a path, PIL image, uint8 array or ImageSource) for the next predictions."""
        self._source = CachedSource(as_source(image))
        self._tiles = TileFeatures()
        for magcrop in self._magcrops.values():
            magcrop.tile_features = self._tiles

    @property
    def source(self) -> ImageSource:
        return self._checked_source().source

    # --- decisions ---------------------------------------------------------------------------------
    def classify(self, prompt: str) -> tuple[str, dict[str, float]]:
        """The classifier's granularity of `prompt` and its probabilities."""
        if self.classifier is None:
            self.classifier = load_classifier()
        return classify_prompt(prompt, self.classifier)

    def magcrop(self, options: ParseOptions) -> MagCrop:
        """The MagCrop of these options around this model (one per setting, kept)."""
        config = options.magcrop_config()
        if config not in self._magcrops:
            self._magcrops[config] = MagCrop(self.vlm, config, segmenter=self.geomag)
            self._magcrops[config].tile_features = self._tiles
        return self._magcrops[config]

    def plans(
        self,
        prompt: str,
        granularity: str,
        options: ParseOptions | None = None,
        boxes: dict[str, Box] | None = None,
    ) -> list[tuple[Image.Image, MagCropPlan]]:
        """MagCrop's plans for `prompt` on the current image (what `geomag magcrop` shows)."""
        options = options or self.options
        magcrop = self.magcrop(options)
        zoom = options.zoom_for(magcrop.pixel_saliency) if granularity == "pixel" else None
        return magcrop.plans(self._checked_source(), prompt, granularity, boxes, zoom=zoom)

    def predict(
        self,
        prompt: str,
        options: ParseOptions | None = None,
        boxes: dict[str, Box] | None = None,
        **changes: object,
    ) -> Result:
        """Parse `prompt` on the current image (see the module docstring). `changes` override options.
        `boxes` (ORIGINAL pixels: crop1, and crop2 for pixel prompts) are MagCrop's crops instead of
        the saliency's (an oracle's, a user's region of interest): no skip rule applies to them."""
        t_start = time.perf_counter()
        options = (options or self.options).with_(**changes)
        source = self._checked_source()
        self.check_prompt(prompt, options)
        timings: dict[str, float] = {}
        extra: dict[str, object] = {}
        granularity = options.granularity
        t = time.perf_counter()
        if granularity is None:
            granularity, probabilities = self.classify(prompt)
            extra["granularity_probabilities"] = {k: round(float(v), 4) for k, v in probabilities.items()}
        if granularity not in GRANULARITIES:
            raise GeoMagError(f"granularity must be one of {', '.join(GRANULARITIES)}, not '{granularity}'")
        timings["classify"] = time.perf_counter() - t

        gcg = is_gcg_request(prompt, granularity)
        use_magcrop = options.magcrop and not gcg
        skipped: MagCropPlan | None = None
        read: list[_Option] = []

        def whole() -> _Option:
            """The whole image as the model sees it (`read_global_view`), read once and only when a
            choice or a crop view needs it (an image plan or the canvas without the arbiter never does)."""
            if not read:
                read.append(_Option(read_global_view(source, options.working_cap), None, {}))
            return read[0]

        choices: list[_Option] | None = None
        if use_magcrop:
            magcrop = self.magcrop(options)
            zoom = options.zoom_for(magcrop.pixel_saliency) if granularity == "pixel" else None
            t = time.perf_counter()
            plans = magcrop.plans(source, prompt, granularity, boxes or None, zoom=zoom)
            timings["magcrop"] = time.perf_counter() - t
            # the skip rule: crops whose saliency singles out nothing are dropped; none left, no MagCrop
            kept = [(seen, plan) for seen, plan in plans if plan.skipped is None]
            crops = [self._crop_option(seen, plan, granularity, zoom, options, whole) for seen, plan in kept]
            if granularity == "pixel":
                extra.update({"zoom": zoom, "pixel_saliency": magcrop.pixel_saliency})
            elif granularity == "region":
                extra["region_saliency"] = magcrop.region_saliency
            if granularity != "image":
                extra["views"] = options.views
            if not kept:
                skipped = plans[0][1]
                extra["magcrop"] = f"skipped: {skipped.skipped}"
                extra["peakedness"] = skipped.peakedness
                if granularity == "pixel":
                    extra["zoom"] = None
            elif granularity == "image":
                choices = crops  # the image plan (Eq. 2) has no crop to weigh against the whole image
            else:
                # the arbiter: the whole image stays a candidate beside the crops (`options.arbiter`)
                choices = [whole(), *crops] if options.arbiter else crops
        if choices is None:
            choices = [whole()]

        with torch.no_grad():
            checked = None
            if len(choices) > 1:
                t = time.perf_counter()
                best, checked, scores = self._rank(choices, prompt, granularity, options)
                extra["candidates"] = [
                    {
                        "boxes": {k: b.to_list() for k, b in c.boxes.items()},
                        "whole": c.plan is None,
                        "score": score,
                        "peakedness": None if c.plan is None else c.plan.peakedness,
                    }
                    for c, score in zip(choices, scores, strict=True)
                ]
                if choices[best].plan is None:
                    extra["magcrop"] = (
                        f"kept the whole image: the model was more confident on it ({scores[0]:.2f}) than "
                        f"on any crop ({max(scores[1:]):.2f}, margin {options.arbiter_margin:.2f})"
                    )
                choices = [choices[best]]
                timings["rank"] = time.perf_counter() - t
            # the ranking forward already holds the answer when greedy decoding would write it
            if checked is not None and not (checked.greedy and checked.fits(options.max_new_tokens)):
                checked = None
            # a grounded description loops without n-gram blocking (its n chosen on a validation split)
            ngram = options.gcg_no_repeat_ngram if gcg else options.no_repeat_ngram
            answer = self._answer(choices[0], prompt, options, timings, checked, ngram)
        if checked is not None:
            extra["answer_checked"] = True
        notes = dict(answer.notes)
        if granularity != "pixel":  # a region or image prompt is answered in words: no mask expected
            notes.pop("no_mask", None)
        extra.update(notes)
        self.last_plan = choices[0].plan if skipped is None else skipped
        timings["total"] = time.perf_counter() - t_start
        return Result(
            text=answer.text,
            granularity=granularity,
            image_size=source.size,
            boxes=choices[0].boxes,
            masks=answer.masks,
            scores=answer.scores,
            phrases=answer.phrases,
            timings=timings,
            extra={
                "prompt": prompt,
                **({"model": self.model_name} if self.model_name else {}),
                "magcrop": use_magcrop,
                **extra,
            },
            source=source.source,  # the file's own source (its CRS), not the cache around it
        )

    def check_prompt(self, prompt: str, options: ParseOptions | None = None) -> None:
        """A prompt the model can take: text, not empty, valid UTF-8, within `max_prompt_tokens`."""
        limit = (options or self.options).max_prompt_tokens
        if not isinstance(prompt, str) or not prompt.strip():
            raise GeoMagError("the prompt is empty")
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 reach Python as lone surrogates
            raise GeoMagError("the prompt is not valid UTF-8 text") from None
        if len(prompt) > 8 * limit or self.vlm.prompt_tokens(prompt) > limit:  # cheap bound first
            raise GeoMagError(f"the prompt is longer than {limit} tokens (max_prompt_tokens)")

    # --- steps -------------------------------------------------------------------------------------
    def _checked_source(self) -> CachedSource:
        if self._source is None:
            raise GeoMagError("no image: call set_image first")
        return self._source

    def _crop_option(
        self,
        adjusted: Image.Image,
        plan: MagCropPlan,
        granularity: str,
        zoom: str | None,
        options: ParseOptions,
        whole: Callable[[], _Option],
    ) -> _Option:
        """What the model sees of a plan: with `views="extra"` the global view and the plan's inner
        crop (crop2 of pixel plans unless `zoom` is crop1; crop1 of region plans) as a second view
        (`crop_views`); with `views="canvas"` the adjusted canvas, or with `zoom` (pixel plans) only
        that crop of it."""
        boxes = dict(plan.boxes)
        if granularity == "image":
            return _Option(adjusted, plan, boxes)
        if options.views == "extra":
            name = "crop1" if granularity == "region" or zoom == "crop1" else "crop2"
            global_view = whole().seen  # the whole image is one view: an Image
            views = crop_views(self._checked_source(), boxes[name], global_view)  # type: ignore[arg-type]
            return _Option(views, plan, boxes, boxes[name])
        if zoom and granularity == "pixel" and zoom in boxes:
            if plan.only == zoom:  # MagCrop composed only this crop
                return _Option(adjusted, plan, boxes, boxes[zoom])
            return _Option(
                adjusted.crop(plan.box_to_adjusted(boxes[zoom]).to_tuple()), plan, boxes, boxes[zoom]
            )
        return _Option(adjusted, plan, boxes)

    def _rank(
        self, choices: list[_Option], prompt: str, granularity: str, options: ParseOptions
    ) -> tuple[int, ReferringCheck | None, list[float]]:
        """The candidate to answer (index), the referring check that found it (pixel prompts) and every
        candidate's score: the confidence of the referring mask for pixel prompts with a GeoMag model,
        the answer's first-token probability otherwise. A crop must beat the whole image (the first
        candidate, when `options.arbiter`) by `options.arbiter_margin` (chosen on validation splits)."""
        checks: list[ReferringCheck] = []
        if granularity == "pixel" and self.geomag is not None:
            checks = [self._referring_check(c.seen, prompt) for c in choices]
            scores = [c.score for c in checks]
        else:
            scores = [self._answer_confidence(c.seen, prompt) for c in choices]
        ranked = list(scores)
        if options.arbiter and choices[0].plan is None:
            ranked[0] += options.arbiter_margin
        best = int(np.argmax(ranked))
        return best, (checks[best] if checks else None), scores

    def _answer_confidence(self, seen: Image.Image | list[Image.Image], prompt: str) -> float:
        """How sure the model is of its answer on `seen`: the probability of its greedy first token (the
        yes / no / count / class of a region question), from one prefill."""
        inputs = self.vlm.prepare(seen, prompt)
        logits = self.vlm.model(**inputs, logits_to_keep=1).logits[0, -1]
        return float(torch.softmax(logits.float(), dim=-1).max())

    def _referring_check(self, seen: Image.Image | list[Image.Image], prompt: str) -> ReferringCheck:
        """How confidently the model finds the prompt's target in `seen` (the confidence of the mask
        of the referring answer, teacher-forced, on the mask view's own grid), from one forward that
        also tells whether greedy decoding would write that answer."""
        model = self._segmenter()
        ids = model.answer_tokens(REFSEG_ANSWER)
        batch = model.answer_batch(seen, prompt, ids)
        runs = batch["seg_runs"][0]
        logits, vocab = model.forced(batch, keep=ids.numel() + 1)
        score = max(model.masks_on(logits, runs, mask_view(seen).size)[1], default=0.0)
        return ReferringCheck(score, ids, logits, runs, model.writes_greedily(ids, vocab))

    def _segmenter(self) -> GeoMagModel:
        if self.geomag is None:
            raise GeoMagError("candidate crops and masks need a GeoMag checkpoint, not a plain VLM")
        return self.geomag

    def _answer(
        self,
        option: _Option,
        prompt: str,
        options: ParseOptions,
        timings: dict[str, float],
        checked: ReferringCheck | None,
        no_repeat_ngram: int = 0,
    ) -> _Answer:
        """Answer and masks (original grid) for one option; adds to `timings`."""
        seen, crop = option.seen, option.mask_box
        if self.geomag is None:  # a plain VLM: text only
            t = time.perf_counter()
            text = self.vlm.generate(seen, prompt, max_new_tokens=options.max_new_tokens)
            timings["generate"] = time.perf_counter() - t
            return _Answer(
                text, [], [], [], {"no_mask": "the model is a plain VLM: it answers in text, not masks"}
            )
        model = self.geomag
        if checked is not None:
            new, logits, runs = checked.answer_ids, checked.mask_logits, checked.runs
        else:
            t = time.perf_counter()
            new = model.generate_ids(seen, prompt, options.max_new_tokens, no_repeat_ngram)
            timings["generate"] = time.perf_counter() - t
            t = time.perf_counter()
            batch = model.answer_batch(seen, prompt, new)
            runs = batch["seg_runs"][0]
            logits = model.forced(batch)[0] if runs else None
            timings["decode"] = time.perf_counter() - t
        text = model.answer_text(new)
        if not runs or logits is None:
            cut = checked is None and new.numel() >= options.max_new_tokens
            why = f"the model wrote no [SEG] token (it answered {quoted(text)}"
            why += f", cut at max_new_tokens={options.max_new_tokens})" if cut else ")"
            return _Answer(text, [], [], gcg_phrases(text), {"no_mask": why})
        t = time.perf_counter()
        answer = self._masks(model, text, logits, runs, crop, options.working_cap)
        timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - t
        return answer

    def _masks(
        self,
        model: GeoMagModel,
        text: str,
        logits: torch.Tensor,
        runs: list[list[int]],
        crop: Box | None,
        working_cap: int,
    ) -> _Answer:
        """Masks on the original grid: decoded at the crop's size (zoom) or the image's, at most the
        working scale (larger images: masks enlarged with nearest neighbour), and pasted back. Empty
        masks are dropped and duplicates merged (`merge_duplicates`); the notes say so, and why no
        mask is left when none is."""
        size = self._checked_source().size
        region = size if crop is None else (crop.width, crop.height)
        decoded_size, scale = working_size(region, working_cap)
        decoded, scores = model.masks_on(logits, runs, decoded_size)
        masks = [nearest_mask(m, region) for m in decoded] if scale != 1.0 else decoded
        if crop is not None:
            masks = [paste_mask(size, crop, m) for m in masks]
        phrases = seg_phrases(text)
        if len(phrases) != len(masks):  # a [SEG] written as plain text tokens: phrases as the text has them
            phrases = gcg_phrases(text)
        phrases = (phrases + [""] * len(masks))[: len(masks)]
        notes: dict[str, object] = {}
        full = [k for k, m in enumerate(masks) if m.any()]
        if len(full) < len(masks):
            notes["empty_masks"] = len(masks) - len(full)
        if not full:
            if any(m.any() for m in decoded):
                why = "its [SEG] decoded to a mask that is empty once mapped back to the image"
            else:
                peak = float(torch.sigmoid(logits.float().max()))
                why = (
                    f"its [SEG] decoded to an empty mask (no pixel above probability {MASK_THRESHOLD}; "
                    f"the decoder's highest is {peak:.2f})"
                )
            notes["no_mask"] = why
            return _Answer(text, [], [], [], notes)
        masks, scores, phrases = (
            [masks[k] for k in full],
            [scores[k] for k in full],
            [phrases[k] for k in full],
        )
        masks, scores, phrases, merged = merge_duplicates(masks, scores, phrases, seg_numbers=full)
        # which mask each target of the text became (None: empty), for the text's mask references
        same_as = {int(d["seg"]): int(d["same_as"]) for d in merged}  # type: ignore[call-overload]
        kept = iter(range(len(masks)))
        notes["seg_masks"] = [
            None if r not in full else same_as[r] if r in same_as else next(kept) for r in range(len(decoded))
        ]
        if merged:
            notes["duplicates_merged"] = len(merged)
            notes["duplicates"] = merged
        return _Answer(text, masks, scores, phrases if any(phrases) else [], notes)
