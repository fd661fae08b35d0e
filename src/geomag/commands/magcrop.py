"""`geomag magcrop IMAGE --prompt "..." --out DIR`: the MagCrop-adjusted image and what it was made of.

Writes into DIR: adjusted.png (what the VLM would see before its own resize), boxes.png (the crops
drawn on the original, downscaled for large images), heatmap_crop1.png / heatmap_crop2.png (PSC
heatmaps over the view the VLM saw) and magcrop.json (boxes in original pixels, scales, timings).
Everything is written to a temporary folder first and moved into place at the end, so a failure
leaves no partial output; an existing non-empty DIR is refused unless --overwrite.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from geomag.commands.geo_options import add_geo_arguments
from geomag.device import DEVICE_HELP
from geomag.errors import GeoMagError
from geomag.outputs import check_out_dir, staged_output

PREVIEW_MAX = 2048  # longest side of boxes.png
HEATMAP_MAX = 1024  # longest side of the heatmap overlays
OUTPUT_FILES = ("adjusted.png", "boxes.png", "heatmap_crop1.png", "heatmap_crop2.png", "magcrop.json")
OUTPUT_FILES += ("boxes.geojson",)  # with --geojson / --wgs84


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "magcrop",
        help="MagCrop an image for a prompt: TMRA resolution plan + PSC attention crops",
        description=(
            "Adjust IMAGE for PROMPT as GeoMag's MagCrop does: image granularity -> 100x100; region -> "
            "the PSC crop at full detail over a 4x-degraded image; pixel -> a second, smaller crop inside "
            "the first, at full detail, over 4x/16x-degraded surroundings. Region and pixel granularity "
            "need a VLM to find the crops (--model; default: the shipped GeoMag-nano), unless you give them with --box."
        ),
    )
    p.add_argument("image", help="PNG / JPEG / TIFF / GeoTIFF")
    p.add_argument("--prompt", required=True, help="the question or instruction")
    p.add_argument(
        "--granularity",
        choices=["image", "region", "pixel"],
        default=None,
        help="resolution plan (default: ask the granularity classifier)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="GeoMag checkpoint, LLaVA-style VLM folder or cached hub id (e.g. llava-hf/llava-1.5-7b-hf); "
        "default for region/pixel: the shipped GeoMag-nano",
    )
    p.add_argument(
        "--box",
        action="append",
        default=None,
        metavar="X0,Y0,X1,Y1",
        help="give a crop instead of searching it (original pixels); twice for pixel plans: crop1, crop2",
    )
    p.add_argument("--min-crop", type=int, default=64, help="smallest crop side in original pixels (64)")
    p.add_argument("--layer", type=int, default=-1, help="decoder layer of the PSC attention (-1: last)")
    p.add_argument(
        "--working-cap",
        type=int,
        default=4096,
        help="longest side of the adjusted image; larger inputs are adjusted at a reduced scale (4096)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    add_psc_arguments(p)
    add_geo_arguments(p, masks=False)
    p.set_defaults(func=run)


def add_psc_arguments(p: argparse.ArgumentParser, saliency: str = "attention", candidates: int = 1) -> None:
    """The options of where PSC looks for pixel plans (shared by magcrop, parse and eval)."""
    g = p.add_argument_group("PSC for pixel prompts")
    g.add_argument(
        "--pixel-saliency",
        choices=["attention", "mask"],
        default=saliency,
        help="attention: Eq. 4's gradient-weighted attention map (the paper); mask: the pixel "
        "decoder's mask probability over tiles of the image reduced to 2048 px (GeoMag checkpoints; meant for small "
        f"targets in large images) (default {saliency})",
    )
    g.add_argument(
        "--candidates",
        type=int,
        default=candidates,
        help=f"mask saliency: candidate crops around the strongest peaks; parse answers the best-ranked one "
        f"(default {candidates})",
    )


def psc_config(args: argparse.Namespace, **settings: Any) -> Any:
    """A MagCropConfig from add_psc_arguments' options (plus `settings`)."""
    from geomag.magcrop import MagCropConfig

    if args.candidates < 1:
        raise GeoMagError(f"--candidates must be at least 1, got {args.candidates}")
    return MagCropConfig(pixel_saliency=args.pixel_saliency, candidates=args.candidates, **settings)


