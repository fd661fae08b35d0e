"""`geomag parse IMAGE PROMPT`: GeoMag's main job, a thin layer over `geomag.api.parse_to_folder`.

Writes result.json (text, granularity, boxes, timings), one PNG per mask, overlay.png and, for
GeoTIFF input, optional georeferenced masks / GeoJSON. With `--server URL` the image is uploaded to a
`geomag serve` process (this machine or another) that has everything loaded; the answer comes back
and the same files are written here (`geomag.client`).
"""

from __future__ import annotations

import argparse
import os
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
    p.add_argument(
        "image",
        help="PNG / JPEG / TIFF / GeoTIFF, or a remote raster (a COG): https://... or s3://bucket/key "
        "(read by window with range requests; credentials as GDAL takes them, docs/batch.md)",
    )
    p.add_argument("prompt", help="the question or request")
    p.add_argument(
        "--model",
        help="nano (default), a GeoMag checkpoint folder or a LLaVA-style VLM; with --server: the "
        "server's model (checked)",
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
        help="upload the image to a `geomag serve` process (e.g. http://127.0.0.1:8765), which has "
        "everything loaded already, and write its answer here",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("GEOMAG_TOKEN"),
        help="with --server: the server's --token (default: $GEOMAG_TOKEN)",
    )
    add_geo_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t_start = getattr(args, "t_start", None) or time.perf_counter()
    outputs = {
        "geojson": args.geojson,
        "wgs84": args.wgs84,
        "mask_geotiff": args.mask_geotiff,
        "overwrite": args.overwrite,
    }
    if args.server:
        from geomag.sources import is_remote

        if is_remote(args.image):
            from geomag.errors import GeoMagError

            raise GeoMagError(
                "--server uploads a local file; parse a remote raster here (without --server), or "
                "send its URL in the server's `url` form field (servers started with --allow-url)"
            )
        # no torch: the client uploads, then writes the server's Result with geomag.writing
        from geomag.client import parse_on_server
        from geomag.writing import OutputOptions, summary_line

        values = option_values(args)
        if args.model is not None:
            values["model"] = args.model
        out = Path(args.out).absolute()
        result = parse_on_server(
            args.server, Path(args.image).absolute(), args.prompt, out, values, OutputOptions(**outputs),
            args.bands, args.nodata, args.token, t_start,
        )  # fmt: skip
        print(summary_line(result, out), end="")
        return 0
    # torch and transformers: imported here, not when the CLI is built
    from geomag.api import OutputOptions, parse_to_folder, summary_line
    from geomag.options import ParseOptions
    from geomag.sources import is_remote

    out = Path(args.out).absolute()
    result = parse_to_folder(
        args.image.strip() if is_remote(args.image) else str(Path(args.image).absolute()),
        args.prompt,
        out,
        model=str(Path(args.model).absolute())
        if args.model and Path(args.model).exists()
        else args.model or "nano",
        options=ParseOptions.from_dict(option_values(args)),
        outputs=OutputOptions(**outputs),
        bands=args.bands,
        nodata=args.nodata,
        t_start=t_start,
    )
    print(summary_line(result, out), end="")
    return 0
