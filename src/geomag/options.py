"""`ParseOptions` and the option table: every option of a parse declared once, for every surface.

Each field of `ParseOptions` is one row of the table (`OPTIONS`): its name, type and default come
from the field, its bounds or choices, its one line of help and the surfaces it is offered on from
`option(...)`. Everything else is derived from that one declaration:
- `ParseOptions` itself checks every value against its row (`Option.check`), in Python;
- the CLI flags of `geomag parse / magcrop / batch / eval` (`geomag.commands.parse_options`), which
  check the same bounds while argparse reads them, before any model is built;
- the form fields of `geomag serve`'s `POST /v1/parse` and their OpenAPI schema (`minimum`,
  `maximum`, `enum`; `geomag.serve.form`);
- the options table of docs/serve.md (`options_markdown`; a test compares the two).
An out-of-bounds value gets the same one-line message from all three entry points.

Adding an option is a one-place change: add a field here with `option(...)` (and, for a MagCrop
setting, the field of the same name in `MagCropConfig`: `magcrop_config` passes every field whose
name it shares). The CLI flag, the form field, the schema and the docs row follow; regenerate the
docs table with `python -m geomag.options` and paste it into docs/serve.md.

This module imports no torch (the CLI builds its flags from it): MagCrop's defaults are repeated here
and a test checks they equal `MagCropConfig`'s.
"""

from __future__ import annotations

import math
import sys
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from geomag.errors import GeoMagError

GRANULARITIES = ("image", "region", "pixel")  # as geomag.magcrop's (a test checks)
SALIENCIES = ("auto", "attention", "mask")
ZOOMS = ("auto", "crop1", "crop2", "none")
VIEWS = ("extra", "canvas")  # as geomag.magcrop's (a test checks)
SURFACES = ("python", "cli", "server")
MAX_NEW_TOKENS_LIMIT = 1024
MAX_PROMPT_TOKENS_LIMIT = 4096

Value = str | int | float | bool | None


@dataclass(frozen=True)
class Option:
    """One row of the option table."""

    name: str
    type: type  # str, int, float or bool (the JSON / form type)
    default: Value
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False  # None is a value (granularity: the classifier; image_side: the model's)
    surfaces: tuple[str, ...] = SURFACES
    answer: bool = False  # only for commands that generate an answer (not `geomag magcrop`)

    @property
    def flag(self) -> str:
        """The CLI flag (`--no-magcrop` for an option that is on by default)."""
        dashed = self.name.replace("_", "-")
        return f"--no-{dashed}" if self.type is bool and self.default is True else f"--{dashed}"

    def bounds_text(self) -> str:
        if self.choices is not None:
            return ", ".join(self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{_number(self.minimum)} to {_number(self.maximum)}"
        return "true, false" if self.type is bool else ""

    def check(self, value: object) -> Value:
        """`value` (a JSON-like value) as this option's type within its bounds, or one GeoMagError line."""
        if value is None:
            if self.nullable:
                return None
            raise GeoMagError(f"{self.name} must be {self._kind()}, not None")
        if isinstance(value, bool) and self.type is not bool:
            raise GeoMagError(f"{self.name} must be {self._kind()}, not {value!r}")
        if self.type is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, self.type):
            raise GeoMagError(f"{self.name} must be {self._kind()}, not {value!r}")
        if self.choices is not None and value not in self.choices:
            raise GeoMagError(f"{self.name} must be one of {', '.join(self.choices)}, not {value!r}")
        if self.minimum is not None and self.maximum is not None:
            number: float = value  # type: ignore[assignment]
            finite = not isinstance(number, float) or math.isfinite(number)
            if not (finite and self.minimum <= number <= self.maximum):
                raise GeoMagError(
                    f"{self.name} must be between {_number(self.minimum)} and {_number(self.maximum)}, "
                    f"not {_number(number)}"
                )
        return value  # type: ignore[return-value]

    def _kind(self) -> str:
        return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[self.type]


