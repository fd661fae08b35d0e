"""A local GeoMag server, so repeated `geomag parse` commands skip start-up.

A new `geomag parse` process spends ~3 s importing torch and transformers and ~1.5 s loading the
classifier and the checkpoint before it looks at the image. `geomag serve` pays that once and keeps
everything loaded; `geomag parse --server URL` then only sends its parsed arguments (paths made
absolute) and prints what the server's run printed. The server runs the very same `parse` code, one
job at a time, and reads and writes files as the user who started it, so it listens on the loopback
interface only.

Protocol (JSON over HTTP): `GET /health` -> {"geomag": version, "model": folder};
`POST /parse` with the arguments -> 200 {"output": printed text} or 400/500 {"error": message}.
Only the standard library is imported here: the client side must stay fast.
"""

from __future__ import annotations

import json
import sys
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from geomag import __version__
from geomag.errors import GeoMagError

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
Job = Callable[[dict[str, Any]], str]  # parsed arguments -> the text the command prints


def make_server(
    jobs: dict[str, Job], port: int = DEFAULT_PORT, info: dict[str, Any] | None = None
) -> HTTPServer:
    """An HTTP server on the loopback interface that runs `jobs[name]` for `POST /name` (port 0: any
    free port; see `server_address`). Call `serve_forever()`; requests are handled one at a time."""
    health = {"geomag": __version__, **(info or {})}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._reply(200, health)
            else:
                self._reply(404, {"error": f"no such endpoint {self.path}"})

        def do_POST(self) -> None:
            job = jobs.get(self.path.strip("/"))
            if job is None:
                self._reply(404, {"error": f"no such job {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                if request.get("geomag") != __version__:
                    raise GeoMagError(
                        f"the server runs geomag {__version__}, this command is geomag "
                        f"{request.get('geomag')}: restart `geomag serve`"
                    )
                self._reply(200, {"output": job(request.get("args", {}))})
            except GeoMagError as exc:
                self._reply(400, {"error": str(exc)})
            except Exception as exc:  # the server must outlive one failing job; the traceback goes to its log
                traceback.print_exc()
                self._reply(500, {"error": f"the server failed on this job ({type(exc).__name__}: {exc})"})

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            print(f"geomag serve: {format % args}", file=sys.stderr)

    return HTTPServer((HOST, port), Handler)


def request(url: str, job: str, args: dict[str, Any], timeout: float = 3600.0) -> str:
    """Run `job` with `args` on the server at `url`; returns what it printed. Server-side user errors
    and an unreachable server raise GeoMagError."""
    if "://" not in url:  # "127.0.0.1:8765" as `geomag serve` prints it, without the scheme
        url = "http://" + url
    body = json.dumps({"geomag": __version__, "args": args}).encode()
    req = urllib.request.Request(
        url.rstrip("/") + "/" + job, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read())["output"]
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]
        except (ValueError, KeyError):
            message = f"HTTP {exc.code}"
        raise GeoMagError(message) from None
    except (urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GeoMagError(f"no GeoMag server at {url} ({reason}): start one with `geomag serve`") from None
