"""Training: a scikit-learn logistic regression on the features; the fitted pipeline is the output."""

from __future__ import annotations

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["tenure_days", "orders_90d", "spend_90d", "monthly_fee", "is_premium"]


def fit(features: pd.DataFrame):
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(features[FEATURES], features["churned"])
    return model
