"""A training pipeline that reads a dataset version and registers its model."""

from __future__ import annotations

import pandas as pd

from conveyor import pipeline, step
from conveyor.data.datasets import dataset
from conveyor.monitoring.generator import TARGET
from conveyor.registry import register_model
from conveyor.training.model import Model


@step
def fit_and_register(frame: pd.DataFrame) -> int:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = ["tenure_months", "monthly_charges", "support_calls"]
    categorical = ["contract", "region"]
    features = frame[[*numeric, *categorical, TARGET]]
    prep = ColumnTransformer(
        [
            ("n", SimpleImputer(), numeric),
            ("c", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    estimator = make_pipeline(prep, LogisticRegression(max_iter=500))
    estimator.fit(features.drop(columns=[TARGET]), features[TARGET])
    model = Model.from_fitted(estimator, features, target=TARGET)
    return register_model(model, "churn", promote_to="production").version


@pipeline
def retrain(data: str = "churn-train") -> int:
    return fit_and_register(dataset(data))
