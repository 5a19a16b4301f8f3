"""Connection limits for the model server: idle or slow clients cannot wedge it.

uvicorn times out a keep-alive connection only after a response: a socket that connects
and sends nothing, or sends its headers one byte at a time, stays open forever, and its
``limit_concurrency`` answers every request with 503 once enough such sockets are open.
`conveyor.serving.protocol.LimitedHttpProtocol` (uvicorn's HTTP protocol with three
additions) closes them instead:

- **header timeout**: a request's headers must arrive within ``header_timeout`` seconds of
  its first byte (or of the connection, for the first request); else 408 and close;
- **body timeout**: its body within ``body_timeout`` seconds of the headers; else 408;
- **max connections**: past ``max_connections`` open connections, the ones idle longest
  (no request in progress: waiting, or still sending headers) are closed to make room;
  when every connection is busy, the new one gets 503 and is closed.

Keep-alive (the wait for a next request after a response) is uvicorn's own
``timeout_keep_alive``. The limits travel on the uvicorn `Config` (``conveyor_limits``),
so worker processes started by uvicorn get them too.

This module holds the settings; `conveyor.serving.protocol` (which imports uvicorn) the
protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.exceptions import ServingError


@dataclass(frozen=True)
class ServerLimits:
    """How long clients may take and how many may be connected.

    Attributes:
        max_connections: Open connections at most; idle ones are closed beyond it.
        keep_alive: Seconds an idle keep-alive connection waits for its next request.
        header_timeout: Seconds a request's headers may take to arrive.
        body_timeout: Seconds a request's body may take to arrive after its headers.
    """

    max_connections: int = 1000
    keep_alive: float = 5.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_connections, int) or self.max_connections < 1:
            raise ServingError(
                "The 'max_connections' parameter of ServerLimits must be an int >= 1. Got "
                f"{self.max_connections!r} instead."
            )
        for name in ("keep_alive", "header_timeout", "body_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ServingError(
                    f"The {name!r} parameter of ServerLimits must be > 0 seconds. Got "
                    f"{value!r} instead."
                )
