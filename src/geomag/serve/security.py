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
MIN_TOKEN = 16
UNAUTHORIZED = "missing or wrong token: send `Authorization: Bearer TOKEN`"


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
    if token is not None and (len(token.strip()) < MIN_TOKEN or any(c.isspace() for c in token)):
        raise GeoMagError(
            f"--token must be at least {MIN_TOKEN} characters without spaces: make one with "
            "`openssl rand -hex 16` or `python -c 'import secrets; print(secrets.token_hex(16))'`"
        )


class BearerToken:
    """A FastAPI dependency: the request carries `Authorization: Bearer <token>` (or no token is set)."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def required(self) -> bool:
        return self._token is not None

    def allows(self, header: bytes) -> bool:
        """The raw `Authorization` header carries the token (or no token is set)."""
        if self._token is None:
            return True
        scheme, _, given = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token)

    def __call__(self, request: Request) -> None:
        """The same check as a FastAPI dependency (the guard checked it first; this documents it)."""
        if not self.allows(request.headers.get("authorization", "").encode("latin-1")):
            raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
