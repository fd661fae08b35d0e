"""The client side of `geomag serve`: `geomag parse --server URL` sends its job and prints the answer.

Only the standard library is imported here: the client must start fast (~0.2 s, no torch).
Protocol (JSON over HTTP): `GET /health` -> {"geomag": version, ...}; `POST /parse` with
{"geomag": version, "job": {...}} -> 200 {"output": printed text} or 4xx/5xx {"error": message}.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from geomag import __version__
from geomag.errors import GeoMagError

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


def request(url: str, name: str, job: dict[str, JsonValue], timeout: float = 3600.0) -> str:
    """Run the job `name` on the server at `url`; returns what it printed. Server-side user errors
    and an unreachable server raise GeoMagError."""
    if "://" not in url:  # "127.0.0.1:8765" as `geomag serve` prints it, without the scheme
        url = "http://" + url
    body = json.dumps({"geomag": __version__, "job": job}).encode()
    req = urllib.request.Request(
        url.rstrip("/") + "/" + name, data=body, headers={"Content-Type": "application/json"}
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
