"""uvicorn on a socket we bind ourselves: the real port of `--port 0` is known before serving, a
taken port is one clear error, and tests and benchmarks run the same server in a thread.

uvicorn (not the standard library's HTTPServer) serves every connection on one event loop: a
client that stalls mid-body holds only its own connection; `/health` and other requests go on.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from types import TracebackType

import uvicorn
import uvicorn.config
from fastapi import FastAPI

from geomag.errors import GeoMagError
from geomag.serve.limits import ServeLimits
from geomag.serve.protocol import guarded_protocol


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free one)."""
    if not 0 <= port <= 65535:
        raise GeoMagError(f"--port must be between 0 and 65535, not {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(1024)  # slow clients are closed by the protocol, not left in the backlog
    except OSError as exc:
        sock.close()
        raise GeoMagError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def log_config() -> dict:
    """uvicorn's own logging, with the server's "geomag.serve" logger (request ids) beside it."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["geomag.serve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def make_server(app: FastAPI, limits: ServeLimits, quiet: bool = False) -> uvicorn.Server:
    protocol, _ = guarded_protocol(limits)
    config = uvicorn.Config(
        app,
        http=protocol,  # h11 with a head deadline and caps on slow connections (geomag.serve.protocol)
        limit_concurrency=None,  # requests in flight are counted by the app (geomag.serve.guard)
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
        log_config=None if quiet else log_config(),
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        lifespan="off",
    )
    return uvicorn.Server(config)


class BackgroundServer:
    """`with BackgroundServer(app, limits) as url:` the app served on 127.0.0.1 in a thread."""

    def __init__(self, app: FastAPI, limits: ServeLimits, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = bind(host, port)
        self.url = url_of(self._sock)
        self._server = make_server(app, limits, quiet=True)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
