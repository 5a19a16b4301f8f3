"""Saving and loading a scikit-learn Model does not import torch, even when installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

SCRIPT = """
import sys
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from conveyor.training.model import Model
X = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 3)), columns=list("abc"))
fitted = Model.from_fitted(LogisticRegression().fit(X, np.arange(40) % 2), X, profile=False)
loaded = Model.from_bytes(fitted.to_bytes(), trusted=fitted.trusted_types())
assert (loaded.predict(X) == fitted.predict(X)).all()
import skops.io
assert len(skops.io._trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES) > 100
print(sorted(m for m in ("torch", "dask.array") if m in sys.modules))
"""


def test_sklearn_models_round_trip_without_importing_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed, so nothing could import it")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_user_code_still_imports_torch_after_skops() -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    script = (
        "from conveyor._internal.lazy import import_skops_io\n"
        "import_skops_io()\nimport torch\nprint(torch.tensor([1, 2]).sum().item())"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
