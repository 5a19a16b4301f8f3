"""Worker processes of `conveyor run --executor processes` die with the run (issue 12, item 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads the process table from /proc"
)

FLOW = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from conveyor import pipeline, step

    @step(cache=False)
    def stuck(gate: str) -> int:
        Path(gate + ".tmp").write_text(str(os.getpid()))
        os.replace(gate + ".tmp", gate + ".entered")
        while not Path(gate + ".open").exists():  # never opened: the run is killed first
            time.sleep(0.05)
        return 1

    @pipeline
    def flow(gate: str = ""):
        return stuck(gate=gate)
    """
)


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = info[0]
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    info = _stat(pid)
    return info is not None and info[1] not in ("Z", "X")  # a zombie has stopped running


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_no_worker_process_outlives_the_run(tmp_path: Path, signum: signal.Signals) -> None:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    (tmp_path / "flow.py").write_text(FLOW)
    gate = tmp_path / "gate"
    entered = Path(f"{gate}.entered")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    process = subprocess.Popen(
        [CONVEYOR, "run", "flow.py:flow", "-q", "--executor", "processes:2", "-p", f"gate={gate}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while not entered.exists():
            assert process.poll() is None, "conveyor run ended before the step started"
            assert time.monotonic() < deadline, "the step did not start within 60 s"
            time.sleep(0.02)
        worker = int(entered.read_text())
        children = _descendants(process.pid)
        # The step runs in a pool worker, a grandchild (through the forkserver).
        assert worker in children
        assert len(children) >= 2
        process.send_signal(signum)
        process.wait(timeout=30)
        deadline = time.monotonic() + 5
        while (alive := {pid for pid in children if _alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive, f"still running 5 s after {signum.name} of the run: {sorted(alive)}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
