"""The baseline: a minimal FastAPI app calling `model.predict` once per request.

Run: BASELINE_MODEL=model.joblib uvicorn benchmarks.serving.baseline_app:app --workers 1
"""

from __future__ import annotations

import os

import joblib
import pandas as pd
from fastapi import FastAPI

model = joblib.load(os.environ["BASELINE_MODEL"])
app = FastAPI()


@app.post("/predict")
def predict(body: dict) -> dict:  # type: ignore[type-arg]
    frame = pd.DataFrame(body["records"])
    return {"predictions": model.predict(frame).tolist()}


@app.get("/readyz")
def ready() -> dict:  # type: ignore[type-arg]
    return {"ready": True}
