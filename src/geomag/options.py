"""`ParseOptions`: every default of a parse in one place, for every surface.

The CLI, the server, eval and the Python API build one of these (from flags, JSON or keywords) and
hand it to the predictor, so `geomag parse`, `geomag.parse(...)`, `geomag eval --magcrop on` and
`geomag magcrop` crop and answer the same prompt the same way unless told otherwise. MagCrop's own
settings default to `MagCropConfig`'s (read from it, not repeated here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from geomag.errors import GeoMagError
from geomag.magcrop import CROP_NAMES, GRANULARITIES, PIXEL_SALIENCY, MagCropConfig

ZOOMS = ("auto", *CROP_NAMES, "none")
MAX_NEW_TOKENS_LIMIT = 1024
MAX_PROMPT_TOKENS_LIMIT = 4096


@dataclass(frozen=True)
class ParseOptions:
    """How to parse one prompt. `None` granularity: the classifier decides; `zoom="auto"`: crop2 with
    mask saliency, none with Eq. 4 attention (docs/magcrop.md measured both)."""

    granularity: str | None = None
    magcrop: bool = True
    pixel_saliency: str = MagCropConfig.pixel_saliency
    region_saliency: str = MagCropConfig.region_saliency
    region_skip_below: float = MagCropConfig.region_skip_below
    pixel_skip_below: float = MagCropConfig.pixel_skip_below
    candidates: int = MagCropConfig.candidates
    zoom: str = "auto"
    min_crop: int = MagCropConfig.min_crop
    layer: int = MagCropConfig.layer
    answer_tokens: int = MagCropConfig.answer_tokens
    working_cap: int = MagCropConfig.working_cap
    image_side: int | None = MagCropConfig.image_side
    views: str = MagCropConfig.views
    # the arbiter: the whole image is a candidate beside MagCrop's crops and the model's confidence
    # picks; a crop must beat the whole image by `arbiter_margin` (docs/magcrop.md: chosen on
    # validation splits)
    arbiter: bool = True
    arbiter_margin: float = 0.0
    # greedy decoding never repeats an n-gram of this length (0: off); long answers (captions, GCG)
    # otherwise loop on a small LLM
    no_repeat_ngram: int = 0
    max_new_tokens: int = 96
    # longest prompt in tokens: a 100,000-character prompt would ask for an 18 GB attention tensor
    max_prompt_tokens: int = 512
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.granularity is not None and self.granularity not in GRANULARITIES:
            raise GeoMagError(
                f"granularity must be one of {', '.join(GRANULARITIES)}, not '{self.granularity}'"
            )
        if self.zoom not in ZOOMS:
            raise GeoMagError(f"zoom must be one of {', '.join(ZOOMS)}, not '{self.zoom}'")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise GeoMagError(
                f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}, not {self.max_new_tokens}"
            )
        if not 1 <= self.max_prompt_tokens <= MAX_PROMPT_TOKENS_LIMIT:
            raise GeoMagError(
                f"max_prompt_tokens must be between 1 and {MAX_PROMPT_TOKENS_LIMIT}, not {self.max_prompt_tokens}"
            )
        for name in ("pixel_saliency", "region_saliency"):
            if getattr(self, name) not in PIXEL_SALIENCY:
                raise GeoMagError(
                    f"{name} must be one of {', '.join(PIXEL_SALIENCY)}, not '{getattr(self, name)}'"
                )
        if not -1.0 <= self.arbiter_margin <= 1.0:
            raise GeoMagError(f"arbiter_margin must be between -1 and 1, not {self.arbiter_margin}")
        if not 0 <= self.no_repeat_ngram <= 16:
            raise GeoMagError(f"no_repeat_ngram must be between 0 and 16, not {self.no_repeat_ngram}")
        self.magcrop_config()  # MagCrop's own checks (candidates, min_crop, working_cap)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ParseOptions:
        """Options from a JSON-like dict (a server request); unknown keys and wrong types are errors
        (an int is taken where a float is meant)."""
        unknown = sorted(set(values) - set(FIELD_TYPES))
        if unknown:
            raise GeoMagError(
                f"unknown option(s): {', '.join(unknown)}; known: {', '.join(sorted(FIELD_TYPES))}"
            )
        checked: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                if name == "granularity":
                    checked[name] = None
                continue
            want = FIELD_TYPES[name]
            if isinstance(value, bool) and want is not bool:
                raise GeoMagError(f"option {name} must be a {want.__name__}, not {value!r}")
            if want is float and isinstance(value, int):
                value = float(value)
            if not isinstance(value, want):
                raise GeoMagError(f"option {name} must be a {want.__name__}, not {value!r}")
            checked[name] = value
        return cls(**checked)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> ParseOptions:
        """A copy with `changes` (None values ignored), checked again."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def magcrop_config(self) -> MagCropConfig:
        return MagCropConfig(
            pixel_saliency=self.pixel_saliency,
            region_saliency=self.region_saliency,
            region_skip_below=self.region_skip_below,
            pixel_skip_below=self.pixel_skip_below,
            candidates=self.candidates,
            min_crop=self.min_crop,
            layer=self.layer,
            answer_tokens=self.answer_tokens,
            working_cap=self.working_cap,
            image_side=self.image_side,
            views=self.views,
        )

    def zoom_for(self, pixel_saliency: str) -> str | None:
        """The crop a pixel plan's model sees ("auto" resolved for the saliency in use), or None."""
        zoom = self.zoom if self.zoom != "auto" else ("crop2" if pixel_saliency == "mask" else "none")
        return None if zoom == "none" else zoom


# the JSON type of each option, for `from_dict` (granularity: a str, or None for the classifier)
FIELD_TYPES: dict[str, type] = {
    "granularity": str,
    "magcrop": bool,
    "pixel_saliency": str,
    "region_saliency": str,
    "region_skip_below": float,
    "pixel_skip_below": float,
    "candidates": int,
    "zoom": str,
    "min_crop": int,
    "layer": int,
    "answer_tokens": int,
    "working_cap": int,
    "image_side": int,
    "views": str,
    "arbiter": bool,
    "arbiter_margin": float,
    "no_repeat_ngram": int,
    "max_new_tokens": int,
    "max_prompt_tokens": int,
    "device": str,
}
