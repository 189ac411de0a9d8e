"""The fan-in: every region's evaluation and model, ranked; the best AUC is the one to use."""

from __future__ import annotations

import pyarrow as pa

from regions.model import LogisticModel


def best(evaluation: pa.Table, models: list, version: str) -> pa.Table:
    """One row per region, best first. ``evaluation`` is every item's one-row table in item
    order, with the item (the region) as its first column; ``models`` is the items' models, in
    the same order (a parameter annotated ``list`` gets the list)."""
    rows = evaluation.to_pylist()
    by_region: dict[str, LogisticModel] = {model.region: model for model in models}
    # where each item's model is kept: `train/<map_index>/` in this run's artifacts
    map_index = {item: index for index, item in enumerate(dict.fromkeys(row["item"] for row in rows))}
    ranked = sorted(rows, key=lambda row: (-row["auc"], row["region"]))
    return pa.table(
        {
            "version": [version] * len(ranked),
            "region": [row["region"] for row in ranked],
            "rank": list(range(1, len(ranked) + 1)),
            "is_best": [rank == 0 for rank in range(len(ranked))],
            "auc": [row["auc"] for row in ranked],
            "accuracy": [row["accuracy"] for row in ranked],
            "train_rows": [row["train_rows"] for row in ranked],
            "holdout_rows": [row["holdout_rows"] for row in ranked],
            "top_feature": [by_region[row["region"]].top_feature() for row in ranked],
            "map_index": [map_index[row["item"]] for row in ranked],
        }
    )
