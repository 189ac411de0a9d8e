"""Fills a DuckDB warehouse with the example pipelines' synthetic source tables.

    python example_dags/seed_warehouse.py PATH.duckdb [--customers N]

Deterministic (fixed seed), so demo runs and tests see the same data.
"""

from __future__ import annotations

import argparse
import os

import duckdb
import numpy as np
import pandas as pd


def seed(path: str, customers: int = 5000, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, customers + 1)
    signup = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 720, customers), unit="D")
    plan = rng.choice(["basic", "standard", "premium"], customers, p=[0.5, 0.35, 0.15])
    fee = np.select([plan == "basic", plan == "standard"], [9.0, 19.0], 39.0)
    activity = rng.gamma(2.0, 2.0, customers)
    churn_logit = 0.8 - 0.5 * activity - 0.6 * (plan == "premium") + rng.normal(0, 0.5, customers)
    customer_frame = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": signup.date,
            "plan": plan,
            "monthly_fee": fee,
            "region": rng.choice(["eu", "us", "apac"], customers),
            "churned": churn_logit > 0,
        }
    )
    counts = rng.poisson(activity * 2)
    order_customer = np.repeat(ids, counts)
    created = pd.Timestamp("2026-03-01") - pd.to_timedelta(rng.integers(0, 120 * 24, len(order_customer)), unit="h")
    order_frame = pd.DataFrame(
        {
            "order_id": np.arange(1, len(order_customer) + 1),
            "customer_id": order_customer,
            "created_at": created,
            "amount": np.round(rng.lognormal(3.0, 0.6, len(order_customer)), 2),
        }
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with duckdb.connect(path) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
        conn.register("customer_frame", customer_frame)
        conn.register("order_frame", order_frame)
        conn.execute("CREATE OR REPLACE TABLE raw.customers AS SELECT * FROM customer_frame")
        conn.execute("CREATE OR REPLACE TABLE raw.orders AS SELECT * FROM order_frame")
    print(f"seeded {path}: {customers} customers, {len(order_frame)} orders")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--customers", type=int, default=5000)
    args = parser.parse_args()
    seed(args.path, args.customers)