def load_any_vlm(model: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """(VLM, GeoMagModel or None) on `device`: a GeoMag checkpoint's VLM (its LoRA included) and the
    model itself, or a plain LLaVA-style folder / hub id's VLM."""
    from geomag.model.geomag import GeoMagModel, is_checkpoint
    from geomag.model.vlm import VLM

    if is_checkpoint(model):
        geomag = GeoMagModel.from_pretrained(model, device=device)
        return geomag.vlm, geomag
    return VLM.from_pretrained(model).to(device), None


def _preview_size(size: tuple[int, int], longest: int = PREVIEW_MAX) -> tuple[int, int]:
    w, h = size
    s = min(1.0, longest / max(w, h))
    return max(1, round(w * s)), max(1, round(h * s))


def run(args: argparse.Namespace) -> int:
    from geomag.device import torch_device
    from geomag.imaging import Box, draw_boxes, overlay_heatmap

    t_start = time.perf_counter()
    image_path = Path(args.image)
    out = Path(args.out)
    if not args.prompt or not args.prompt.strip():
        raise GeoMagError("--prompt is empty")
    if args.min_crop < 1:
        raise GeoMagError(f"--min-crop must be at least 1 pixel, got {args.min_crop}")
    if args.working_cap < 100:
        raise GeoMagError(f"--working-cap must be at least 100 pixels, got {args.working_cap}")
    torch_device(args.device)
    check_out_dir(out, args.overwrite, [image_path], OUTPUT_FILES)
    boxes = [Box.parse(b) for b in (args.box or [])]
    if len(boxes) > 2:
        raise GeoMagError("--box takes at most two boxes (crop1, then crop2 for pixel plans)")

    from geomag.geoio import open_source

    source = open_source(image_path, bands=args.bands, nodata=args.nodata)
    if args.geojson or args.wgs84:
        from geomag.geoio import check_geo_outputs

        check_geo_outputs(source, wgs84=args.wgs84, warn=False)  # --wgs84 without a CRS fails before any work
    width, height = source.size
    if width < 1 or height < 1:
        raise GeoMagError(f"{image_path} has zero size ({width}x{height})")
    for name, box in zip(("crop1", "crop2"), boxes, strict=False):
        try:
            box.check_inside(width, height)
        except GeoMagError as exc:
            raise GeoMagError(f"--box {name}: {exc}") from None

    from geomag.magcrop import MagCrop

    config = psc_config(args, min_crop=args.min_crop, layer=args.layer, working_cap=args.working_cap)
    granularity = args.granularity
    magcrop = MagCrop(None, config)
    if granularity is None:
        granularity = magcrop.granularity_of(args.prompt)
    needed = {"image": 0, "region": 1, "pixel": 2}[granularity]
    if boxes and len(boxes) != needed:
        raise GeoMagError(f"a {granularity} plan takes {needed} --box value(s), got {len(boxes)}")
    model = args.model
    if model is None and needed and not boxes:
        from geomag.train.nano import shipped_checkpoint

        model = shipped_checkpoint()
        if model is None:
            raise GeoMagError(
                f"{granularity} granularity needs a VLM to find its crops (PSC): pass --model ID_OR_PATH "
                "(a GeoMag checkpoint, a LLaVA-style model folder or a cached hub id; this build ships no "
                "GeoMag-nano weights), or give the crop(s) with --box X0,Y0,X1,Y1"
            )
    if model is not None:
        magcrop.vlm, magcrop.segmenter = load_any_vlm(model, args.device)
    if config.pixel_saliency == "mask" and granularity == "pixel" and not boxes and magcrop.segmenter is None:
        raise GeoMagError("--pixel-saliency mask needs a GeoMag checkpoint (--model), not a plain VLM")
    given = dict(zip(("crop1", "crop2"), boxes, strict=False)) or None
    adjusted, plan = magcrop.adjust(source, args.prompt, granularity, boxes=given)
    if magcrop.vlm is not None and not plan.heatmaps:  # show where the model looks, even without crops
        t0 = time.perf_counter()
        plan.heatmaps["crop1"] = magcrop.heatmap(source, args.prompt)
        plan.timings["heatmap_preview"] = time.perf_counter() - t0

    with staged_output(out, prefix="geomag-magcrop-") as staged:
        files = {"adjusted": "adjusted.png", "boxes": "boxes.png"}
        adjusted.save(staged / "adjusted.png")
        preview_size = _preview_size((width, height))
        preview = source.read(None, preview_size)
        scale = (preview_size[0] / width, preview_size[1] / height)
        draw_boxes(preview, plan.boxes, scale).save(staged / "boxes.png")
        for name, heat in plan.heatmaps.items():
            region = plan.boxes.get("crop1") if name == "crop2" else None
            area = (width, height) if region is None else (region.width, region.height)
            view = source.read(region, _preview_size(area, HEATMAP_MAX))
            overlay_heatmap(view, heat).save(staged / f"heatmap_{name}.png")
            files[f"heatmap_{name}"] = f"heatmap_{name}.png"
        if args.geojson or args.wgs84:
            from geomag.geoio import source_boxes_geojson

            fc = source_boxes_geojson(plan.boxes, source, wgs84=args.wgs84)
            (staged / "boxes.geojson").write_text(json.dumps(fc))
            files["geojson"] = "boxes.geojson"
        plan.timings["cli_total"] = time.perf_counter() - t_start
        record = {
            "image": str(image_path),
            "prompt": args.prompt,
            "model": None if model is None else str(model),
            "min_crop": args.min_crop,
            "layer": args.layer,
            **plan.to_dict(),
            "files": {**files, "json": "magcrop.json"},
        }
        (staged / "magcrop.json").write_text(json.dumps(record, indent=2))
    print(
        f"{granularity}: adjusted {plan.adjusted_size[0]}x{plan.adjusted_size[1]}, "
        f"boxes {json.dumps({k: b.to_list() for k, b in plan.boxes.items()})}, "
        f"{plan.timings['total']:.2f} s -> {out}"
    )
    return 0
