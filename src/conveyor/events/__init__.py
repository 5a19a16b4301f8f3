"""Events and notifications: what happened in the stores, and who is told.

```python
from conveyor.events import events, deliver

for event in events(kinds=["alias_moved", "gate_refused"], limit=20):
    print(event.kind, event.subject, event.summary)
deliver(timeout=10)      # POST what [[notify]] targets want, signed, with retries
```

Recording happens in the components themselves (`conveyor.stores.metadata.events`), in the
same transaction as the change; this package reads the log and delivers it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from conveyor.events.delivery import Deliverer, DrainResult, sign, verify_signature
from conveyor.events.targets import NotifyTarget, load_targets
from conveyor.stores.metadata.events import KINDS, Event

if TYPE_CHECKING:
    from conveyor.config import Settings

__all__ = [
    "KINDS",
    "Deliverer",
    "DrainResult",
    "Event",
    "NotifyTarget",
    "deliver",
    "events",
    "load_targets",
    "sign",
    "verify_signature",
]


def _settings(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    from conveyor.config import load_settings

    return load_settings()


def events(
    *,
    kinds: Iterable[str] | None = None,
    subject: str | None = None,
    before: int | None = None,
    after: int | None = None,
    limit: int = 100,
    settings: Settings | None = None,
) -> list[Event]:
    """Recorded events, newest first (oldest first when following with `after`).

    Raises:
        ValueError: an unknown kind (with the list of kinds).
    """
    from conveyor.stores.metadata import open_metadata_store
    from conveyor.stores.metadata.events import list_events

    wanted = list(kinds or [])
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        raise ValueError(f"Unknown event kind {unknown[0]!r}. Kinds: {', '.join(KINDS)}.")
    store = open_metadata_store(_settings(settings).db_url)
    return list_events(
        store.engine, kinds=wanted, subject=subject, before=before, after=after, limit=limit
    )


def deliver(*, timeout: float = 10.0, settings: Settings | None = None) -> DrainResult:
    """Deliver what the project's ``[[notify]]`` targets want, for at most `timeout` s."""
    from conveyor.stores.metadata import open_metadata_store

    resolved = _settings(settings)
    targets = load_targets(resolved.extra)
    if not targets:
        return DrainResult()
    store = open_metadata_store(resolved.db_url)
    with Deliverer(store.engine, targets) as deliverer:
        return deliverer.drain(timeout=timeout)
