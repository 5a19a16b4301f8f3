"""Run and step statuses, and how a recorded process is told alive from dead."""

from __future__ import annotations

import os

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
SKIPPED = "skipped"
INTERRUPTED = "interrupted"
PENDING = "pending"


def process_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (Linux), to tell pid reuse apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().rsplit(b")", 1)[1].split()
        return int(stat[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int, start: int | None) -> bool:
    """Whether process `pid` (started at `start` clock ticks, if known) still runs here."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is None:
        return True
    current = process_start_time(pid)
    return current is None or current == start
