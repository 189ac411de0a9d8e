"""One model per region (a `foreach:` item), evaluated on the region's holdout customers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from regions.model import LogisticModel, labels, roc_auc

HOLDOUT = 5  # every 5th customer (customer_id % 5 == 0) is kept out of training


def split(rows: pa.Table, region: str, holdout: bool) -> pa.Table:
    """The region's rows, either its holdout customers or the others."""
    in_region = np.asarray(rows.column("region").to_pylist()) == region
    held = np.asarray(rows.column("customer_id").to_numpy()) % HOLDOUT == 0
    return rows.filter(pa.array(in_region & (held == holdout)))


def fit(features: pa.Table, item: str) -> LogisticModel:
    """The region's model, fitted on its customers outside the holdout."""
    return LogisticModel.fit(item, split(features, item, holdout=False))


def evaluate(model: LogisticModel, rows: pa.Table, item: str) -> pa.Table:
    """One row: the region model's AUC and accuracy on the region's holdout customers (what the
    step's per-item `auc` and `accuracy` metrics read)."""
    holdout = split(rows, item, holdout=True)
    y, probability = labels(holdout), model.predict_proba(holdout)
    return pa.table(
        {
            "region": [item],
            "train_rows": [model.rows],
            "holdout_rows": [holdout.num_rows],
            "auc": [roc_auc(y, probability)],
            "accuracy": [float(((probability > 0.5) == y).mean())],
        }
    )
