"""Fresh-process timing for the cold-start benchmarks (issue 17).

The reference machine is shared: other engineers' test suites push the load average far
above its 2 cores. So every figure here is a median over interleaved repeats, reported
with the process's CPU time (user + system, which load inflates much less than wall
time) and the load average at the time.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

PYTHON = sys.executable
CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


PYCACHE = Path(tempfile.gettempdir()) / "conveyor-bench-pycache"


def clean_env() -> dict[str, str]:
    """The environment without CONVEYOR_* settings (the project's conveyor.toml decides).

    Bytecode caching is on (in a folder of its own, not in the source tree), as in any
    installed copy of conveyor: with PYTHONDONTWRITEBYTECODE=1, as on the reference
    machine, every process would compile conveyor's sources again (~0.1 s) while the
    site-packages its baselines import have their .pyc files.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
    return env


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, formatted."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"


def timed_process(cmd: Sequence[str], cwd: Path | None = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout) of one fresh process; fails loudly on error."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        list(cmd), cwd=cwd, env=clean_env(), capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


class Samples:
    """Wall and CPU samples of one scenario."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.reported: list[float] = []  # a figure the process printed itself
        self.reported_cpu: list[float] = []  # and a second one (its CPU time), if printed

    def add(self, wall: float, cpu: float, stdout: str = "") -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)
        last = stdout.strip().splitlines()[-1:] if stdout.strip() else []
        try:
            figures = [float(x) for x in last[0].split()] if last else []
        except ValueError:
            figures = []
        if figures:
            self.reported.append(figures[0])
        if len(figures) > 1:
            self.reported_cpu.append(figures[1])

    def median(self, which: str = "wall") -> float:
        return statistics.median(getattr(self, which))


def interleaved(
    scenarios: dict[str, tuple[Sequence[str], Path | None]], repeat: int
) -> dict[str, Samples]:
    """Run each scenario `repeat` times, alternating, so load swings hit all of them alike."""
    out = {label: Samples(label) for label in scenarios}
    for _ in range(repeat):
        for label, (cmd, cwd) in scenarios.items():
            out[label].add(*timed_process(cmd, cwd))
    return out


def ratio_line(what: Samples, baseline: Samples, which: str, target: float | None) -> str:
    """One line: both medians, the ratio and the target verdict."""
    a, b = what.median(which), baseline.median(which)
    ratio = a / b if b else float("inf")
    verdict = ""
    if target is not None:
        verdict = f" [target <= {target}x: {'met' if ratio <= target else 'NOT met'}]"
    return (
        f"  {which:6} {what.label}: {a:.3f} s vs {baseline.label}: {b:.3f} s -> "
        f"{ratio:.2f}x{verdict}"
    )


def import_offenders(cmd: Sequence[str], cwd: Path | None = None, top: int = 12) -> list[str]:
    """`python -X importtime` of `cmd`, self time summed per top-level package, largest first."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", *cmd],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"importtime of {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    per_package: dict[str, int] = defaultdict(int)
    total = 0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:") :].split("|", 2)
        package = name.strip().split(".")[0]
        per_package[package] += int(self_us)
        total += int(self_us)
    ranked = sorted(per_package.items(), key=lambda kv: -kv[1])[:top]
    lines = [f"  all imports: {total / 1e6:.3f} s (self times summed)"]
    lines += [f"  {name:24} {us / 1e6:.3f} s" for name, us in ranked]
    return lines
