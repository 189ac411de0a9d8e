"""Scoring: every customer's churn probability from the trained model."""

from __future__ import annotations

import pandas as pd

from churn.train import FEATURES


def predict(model, rows: pd.DataFrame, as_of: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": rows["customer_id"],
            "churn_probability": model.predict_proba(rows[FEATURES])[:, 1],
            "scored_on": pd.Timestamp(as_of).date(),
        }
    )
