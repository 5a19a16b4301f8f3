"""Synthetic data with known drift: a customer-churn generator and a drift benchmark table.

`ChurnGenerator` makes time-indexed batches of customers (numeric and categorical
features, missing values, label noise) whose distribution and churn behaviour move with
one knob, ``drift`` in [0, 1]: at 0 the batch looks like the training data, at 1 prices
rose, month-to-month contracts spread, a new region opened and support calls matter more
for churn (so a model trained before the shift loses accuracy).

`drift_benchmark_frames` makes the 25-column table (20 numeric, 5 categorical) of the
drift benchmarks, with 7 columns shifted by known, deliberately modest amounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

CONTRACTS = ("month-to-month", "one-year", "two-year")
PAYMENTS = ("card", "bank-transfer", "electronic-check", "mailed-check")
INTERNET = ("dsl", "fiber", "none")
REGIONS = ("north", "south", "east", "west")
NEW_REGION = "central"
TARGET = "churned"


@dataclass(frozen=True)
class ChurnGenerator:
    """Customer-churn batches with controllable drift.

    Attributes:
        seed: Base seed; batch ``i`` uses ``seed + i``, so batches are reproducible.
        missing: Share of missing values in ``total_charges`` and ``payment_method``.
        label_noise: Share of labels flipped at random.
    """

    seed: int = 0
    missing: float = 0.03
    label_noise: float = 0.05

    def __post_init__(self) -> None:
        for name in ("missing", "label_noise"):
            value = getattr(self, name)
            if not 0 <= value < 0.5:
                raise ConfigError(
                    f"The {name!r} parameter of ChurnGenerator must be in [0, 0.5). Got "
                    f"{value!r} instead."
                )

    def batch(self, rows: int, *, drift: float = 0.0, index: int = 0) -> pd.DataFrame:
        """One batch of `rows` customers with the label column ``churned``.

        Args:
            rows: Number of customers.
            drift: 0 = the training distribution, 1 = fully shifted (clipped to [0, 1]).
            index: Batch number (selects the random stream).
        """
        import pandas as pd

        d = float(min(max(drift, 0.0), 1.0))
        rng = np.random.default_rng([self.seed, index, round(d * 1000)])
        contract_p = np.array([0.45, 0.30, 0.25]) * (1 - d) + np.array([0.70, 0.18, 0.12]) * d
        contract = rng.choice(len(CONTRACTS), size=rows, p=contract_p)
        tenure = np.clip(rng.gamma(2.0 + 2.0 * contract, 8.0, size=rows) - 4 * d, 0, 72).astype(
            np.int64
        )
        internet = rng.choice(len(INTERNET), size=rows, p=[0.35, 0.45, 0.20])
        base = np.array([45.0, 80.0, 20.0])[internet]
        raw_monthly = base + rng.normal(0, 12, size=rows) + 15.0 * d
        monthly = np.round(np.maximum(raw_monthly, 10.0), 2)
        total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.1, rows), 2)
        support_calls = rng.poisson(1.2 + 1.3 * d, size=rows)
        usage = np.round(rng.lognormal(2.5 + 0.2 * d, 0.6, size=rows), 3)
        age = np.clip(rng.normal(45, 14, size=rows), 18, 90).astype(np.int64)
        region_p = np.array([0.3, 0.25, 0.25, 0.2]) * (1 - 0.15 * d)
        regions = np.array([*REGIONS, NEW_REGION], dtype=object)
        region = regions[rng.choice(5, size=rows, p=[*region_p, 0.15 * d])]
        payment = np.array(PAYMENTS, dtype=object)[
            rng.choice(len(PAYMENTS), size=rows, p=[0.3, 0.25, 0.3, 0.15])
        ]
        paperless = np.where(rng.random(rows) < 0.6, "yes", "no").astype(object)

        logit = (
            -1.2
            + 1.4 * (contract == 0)
            - 0.9 * (contract == 2)
            - 0.045 * tenure
            + 0.025 * (monthly - 60)
            + (0.25 + 0.55 * d) * support_calls
            + 0.5 * (internet == 1)
            + 0.3 * (payment == "electronic-check")
            + 0.8 * d * (region == NEW_REGION)
        )
        churn = rng.random(rows) < 1 / (1 + np.exp(-logit))
        flip = rng.random(rows) < self.label_noise
        churn = np.where(flip, ~churn, churn)

        frame = pd.DataFrame(
            {
                "tenure_months": tenure,
                "monthly_charges": monthly,
                "total_charges": total,
                "support_calls": support_calls.astype(np.int64),
                "data_usage_gb": usage,
                "age": age,
                "contract": np.array(CONTRACTS, dtype=object)[contract],
                "internet_service": np.array(INTERNET, dtype=object)[internet],
                "payment_method": payment,
                "region": region,
                "paperless_billing": paperless,
                TARGET: churn.astype(np.int64),
            }
        )
        if self.missing:
            for column in ("total_charges", "payment_method"):
                mask = rng.random(rows) < self.missing
                frame.loc[mask, column] = None
        return frame

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame without the label column."""
        return frame.drop(columns=[TARGET])


