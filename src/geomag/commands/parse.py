"""`geomag parse IMAGE PROMPT`: GeoMag's main job, a thin layer over `geomag.api.parse_to_folder`.

Writes result.json (text, granularity, boxes, timings), one PNG per mask, overlay.png and, for
GeoTIFF input, optional georeferenced masks / GeoJSON. With `--server URL` a `geomag serve` process
that has everything loaded runs the same job.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from geomag.commands.geo_options import add_geo_arguments
from geomag.commands.parse_options import add_parse_arguments, option_values
from geomag.device import DEVICE_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parse",
        help="answer a prompt about an image, with masks for pixel-level answers (the main job)",
        description="Classify the prompt's granularity, adjust the image with MagCrop, answer with the "
        "VLM and decode one mask per [SEG]. Default model: the GeoMag-nano checkpoint shipped in the "
        "package (`--model nano`).",
    )
    p.add_argument("image", help="PNG / JPEG / TIFF / GeoTIFF")
    p.add_argument("prompt", help="the question or request")
    p.add_argument(
        "--model", default="nano", help="nano (default), a GeoMag checkpoint folder or a LLaVA-style VLM"
    )
    add_parse_arguments(p)
    p.add_argument("--device", help=DEVICE_HELP + "; with --server: the server's device")
    p.add_argument("--out", default="out", help="output folder (default ./out)")
    p.add_argument(
        "--overwrite", action="store_true", help="allow writing into a non-empty --out (files GeoMag wrote)"
    )
    p.add_argument(
        "--server",
        metavar="URL",
        help="run the job in a `geomag serve` process on this machine (e.g. http://127.0.0.1:8765), "
        "which has everything loaded already",
    )
    add_geo_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t_start = getattr(args, "t_start", None) or time.perf_counter()
    job = {
        "image": str(Path(args.image).absolute()),
        "prompt": args.prompt,
        "out": str(Path(args.out).absolute()),
        # a folder the server finds from its own working directory; a name or hub id as given
        "model": str(Path(args.model).absolute()) if Path(args.model).exists() else args.model,
        "options": option_values(args),
        "outputs": {
            "geojson": args.geojson,
            "wgs84": args.wgs84,
            "mask_geotiff": args.mask_geotiff,
            "overwrite": args.overwrite,
        },
        "bands": args.bands,
        "nodata": args.nodata,
    }
    if args.server:
        from geomag.client import request  # the standard library only: the client starts in ~0.2 s

        print(request(args.server, "parse", job), end="")
        return 0
    from geomag.server import run_parse_job  # torch and transformers: not for a --server client

    print(run_parse_job(job, t_start=t_start), end="")
    return 0
