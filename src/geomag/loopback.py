"""Loopback HTTP file servers and COGs for tests and benchmarks of remote rasters (127.0.0.1 only).

`FileServer(folder)` serves the files of a folder the way an object store or a CDN serves COGs:
HEAD, GET and single-range `Range: bytes=a-b` requests (206), and counts the body bytes it sent
per file, so a test can say how much of a COG a parse fetched. Its `mode` turns it into the servers
a user meets when something is wrong: one that ignores Range (200 and the whole file), one that
answers 403, one that answers 503 to the first request of each file (a transient error), and one
that stalls (a timeout). A missing file is a 404. Nothing here reaches beyond 127.0.0.1.
`make_cog` writes a Cloud-Optimized GeoTIFF of any size from a real GeoTIFF with GDAL's COG driver.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

MODES = ("range", "no-range", "forbidden", "flaky", "stall")
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
CHUNK = 1 << 16


class FileServer:
    """A threaded HTTP server on 127.0.0.1:<free port> serving `folder`, in a daemon thread.

    `sent[name]` is the body bytes sent for each file, `requests[name]` how many GETs it had;
    `reset()` zeroes both. Use as a context manager (or `start()` / `stop()`)."""

    def __init__(self, folder: str | Path, mode: str = "range", stall_s: float = 5.0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
        self.folder = Path(folder).resolve()
        self.mode = mode
        self.stall_s = stall_s
        self.sent: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._failed: set[str] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.sent.clear()
            self.requests.clear()

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _count(self, name: str, sent: int, request: bool = False) -> None:
        with self._lock:
            self.sent[name] += sent
            self.requests[name] += int(request)

    def _first_failure(self, name: str) -> bool:
        with self._lock:
            if name in self._failed:
                return False
            self._failed.add(name)
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                name = self.path.split("?", 1)[0].lstrip("/")
                path = (server.folder / name).resolve()
                if server.mode == "stall":
                    time.sleep(server.stall_s)
                if server.folder not in path.parents or not path.is_file():
                    return self._status(HTTPStatus.NOT_FOUND)
                if server.mode == "forbidden":
                    return self._status(HTTPStatus.FORBIDDEN)
                if server.mode == "flaky" and self._first_failure(name):
                    return self._status(HTTPStatus.SERVICE_UNAVAILABLE)
                size = path.stat().st_size
                start, end = 0, size - 1
                status = HTTPStatus.OK
                match = RANGE.match(self.headers.get("Range", "").strip())
                if match and server.mode != "no-range":
                    a, b = match.groups()
                    if a:
                        start, end = int(a), min(int(b), size - 1) if b else size - 1
                    elif b:  # the last b bytes
                        start = max(0, size - int(b))
                    if start > end or start >= size:
                        self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = HTTPStatus.PARTIAL_CONTENT
                self.send_response(status)
                if status == HTTPStatus.PARTIAL_CONTENT:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                if server.mode != "no-range":
                    self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "image/tiff")
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                if not body:
                    return
                server._count(name, 0, request=True)
                with path.open("rb") as f:
                    f.seek(start)
                    left = end - start + 1
                    while left > 0:
                        data = f.read(min(CHUNK, left))
                        if not data:
                            break
                        try:
                            self.wfile.write(data)
                        except (BrokenPipeError, ConnectionResetError):
                            return  # the client had what it wanted (GDAL stops a 200 early)
                        server._count(name, len(data))
                        left -= len(data)

            def _first_failure(self, name: str) -> bool:
                return server._first_failure(name)

            def _status(self, status: HTTPStatus) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


def make_cog(
    source: str | Path, dest: str | Path, side: int | None = None, compress: str = "DEFLATE"
) -> Path:
    """A COG (256 px tiles, overviews, `compress`) of the GeoTIFF `source`, resampled (bilinear) to
    side x side pixels on the same footprint when `side` is given; GDAL streams it, never whole."""
    with rasterio.open(source) as src:
        width, height = (side, side) if side else (src.width, src.height)
        transform = src.transform @ Affine.scale(src.width / width, src.height / height)
        with WarpedVRT(
            src, crs=src.crs, transform=transform, width=width, height=height, resampling=Resampling.bilinear
        ) as vrt:
            rasterio.shutil.copy(
                vrt, dest, driver="COG", compress=compress, blocksize=256, overview_resampling="average"
            )
    return Path(dest)
