"""uvicorn's HTTP protocol with header/body timeouts and a connection cap.

See `conveyor.serving.limits` for what each limit does. uvicorn is imported here: import
this module only where a server starts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from conveyor.serving.limits import ServerLimits

try:  # the fast parser of uvicorn[standard]; h11 otherwise (same behaviour, slower)
    import httptools  # noqa: F401
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]


def _response(status: int, reason: str, text: str) -> bytes:
    body = '{"error": "' + text + '", "problem": "' + reason.lower().replace(" ", "_") + '"}'
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}"
    ).encode()


_TIMEOUT = _response(408, "Request Timeout", "The request did not arrive in time.")
_FULL = _response(503, "Service Unavailable", "Too many connections; retry shortly.")


class LimitedHttpProtocol(_Base):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol with header/body timeouts and a connection cap."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config=config, server_state=server_state, app_state=app_state, _loop=_loop)
        self._limits: ServerLimits = getattr(config, "conveyor_limits", None) or ServerLimits()
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_body = False
        self._partial = False  # bytes of a request arrived, its headers are not complete
        self._idle_since = time.monotonic()

    # -- state --------------------------------------------------------------------------

    def _busy(self) -> bool:
        """A request is in progress (headers received, response not finished)."""
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._busy() and not (self._waiting_body and cycle.more_body):
            return  # the request arrived meanwhile; the app is answering it
        started = cycle is not None and getattr(cycle, "response_started", False)
        if (self._partial or self._waiting_body) and not started:
            self.transport.write(_TIMEOUT)
        self.transport.close()

    # -- uvicorn's protocol hooks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._limits.header_timeout)
        self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._busy() and not self._partial:
            # The first bytes of a request: its headers must now arrive in time.
            self._partial = True
            self._arm(self._limits.header_timeout)
        before = self.cycle
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle is not before:
            self._partial = False  # headers complete: a new request cycle began
            if cycle.more_body:
                self._waiting_body = True
                self._arm(self._limits.body_timeout)
            else:
                self._disarm()
        elif self._waiting_body and cycle is not None and not cycle.more_body:
            self._waiting_body = False
            self._disarm()

    def on_response_complete(self) -> None:
        self._idle_since = time.monotonic()
        self._waiting_body = False
        self._disarm()
        super().on_response_complete()

    # -- the cap --------------------------------------------------------------------------

    def _make_room(self) -> None:
        connections = self.connections
        excess = len(connections) - self._limits.max_connections
        if excess <= 0:
            return
        idle = sorted(
            (
                c
                for c in connections
                if c is not self and isinstance(c, LimitedHttpProtocol) and not c._busy()
            ),
            key=lambda c: c._idle_since,
        )
        for connection in idle[:excess]:
            connection._evict()
        if len(idle) < excess:
            connections.discard(self)
            self.transport.write(_FULL)
            self.transport.close()

    def _evict(self) -> None:
        # Out of the count now: the transport reports the loss on a later loop turn.
        self.connections.discard(self)
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()
