"""The 5-step breast-cancer pipeline (issue 17, target 1), against plain Python.

load -> split into a dict of four pandas objects -> StandardScaler -> LogisticRegression
-> accuracy, everything persisted and recorded as `conveyor run` does today. Three figures,
each with its baseline measured in the same run:

(a) the whole `conveyor run --no-cache` process vs `python plain.py` doing the same work
    (target <= 1.3x);
(b) the first run in a new process, time of the run call after imports, vs the plain
    functions in a new process after the same imports (target <= 2x);
(c) warm runs in this process vs the plain functions (target <= 1.5x).

Run: .venv/bin/python benchmarks/ml_pipeline.py [REPEAT]   (default 5 repeats, medians)
"""

from __future__ import annotations

import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _process import CONVEYOR, PYTHON, interleaved, load_average, ratio_line, timed_process

IMPORTS = """\
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
"""

# The same function bodies run as conveyor steps and as plain functions.
BODY = """\
def load() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


def split(frame: pd.DataFrame) -> dict:
    X, y = frame.drop(columns=["target"]), frame["target"]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


def scale(parts: dict) -> dict:
    scaler = StandardScaler().fit(parts["X_train"])
    out = dict(parts)
    for key in ("X_train", "X_test"):
        frame = parts[key]
        out[key] = pd.DataFrame(scaler.transform(frame), columns=frame.columns, index=frame.index)
    return out


def train(parts: dict) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(parts["X_train"], parts["y_train"])


def accuracy(model: LogisticRegression, parts: dict) -> float:
    return float(accuracy_score(parts["y_test"], model.predict(parts["X_test"])))
"""

STEPS = ("load", "split", "scale", "train", "accuracy")


def conveyor_module() -> str:
    body = BODY
    for name in STEPS:
        body = body.replace(f"def {name}(", f"@step\ndef {name}(")
    pipeline = """
@pipeline
def ml():
    parts = scale(split(load()))
    return accuracy(train(parts), parts)
"""
    return f"{IMPORTS}\nfrom conveyor import pipeline, step\n\n\n{body}{pipeline}"


def plain_module() -> str:
    return f"""{IMPORTS}

{BODY}

def ml() -> float:
    parts = scale(split(load()))
    return accuracy(train(parts), parts)


if __name__ == "__main__":
    print(ml())
"""


# A fresh process: import everything the script needs, then time one call.
FIRST_CONVEYOR = """\
import time
from pathlib import Path
from conveyor.config import load_settings
from conveyor.execution.orchestrator import run_pipeline
import mlpipe
settings = load_settings(root=Path("."))
start, cpu = time.perf_counter(), time.process_time()
run_pipeline(mlpipe.ml, settings=settings, cache=False)
print(time.perf_counter() - start, time.process_time() - cpu)
"""
FIRST_PLAIN = """\
import time
import plain
start, cpu = time.perf_counter(), time.process_time()
plain.ml()
print(time.perf_counter() - start, time.process_time() - cpu)
"""


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    project = Path(tempfile.mkdtemp(prefix="conveyor-bench-ml-"))
    (project / "conveyor.toml").write_text("[conveyor]\n")
    (project / "mlpipe.py").write_text(conveyor_module())
    (project / "plain.py").write_text(plain_module())
    print(f"before: {load_average()}")
    # Create the store and warm the OS file cache outside the measurement.
    timed_process([CONVEYOR, "run", "mlpipe.py:ml", "-q"], project)
    timed_process([PYTHON, "plain.py"], project)

    whole = interleaved(
        {
            "conveyor run --no-cache": (
                [CONVEYOR, "run", "mlpipe.py:ml", "--no-cache", "-q"],
                project,
            ),
            "python plain.py": ([PYTHON, "plain.py"], project),
        },
        repeat,
    )
    print(f"(a) whole process, median of {repeat}:")
    conveyor_run, plain_run = whole["conveyor run --no-cache"], whole["python plain.py"]
    print(ratio_line(conveyor_run, plain_run, "wall", 1.3))
    print(ratio_line(conveyor_run, plain_run, "cpu", 1.3))

    first = interleaved(
        {
            "conveyor run_pipeline": ([PYTHON, "-c", FIRST_CONVEYOR], project),
            "plain functions": ([PYTHON, "-c", FIRST_PLAIN], project),
        },
        repeat,
    )
    a, b = first["conveyor run_pipeline"], first["plain functions"]
    print(f"(b) first run in a new process, time of the call after imports, median of {repeat}:")
    for which, x, y in (("wall", a.reported, b.reported), ("cpu", a.reported_cpu, b.reported_cpu)):
        ratio = statistics.median(x) / statistics.median(y)
        print(
            f"  {which:6} conveyor: {statistics.median(x):.3f} s vs plain: "
            f"{statistics.median(y):.3f} s -> {ratio:.2f}x "
            f"[target <= 2x: {'met' if ratio <= 2 else 'NOT met'}]"
        )

    sys.path.insert(0, str(project))
    from conveyor.config import load_settings
    from conveyor.execution.orchestrator import run_pipeline

    mlpipe = importlib.import_module("mlpipe")
    plain = importlib.import_module("plain")
    settings = load_settings(root=project, env={})
    run_pipeline(mlpipe.ml, settings=settings, cache=False)  # the first, cold one
    plain.ml()
    warm: dict[str, list[float]] = {"wall": [], "cpu": []}
    base: dict[str, list[float]] = {"wall": [], "cpu": []}
    # Warm runs are short (tens of ms): many interleaved pairs, so a burst of other work
    # on the machine lands on both sides.
    for _ in range(max(repeat * 6, 30)):
        for fn, out in (
            (lambda: run_pipeline(mlpipe.ml, settings=settings, cache=False), warm),
            (plain.ml, base),
        ):
            # process_time counts this process only: background artifact writes in
            # threads are included, other engineers' load is not.
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            out["wall"].append(time.perf_counter() - start)
            out["cpu"].append(time.process_time() - cpu)
    print(f"(c) warm runs in one process, median of {len(warm['wall'])}:")
    for which in ("wall", "cpu"):
        x, y = statistics.median(warm[which]), statistics.median(base[which])
        print(
            f"  {which:6} conveyor: {x * 1000:.1f} ms vs plain: {y * 1000:.1f} ms -> "
            f"{x / y:.2f}x [target <= 1.5x: {'met' if x / y <= 1.5 else 'NOT met'}]"
        )
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
