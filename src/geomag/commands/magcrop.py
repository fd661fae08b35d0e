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

from geomag.commands.geo_options import add_geo_arguments
from geomag.commands.parse_options import add_parse_arguments, option_values
from geomag.device import DEVICE_HELP
from geomag.errors import GeoMagError
from geomag.outputs import check_output, staged_output

PREVIEW_MAX = 2048  # longest side of boxes.png
HEATMAP_MAX = 1024  # longest side of the heatmap overlays


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
        "--model",
        default=None,
        help="nano (the default when crops must be found), a GeoMag checkpoint, a LLaVA-style VLM folder or a cached hub id (e.g. "
        "llava-hf/llava-1.5-7b-hf): finds the crops of region and pixel plans",
    )
    add_parse_arguments(p, answer=False)
    p.add_argument(
        "--box",
        action="append",
        default=None,
        metavar="X0,Y0,X1,Y1",
        help="give a crop instead of searching it (original pixels); twice for pixel plans: crop1, crop2",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    p.add_argument("--device", help=DEVICE_HELP)
    add_geo_arguments(p, masks=False)
    p.set_defaults(func=run)


def _preview_size(size: tuple[int, int], longest: int = PREVIEW_MAX) -> tuple[int, int]:
    w, h = size
    s = min(1.0, longest / max(w, h))
    return max(1, round(w * s)), max(1, round(h * s))


def run(args: argparse.Namespace) -> int:
    # numpy, torch and transformers: imported here, not when the CLI is built (`geomag --help` stays fast)
    from geomag.api import OutputOptions, load_predictor, open_image
    from geomag.device import torch_device
    from geomag.imaging import Box, draw_boxes, overlay_heatmap
    from geomag.magcrop import MagCrop
    from geomag.model.registry import model_key
    from geomag.options import ParseOptions
    from geomag.predictor import classify_prompt

    t_start = time.perf_counter()
    image_path = Path(args.image)
    out = Path(args.out)
    if not args.prompt or not args.prompt.strip():
        raise GeoMagError("--prompt is empty")
    options = ParseOptions().with_(**option_values(args))
    torch_device(options.device)
    check_output(out, args.overwrite, [image_path])
    boxes = [Box.parse(b) for b in (args.box or [])]
    if len(boxes) > 2:
        raise GeoMagError("--box takes at most two boxes (crop1, then crop2 for pixel plans)")
    # --wgs84 without a CRS fails here, before any work; boxes.geojson warns of a missing CRS itself
    source = open_image(image_path, args.bands, args.nodata, OutputOptions(wgs84=args.wgs84))
    width, height = source.size
    for name, box in zip(("crop1", "crop2"), boxes, strict=False):
        try:
            box.check_inside(width, height)
        except GeoMagError as exc:
            raise GeoMagError(f"--box {name}: {exc}") from None
    granularity = options.granularity or classify_prompt(args.prompt)[0]
    needed = {"image": 0, "region": 1, "pixel": 2}[granularity]
    if boxes and len(boxes) != needed:
        raise GeoMagError(f"a {granularity} plan takes {needed} --box value(s), got {len(boxes)}")
    given = dict(zip(("crop1", "crop2"), boxes, strict=False)) or None
    model = None
    if args.model is not None or (needed and not boxes):  # PSC needs the model; given boxes do not
        model = model_key(args.model or "nano")
        predictor = load_predictor(model, options.device)
        predictor.set_image(source)
        magcrop = predictor.magcrop(options)
        adjusted, plan = predictor.plans(args.prompt, granularity, options, boxes=given)[0]
    else:
        magcrop = MagCrop(None, options.magcrop_config())
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
            from geomag.geoio import write_source_boxes

            # boxes.geojson (RFC 7946) on the map; an image without a CRS: vectors.gpkg in pixels
            files["geojson"] = write_source_boxes(plan.boxes, source, staged, wgs84=args.wgs84)
        plan.timings["cli_total"] = time.perf_counter() - t_start
        record = {
            "image": str(image_path),
            "prompt": args.prompt,
            "model": model,
            "min_crop": options.min_crop,
            "layer": options.layer,
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
