"""uvicorn's HTTP/1.1 protocol with what a slow or malformed client must not get past.

uvicorn (0.54) has no deadline for a request's head: a client that sends one header byte every few
seconds holds its connection for ever, and with `limit_concurrency` 70 such connections made every
other request a 503 (measured, docs/serve.md). This subclass of its h11 protocol adds:
- a head deadline: a connection that has not sent a whole request line and headers within
  `header_timeout` seconds of connecting (or of its previous answer) is closed;
- a cap on connections still sending their head: `slow_per_client` per client address and
  `slow_total` in all; over either, the oldest such connection is closed. Connections whose head is
  in are not counted here (the app's `--max-connections` counts requests being handled);
- the error shape on the protocol's own answers: a request h11 cannot parse (`Content-Length: -1`,
  a bad request line, a head over 16 KB) gets the JSON body `{"error", "request_id"}` with
  `X-Request-ID`, like every answer of the app, instead of uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from geomag.serve.limits import ServeLimits

log = logging.getLogger("geomag.serve")
HEAD_DONE = (h11.SEND_BODY, h11.DONE, h11.MUST_CLOSE)  # the client's h11 states after its head


class SlowClients:
    """Connections still sending their head, oldest first, by client address (shared by all).

    Over a cap, the OLDEST such connection is closed, not the new one: a real client sends its head
    in milliseconds and is never the oldest, so a slowloris from the same address (or from many)
    cannot keep `/health` or a real request out; it only loses its own connections."""

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self.waiting: dict[asyncio.Protocol, str] = {}  # insertion order: oldest first
        self.by_client: Counter[str] = Counter()
        self.closed = 0  # connections closed for being slow or over the caps (for tests and logs)

    def admit(
        self, protocol: asyncio.Protocol, client: str, evict: Callable[[asyncio.Protocol], None]
    ) -> None:
        if self.by_client[client] >= self.limits.slow_per_client:
            evict(next(p for p, c in self.waiting.items() if c == client))
        elif len(self.waiting) >= self.limits.slow_total:
            evict(next(iter(self.waiting)))
        self.waiting[protocol] = client
        self.by_client[client] += 1

    def leave(self, protocol: asyncio.Protocol) -> None:
        client = self.waiting.pop(protocol, None)
        if client is not None:
            self.by_client[client] -= 1
            if self.by_client[client] <= 0:
                del self.by_client[client]


def guarded_protocol(limits: ServeLimits) -> tuple[type[H11Protocol], SlowClients]:
    """The protocol class for `uvicorn.Config(http=...)` and the counter its connections share."""
    slow = SlowClients(limits)

    def _too_slow(protocol: asyncio.Protocol) -> None:
        protocol._head_too_slow()  # type: ignore[attr-defined]

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _counted = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._address = self.client[0] if self.client else "?"
            self._await_head()

        def _await_head(self) -> None:
            """Count this connection as sending its head and start its deadline."""
            if self._counted or self.transport.is_closing():
                return
            slow.admit(self, self._address, _too_slow)
            self._counted = True
            self._deadline = self.loop.call_later(limits.header_timeout, self._head_too_slow)

        def _head_in(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if self._counted:
                self._counted = False
                slow.leave(self)

        def _head_too_slow(self) -> None:
            slow.closed += 1
            self._head_in()
            if not self.transport.is_closing():
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self._counted and self.conn.their_state in HEAD_DONE:
                self._head_in()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # keep-alive: the next request's head has the same deadline (uvicorn's keep-alive timer
            # is reset by every byte, so a client dribbling its next head would pass it)
            if not self.transport.is_closing() and self.conn.their_state not in HEAD_DONE:
                self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_in()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            rid = uuid.uuid4().hex[:12]
            log.info("request %s: not valid HTTP/1.1, answered 400", rid)
            self._head_in()
            body = json.dumps(
                {
                    "error": "the request is not valid HTTP/1.1 (its request line, a header such as "
                    "Content-Length, or a head over 16 KB)",
                    "request_id": rid,
                }
            ).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"x-request-id", rid.encode()),
            ]
            try:
                event = h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
                self.transport.write(self.conn.send(event) or b"")
                self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
                self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
            except h11.LocalProtocolError:  # h11 cannot answer in its state: close without one
                pass
            self.transport.close()

    return GuardedH11Protocol, slow
