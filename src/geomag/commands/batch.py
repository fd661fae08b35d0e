"""`geomag batch SOURCE --out DIR`: many images (or windows of a huge raster) and prompts in one
resumable run, in this process or on a Ray cluster (`geomag.batch`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from geomag.commands.parse_options import add_parse_arguments, option_values
from geomag.device import DEVICE_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="parse a folder, a glob, a JSONL/CSV of jobs or a huge raster's windows; resumable, local or on Ray",
        description="Run every (image, prompt) job of SOURCE and write DIR/results.jsonl (one line per "
        "job), the masks of each job, a merged vector layer (georeferenced inputs), COCO JSON (the "
        "other images) and, with --tile, one mask mosaic per raster and prompt. A rerun skips the "
        "jobs already done; Ctrl+C is safe. docs/batch.md has the details.",
    )
    p.add_argument(
        "source",
        help="a folder of images, a glob ('scenes/*.tif', quoted), one image, a remote raster "
        "(https://... or s3://bucket/key, read by window), a .jsonl/.csv of jobs (fields image, "
        "prompt[, granularity]; paths relative to the file), or with --asset a STAC Item, "
        "ItemCollection, Catalog (JSON file or URL) or STAC API URL",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created; a rerun resumes in it)"
    )
    p.add_argument("--prompt", action="append", default=[], help="a prompt for every image (repeatable)")
    p.add_argument("--prompts", metavar="FILE", help="a file of prompts for every image, one per line")
    p.add_argument(
        "--model", default="nano", help="nano (default), a GeoMag checkpoint folder or a registered preset"
    )
    add_parse_arguments(p)
    p.add_argument("--device", help=DEVICE_HELP + "; with --gpus-per-worker the default is cuda")
    g = p.add_argument_group("huge rasters and inputs")
    g.add_argument(
        "--tile", type=int, help="parse rasters larger than this in windows of TILE px (e.g. 2048), merged"
    )
    g.add_argument("--overlap", type=int, help="px shared by neighbouring windows (default TILE/8)")
    g.add_argument("--bands", default=None, help="1-based bands to use as RGB (or one for grey), e.g. 3,2,1")
    g.add_argument("--nodata", type=float, default=None, help="nodata value (default: the file's own)")
    s = p.add_argument_group("STAC sources")
    s.add_argument(
        "--asset", metavar="KEY", help="SOURCE is STAC: parse this asset of each item (e.g. visual)"
    )
    s.add_argument("--bbox", metavar="W,S,E,N", help="STAC: only items whose bbox meets this one (degrees)")
    s.add_argument(
        "--datetime",
        metavar="TIME",
        help="STAC: only items of this time or interval, e.g. 2024-01-01/2024-06-30",
    )
    s.add_argument(
        "--collection", action="append", default=[], help="STAC API search: a collection (repeatable)"
    )
    s.add_argument("--max-items", type=int, help="STAC API search: at most this many items (default 1000)")
    o = p.add_argument_group("outputs")
    o.add_argument(
        "--vector", choices=["gpkg", "geojson"], default="gpkg", help="merged vector layer format (gpkg)"
    )
    o.add_argument(
        "--overwrite",
        action="store_true",
        help="start again: drop this folder's earlier results (needed when the settings changed)",
    )
    o.add_argument("--retry-failed", action="store_true", help="run the jobs that failed before again")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    e = p.add_argument_group("engine")
    e.add_argument("--engine", choices=["local", "ray"], default="local", help="local (default) or ray")
    e.add_argument("--workers", type=int, help="ray: actors, each with the model loaded once (default 1)")
    e.add_argument("--gpus-per-worker", type=float, help="ray: GPUs per actor (default 0: CPU)")
    e.add_argument("--cpus-per-worker", type=float, help="ray: CPUs per actor (default 1)")
    e.add_argument("--batch-size", type=int, help="ray: jobs per batch an actor takes (default 1)")
    e.add_argument(
        "--address", help="ray: join this cluster (e.g. auto, ray://head:10001); default: start a local one"
    )
    e.add_argument("--num-cpus", type=int, help="ray: CPUs of the local cluster it starts (default: all)")
    p.set_defaults(func=run)


RAY_FLAGS = ("workers", "gpus_per_worker", "cpus_per_worker", "batch_size", "address", "num_cpus")


def run(args: argparse.Namespace) -> int:
    import functools

    # numpy, rasterio, pystac, torch (in the engines): imported here, not when the CLI is built
    from geomag.batch.catalog import StacQuery, batch_requests
    from geomag.batch.engines import RayOptions, import_ray, run_local, run_ray
    from geomag.batch.jobs import BatchSettings, make_jobs, read_prompts
    from geomag.batch.run import prepare_out, run_batch
    from geomag.errors import GeoMagError
    from geomag.options import ParseOptions

    ray_values = {k: getattr(args, k) for k in RAY_FLAGS if getattr(args, k) is not None}
    if args.engine == "local" and ray_values:
        flags = ", ".join("--" + k.replace("_", "-") for k in ray_values)
        raise GeoMagError(f"{flags}: for --engine ray only")
    for name in ("workers", "batch_size", "num_cpus"):
        if ray_values.get(name, 1) < 1:
            raise GeoMagError(f"--{name.replace('_', '-')} must be at least 1")
    if ray_values.get("gpus_per_worker", 0) < 0 or ray_values.get("cpus_per_worker", 1) <= 0:
        raise GeoMagError("--gpus-per-worker must be >= 0 and --cpus-per-worker > 0")
    if args.engine == "ray":
        import_ray()  # the one line on how to install it, before any work
    stac_flags = [f for f in ("bbox", "datetime", "max_items") if getattr(args, f) is not None]
    stac_flags += ["collection"] if args.collection else []
    if args.asset is None and stac_flags:
        raise GeoMagError(f"--{stac_flags[0].replace('_', '-')}: for STAC sources, with --asset KEY")
    stac = (
        None
        if args.asset is None
        else StacQuery.parse(args.asset, args.bbox, args.datetime, args.collection, args.max_items)
    )
    prompts = [t.strip() for t in args.prompt if t.strip()]
    if args.prompt and not prompts:
        raise GeoMagError("--prompt is empty")
    if args.prompts:
        prompts += read_prompts(args.prompts)
    values = option_values(args)
    if not values.get("device"):
        values["device"] = "cuda" if ray_values.get("gpus_per_worker") else "cpu"
    options = ParseOptions.from_dict(values)
    overlap = args.overlap
    if args.tile is not None and overlap is None:
        overlap = args.tile // 8
    if args.tile is None and args.overlap is not None:
        raise GeoMagError("--overlap needs --tile")
    if args.tile is not None:
        from geomag.batch.window import tile_grid

        tile_grid((args.tile, args.tile), args.tile, overlap)  # checks --tile and --overlap now
    model = str(Path(args.model).absolute()) if Path(args.model).exists() else args.model
    settings = BatchSettings(
        model=model,
        options=options.to_dict(),
        tile=args.tile,
        overlap=overlap or 0,
        bands=args.bands,
        nodata=args.nodata,
    )
    out = Path(args.out)
    inside = out.resolve()
    # a glob such as 'data/**/*.png' must not pick up the masks of an earlier run in --out
    requests = [
        r
        for r in batch_requests(args.source, prompts, stac)
        if isinstance(r.image, str) or inside not in r.image.resolve().parents
    ]
    if not requests:
        raise GeoMagError(f"SOURCE {args.source} holds no image outside --out {out}")
    jobs = make_jobs(requests, settings)
    prepare_out(out, settings, args.overwrite)
    if args.engine == "ray":
        ray_options = RayOptions(**ray_values)
        engine = functools.partial(run_ray, settings=settings, options=ray_options)
    else:
        engine = functools.partial(run_local, settings=settings)
    summary = run_batch(
        jobs,
        engine,
        out,
        vector=args.vector,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
        settings=settings,
    )
    print(summary.line(out))
    return 130 if summary.interrupted else 0
