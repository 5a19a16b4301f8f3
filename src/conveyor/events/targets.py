"""Notification targets from conveyor.toml's ``[[notify]]`` tables.

```toml
[[notify]]
url = "https://hooks.example/ml"        # where to POST
format = "json"                          # or "slack"
kinds = ["drift", "gate_refused", "alias_moved", "run_failed"]   # default: every kind
subject = "churn*"                       # optional: exact subject, or a prefix with *
secret_env = "CONVEYOR_WEBHOOK_SECRET"   # HMAC-SHA256 signing key, read at delivery time
name = "ml-alerts"                       # optional; default derived from the URL
max_attempts = 8                         # optional
```

The secret itself is never read from the file and never stored: only the name of the
environment variable that holds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from conveyor.exceptions import ConfigError, did_you_mean
from conveyor.stores.metadata.events import KINDS

FORMATS = ("json", "slack")
_KEYS = ("url", "format", "kinds", "subject", "secret_env", "name", "max_attempts", "timeout")


@dataclass(frozen=True)
class NotifyTarget:
    """One webhook receiver and the events it wants.

    Attributes:
        name: Stable name of the target in the delivery log.
        url: http(s) URL events are POSTed to.
        format: ``json`` (the event as JSON) or ``slack`` (a Slack-compatible message).
        kinds: Event kinds delivered; empty means every kind.
        subject: Exact subject, or a prefix ending with ``*``; None means every subject.
        secret_env: Name of the environment variable holding the signing secret.
        max_attempts: Attempts before a delivery is given up (``dead``).
        timeout: Seconds to wait for the receiver per attempt.
    """

    name: str
    url: str
    format: str = "json"
    kinds: tuple[str, ...] = ()
    subject: str | None = None
    secret_env: str | None = None
    max_attempts: int = 8
    timeout: float = 10.0

    def wants(self, kind: str, subject: str) -> bool:
        if self.kinds and kind not in self.kinds:
            return False
        if self.subject is None:
            return True
        if self.subject.endswith("*"):
            return subject.startswith(self.subject[:-1])
        return subject == self.subject


def _safe_url(url: str) -> str:
    """The URL without credentials or query, for names and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def parse_target(raw: Any, where: str) -> NotifyTarget:
    """One ``[[notify]]`` table as a target.

    Raises:
        ConfigError: a missing or malformed key, named with its position.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table with at least url = '...'. Got {raw!r}.")
    for key in raw:
        if key not in _KEYS:
            raise ConfigError(
                f"Unknown key {key!r} in {where}." + did_you_mean(str(key), list(_KEYS))
            )
    url = raw.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"{where} needs url = 'http(s)://...'. Got {url!r}.")
    if not urlsplit(url).hostname:
        raise ConfigError(f"{where}: the url {_safe_url(url)!r} has no host.")
    fmt = raw.get("format", "json")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: format must be one of {', '.join(FORMATS)}. Got {fmt!r}.")
    kinds = raw.get("kinds", [])
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, Sequence) or not all(isinstance(k, str) for k in kinds):
        raise ConfigError(f"{where}: kinds must be a list of event kinds. Got {kinds!r}.")
    for kind in kinds:
        if kind not in KINDS:
            raise ConfigError(
                f"{where}: unknown event kind {kind!r}."
                + did_you_mean(kind, list(KINDS))
                + f" Kinds: {', '.join(KINDS)}."
            )
    subject = raw.get("subject")
    if subject is not None and (not isinstance(subject, str) or not subject):
        raise ConfigError(f"{where}: subject must be a non-empty string. Got {subject!r}.")
    secret_env = raw.get("secret_env")
    if secret_env is not None and (
        not isinstance(secret_env, str) or not secret_env.replace("_", "").isalnum()
    ):
        raise ConfigError(
            f"{where}: secret_env must name an environment variable (letters, digits, _). "
            "Put the secret itself in that variable, never in conveyor.toml."
        )
    attempts = raw.get("max_attempts", 8)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 100:
        raise ConfigError(f"{where}: max_attempts must be an int from 1 to 100. Got {attempts!r}.")
    timeout = raw.get("timeout", 10.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 300:
        raise ConfigError(f"{where}: timeout must be seconds in (0, 300]. Got {timeout!r}.")
    name = raw.get("name")
    if name is None:
        digest = hashlib.sha256(_safe_url(url).encode()).hexdigest()[:8]
        name = f"{urlsplit(url).hostname}-{digest}"
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or name != name.strip():
        raise ConfigError(f"{where}: name must be a non-empty string without surrounding spaces.")
    return NotifyTarget(
        name=name,
        url=url,
        format=fmt,
        kinds=tuple(kinds),
        subject=subject,
        secret_env=secret_env,
        max_attempts=attempts,
        timeout=float(timeout),
    )


def load_targets(extra: Mapping[str, Any]) -> list[NotifyTarget]:
    """The targets of a Settings' `extra` tables (``[[notify]]``), validated.

    Raises:
        ConfigError: a malformed table, or two targets with the same name.
    """
    raw = extra.get("notify", [])
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise ConfigError("notify in conveyor.toml must be [[notify]] tables.")
    targets = [parse_target(item, f"[[notify]] #{i + 1}") for i, item in enumerate(raw)]
    names = [t.name for t in targets]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f"Two [[notify]] targets are named {duplicate!r}; give each a name.")
    return targets
