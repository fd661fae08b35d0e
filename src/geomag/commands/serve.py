"""`geomag serve`: GeoMag as an HTTP API with a demo page (`geomag.serve`), the model loaded once."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from geomag import interrupts
from geomag.device import DEVICE_HELP

HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="GeoMag as an HTTP API (OpenAPI at /docs) with a demo page at /; `geomag parse --server URL` uses it",
        description="Load the granularity classifier and a GeoMag checkpoint once and serve POST /v1/parse "
        "(multipart image upload + prompt + options), /v1/classify, /v1/models, /health, the OpenAPI "
        f"description at /docs and a demo page at /. Listens on {HOST} unless --host says otherwise "
        "(then --token is required). One model worker runs jobs one at a time behind a bounded queue.",
    )
    p.add_argument(
        "--model", default="nano", help="model to serve: nano (default) or a GeoMag checkpoint folder"
    )
    p.add_argument("--host", default=HOST, help=f"address to listen on (default {HOST}: this machine only)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any free)"
    )
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument(
        "--token",
        default=os.environ.get("GEOMAG_TOKEN"),
        help="require `Authorization: Bearer TOKEN` on /v1 routes (default: $GEOMAG_TOKEN); needed with --host",
    )
    p.add_argument(
        "--cors",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages of ORIGIN (repeatable)",
    )
    p.add_argument(
        "--allow-dir", metavar="DIR", help="let requests name image files inside DIR on this machine ('path')"
    )
    p.add_argument(
        "--allow-url",
        action="append",
        default=[],
        metavar="PREFIX",
        help="let requests name remote rasters ('url') under PREFIX, e.g. https://data.example.org/cogs/ "
        "or s3://bucket/scenes/ (repeatable; read with the server's GDAL / AWS credentials)",
    )
    g = p.add_argument_group("limits (each answered with a clear 4xx error)")
    g.add_argument(
        "--max-upload-mb", metavar="MB", type=float, default=256, help="request body size (default 256)"
    )
    g.add_argument(
        "--max-pixels",
        metavar="MP",
        type=float,
        default=120,
        help="megapixels of a PNG/JPEG, read from its header (default 120)",
    )
    g.add_argument(
        "--max-prompt-chars", metavar="N", type=int, default=2000, help="prompt length (default 2000)"
    )
    g.add_argument(
        "--max-new-tokens",
        metavar="N",
        type=int,
        default=256,
        help="largest max_new_tokens a request may ask (256)",
    )
    g.add_argument(
        "--max-candidates", metavar="N", type=int, default=4, help="largest candidates a request may ask (4)"
    )
    g.add_argument(
        "--max-working-cap",
        metavar="PX",
        type=int,
        default=8192,
        help="largest working_cap a request may ask (8192)",
    )
    g.add_argument(
        "--queue",
        metavar="N",
        type=int,
        default=8,
        help="jobs waiting behind the running one; more get 503 (8)",
    )
    g.add_argument(
        "--job-timeout",
        metavar="S",
        type=float,
        default=120,
        help="seconds a job may take, queue included (120)",
    )
    g.add_argument(
        "--upload-timeout",
        metavar="S",
        type=float,
        default=30,
        help="seconds a client may pause while uploading (30)",
    )
    g.add_argument(
        "--max-connections",
        metavar="N",
        type=int,
        default=64,
        help="requests handled at once (/health apart); more get 503 (64)",
    )
    g.add_argument(
        "--max-raster-mp",
        metavar="M",
        type=float,
        default=1000,
        help="a TIFF upload's width x height x bands in millions, read from its header (1000)",
    )
    g.add_argument(
        "--header-timeout",
        metavar="S",
        type=float,
        default=10,
        help="seconds a connection has to send a request's line and headers; then it is closed (10)",
    )
    g.add_argument(
        "--max-slow-per-client",
        metavar="N",
        type=int,
        default=16,
        help="connections of one address still sending their headers; more are closed (16)",
    )
    g.add_argument(
        "--max-slow",
        metavar="N",
        type=int,
        default=512,
        help="connections of all addresses still sending their headers; more are closed (512)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # fastapi, uvicorn, torch and transformers: imported here, not when the CLI is built
    from pathlib import Path

    from geomag.device import torch_device
    from geomag.errors import GeoMagError
    from geomag.model.registry import model_key
    from geomag.serve.app import ServeSettings, create_app, default_examples
    from geomag.serve.limits import MB, ServeLimits
    from geomag.serve.runner import bind, make_server, url_of
    from geomag.serve.security import check_exposure
    from geomag.serve.worker import start_worker

    check_exposure(args.host, args.token)
    limits = ServeLimits(
        upload_bytes=int(args.max_upload_mb * MB),
        decoded_pixels=int(args.max_pixels * 1e6),
        prompt_chars=args.max_prompt_chars,
        max_new_tokens=args.max_new_tokens,
        candidates=args.max_candidates,
        working_cap=args.max_working_cap,
        queue=args.queue,
        job_timeout=args.job_timeout,
        upload_timeout=args.upload_timeout,
        connections=args.max_connections,
        raster_samples=int(args.max_raster_mp * 1e6),
        header_timeout=args.header_timeout,
        slow_per_client=args.max_slow_per_client,
        slow_total=args.max_slow,
    )
    allow_dir = None
    if args.allow_dir:
        allow_dir = Path(args.allow_dir).resolve()
        if not allow_dir.is_dir():
            raise GeoMagError(f"--allow-dir {args.allow_dir} is not a folder")
    model = model_key(args.model)
    device = str(torch_device(args.device))
    sock = bind(args.host, args.port)
    t = time.perf_counter()

    try:
        worker = start_worker(model, device, max_waiting=limits.queue)
    except BaseException:
        sock.close()
        raise
    settings = ServeSettings(
        model=model,
        device=device,
        limits=limits,
        token=args.token,
        cors=tuple(args.cors),
        allow_dir=allow_dir,
        allow_urls=tuple(args.allow_url),
        examples=default_examples(),
    )
    server = make_server(create_app(settings, worker), limits)
    url = url_of(sock)
    print(
        f"GeoMag server at {url} ({model} on {device}, loaded in {time.perf_counter() - t:.1f} s); "
        "Ctrl+C stops it"
    )
    print(f"  demo page: {url}/   API: {url}/docs")
    print(f"  geomag parse IMAGE PROMPT --server {url}", flush=True)
    # uvicorn shuts down gracefully on SIGINT / SIGTERM, then re-raises the signal: both end here, so
    # the cleanup below and the removal of uploads still in flight (geomag.serve.uploads) run
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, SystemExit):
        interrupts.handled()  # Ctrl+C is how a server is stopped: a normal end
    finally:
        sock.close()
        worker.stop()
    print("geomag serve: stopped", file=sys.stderr)
    return 0
