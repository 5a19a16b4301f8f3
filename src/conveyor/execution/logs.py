"""Per-step capture of stdout, stderr and logging records, safe with concurrent steps.

`sys.stdout`/`sys.stderr` are replaced once by proxies that send writes to the buffer of
the step running in the current thread (a context variable), and to the real stream when
no step is capturing. A logging handler on the root logger does the same for records.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

_BUFFER: contextvars.ContextVar[io.StringIO | None] = contextvars.ContextVar(
    "conveyor_log_buffer", default=None
)
_INSTALL_LOCK = threading.Lock()
_handler: _Handler | None = None
MAX_LOG_CHARS = 1_000_000


class _Proxy(io.TextIOBase):
    def __init__(self, original: TextIO) -> None:
        self._original = original

    def write(self, text: str) -> int:
        buffer = _BUFFER.get()
        if buffer is None:
            return self._original.write(text)
        if buffer.tell() < MAX_LOG_CHARS:
            buffer.write(text)
        return len(text)

    def flush(self) -> None:
        if _BUFFER.get() is None:
            self._original.flush()

    def isatty(self) -> bool:
        return _BUFFER.get() is None and self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._original, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        buffer = _BUFFER.get()
        if buffer is not None and buffer.tell() < MAX_LOG_CHARS:
            try:
                buffer.write(self.format(record) + "\n")
            except Exception:
                self.handleError(record)


def _install() -> None:
    global _handler
    # Someone (a test runner, a notebook, a library's logging config) may have swapped the
    # streams or replaced the root logger's handlers since last time.
    root = logging.getLogger()
    if (
        isinstance(sys.stdout, _Proxy)
        and isinstance(sys.stderr, _Proxy)
        and _handler is not None
        and _handler in root.handlers
    ):
        return
    with _INSTALL_LOCK:
        if not isinstance(sys.stdout, _Proxy):
            sys.stdout = _Proxy(sys.stdout)  # type: ignore[assignment]
        if not isinstance(sys.stderr, _Proxy):
            sys.stderr = _Proxy(sys.stderr)  # type: ignore[assignment]
        if _handler is None:
            _handler = _Handler()
            _handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
        if _handler not in root.handlers:
            root.addHandler(_handler)


@contextmanager
def capture() -> Iterator[io.StringIO]:
    """Capture what the current thread prints and logs into the yielded buffer."""
    _install()
    buffer = io.StringIO()
    token = _BUFFER.set(buffer)
    try:
        yield buffer
    finally:
        _BUFFER.reset(token)
