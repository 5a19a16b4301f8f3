"""Fresh-process model load (issue 17, target 3a), against its baseline in the same run.

A fresh process calling `load_model("cold@production")` (a StandardScaler +
LogisticRegression Pipeline registered with its Profile) vs a fresh process that
`joblib.load`s the same fitted Pipeline: target at most 1.5x. Also printed: whether the
load imported `skops.io`, the scikit-learn modules each process imported, and the load of a
version registered before fast-load copies existed (its first load goes through skops and
records a copy; measured in fresh processes after the row is deleted each time).

The machine is shared: medians of interleaved repeats, wall and CPU time (user + system)
and the load average are printed. Run: .venv/bin/python benchmarks/model_load.py [REPEAT]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import joblib
from _process import PYTHON, interleaved, load_average, ratio_line, timed_process
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model

LOAD_MODEL = "from conveyor import load_model; load_model('cold@production').predict"
JOBLIB_LOAD = "import joblib; joblib.load('pipeline.joblib').predict"
MODULES = (
    "import sys; {load}; "
    "print('skops.io' in sys.modules, sum(n.startswith('sklearn') for n in sys.modules))"
)
# A version without a fast-load copy (registered by an older release): delete the rows.
NO_COPY = (
    "import sqlite3; c = sqlite3.connect('.conveyor/conveyor.db'); "
    "c.execute('DELETE FROM serving_caches'); c.commit(); "
    "from conveyor import load_model; load_model('cold@production').predict"
)


def project_with_model() -> Path:
    project = Path(tempfile.mkdtemp(prefix="conveyor-bench-load-"))
    (project / "conveyor.toml").write_text("[conveyor]\n")
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
    for label, load in (("load_model", LOAD_MODEL), ("joblib.load", JOBLIB_LOAD)):
        out = timed_process([PYTHON, "-c", MODULES.format(load=load)], project)[2].split()
        print(f"  {label}: skops.io imported: {out[0]}, sklearn modules imported: {out[1]}")
    samples = interleaved(
        {
            "load_model('cold@production')": ([PYTHON, "-c", LOAD_MODEL], project),
            "joblib.load": ([PYTHON, "-c", JOBLIB_LOAD], project),
            "load_model, no fast-load copy": ([PYTHON, "-c", NO_COPY], project),
        },
        repeat,
    )
    timed_process([PYTHON, "-c", LOAD_MODEL], project)  # leaves the copy recorded
    a, b = samples["load_model('cold@production')"], samples["joblib.load"]
    old = samples["load_model, no fast-load copy"]
    print(f"fresh-process model load (sklearn Pipeline), median of {repeat}:")
    print(ratio_line(a, b, "wall", 1.5))
    print(ratio_line(a, b, "cpu", 1.5))
    print(ratio_line(old, b, "cpu", None) + " (first load of an old version: skops)")
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
