"""Fills a DuckDB warehouse with the example pipelines' synthetic source tables.

    python example_dags/seed_warehouse.py PATH.duckdb [--customers N] [--order-events N]

Deterministic (fixed seed, and hashes of row numbers where DuckDB generates rows in parallel), so
demo runs and tests see the same data.
"""

from __future__ import annotations

import argparse
import os

import duckdb
import numpy as np
import pandas as pd

# `raw.order_events`: the Spark example's (churn_at_scale) input, large enough that Spark is the
# tool for it; generated inside DuckDB (5,000,000 rows in seconds)
ORDER_EVENTS = 5_000_000


def seed(path: str, customers: int = 5000, seed: int = 7, order_events: int = ORDER_EVENTS) -> None:
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
        seed_order_events(conn, customers, order_events, seed)
    print(f"seeded {path}: {customers} customers, {len(order_frame)} orders, {order_events} order events")


def seed_order_events(conn, customers: int, rows: int, seed: int) -> None:
    """``raw.order_events``: orders, returns and cancellations over the 180 days to 2026-03-01.
    Some customers (three in ten) stop ordering at a day of their own, so recency and frequency
    tell who churns. Each value is a hash of the row number (``u(k)``, uniform in [0, 1)): the same
    rows on every machine, however many threads DuckDB runs."""

    def u(k: int, of: str = "i") -> str:
        return f"(hash({of}, {seed}, {k}) % 1000003) / 1000003.0"

    customers, rows, seed = int(customers), int(rows), int(seed)  # the only values formatted into the SQL
    conn.execute(
        f"""
        CREATE OR REPLACE TABLE raw.order_events AS
        WITH events AS (
            SELECT i, 1 + CAST(floor({customers} * pow({u(1)}, 1.6)) AS BIGINT) AS customer_id
            FROM range({rows}) AS t(i)
        ), timed AS (
            SELECT i, customer_id,
                   -- a churner's events end at its own day (55% to 100% of the way); the others' run to the end
                   CASE WHEN {u(1, "customer_id")} < 0.3 THEN 0.55 + 0.45 * {u(2, "customer_id")} ELSE 1.0 END
                       * {u(2)} AS frac
            FROM events
        )
        SELECT i + 1 AS event_id,
               customer_id,
               TIMESTAMP '2025-09-02' + to_microseconds(CAST(frac * 180 * 86400e6 AS BIGINT)) AS event_time,
               CASE WHEN {u(3)} < 0.86 THEN 'order' WHEN {u(3)} < 0.95 THEN 'return' ELSE 'cancel' END AS event_type,
               round(exp(3.0 + 0.6 * sqrt(-2 * ln(1 - {u(4)})) * cos(2 * pi() * {u(5)})), 2) AS amount,
               CASE WHEN {u(6)} < 0.5 THEN 'web' WHEN {u(6)} < 0.85 THEN 'app' ELSE 'store' END AS channel
        FROM timed
        ORDER BY event_id
        """  # noqa: S608 - integers only (above)
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--order-events", type=int, default=ORDER_EVENTS)
    args = parser.parse_args()
    seed(args.path, args.customers, order_events=args.order_events)
