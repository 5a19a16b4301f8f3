"""What a `conveyor run` process imports: start-up cost every run pays (issue 17)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHAIN = """
from conveyor import pipeline, step

@step
def inc(x: int) -> int:
    return x + 1

@pipeline
def chain(start: int = 0):
    return inc(inc(start))
"""

# Runs the CLI in-process and reports, at exit, which optional modules it imported.
PROBE = """
import atexit, sys
atexit.register(lambda: print(sorted(m for m in {mods!r} if m in sys.modules)))
sys.argv = ["conveyor", *{args!r}]
from conveyor.cli.main import main
main()
"""


def _imported(project: Path, args: list[str], mods: tuple[str, ...]) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(mods=mods, args=args)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1], done.stdout


@pytest.mark.slow
def test_a_run_that_prints_no_progress_bar_does_not_import_it(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    (tmp_path / "chain.py").write_text(CHAIN)
    quiet, _ = _imported(tmp_path, ["run", "chain.py:chain", "-q"], ("rich", "rich.progress"))
    assert quiet == "[]"
    # Not quiet, output not a terminal: the step lines are printed, without the bar.
    last, out = _imported(tmp_path, ["run", "chain.py:chain", "-p", "start=5"], ("rich.progress",))
    assert last == "[]"
    assert "✓ inc" in out and "completed" in out
