"""Webhook delivery from the event log: signed, retried with backoff, at least once.

The event log is the outbox. For each target, the deliverer reads the events it wants that
have no finished delivery yet, POSTs them, and only then records them delivered. A
deliverer killed mid-delivery therefore sends the same event again when it restarts;
receivers deduplicate by the ``Conveyor-Event-Id`` header (the event's unique id).

Signature: ``Conveyor-Signature: t=<unix seconds>,v1=<hex>`` where ``hex`` is
HMAC-SHA256 of ``f"{t}.".encode() + body`` keyed by the secret in the target's
``secret_env`` variable. Receivers recompute it and reject stale timestamps
(`verify_signature` does both).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa

from conveyor.stores.metadata import tables_events as te
from conveyor.stores.metadata.events import Event, event_from_row

if TYPE_CHECKING:
    import http.client

    from conveyor.events.targets import NotifyTarget

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"

SIGNATURE_HEADER = "Conveyor-Signature"
EVENT_ID_HEADER = "Conveyor-Event-Id"
EVENT_KIND_HEADER = "Conveyor-Event-Kind"

_BACKOFF_BASE = 1.0
_BACKOFF_CAP = 3600.0
# Answers worth another try: the receiver may recover. Other 4xx are final.
_RETRYABLE = {408, 409, 425, 429}


def _wanted(query: Any, target: NotifyTarget) -> Any:
    """`query` over the events table narrowed to the kinds and subject `target` wants."""
    e = te.events
    if target.kinds:
        query = query.where(e.c.kind.in_(target.kinds))
    if target.subject is not None:
        if target.subject.endswith("*"):
            prefix = target.subject[:-1]
            query = query.where(sa.func.substr(e.c.subject, 1, len(prefix)) == prefix)
        else:
            query = query.where(e.c.subject == target.subject)
    return query


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance: float = 300.0, now: float | None = None
) -> bool:
    """Whether `header` signs `body` with `secret` within `tolerance` seconds of `now`."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def body_for(event: Event, fmt: str) -> bytes:
    """The request body of `event` in a target's format."""
    if fmt == "slack":
        lines = [f"*{event.kind}* · {event.subject}", event.summary]
        links = ", ".join(f"{k}: {v}" for k, v in sorted(event.links.items()))
        if links:
            lines.append(links)
        return json.dumps({"text": "\n".join(lines)}, sort_keys=True).encode()
    return json.dumps(event.as_dict(), sort_keys=True, default=str).encode()


