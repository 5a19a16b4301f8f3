"""`conveyor demo`: the example project, run twice to show caching."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor.cli import common


def run_demo(path: Path) -> int:
    """Scaffold (if needed) and run the example pipeline twice; returns an exit code."""
    from conveyor.cli.scaffold import scaffold
    from conveyor.config import load_settings
    from conveyor.execution.loader import load_pipeline
    from conveyor.execution.orchestrator import run_pipeline

    console = common.console()
    if not (path / "conveyor.toml").exists():
        scaffold(path, force=True)
        console.print(f"Scaffolded the example project in [bold]{path}[/].")
    previous = Path.cwd()
    os.chdir(path)
    try:
        settings = load_settings()
        training = load_pipeline("pipelines/training.py:training", settings.root)
        for label in ("first run: every step executes", "second run: every step is cached"):
            console.print(f"\n[bold]{label}[/]")
            started = time.perf_counter()
            run = run_pipeline(training, {"test_size": 0.25}, settings=settings)
            elapsed = time.perf_counter() - started
            steps = run.steps()
            cached = sum(1 for s in steps if s["cache_hit"])
            metrics = run.output("metrics")
            console.print(
                f"run {run.id} {run.status} in {elapsed:.2f} s, {cached}/{len(steps)} steps "
                f"cached; roc_auc={metrics['roc_auc']:.3f} accuracy={metrics['accuracy']:.3f}",
                highlight=False,
            )
        console.print(
            f"\nInspect it: cd {path} && conveyor runs list && conveyor runs show {run.id}"
        )
    finally:
        os.chdir(previous)
    return 0
