"""The ASGI layer in front of every route: request ids, the token, requests in flight, body size
and pace, the last-resort 500.

The token of `/v1` routes is checked here, from the headers, before one byte of the body is read:
a 256 MB upload without the token is answered 401 and its connection closed. Requests being handled
at once are capped (`--max-connections`, /health exempt so that it always answers): one more is a
503 in the common error shape.

Why here and not in the routes: FastAPI reads a multipart body before a route runs, so the body's
size and pace must be checked while it is read. A body over the limit is refused from its
Content-Length before one byte is read, or as soon as the bytes received pass the limit; a client
that stops sending for `upload_timeout` seconds gets 408 and its connection closed, while every other
connection (and `/health`) is served by the event loop as usual. Both are raised as HTTPException,
which FastAPI hands on untouched, so they get the same JSON body as every other error.

Anything that escapes the app is a bug on our side: it is logged with the request's id (and its
traceback, in the server's log only) and answered 500 with that id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geomag.serve.security import UNAUTHORIZED, BearerToken

log = logging.getLogger("geomag.serve")
REQUEST_ID = "x-request-id"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit / 2**20:.0f} MB")


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the client sent nothing for {seconds:g} s in the middle of its request body")


def error_body(message: str, request_id: str) -> bytes:
    return json.dumps({"error": message, "request_id": request_id}).encode()


def request_id(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", "-"))


class RequestGuard:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it must see the body as it arrives)."""

    def __init__(
        self,
        app: ASGIApp,
        max_body: int,
        body_timeout: float,
        token: BearerToken | None = None,
        max_requests: int | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.token = token
        self.max_requests = max_requests
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex[:12]
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (REQUEST_ID.encode(), rid.encode())]
            await send(message)

        path = str(scope.get("path", ""))
        authorization = dict(scope.get("headers", [])).get(b"authorization", b"")
        protected = path.startswith("/v1/") and scope.get("method") != "OPTIONS"
        if self.token is not None and protected and not self.token.allows(authorization):
            await _reply(send_with_id, 401, UNAUTHORIZED, rid, close=True,
                         extra=[(b"www-authenticate", b"Bearer")])  # fmt: skip
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await _reply(send_with_id, 413, BodyTooLarge(self.max_body).detail, rid, close=True)
            return
        counted = path != "/health"
        if counted and self.max_requests is not None and self.in_flight >= self.max_requests:
            message = f"the server is handling {self.in_flight} requests, its limit; retry in a few seconds"
            await _reply(send_with_id, 503, message, rid, close=True, extra=[(b"retry-after", b"5")])
            return
        self.in_flight += counted
        received = 0
        body_done = length == 0

        async def guarded_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                return await receive()  # after the body: e.g. waiting for a disconnect, no deadline
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except TimeoutError:
                raise BodyTimeout(self.body_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
                body_done = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, guarded_receive, send_with_id)
        except (BodyTooLarge, BodyTimeout) as exc:  # raised outside a route (no handler saw it)
            if not started:
                await _reply(send_with_id, exc.status_code, exc.detail, rid, close=True)
        except Exception:
            log.exception("request %s (%s %s) failed", rid, scope.get("method"), scope.get("path"))
            if not started:
                await _reply(send_with_id, 500, f"internal server error (request id {rid})", rid)
        finally:
            self.in_flight -= counted


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reply(
    send: Send,
    status: int,
    message: str,
    rid: str,
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = error_body(message, rid)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