def backoff(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: 1, 2, 4, ... capped at an hour."""
    return float(min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** max(0, attempts - 1)))


@dataclass
class DrainResult:
    """What one pass of the deliverer did."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed + self.dead


@dataclass(frozen=True)
class _Outcome:
    seq: int
    ok: bool
    final: bool
    code: int | None
    error: str | None


class Deliverer:
    """Delivers the event log to notification targets.

    Thread safety: one deliverer may be driven by one thread at a time (`run` owns it);
    several deliverers (processes) on one store may deliver an event twice, never lose it.

    Args:
        engine: Engine of the metadata store holding the log.
        targets: Where to deliver (`conveyor.events.targets.load_targets`).
        env: Where secrets are looked up (default: the process environment).
        concurrency: Requests in flight at once.
        clock: Time source, for tests of backoff.
    """

    def __init__(
        self,
        engine: sa.Engine,
        targets: Sequence[NotifyTarget],
        *,
        env: Mapping[str, str] | None = None,
        concurrency: int = 16,
        batch: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if concurrency < 1:
            raise ValueError(
                f"The 'concurrency' parameter of Deliverer must be an int >= 1. Got {concurrency}."
            )
        self.engine = engine
        self.targets = list(targets)
        self.env = os.environ if env is None else env
        self.concurrency = concurrency
        self.batch = batch
        self.clock = clock
        self._pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        # Keep-alive connections, one per sending thread and receiver.
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._opened_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Deliverer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    def stop(self) -> None:
        """Ask `run` to return after its current pass."""
        self._stop.set()

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="conveyor-notify")
        return self._pool

    def _connection(self, target: NotifyTarget, fresh: bool) -> http.client.HTTPConnection:
        import http.client

        cache: dict[tuple[str, float], http.client.HTTPConnection] = (
            self._local.__dict__.setdefault("connections", {})
        )
        key = (target.url, target.timeout)
        connection = cache.get(key)
        if connection is not None and not fresh:
            return connection
        if connection is not None:
            connection.close()
        parts = urlsplit(target.url)
        if parts.scheme == "https":
            import ssl

            connection = http.client.HTTPSConnection(
                parts.hostname or "",
                parts.port,
                timeout=target.timeout,
                context=ssl.create_default_context(),
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=target.timeout
            )
        cache[key] = connection
        with self._opened_lock:
            self._opened.append(connection)
        return connection

    def _post(self, target: NotifyTarget, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """POST `body` on a kept-alive connection; a stale one is replaced once."""
        import http.client

        parts = urlsplit(target.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.username is not None:
            import base64

            raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        for attempt in (0, 1):
            connection = self._connection(target, fresh=attempt == 1)
            try:
                connection.request("POST", path, body=body, headers=headers)
                answer = connection.getresponse()
                text = answer.read().decode("utf-8", "replace")
                if answer.will_close:
                    connection.close()
                return answer.status, text
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ passes
    def register_targets(self) -> None:
        """Remember where each new target starts: it gets events from now on, not history."""
        if not self.targets:
            return
        with self.engine.begin() as c:
            known = set(c.execute(sa.select(te.notify_targets.c.name)).scalars())
            start = int(c.execute(sa.select(sa.func.max(te.events.c.seq))).scalar() or 0)
            new = [t.name for t in self.targets if t.name not in known]
            if new:
                now = self.clock()
                c.execute(
                    te.notify_targets.insert(),
                    [{"name": n, "start_seq": start, "created_at": now} for n in new],
                )

    def _due(self, target: NotifyTarget, now: float) -> list[Event]:
        e, d = te.events, te.event_deliveries
        start = (
            sa.select(te.notify_targets.c.start_seq)
            .where(te.notify_targets.c.name == target.name)
            .scalar_subquery()
        )
        blocked = sa.exists().where(
            d.c.target == target.name,
            d.c.event_seq == e.c.seq,
            sa.or_(d.c.status != PENDING, d.c.next_attempt_at > now),
        )
        query = _wanted(sa.select(e).where(e.c.seq > start, ~blocked), target)
        query = query.order_by(e.c.seq).limit(self.batch)
        with self.engine.connect() as c:
            return [event_from_row(row) for row in c.execute(query)]

    def _send(self, target: NotifyTarget, event: Event, secret: str | None) -> _Outcome:
        import http.client

        body = body_for(event, target.format)
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.id,
            EVENT_KIND_HEADER: event.kind,
            "User-Agent": "conveyor-notify",
        }
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret, body, int(self.clock()))
        try:
            code, text = self._post(target, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            return _Outcome(event.seq, False, False, None, f"{type(exc).__name__}: {exc}")
        if 200 <= code < 300:
            return _Outcome(event.seq, True, True, code, None)
        final = 400 <= code < 500 and code not in _RETRYABLE
        return _Outcome(event.seq, False, final, code, f"HTTP {code}: {text[:200]}")

    def _record(self, target: NotifyTarget, outcomes: Sequence[_Outcome]) -> DrainResult:
        result = DrainResult()
        if not outcomes:
            return result
        d = te.event_deliveries
        now = self.clock()
        with self.engine.begin() as c:
            previous = dict(
                c.execute(
                    sa.select(d.c.event_seq, d.c.attempts).where(
                        d.c.target == target.name,
                        d.c.event_seq.in_([o.seq for o in outcomes]),
                    )
                ).all()
            )
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for outcome in outcomes:
                attempts = int(previous.get(outcome.seq, 0)) + 1
                if outcome.ok:
                    status = DELIVERED
                    result.delivered += 1
                elif outcome.final or attempts >= target.max_attempts:
                    status = DEAD
                    result.dead += 1
                else:
                    status = PENDING
                    result.failed += 1
                if outcome.error:
                    result.errors.append(f"{target.name}: event {outcome.seq}: {outcome.error}")
                row = {
                    "target": target.name,
                    "event_seq": outcome.seq,
                    "status": status,
                    "attempts": attempts,
                    "next_attempt_at": now + (0.0 if status != PENDING else backoff(attempts)),
                    "last_code": outcome.code,
                    "last_error": outcome.error,
                    "updated_at": now,
                }
                (updates if outcome.seq in previous else inserts).append(row)
            if inserts:
                c.execute(d.insert(), inserts)
            for row in updates:
                c.execute(
                    d.update()
                    .where(d.c.target == row["target"], d.c.event_seq == row["event_seq"])
                    .values({k: v for k, v in row.items() if k not in ("target", "event_seq")})
                )
        return result

    def drain_once(self) -> DrainResult:
        """One pass: every due event of every target, one attempt each."""
        self.register_targets()
        total = DrainResult()
        for target in self.targets:
            secret = None
            if target.secret_env is not None:
                secret = self.env.get(target.secret_env)
                if not secret:
                    # Sending unsigned would let receivers accept forgeries: wait instead.
                    total.errors.append(
                        f"{target.name}: the signing secret variable {target.secret_env} is "
                        "not set; nothing sent to this target. Set it and run again."
                    )
                    continue
            while True:
                due = self._due(target, self.clock())
                if not due:
                    break
                outcomes = list(
                    self._workers().map(self._send, [target] * len(due), due, [secret] * len(due))
                )
                result = self._record(target, outcomes)
                total.delivered += result.delivered
                total.failed += result.failed
                total.dead += result.dead
                total.errors.extend(result.errors)
                if result.failed or result.dead or len(due) < self.batch:
                    break
        return total

    def drain(self, *, timeout: float) -> DrainResult:
        """Passes until nothing is due now, or `timeout` seconds have gone by."""
        deadline = self.clock() + timeout
        total = DrainResult()
        while True:
            result = self.drain_once()
            total.delivered += result.delivered
            total.failed += result.failed
            total.dead += result.dead
            total.errors.extend(result.errors)
            if result.attempted == 0 or result.failed or self.clock() >= deadline:
                return total

    def run(
        self, *, interval: float = 1.0, on_pass: Callable[[DrainResult], None] | None = None
    ) -> None:
        """Deliver until `stop()`: a pass, then wait `interval` seconds (or until stopped)."""
        while not self._stop.is_set():
            result = self.drain_once()
            if on_pass is not None:
                on_pass(result)
            self._stop.wait(interval)


def pending_count(engine: sa.Engine, target: NotifyTarget) -> int:
    """Events `target` wants that are not yet delivered or given up."""
    e, d = te.events, te.event_deliveries
    start = (
        sa.select(te.notify_targets.c.start_seq)
        .where(te.notify_targets.c.name == target.name)
        .scalar_subquery()
    )
    finished = sa.exists().where(
        d.c.target == target.name, d.c.event_seq == e.c.seq, d.c.status != PENDING
    )
    query = _wanted(sa.select(sa.func.count()).select_from(e), target)
    query = query.where(e.c.seq > start, ~finished)
    with engine.connect() as c:
        return int(c.execute(query).scalar() or 0)


def describe(outcome: Mapping[str, Any]) -> str:
    """One line of the delivery log."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(outcome["updated_at"])))
    code = outcome.get("last_code")
    error = outcome.get("last_error") or ""
    return (
        f"{when}  {outcome['target']}  {outcome['kind']}  {outcome['event_id']}  "
        f"{outcome['status']} after {outcome['attempts']} attempt(s)"
        + (f"  [{code}]" if code else "")
        + (f"  {error}" if error and outcome["status"] != DELIVERED else "")
    )
