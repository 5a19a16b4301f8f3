"""Shadow and canary releases: a second model version beside the one that answers.

- **Shadow**: every request is also scored by the challenger, off the request path. The
  answer never waits for it: shadow scoring is queued after the response is computed, the
  queue is bounded (``shadow_queue`` requests in flight) and what does not fit is dropped
  and counted. Both predictions are logged under the same request id.
- **Canary**: a share of requests (``percent``) is answered by the challenger. The choice is
  sticky per request key (a header, or a record field): the same customer always meets
  the same version. Without a key the request id decides, i.e. per request.

The challenger follows its own reference with hot reload, like the champion, and a
challenger that is not loaded (or fails) never fails a request: canary traffic falls back
to the champion and shadow scoring is skipped, counted in /metrics.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from conveyor.exceptions import ServingError

MODES = ("shadow", "canary")


@dataclass(frozen=True)
class ReleasePolicy:
    """How the challenger takes part.

    Attributes:
        mode: ``shadow`` (scores every request, answers none) or ``canary`` (answers a share).
        challenger: Registry reference of the challenger, e.g. ``churn@challenger``.
        percent: Canary share of requests in [0, 100].
        key_header: Request header whose value keeps a client on one version.
        key_field: Record field that does the same (the first record's value), if any.
        shadow_queue: Shadow requests in flight at most; more are dropped and counted.
    """

    mode: Literal["shadow", "canary"]
    challenger: str
    percent: float = 0.0
    key_header: str = "x-canary-key"
    key_field: str | None = None
    shadow_queue: int = 256

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ServingError(
                f"The 'mode' parameter of ReleasePolicy must be shadow or canary. Got "
                f"{self.mode!r} instead."
            )
        if not 0.0 <= float(self.percent) <= 100.0:
            raise ServingError(
                "The canary percentage must be a number from 0 to 100. Got "
                f"{self.percent!r} instead (e.g. --canary churn@challenger=10)."
            )
        if not isinstance(self.shadow_queue, int) or self.shadow_queue < 1:
            raise ServingError(
                "The 'shadow_queue' parameter of ReleasePolicy must be an int >= 1. Got "
                f"{self.shadow_queue!r} instead."
            )
        if not self.key_header or self.key_header != self.key_header.strip().lower():
            raise ServingError(
                f"--canary-key-header must be a lower-case header name. Got {self.key_header!r}."
            )


def parse_canary(spec: str) -> tuple[str, float]:
    """``churn@challenger=10`` -> ("churn@challenger", 10.0).

    Raises:
        ServingError: no ``=PERCENT`` or a percentage outside [0, 100].
    """
    ref, sep, share = spec.rpartition("=")
    if not sep or not ref:
        raise ServingError(
            f"--canary takes REF=PERCENT, e.g. churn@challenger=10. Got {spec!r} instead."
        )
    try:
        percent = float(share)
    except ValueError:
        raise ServingError(
            f"--canary takes REF=PERCENT with a number, e.g. churn@challenger=10. Got {spec!r}."
        ) from None
    if not 0.0 <= percent <= 100.0:
        raise ServingError(f"The canary percentage must be from 0 to 100. Got {percent:g}.")
    return ref, percent


def bucket(key: str) -> float:
    """A stable position in [0, 100) for `key`: the same in every process and restart."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") % 10_000) / 100.0


def request_key(policy: ReleasePolicy, header: str | None, doc: Any, rid: str) -> str:
    """What keeps a request on one version: the header, the record field, or its id."""
    if header:
        return header
    field = policy.key_field
    if field is not None and type(doc) is dict:
        records = doc.get("records")
        if type(records) is list and records and type(records[0]) is dict:
            value = records[0].get(field)
            if value is not None:
                return str(value)
        columns = doc.get("columns")
        if type(columns) is dict:
            values = columns.get(field)
            if type(values) is list and values and values[0] is not None:
                return str(values[0])
        inputs = doc.get("inputs")
        if type(inputs) is list:
            for item in inputs:
                if type(item) is dict and item.get("name") == field:
                    data = item.get("data")
                    if type(data) is list and data:
                        return str(data[0])
    return rid


def goes_to_challenger(policy: ReleasePolicy, key: str) -> bool:
    """Whether a canary request with `key` is answered by the challenger."""
    return policy.mode == "canary" and bucket(key) < policy.percent
