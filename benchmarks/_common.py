"""Shared helpers for the benchmark scripts: a throwaway project and timing."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.config import Settings, load_settings


def fresh_settings(folder: str | None = None, **overrides: Any) -> Settings:
    """Settings for a new SQLite store and artifact folder in a temporary directory."""
    root = Path(folder or tempfile.mkdtemp(prefix="conveyor-bench-"))
    return load_settings(
        root=root,
        env={},
        db_url=f"sqlite:///{root / 'conveyor.db'}",
        artifact_url=str(root / "artifacts"),
        **overrides,
    )


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, float]:
    """(best, median) wall-clock seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)