def _number(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    return str(int(x)) if math.isfinite(x) and x.is_integer() else repr(x)


def option(
    default: Value,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    surfaces: tuple[str, ...] = SURFACES,
    answer: bool = False,
) -> Any:
    """A `ParseOptions` field that is also a row of the option table (see the module docstring)."""
    row = {"help": help, "minimum": minimum, "maximum": maximum, "choices": choices}
    return field(default=default, metadata={"option": {**row, "surfaces": surfaces, "answer": answer}})


@dataclass(frozen=True)
class ParseOptions:
    """How to parse one prompt. `granularity` None (or "auto"): the classifier decides; `zoom="auto"`:
    crop2 with mask saliency, none with Eq. 4 attention (docs/magcrop.md measured both)."""

    granularity: str | None = option(
        None,
        "the prompt's granularity; auto (default): the classifier decides",
        choices=("auto", *GRANULARITIES),
    )
    magcrop: bool = option(True, "MagCrop on (default); off: the whole image, resized, goes to the VLM")
    pixel_saliency: str = option(
        "auto",
        "where pixel prompts crop: attention = Eq. 4's gradient-weighted attention map (the paper); "
        "mask = the pixel decoder's mask probability over tiles of the image reduced to 2048 px; auto "
        "(default) = mask for GeoMag checkpoints, attention for plain LLaVA-style VLMs",
        choices=SALIENCIES,
    )
    region_saliency: str = option(
        "auto",
        "where region prompts crop: attention = Eq. 4 (the paper); mask = the pixel decoder's mask "
        "probability for the prompt's target; auto (default) = mask for GeoMag checkpoints, attention "
        "for plain LLaVA-style VLMs",
        choices=SALIENCIES,
    )
    region_skip_below: float = option(
        0.4,
        "the skip rule for region prompts: keep the whole image when the saliency's peakedness is below "
        "this; 0 never skips (default chosen on a validation split, docs/magcrop.md)",
        minimum=0.0,
        maximum=1.0,
    )
    pixel_skip_below: float = option(
        0.25, "the skip rule for pixel prompts (as region_skip_below)", minimum=0.0, maximum=1.0
    )
    candidates: int = option(
        2,
        "mask saliency: candidate crops around the strongest peaks, ranked by the referring mask's "
        "confidence; the best one is answered",
        minimum=1,
        maximum=16,
    )
    zoom: str = option(
        "auto",
        "pixel prompts: the model sees only this MagCrop crop, masks are pasted back; none: the whole "
        "adjusted image (auto: crop2 with mask saliency, none with attention)",
        choices=ZOOMS,
    )
    min_crop: int = option(64, "smallest crop side in original pixels", minimum=1, maximum=16384)
    layer: int = option(
        -1,
        "decoder layer of the PSC attention (-1: the last; the model must have it)",
        minimum=-64,
        maximum=63,
    )
    answer_tokens: int = option(1, "greedy tokens in the PSC loss", minimum=1, maximum=16)
    working_cap: int = option(
        4096,
        "longest side of the adjusted image; larger inputs are adjusted at a reduced scale",
        minimum=100,
        maximum=16384,
    )
    image_side: int | None = option(
        None,
        "image prompts: the side of the resized image (default: the paper's 100, but not below the "
        "VLM's input side, where shrinking saves no token)",
        minimum=8,
        maximum=4096,
    )
    views: str = option(
        "extra",
        "what region / pixel plans show the VLM: extra = the whole image plus the crop as a second view "
        "at the model's input size; canvas = the paper's composed image (crop over D(I))",
        choices=VIEWS,
    )
    arbiter: bool = option(
        True,
        "the whole image is a candidate beside MagCrop's crops and the model's confidence picks (off: "
        "MagCrop's best crop is answered)",
    )
    arbiter_margin: float = option(
        0.0,
        "a crop must beat the whole image's confidence by this to be answered (chosen on validation "
        "splits, docs/magcrop.md)",
        minimum=0.0,
        maximum=1.0,
    )
    max_new_tokens: int = option(
        96, "longest answer in tokens", minimum=1, maximum=MAX_NEW_TOKENS_LIMIT, answer=True
    )
    no_repeat_ngram: int = option(
        0,
        "greedy decoding never repeats an n-gram of this length (0: off) in answers other than "
        "grounded descriptions",
        minimum=0,
        maximum=16,
        answer=True,
    )
    gcg_no_repeat_ngram: int = option(
        2,
        "the same for grounded descriptions (GCG), whose long answers a small LLM loops (0: off; "
        "chosen on a validation split, docs/nano.md)",
        minimum=0,
        maximum=16,
        answer=True,
    )
    # a 100,000-character prompt would ask for an 18 GB attention tensor
    max_prompt_tokens: int = option(
        512, "longest prompt in tokens; a longer one is refused", minimum=1, maximum=MAX_PROMPT_TOKENS_LIMIT
    )
    # the commands add --device themselves (its help differs); a server runs on its own device
    device: str = option("cpu", "torch device: cpu, cuda or cuda:N", surfaces=("python",))

    def __post_init__(self) -> None:
        for row in OPTIONS:
            checked = row.check(getattr(self, row.name))
            if checked != getattr(self, row.name) or type(checked) is not type(getattr(self, row.name)):
                object.__setattr__(self, row.name, checked)  # an int given for a float
        if self.granularity == "auto":
            object.__setattr__(self, "granularity", None)
        self.magcrop_config()  # MagCrop's own checks too

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ParseOptions:
        """Options from a JSON-like dict (a server request); unknown keys and wrong types are errors
        (an int is taken where a float is meant). None leaves an option at its default."""
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise GeoMagError(f"unknown option(s): {', '.join(unknown)}; known: {', '.join(sorted(BY_NAME))}")
        return cls(**{name: BY_NAME[name].check(v) for name, v in values.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> ParseOptions:
        """A copy with `changes` (None values ignored), checked again."""
        unknown = sorted(set(changes) - set(BY_NAME))
        if unknown:
            raise GeoMagError(f"unknown option(s): {', '.join(unknown)}; known: {', '.join(sorted(BY_NAME))}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def magcrop_config(self) -> Any:
        """MagCrop's settings: every field `MagCropConfig` shares with these options."""
        from geomag.magcrop import MagCropConfig  # torch: only when a parse is set up

        shared = {f.name for f in fields(MagCropConfig)} & set(BY_NAME)
        return MagCropConfig(**{name: getattr(self, name) for name in shared})

    def zoom_for(self, pixel_saliency: str) -> str | None:
        """The crop a pixel plan's model sees ("auto" resolved for the saliency in use), or None."""
        zoom = self.zoom if self.zoom != "auto" else ("crop2" if pixel_saliency == "mask" else "none")
        return None if zoom == "none" else zoom


def _rows() -> tuple[Option, ...]:
    hints = typing.get_type_hints(ParseOptions)
    rows = []
    for f in fields(ParseOptions):
        kinds = [t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None)]
        rows.append(
            Option(
                name=f.name,
                type=kinds[0],
                default=f.default,  # type: ignore[arg-type]
                nullable=type(None) in typing.get_args(hints[f.name]),
                **f.metadata["option"],
            )
        )
    return tuple(rows)


OPTIONS: tuple[Option, ...] = _rows()
BY_NAME: dict[str, Option] = {row.name: row for row in OPTIONS}
# the JSON type of each option (kept for callers of the old name)
FIELD_TYPES: dict[str, type] = {row.name: row.type for row in OPTIONS}


def options_markdown(surface: str = "server") -> str:
    """The table of the options offered on `surface`, as docs/serve.md shows it (a test compares)."""
    lines = ["| field | type | default | values | what |", "|---|---|---|---|---|"]
    for row in OPTIONS:
        if surface not in row.surfaces:
            continue
        default = "auto" if row.default is None else str(row.default).lower()
        kind = "boolean" if row.type is bool else {int: "integer", float: "number", str: "string"}[row.type]
        lines.append(f"| `{row.name}` | {kind} | {default} | {row.bounds_text()} | {row.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m geomag.options: the docs table
    sys.stdout.write(options_markdown())
