"""Cold starts (issue 17, targets 3 and 4), each against a baseline in the same run.

1. A fresh process that calls `load_model("cold@production")` (an sklearn Pipeline,
   StandardScaler + LogisticRegression) vs a fresh process that `joblib.load`s the same
   fitted Pipeline (target <= 1.5x).
2. The whole `conveyor run` process of the 50-step chain of benchmarks/engine_chain.py
   (uncached) vs `python -c pass` (target: at most 0.5 s).
3. `python -X importtime` of both, self time summed per top-level package: where the
   time goes.

The machine is shared and loaded: medians of interleaved repeats, wall and CPU time, and
the load average are printed. Run: .venv/bin/python benchmarks/cold_start.py [REPEAT]
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from pathlib import Path

import joblib
from _process import (
    CONVEYOR,
    PYTHON,
    import_offenders,
    interleaved,
    load_average,
    ratio_line,
    timed_process,
)
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model

N = 50
CHAIN = f"""
from conveyor import pipeline, step

@step
def inc(x: int) -> int:
    return x + 1

@pipeline
def chain(start: int = 0):
    value = inc(start)
    for _ in range({N - 1}):
        value = inc(value)
    return value
"""
LOAD_MODEL = "from conveyor import load_model; load_model('cold@production').predict"
JOBLIB_LOAD = "import joblib; joblib.load('pipeline.joblib').predict"


def project_with_model() -> Path:
    project = Path(tempfile.mkdtemp(prefix="conveyor-bench-cold-"))
    (project / "conveyor.toml").write_text("[conveyor]\n")
    (project / "chain.py").write_text(textwrap.dedent(CHAIN))
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    fitted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    joblib.dump(fitted, project / "pipeline.joblib")
    root = project / ".conveyor"
    registry = Registry(
        open_metadata_store(f"sqlite:///{root / 'conveyor.db'}"),
        open_artifact_store(str(root / "artifacts")),
    )
    registry.register(Model.from_fitted(fitted, X), "cold", promote_to="production")
    return project


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    project = project_with_model()
    print(f"before: {load_average()}")
    # Warm the OS file cache and check every command works, outside the measurement.
    timed_process([PYTHON, "-c", LOAD_MODEL], project)
    timed_process([CONVEYOR, "run", "chain.py:chain", "-q", "-p", "start=-1"], project)

    loads = interleaved(
        {
            "load_model('cold@production')": ([PYTHON, "-c", LOAD_MODEL], project),
            "joblib.load": ([PYTHON, "-c", JOBLIB_LOAD], project),
        },
        repeat,
    )
    print(f"1. fresh-process model load (sklearn Pipeline), median of {repeat}:")
    a, b = loads["load_model('cold@production')"], loads["joblib.load"]
    print(ratio_line(a, b, "wall", 1.5))
    print(ratio_line(a, b, "cpu", 1.5))

    runs = interleaved(
        {
            "conveyor run (50 steps)": (
                [CONVEYOR, "run", "chain.py:chain", "--no-cache", "-q"],
                project,
            ),
            "python -c pass": ([PYTHON, "-c", "pass"], project),
        },
        repeat,
    )
    run, bare = runs["conveyor run (50 steps)"], runs["python -c pass"]
    print(f"2. whole `conveyor run` of the {N}-step chain, median of {repeat}:")
    for which in ("wall", "cpu"):
        verdict = "met" if run.median(which) <= 0.5 else "NOT met"
        print(ratio_line(run, bare, which, None) + f" [target <= 0.5 s: {verdict}]")

    print("3. python -X importtime, self time per top-level package:")
    print(" `conveyor run` of the chain:")
    print(
        "\n".join(
            import_offenders(["-m", "conveyor.cli.entry", "run", "chain.py:chain", "-q"], project)
        )
    )
    print(" load_model('cold@production'):")
    print("\n".join(import_offenders(["-c", LOAD_MODEL], project)))
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
