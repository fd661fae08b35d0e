"""Who may use the server: loopback by default, a Bearer token for anything wider, CORS off.

A GeoMag server runs a model on the uploads of whoever reaches it. On 127.0.0.1 that is this
machine's users; on any other address it is the network, so `geomag serve --host` other than a
loopback address refuses to start without `--token`, and then every `/v1` route wants
`Authorization: Bearer TOKEN` (compared in constant time). Browsers on other origins get no CORS
headers unless `--cors ORIGIN` names them.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.exceptions import HTTPException
from starlette.requests import Request

from geomag.errors import GeoMagError

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token (the command calls this before binding)."""
    if not is_loopback(host) and not token:
        raise GeoMagError(
            f"--host {host} lets other machines run jobs: give --token TOKEN (clients send "
            "`Authorization: Bearer TOKEN`), or keep the default 127.0.0.1"
        )
    if token is not None and len(token) < 16:
        raise GeoMagError("--token must have at least 16 characters (e.g. `openssl rand -hex 16`)")


class BearerToken:
    """A FastAPI dependency: the request carries `Authorization: Bearer <token>` (or no token is set)."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def required(self) -> bool:
        return self._token is not None

    def __call__(self, request: Request) -> None:
        if self._token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            raise HTTPException(401, "missing or wrong token: send `Authorization: Bearer TOKEN`",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
