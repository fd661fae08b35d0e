"""The options of a parse as flags, shared by `geomag parse`, `geomag magcrop` and `geomag eval`.

Argparse only (no torch, numpy or rasterio), so building the CLI stays fast; the defaults shown in
`--help` are `ParseOptions`' own, read from `geomag.options` when the options are built (flags left
unset are None here and take the library's default there).
"""

from __future__ import annotations

import argparse

MAGCROP_FLAGS = (
    "pixel_saliency",
    "region_saliency",
    "region_skip_below",
    "pixel_skip_below",
    "candidates",
    "zoom",
    "min_crop",
    "layer",
    "working_cap",
    "image_side",
    "views",
    "arbiter_margin",
    "no_repeat_ngram",
)


def add_parse_arguments(
    p: argparse.ArgumentParser, answer: bool = True, granularity: bool = True, no_magcrop: bool = True
) -> None:
    """--granularity, MagCrop's flags (and --no-magcrop) and, with `answer`, --max-new-tokens."""
    if granularity:
        p.add_argument(
            "--granularity",
            choices=["image", "region", "pixel"],
            help="skip the classifier (default: it decides)",
        )
    g = p.add_argument_group("MagCrop")
    if answer and no_magcrop:
        g.add_argument("--no-magcrop", action="store_true", help="feed the whole image, resized, to the VLM")
    g.add_argument(
        "--pixel-saliency",
        choices=["auto", "attention", "mask"],
        help="where pixel prompts crop: attention = Eq. 4's gradient-weighted attention map (the paper); "
        "mask = the pixel decoder's mask probability over tiles of the image reduced to 2048 px (meant "
        "for small targets in large images); auto (default) = mask for GeoMag checkpoints, attention "
        "for plain LLaVA-style VLMs",
    )
    g.add_argument(
        "--region-saliency",
        choices=["auto", "attention", "mask"],
        help="where region prompts crop: attention = Eq. 4 (the paper); mask = the pixel decoder's mask "
        "probability for the prompt's target; auto (default) = mask for GeoMag checkpoints, attention "
        "for plain LLaVA-style VLMs",
    )
    g.add_argument(
        "--region-skip-below",
        type=float,
        metavar="P",
        help="the skip rule for region prompts: keep the whole image when the saliency's peakedness "
        "(share of its heat inside the crop minus the crop's share of the image) is below P; 0 never "
        "skips (default: chosen on a validation split, docs/magcrop.md)",
    )
    g.add_argument(
        "--pixel-skip-below",
        type=float,
        metavar="P",
        help="the skip rule for pixel prompts (as --region-skip-below)",
    )
    g.add_argument(
        "--candidates",
        type=int,
        help="mask saliency: candidate crops around the strongest peaks, ranked by the referring "
        "mask's confidence; the best one is answered (default 2)",
    )
    g.add_argument(
        "--zoom",
        choices=["auto", "crop1", "crop2", "none"],
        help="pixel prompts: the model sees only this MagCrop crop (at its input size), masks are "
        "pasted back; none: the whole adjusted image (default auto: crop2 with mask saliency, none "
        "with attention)",
    )
    g.add_argument("--min-crop", type=int, help="smallest crop side in original pixels (default 64)")
    g.add_argument("--layer", type=int, help="decoder layer of the PSC attention (default -1: the last)")
    g.add_argument(
        "--working-cap",
        type=int,
        help="longest side of the adjusted image; larger inputs are adjusted at a reduced scale (4096)",
    )
    g.add_argument(
        "--image-side",
        type=int,
        help="image prompts: the side of the resized image (the paper: 100; default: 100, but not "
        "below the VLM's input side, where shrinking saves no token)",
    )
    g.add_argument(
        "--views",
        choices=["extra", "canvas"],
        help="what region / pixel plans show the VLM: extra (default) = the whole image plus the crop as "
        "a second view at the model's input size; canvas = the paper's composed image (crop over D(I))",
    )
    g.add_argument(
        "--no-arbiter",
        action="store_true",
        help="answer MagCrop's best crop; by default the whole image is a candidate too and the model's "
        "confidence picks",
    )
    g.add_argument(
        "--arbiter-margin",
        type=float,
        metavar="M",
        help="a crop must beat the whole image's confidence by M to be answered (default: chosen on "
        "validation splits, docs/magcrop.md)",
    )
    if answer:
        p.add_argument("--max-new-tokens", type=int, help="longest answer in tokens (default 96)")
        p.add_argument(
            "--no-repeat-ngram",
            type=int,
            metavar="N",
            help="greedy decoding never repeats an N-gram (0 = off; long answers of a small LLM loop)",
        )


def option_values(args: argparse.Namespace) -> dict[str, object]:
    """The ParseOptions fields the flags set (unset flags are left to the library's defaults)."""
    values: dict[str, object] = {name: getattr(args, name, None) for name in MAGCROP_FLAGS}
    values["granularity"] = getattr(args, "granularity", None)
    values["max_new_tokens"] = getattr(args, "max_new_tokens", None)
    values["device"] = getattr(args, "device", None)
    if getattr(args, "no_magcrop", False):
        values["magcrop"] = False
    if getattr(args, "no_arbiter", False):
        values["arbiter"] = False
    return values
