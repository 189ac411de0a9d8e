"""Feature building: one row per customer, from the customer table and their orders."""

from __future__ import annotations

import pandas as pd


def build(customers: pd.DataFrame, orders: pd.DataFrame, ds: str) -> pd.DataFrame:
    as_of = pd.Timestamp(ds)
    frame = customers.merge(orders, on="customer_id", how="left")
    frame["orders_90d"] = frame["orders_90d"].fillna(0).astype("int64")
    frame["spend_90d"] = frame["spend_90d"].fillna(0.0)
    frame["tenure_days"] = (as_of - pd.to_datetime(frame["signup_date"])).dt.days
    frame["is_premium"] = (frame["plan"] == "premium").astype("int64")
    columns = ["customer_id", "tenure_days", "orders_90d", "spend_90d", "monthly_fee", "is_premium", "churned"]
    return frame[columns]
