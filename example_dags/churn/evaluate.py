"""Champion/challenger: the challenger's AUC, and the record of a promoted model."""

from __future__ import annotations

import pandas as pd

from churn.train import FEATURES


def auc(model, rows: pd.DataFrame) -> pd.DataFrame:
    """The trained model's ROC AUC on the latest features (one row: what the `auc` metric reads)."""
    from sklearn.metrics import roc_auc_score

    value = roc_auc_score(rows["churned"], model.predict_proba(rows[FEATURES])[:, 1])
    return pd.DataFrame({"auc": [float(value)], "rows": [len(rows)]})


def approved(model, evaluation: pd.DataFrame):
    """The trained model itself, as the step `serve:` promotes: the step runs only once the
    evaluation's error-severity metrics passed, so a worse model never reaches the endpoint."""
    return model


def promote(model, evaluation: pd.DataFrame, version: str) -> pd.DataFrame:
    """The promoted model's record: its version, AUC and model class (the model itself stays in
    the artifact store, under the train step of this run)."""
    return pd.DataFrame(
        {
            "version": [version],
            "auc": [float(evaluation["auc"].iloc[0])],
            "model": [type(model).__name__],
        }
    )
