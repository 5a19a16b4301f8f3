"""A project function used inside a scikit-learn pipeline by the safe-loading tests."""

from __future__ import annotations

from typing import Any


def double(X: Any) -> Any:
    return X * 2
