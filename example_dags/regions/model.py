"""A small logistic regression in numpy: what each region's `train` item fits and pickles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

FEATURES = ("tenure_days", "orders_90d", "spend_90d", "monthly_fee", "is_premium")
LABEL = "churned"


def matrix(rows: pa.Table, features=FEATURES) -> np.ndarray:
    return np.column_stack([np.asarray(rows.column(name).to_numpy(), dtype=float) for name in features])


def labels(rows: pa.Table) -> np.ndarray:
    return np.asarray(rows.column(LABEL).to_numpy(), dtype=bool)


@dataclass(frozen=True)
class LogisticModel:
    """Standardised features, then weights and a bias; ``predict_proba`` gives P(churned)."""

    region: str
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    rows: int

    @classmethod
    def fit(cls, region: str, rows: pa.Table, steps: int = 300, rate: float = 0.5, l2: float = 1e-3):
        x, y = matrix(rows), labels(rows).astype(float)
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        z = (x - mean) / scale
        weights, bias = np.zeros(z.shape[1]), 0.0
        for _ in range(steps):  # full-batch gradient descent on the log loss
            error = _sigmoid(z @ weights + bias) - y
            weights -= rate * (z.T @ error / len(y) + l2 * weights)
            bias -= rate * error.mean()
        return cls(region, FEATURES, tuple(mean), tuple(scale), tuple(weights), float(bias), len(y))

    def predict_proba(self, rows: pa.Table) -> np.ndarray:
        z = (matrix(rows, self.features) - np.array(self.mean)) / np.array(self.scale)
        return _sigmoid(z @ np.array(self.weights) + self.bias)

    def top_feature(self) -> str:
        return self.features[int(np.argmax(np.abs(self.weights)))]


def _sigmoid(value: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-value))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by ranks (Mann-Whitney U), ties sharing their average rank."""
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if not positives or not negatives:
        raise ValueError(f"AUC needs both classes; the holdout has {positives} positive and {negatives} negative rows")
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))
