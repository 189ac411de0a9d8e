"""The UI tests' warehouse: raw tables whose days make tests/ui/specs' checks pass or fail.

``raw.orders`` holds one batch of orders per day of :data:`DATES`; the spec ``ui_orders`` reads
one day a run. What each day's runs find (the tests assert these, read back through the UI):

- every day: ``enough_orders`` passes; ``mean_amount`` sits near 50 inside its static bounds
  [10, 200]; ``order_count`` is about 40 (learning for 3 days, then judged against a band);
- 2026-03-02 and 2026-03-06: a ``refunded`` order, so the warning ``known_status`` fails;
- 2026-03-04: an order of 9999 whose customer is an ``<img onerror>``: ``amount_in_range`` fails
  (error severity, the run fails) with that amount as its sample, ``mean_amount`` leaves its
  static bounds, and the warning ``plain_customers`` fails with that customer as its sample;
- 2026-03-06: two orders without an id (one customer a ``<script>``): ``ids_not_null`` fails,
  and so does ``plain_customers`` (a warning);
- 2026-03-08: 90 orders, far outside the learned band: ``order_count`` fails.

``raw.refunds`` has a few refunds on the last two days, for the second pipeline ``ui_refunds``.
E-mail addresses are the spec's ``sensitive`` column: never in a sample.
"""

from __future__ import annotations

import datetime

DATES = [f"2026-03-{day:02d}" for day in range(1, 9)]
REFUND_DATES = DATES[-2:]
COUNTS = [40, 42, 39, 41, 40, 43, 38, 90]
BIG_AMOUNT = 9999.0
IMG_CUSTOMER = "<img src=x onerror=alert('sample')>"
SCRIPT_CUSTOMER = "<script>alert('sample')</script>"


def order_rows() -> list[tuple]:
    rows = []
    order_id = 0
    for index, (date, count) in enumerate(zip(DATES, COUNTS, strict=True)):
        day = datetime.date.fromisoformat(date)
        for k in range(count):
            order_id += 1
            amount = float(20 + (order_id * 37) % 60)
            customer = f"customer {order_id % 17}"
            status = "paid" if k % 3 else "open"
            ident: int | None = order_id
            if index in (1, 5) and k == 0:
                status = "refunded"
            if index == 3 and k == 5:
                amount, customer = BIG_AMOUNT, IMG_CUSTOMER
            if index == 5 and k in (7, 8):
                ident = None
                customer = SCRIPT_CUSTOMER if k == 7 else customer
            rows.append((ident, day, customer, f"person{order_id}@example.com", amount, status))
    return rows


def refund_rows() -> list[tuple]:
    rows = []
    for index, date in enumerate(REFUND_DATES):
        day = datetime.date.fromisoformat(date)
        rows += [(index * 10 + k, day, 5.0 + k) for k in range(1, 4)]
    return rows


def seed(path: str) -> None:
    import duckdb

    with duckdb.connect(path) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
        conn.execute(
            "CREATE OR REPLACE TABLE raw.orders (order_id INTEGER, day DATE, customer VARCHAR, email VARCHAR, "
            "amount DOUBLE, status VARCHAR)"
        )
        conn.executemany("INSERT INTO raw.orders VALUES (?, ?, ?, ?, ?, ?)", order_rows())
        conn.execute("CREATE OR REPLACE TABLE raw.refunds (refund_id INTEGER, day DATE, amount DOUBLE)")
        conn.executemany("INSERT INTO raw.refunds VALUES (?, ?, ?)", refund_rows())