# ---------------------------------------------------------------------------- benchmark
SHIFTED_COLUMNS = {
    "num_00": "normal, mean +0.1 std",
    "num_01": "normal, std x1.2 (same mean)",
    "num_02": "lognormal, scale x1.16",
    "num_03": "normal, 5% of values moved +3 std",
    "num_04": "poisson, rate 4 -> 4.4",
    "cat_00": "category shares (.5 .3 .2) -> (.42 .33 .25)",
    "cat_01": "a new category takes 5%",
}


def drift_benchmark_frames(
    reference_rows: int, current_rows: int, *, seed: int = 0, shift: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference table and a window with `SHIFTED_COLUMNS` shifted (when `shift`).

    25 columns: ``num_00`` .. ``num_19`` (normal, lognormal, exponential, uniform,
    poisson and integer columns, 2 % missing in a few) and ``cat_00`` .. ``cat_04``.
    """
    import pandas as pd

    def make(rows: int, rng: np.random.Generator, shifted: bool) -> pd.DataFrame:
        s = 1.0 if shifted else 0.0
        data: dict[str, Any] = {}
        data["num_00"] = rng.normal(0.1 * s, 1.0, rows)
        data["num_01"] = rng.normal(0.0, 1.0 + 0.2 * s, rows)
        data["num_02"] = rng.lognormal(0.15 * s, 0.5, rows)
        x = rng.normal(0.0, 1.0, rows)
        if shifted:
            moved = rng.random(rows) < 0.05
            x[moved] += 3.0
        data["num_03"] = x
        data["num_04"] = rng.poisson(4.0 + 0.4 * s, rows).astype(np.int64)
        for i in range(5, 20):
            family = i % 5
            if family == 0:
                values = rng.normal(10.0 * i, 3.0, rows)
            elif family == 1:
                values = rng.lognormal(1.0, 0.8, rows)
            elif family == 2:
                values = rng.exponential(2.0, rows)
            elif family == 3:
                values = rng.uniform(-5, 5, rows)
            else:
                values = rng.integers(0, 100, rows).astype(np.float64)
            if i % 4 == 0:
                values = values.astype(np.float64)
                values[rng.random(rows) < 0.02] = np.nan
            data[f"num_{i:02d}"] = values
        p0 = [0.42, 0.33, 0.25] if shifted else [0.5, 0.3, 0.2]
        data["cat_00"] = np.array(["a", "b", "c"], dtype=object)[rng.choice(3, rows, p=p0)]
        letters = np.array(["p", "q", "r", "s", "new"], dtype=object)
        p1 = [0.2375, 0.2375, 0.2375, 0.2375, 0.05] if shifted else [0.25, 0.25, 0.25, 0.25, 0]
        data["cat_01"] = letters[rng.choice(5, rows, p=p1)]
        data["cat_02"] = np.array(["x", "y"], dtype=object)[rng.choice(2, rows, p=[0.7, 0.3])]
        states = np.array([f"s{i:02d}" for i in range(30)], dtype=object)
        weights = np.linspace(1.0, 3.0, 30)
        data["cat_03"] = states[rng.choice(30, rows, p=weights / weights.sum())]
        data["cat_04"] = np.array(["red", "green", "blue", "black"], dtype=object)[
            rng.choice(4, rows, p=[0.4, 0.3, 0.2, 0.1])
        ]
        return pd.DataFrame(data)

    rng = np.random.default_rng(seed)
    return make(reference_rows, rng, False), make(current_rows, rng, shift)


__all__ = [
    "SHIFTED_COLUMNS",
    "TARGET",
    "ChurnGenerator",
    "drift_benchmark_frames",
]
