"""`geomag serve`: keep the classifier and a checkpoint loaded for `geomag parse --server URL`."""

from __future__ import annotations

import argparse
import sys
import time

from geomag.client import DEFAULT_PORT, HOST
from geomag.device import DEVICE_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="keep GeoMag loaded so that `geomag parse --server URL` skips the ~5 s of start-up",
        description="Load the granularity classifier and a GeoMag checkpoint once and run `geomag parse "
        f"--server http://{HOST}:PORT` jobs, one at a time, until Ctrl+C. Listens on {HOST} only: "
        "jobs read and write files as the user who started the server. A checkpoint is read once: restart the "
        "server after retraining into the same folder.",
    )
    p.add_argument(
        "--model", default="nano", help="model to preload: nano (default) or a GeoMag checkpoint folder"
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any free)"
    )
    p.add_argument("--device", default="cpu", help=DEVICE_HELP + " (jobs that name none run here)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import functools

    # torch and transformers: imported here, not when the CLI is built (`geomag --help` stays fast)
    from geomag.api import load_predictor
    from geomag.device import torch_device
    from geomag.errors import GeoMagError
    from geomag.model.registry import model_key
    from geomag.server import make_server, run_parse_job

    if not 0 <= args.port <= 65535:
        raise GeoMagError(f"--port must be between 0 and 65535, not {args.port}")
    model = model_key(args.model)
    device = str(torch_device(args.device))
    t = time.perf_counter()
    predictor = load_predictor(model, device)
    predictor.classify("warm-up")  # loads the granularity classifier now, not on the first job
    try:
        job = functools.partial(run_parse_job, device=device)
        server = make_server({"parse": job}, args.port, info={"model": model, "device": device})
    except OSError as exc:
        raise GeoMagError(
            f"cannot listen on {HOST}:{args.port} ({exc.strerror}); pick another --port"
        ) from None
    url = f"http://{HOST}:{server.server_address[1]}"
    print(
        f"GeoMag server at {url} ({model} on {device}, loaded in {time.perf_counter() - t:.1f} s); "
        "Ctrl+C stops it"
    )
    print(f"  geomag parse IMAGE PROMPT --server {url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("geomag serve: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
