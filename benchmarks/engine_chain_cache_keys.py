"""What the sound cache keys (issue 11) cost on the 50-step chain of engine_chain.py.

Runs the same chain, interleaved in one process, with the cache keys conveyor computes
now (code and values followed every run, components recorded per key) and with the
previous scheme as the baseline (the step's fingerprint memoized per function object for
the life of the process, untyped parameters, nothing recorded). Prints per-step overhead
over plain calls and the fully cached re-run for both, and the ratios. Target: at most
10% slower.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from _common import fresh_settings
from engine_chain import N, chain, plain

from conveyor._internal.hashing import canonical_json, hash_parts
from conveyor.core.pipeline import Node
from conveyor.execution import orchestrator, walk
from conveyor.execution.orchestrator import run_pipeline

_MEMO: dict[int, tuple[Any, str]] = {}


def _legacy_fingerprint(fn: Any) -> str:
    cached = _MEMO.get(id(fn))
    if cached is None:
        code = getattr(getattr(fn, "fn", fn), "__code__", None)
        cached = (fn, hashlib.sha256(repr(code).encode()).hexdigest())
        _MEMO[id(fn)] = cached
    return cached[1]


def _legacy_cache_key(self: Any, node: Node, inputs: Mapping[str, Any]) -> str:
    step = node.step
    versions = sorted(
        {f"{m}@{self.registry.by_name(m).version}" for m in walk._materializers(inputs.values())}
    )
    return hash_parts(
        step.name,
        _legacy_fingerprint(step),
        canonical_json(node.params),
        canonical_json({k: self._describe(v) for k, v in sorted(inputs.items())}),
        ",".join(versions),
        step.settings.cache_version or "",
    )


@contextmanager
def legacy_keys() -> Iterator[None]:
    current = orchestrator.Execution.cache_key
    orchestrator.Execution.cache_key = _legacy_cache_key  # type: ignore[method-assign]
    try:
        yield
    finally:
        orchestrator.Execution.cache_key = current  # type: ignore[method-assign]


def main() -> None:
    import time

    executor = sys.argv[1] if len(sys.argv) > 1 else "inline"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    settings = {"now": fresh_settings(), "before": fresh_settings()}
    for name, current in settings.items():
        with legacy_keys() if name == "before" else _nothing():
            run_pipeline(chain, {"start": -1}, settings=current, executor=executor)
            run_pipeline(chain, {"start": 7}, settings=current, executor=executor)

    def plain_chain() -> float:
        began = time.perf_counter()
        value = 0
        for _ in range(N):
            value = plain(value)
        return time.perf_counter() - began

    plain_best = min(plain_chain() for _ in range(50))
    # Wall time and CPU time of this process: on a shared machine the CPU time is the
    # steadier measure of the work the keys add (waits for the disk are not in it).
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    runs = {(n, c): [] for n in ("now", "before") for c in clocks}  # type: ignore[var-annotated]
    cached = {(n, c): [] for n in ("now", "before") for c in clocks}  # type: ignore[var-annotated]
    start = 10**6
    for _ in range(rounds):
        for name in ("before", "now"):
            with legacy_keys() if name == "before" else _nothing():
                start += 10 * N  # a chain of new values: every step runs
                began = {c: f() for c, f in clocks.items()}
                run_pipeline(chain, {"start": start}, settings=settings[name], executor=executor)
                for c, f in clocks.items():
                    runs[(name, c)].append(f() - began[c])
                began = {c: f() for c, f in clocks.items()}
                run_pipeline(chain, {"start": 7}, settings=settings[name], executor=executor)
                for c, f in clocks.items():
                    cached[(name, c)].append(f() - began[c])
    print(f"executor: {executor}, {rounds} interleaved rounds, best of each")
    for clock in clocks:
        now = (min(runs[("now", clock)]) - plain_best) / N * 1000
        before = (min(runs[("before", clock)]) - plain_best) / N * 1000
        hit_now = min(cached[("now", clock)]) * 1000
        hit_before = min(cached[("before", clock)]) * 1000
        # Runs of a round are adjacent in time: the median of their ratios is the figure
        # least moved by the load of other processes drifting up and down.
        paired = statistics.median(
            a / b for a, b in zip(runs[("now", clock)], runs[("before", clock)], strict=True)
        )
        paired_hit = statistics.median(
            a / b for a, b in zip(cached[("now", clock)], cached[("before", clock)], strict=True)
        )
        print(
            f"[{clock}] overhead per step: now {now:.3f} ms, before {before:.3f} ms, ratio "
            f"{now / before:.3f}; fully cached re-run: now {hit_now:.1f} ms, before "
            f"{hit_before:.1f} ms, ratio {hit_now / hit_before:.3f}; median of per-round "
            f"ratios: run {paired:.3f}, cached re-run {paired_hit:.3f} (target <= 1.10)"
        )


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    main()
