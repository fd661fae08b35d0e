"""`geomag parse IMAGE PROMPT`: GeoMag's main job.

classify granularity -> MagCrop (TMRA + PSC) -> VLM answer -> one mask per [SEG] on the original grid.
Writes result.json (text, granularity, boxes, timings), one PNG per mask, overlay.png and, for
GeoTIFF input, optional georeferenced masks / GeoJSON.
"""

from __future__ import annotations

import argparse
import functools
import re
import time
from pathlib import Path
from typing import Any

from geomag.device import DEVICE_HELP
from geomag.errors import GeoMagError
from geomag.outputs import check_out_dir, staged_output

MAX_PIXELS = 120_000_000  # parse reads the image whole; larger rasters: geomag magcrop or a window
# pixel prompts: where MagCrop crops (docs/magcrop.md; benchmarks/small_objects.py measured both)
PIXEL_SALIENCY, CANDIDATES = "mask", 2
# A grounded description (GCG) describes the whole image: the paper applies no MagCrop to it.
GCG_REQUEST = re.compile(r"(describ|description|caption|analy[sz]|explain).*(mask|segment)", re.I | re.S)


def register(sub: argparse._SubParsersAction) -> None:
    from geomag.commands.geo_options import add_geo_arguments
    from geomag.commands.magcrop import add_psc_arguments

    p = sub.add_parser(
        "parse",
        help="answer a prompt about an image, with masks for pixel-level answers (the main job)",
        description="Classify the prompt's granularity, adjust the image with MagCrop, answer with the "
        "VLM and decode one mask per [SEG]. Default model: the GeoMag-nano checkpoint shipped in the "
        "package (when this build ships one).",
    )
    p.add_argument("image", help="PNG / JPEG / TIFF / GeoTIFF")
    p.add_argument("prompt", help="the question or request")
    p.add_argument("--model", help="GeoMag checkpoint folder (default: the shipped GeoMag-nano)")
    p.add_argument("--granularity", choices=["image", "region", "pixel"], help="skip the classifier")
    p.add_argument("--no-magcrop", action="store_true", help="feed the whole image, resized, to the VLM")
    p.add_argument(
        "--zoom",
        choices=["crop1", "crop2", "none"],
        help="pixel prompts: the model sees only this MagCrop crop (at its input size), masks are pasted "
        "back; none: the whole adjusted image (default: crop2 with mask saliency, none with attention)",
    )
    add_psc_arguments(p, saliency=PIXEL_SALIENCY, candidates=CANDIDATES)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--device", help=DEVICE_HELP + "; with --server: the server's device")
    p.add_argument("--out", default="out", help="output folder (default ./out)")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    p.add_argument(
        "--server",
        metavar="URL",
        help="run the job in a `geomag serve` process on this machine (e.g. http://127.0.0.1:8765), "
        "which has everything loaded already",
    )
    add_geo_arguments(p)
    p.set_defaults(func=run)


def default_model() -> Path:
    from geomag.train.nano import shipped_checkpoint

    path = shipped_checkpoint()
    if path is None:
        raise GeoMagError(
            "this build ships no GeoMag-nano weights yet: pass --model CHECKPOINT_FOLDER "
            "(made by `geomag train nano` or `geomag train model`)"
        )
    return path


def run(args: argparse.Namespace) -> int:
    if args.server:
        from geomag.server import request

        print(request(args.server, "parse", server_args(args)), end="")
    else:
        print(parse_job(args), end="")
    return 0


def server_args(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed arguments as a `geomag serve` job takes them: paths absolute (the server has its own
    working directory), without the handler and the server address."""
    job = {k: v for k, v in vars(args).items() if k not in ("func", "server", "command")}
    for key in ("image", "out", "model"):
        if job.get(key):
            job[key] = str(Path(job[key]).absolute())
    return job


def serve_job(job: dict[str, Any], device: str = "cpu") -> str:
    """`parse_job` for a server request (see `server_args`; the server checked that the client runs
    the same geomag version, so every option is there). A job that names no device runs on `device`,
    the server's."""
    return parse_job(argparse.Namespace(**{**job, "device": job.get("device") or device}))


@functools.lru_cache(maxsize=1)
def load_model(model_dir: Path, device: str = "cpu") -> Any:
    """The checkpoint in `model_dir` on `device`, loaded once per process (a server keeps the last)."""
    from geomag.model.geomag import GeoMagModel

    return GeoMagModel.from_pretrained(model_dir, device=device)


def parse_job(args: argparse.Namespace) -> str:
    """Run one parse as the CLI arguments say; write the outputs; return the text to print."""
    import torch

    from geomag.commands.magcrop import psc_config
    from geomag.device import torch_device
    from geomag.geoio import save_geo_outputs_from_args, source_from_args
    from geomag.imaging import draw_boxes, overlay_masks

    t_start = time.perf_counter()
    if not args.prompt.strip():
        raise GeoMagError("the prompt is empty")
    image_path, out = Path(args.image), Path(args.out)
    config = psc_config(args)
    device = str(torch_device(args.device or "cpu"))
    check_out_dir(out, args.overwrite, [image_path], ["result.json", "overlay.png"])
    model_dir = Path(args.model) if args.model else default_model()
    source = source_from_args(args, image_path)
    width, height = source.size
    if width * height > MAX_PIXELS:
        raise GeoMagError(
            f"{image_path} is {width}x{height}: too large to parse whole; run `geomag magcrop` on it "
            "(windowed reads) or cut a window first"
        )
    image = source.read()

    timings: dict[str, float] = {}
    t = time.perf_counter()
    granularity = args.granularity
    if granularity is None:
        from geomag.granularity import load_classifier

        granularity = load_classifier().predict([args.prompt])[0][0]
    timings["classify"] = time.perf_counter() - t

    t = time.perf_counter()
    model = load_model(model_dir.resolve(), device)
    timings["load"] = time.perf_counter() - t
    magcrop = None
    if not args.no_magcrop and not (granularity == "pixel" and GCG_REQUEST.search(args.prompt)):
        from geomag.magcrop import MagCrop

        magcrop = MagCrop(model.vlm, config, segmenter=model)
    zoom = args.zoom or ("crop2" if config.pixel_saliency == "mask" else "none")
    zoom = None if zoom == "none" else zoom
    with torch.no_grad():
        result = model.parse(
            image,
            args.prompt,
            magcrop=magcrop,
            granularity=granularity,
            max_new_tokens=args.max_new_tokens,
            zoom=zoom,
        )
    result.timings = {**timings, **result.timings}
    pixel_plan = magcrop is not None and granularity == "pixel"
    result.extra.update(
        {
            "image": str(image_path),
            "prompt": args.prompt,
            "model": str(model_dir),
            "magcrop": magcrop is not None,
            "zoom": zoom if pixel_plan else None,
            "pixel_saliency": config.pixel_saliency if pixel_plan else None,
        }
    )

    with staged_output(out, prefix="geomag-parse-") as staged:
        overlay = overlay_masks(image, result.masks) if result.masks else image.copy()
        # zlib level 1: a 4096x2160 overlay writes in ~0.4 s instead of ~2 s at the default level 6
        draw_boxes(overlay, result.boxes).save(staged / "overlay.png", compress_level=1)
        save_geo_outputs_from_args(args, result, source, staged)
        result.timings["total"] = time.perf_counter() - t_start
        result.save(staged)
    return f"{result.text}\n[{granularity}] {len(result.masks)} mask(s), {result.timings['total']:.2f} s -> {out}\n"
