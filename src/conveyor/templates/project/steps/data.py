"""Data steps: load the bundled breast-cancer table and split it."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from conveyor import step

TARGET = "target"


@step
def load_data() -> pd.DataFrame:
    """The breast-cancer data set shipped with scikit-learn (569 rows, 30 features)."""
    frame = load_breast_cancer(as_frame=True).frame
    print(f"loaded {len(frame)} rows x {frame.shape[1] - 1} features")
    return frame


@step
def split(
    data: pd.DataFrame, test_size: float = 0.25, seed: int = 0
) -> tuple[Annotated[pd.DataFrame, "train"], Annotated[pd.DataFrame, "test"]]:
    """Stratified train/test split."""
    train, test = train_test_split(
        data, test_size=test_size, random_state=seed, stratify=data[TARGET]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)
