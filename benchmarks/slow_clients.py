"""Which HTTP server a slowloris cannot stall: N connections that send one header byte every second,
then `/health` asked 5 times (status and seconds) and, after `--wait` seconds, how many of the slow
connections the server has closed. The app is a bare FastAPI `/health` (the HTTP layer alone);
every server is this script's own, on 127.0.0.1 with a free port, for a few seconds.

    python benchmarks/slow_clients.py [--slow 100] [--wait 12] [--servers uvicorn,geomag,hypercorn,granian]

- uvicorn: uvicorn 0.54 as `geomag serve` ran it before (limit_concurrency=64, timeout_keep_alive=5);
- geomag: `geomag.serve.runner.make_server` (uvicorn + geomag.serve.protocol: a 10 s head deadline,
  16 slow connections per client, oldest closed first);
- hypercorn / granian: their defaults plus their own read/header timeouts, when importable (they are
  not dependencies of GeoMag: run this script from a venv that has them to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable

import httpx
from fastapi import FastAPI


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_uvicorn(port: int, guarded: bool) -> Callable[[], None]:
    import uvicorn

    if guarded:
        from geomag.serve.limits import ServeLimits
        from geomag.serve.runner import bind, make_server

        sock = bind("127.0.0.1", port)
        server = make_server(bare_app(), ServeLimits(), quiet=True)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    else:
        config = uvicorn.Config(bare_app(), host="127.0.0.1", port=port, limit_concurrency=64,
                                timeout_keep_alive=5, log_level="warning", lifespan="off")  # fmt: skip
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return stop


def run_hypercorn(port: int) -> Callable[[], None]:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.read_timeout = 10  # seconds without a read (hypercorn has no head deadline)
    config.keep_alive_timeout = 5
    stop_event = threading.Event()
    loop = asyncio.new_event_loop()

    async def main() -> None:
        await serve(bare_app(), config, shutdown_trigger=lambda: asyncio.to_thread(stop_event.wait))  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()

    def stop() -> None:
        stop_event.set()
        thread.join(10)

    return stop


def run_granian(port: int) -> Callable[[], None]:
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import sys; sys.path.insert(0, {here!r}); from granian import Granian;"
        "from granian.constants import Interfaces; from granian.http import HTTP1Settings;"
        f"Granian('slow_clients:bare_app', factory=True, address='127.0.0.1', port={port},"
        " interface=Interfaces.ASGI, workers=1, http1_settings=HTTP1Settings(header_read_timeout=10000)).serve()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def stop() -> None:
        process.terminate()
        process.wait(10)

    return stop


def wait_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def attack(port: int, slow: int, wait: float) -> dict[str, object]:
    sockets = []
    for _ in range(slow):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /health HTTP/1.1\r\nHo")
        sockets.append(s)
    stop = threading.Event()

    def dribble() -> None:
        while not stop.wait(1.0):
            for s in sockets:
                with contextlib.suppress(OSError):
                    s.sendall(b"s")

    threading.Thread(target=dribble, daemon=True).start()
    time.sleep(1.0)
    probes = []
    for _ in range(5):
        t = time.perf_counter()
        try:
            status: int | str = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        probes.append((status, time.perf_counter() - t))
        time.sleep(0.2)
    time.sleep(wait)
    closed = 0
    for s in sockets:
        s.settimeout(0.5)
        try:
            closed += s.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            closed += 1
        except TimeoutError:
            pass
    stop.set()
    for s in sockets:
        s.close()
    return {"probes": probes, "closed": closed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slow", type=int, default=100)
    ap.add_argument(
        "--wait", type=float, default=12.0, help="seconds before counting closed slow connections"
    )
    ap.add_argument("--servers", default="uvicorn,geomag,hypercorn,granian")
    args = ap.parse_args()
    starters = {
        "uvicorn": lambda p: run_uvicorn(p, guarded=False),
        "geomag": lambda p: run_uvicorn(p, guarded=True),
        "hypercorn": run_hypercorn,
        "granian": run_granian,
    }
    print(f"# {args.slow} slow connections (one header byte a second); load average {os.getloadavg()[0]:.1f}")
    print("| server | /health during the attack (status, s) | slow connections closed after "
          f"{args.wait + 2:.0f} s |\n|---|---|---|")  # fmt: skip
    for name in args.servers.split(","):
        port = free_port()
        try:
            stop = starters[name](port)
        except ImportError as exc:
            print(f"| {name} | not installed ({exc.name}) | |")
            continue
        try:
            wait_up(port)
            result = attack(port, args.slow, args.wait)
        finally:
            stop()
        probes = ", ".join(f"{s} {t:.2f}" for s, t in result["probes"])  # type: ignore[union-attr]
        print(f"| {name} | {probes} | {result['closed']} of {args.slow} |")


if __name__ == "__main__":
    main()
