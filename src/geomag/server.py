"""A local GeoMag server, so repeated `geomag parse` commands skip start-up.

A new `geomag parse` process spends ~3 s importing torch and transformers and ~1.5 s loading the
classifier and the checkpoint before it looks at the image. `geomag serve` pays that once and keeps
everything loaded; `geomag parse --server URL` (`geomag.client`) sends its job (image, prompt, output
folder, options) and prints what the server's run printed. Both sides run `run_parse_job`, so a job
gives the same files locally and through the server; the server runs one job at a time and reads
and writes files as the user who started it, so it listens on the loopback interface only.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from geomag import __version__
from geomag.api import OutputOptions, parse_to_folder, summary_line
from geomag.client import DEFAULT_PORT, HOST, JsonValue
from geomag.errors import GeoMagError
from geomag.options import ParseOptions

Job = Callable[[dict[str, JsonValue]], str]  # a job -> the text the command prints
JOB_KEYS = {"image", "prompt", "out", "model", "options", "outputs", "bands", "nodata"}


def run_parse_job(job: dict[str, JsonValue], t_start: float | None = None, device: str | None = None) -> str:
    """One `geomag parse` job (what `geomag.commands.parse` builds from its flags): parse, write the
    outputs, return the line to print. `device`: where a job that names none runs (the server's)."""
    if not isinstance(job, dict) or set(job) - JOB_KEYS or not {"image", "prompt", "out"} <= set(job):
        raise GeoMagError(
            f"a parse job has the keys {', '.join(sorted(JOB_KEYS))} (image, prompt, out required)"
        )
    values = dict(job.get("options") or {})
    if device and not values.get("device"):
        values["device"] = device
    options = ParseOptions.from_dict(values)
    flags = dict(job.get("outputs") or {})
    known = set(OutputOptions.__dataclass_fields__)
    if set(flags) - known or not all(isinstance(v, bool) for v in flags.values()):
        raise GeoMagError(f"outputs are true/false flags among {', '.join(sorted(known))}")
    outputs = OutputOptions(**flags)
    out = str(job["out"])
    result = parse_to_folder(
        str(job["image"]),
        str(job["prompt"]),
        out,
        model=str(job.get("model") or "nano"),
        options=options,
        outputs=outputs,
        bands=job.get("bands"),
        nodata=job.get("nodata"),
        t_start=time.perf_counter() if t_start is None else t_start,
    )
    return summary_line(result, out)


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
                self._reply(200, {"output": job(request.get("job", {}))})
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
