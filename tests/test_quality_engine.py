"""Checks and metrics compiled to one query per dialect, run on every warehouse: DuckDB (file),
PostgreSQL (a real server) and Snowflake (fakesnow); results tables written idempotently."""

from __future__ import annotations

import datetime
import uuid

import pytest

from aq_airflow.pipeline_spec.models import Check, Metric
from aq_airflow.plan.model import CheckPlan, MetricPlan, QualitySource, SourceKind
from aq_airflow.plan.planner import compile_check, compile_metric
from aq_airflow.quality.engine import Dataset, run_checks, run_metrics
from aq_airflow.quality.suite import Suite
from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.results.history import ResultsHistory
from aq_airflow.warehouse import Warehouse, table_expression

ROWS = [
    # id, amount, currency, created_at, email
    (1, 10.0, "EUR", datetime.datetime(2026, 3, 1, 5, 0), "a@x.io"),
    (2, 20.0, "USD", datetime.datetime(2026, 3, 1, 4, 0), "b@x.io"),
    (2, -5.0, "EUR", datetime.datetime(2026, 2, 28, 4, 0), "c@x.io"),
    (4, None, "XYZ", datetime.datetime(2026, 2, 27, 4, 0), None),
]
NOW = datetime.datetime(2026, 3, 1, 6, 0, tzinfo=datetime.timezone.utc)

CHECKS = [
    {"name": "id_not_null", "not_null": "id", "severity": "error"},
    {"name": "amount_not_null", "not_null": ["amount", "email"], "severity": "error"},
    {"name": "id_unique", "unique": "id", "severity": "error"},
    {"name": "id_unique_eur", "unique": "id", "where": "currency = 'USD'", "severity": "error"},
    {"name": "amount_range", "column": "amount", "between": [0, 100], "severity": "error"},
    {"name": "currencies", "accepted_values": {"column": "currency", "values": ["EUR", "USD"]}, "severity": "warning"},
    {"name": "enough_rows", "row_count": {"min": 3, "max": 10}, "severity": "error"},
    {"name": "too_many", "row_count": {"min": "5"}, "severity": "error"},
    {"name": "fresh", "freshness": {"column": "created_at", "max_age": "2h"}, "severity": "error"},
    {"name": "stale", "freshness": {"column": "created_at", "max_age": "30m"}, "severity": "error"},
    {"name": "positive", "expression": "amount > 0", "severity": "error"},
    {"name": "positive_mostly", "expression": "amount > 0", "mostly": 0.5, "severity": "error"},
    {"name": "columns", "schema": {"id": "int", "currency": "string"}, "severity": "error"},
    {"name": "drifted", "schema": {"id": "string", "missing_col": "int"}, "severity": "error"},
    {"name": "raw_sql", "sql": "SELECT count(*) = 4 FROM {table}", "severity": "error"},
    {"name": "gx_not_null", "expect": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"},
     "severity": "error"},
    {"name": "gx_between", "expect": "expect_column_values_to_be_between",
     "kwargs": {"column": "amount", "min_value": 0, "max_value": 100}, "severity": "error"},
]  # fmt: skip
EXPECTED = {
    "id_not_null": ("passed", 0),
    "amount_not_null": ("failed", 1),
    "id_unique": ("failed", 1),
    "id_unique_eur": ("passed", 0),
    "amount_range": ("failed", 1),
    "currencies": ("failed", 1),
    "enough_rows": ("passed", None),
    "too_many": ("failed", None),
    "fresh": ("passed", None),
    "stale": ("failed", None),
    "positive": ("failed", 2),  # -5 fails, and NULL does not hold
    "positive_mostly": ("passed", 2),
    "columns": ("passed", None),
    "drifted": ("failed", None),
    "raw_sql": ("passed", None),
    "gx_not_null": ("passed", 0),
    "gx_between": ("failed", 1),
}
METRICS = [
    {"name": "rows", "count": "*"},
    {"name": "amounts", "count": "amount"},
    {"name": "mean", "mean": "amount", "bounds": {"min": 0, "max": 5}},
    {"name": "low", "min": "amount"},
    {"name": "high", "max": "amount"},
    {"name": "total", "sum": "amount"},
    {"name": "spread", "stddev": "amount"},
    {"name": "nulls", "null_fraction": "amount"},
    {"name": "ids", "distinct_count": "id"},
    {"name": "median", "quantile": {"column": "amount", "q": 0.5}},
    {"name": "eur_total", "sum": "amount", "where": "currency = 'EUR'"},
    {"name": "custom", "expression": "max(amount) - min(amount)"},
]
EXPECTED_METRICS = {"rows": 4, "amounts": 3, "mean": 25 / 3, "low": -5, "high": 20, "total": 25,
                    "spread": 12.583057392117917, "nulls": 0.25, "ids": 3, "median": 10, "eur_total": 5,
                    "custom": 25}  # fmt: skip


def checks_of(*specs: dict) -> tuple[CheckPlan, ...]:
    """Checks as a spec writes them, compiled as the planner compiles them."""
    return tuple(compile_check(Check.model_validate(s)) for s in specs)


def metrics_of(*specs: dict) -> tuple[MetricPlan, ...]:
    return tuple(compile_metric(Metric.model_validate(s)) for s in specs)


def in_warehouse(warehouse: Warehouse, name: str) -> Dataset:
    """A warehouse table as checks read it (pushdown)."""
    return Dataset.warehouse_data(QualitySource(SourceKind.TABLE, table=name), warehouse)


def check_everything(dataset: Dataset, table_ref: str) -> None:
    checks = checks_of(*(dict(c, sql=c["sql"].format(table=table_ref)) if "sql" in c else c for c in CHECKS))
    outcomes = {o.name: o for o in run_checks(dataset, checks, {"email"}, NOW)}
    got = {n: (o.outcome, o.failing_rows if EXPECTED[n][1] is not None else None) for n, o in outcomes.items()}
    assert got == EXPECTED, {n: outcomes[n].message for n in got if got[n] != EXPECTED[n]}
    sample = outcomes["amount_not_null"].sample
    assert sample and all("email" not in {k.lower() for k in row} for row in sample)  # sensitive: never sampled
    assert [{k.lower(): v for k, v in row.items()} for row in outcomes["amount_range"].sample] == [{"amount": -5.0}]
    assert outcomes["gx_between"].details["unexpected_count"] == 1
    metrics = {o.name: o for o in run_metrics(dataset, metrics_of(*METRICS), lambda spec: [])}
    for name, value in EXPECTED_METRICS.items():
        assert metrics[name].value == pytest.approx(value), (name, metrics[name].message)
    assert metrics["mean"].outcome == "failed" and "above the maximum 5" in metrics["mean"].message


def roundtrip_results(store: ResultsStore) -> None:
    store.ensure_tables()
    store.ensure_tables()  # idempotent
    key = {"dag_id": "d", "run_id": f"r{uuid.uuid4().hex[:6]}", "step": "s", "map_index": -1,
           "logical_date": datetime.datetime(2026, 2, 1)}  # fmt: skip
    first = [{**key, "name": n, "kind": "not_null", "outcome": "failed", "severity": "error"} for n in ("a", "b")]
    store.replace(CHECKS_TABLE, key, first)
    store.replace(CHECKS_TABLE, key, [{**row, "outcome": "passed"} for row in first])  # a retry
    columns, rows = ResultsHistory(store).newest_rows(CHECKS_TABLE, "d", run_id=key["run_id"])
    assert sorted((r[columns.index("name")], r[columns.index("outcome")]) for r in rows) == [
        ("a", "passed"), ("b", "passed")]  # fmt: skip
    for run, value in enumerate([10.0, 11.0, 12.0]):
        when = datetime.datetime(2026, 1, 1) + datetime.timedelta(days=run)
        metric_key = {**key, "run_id": f"hist{run}", "logical_date": when}
        row = {**metric_key, "name": "m", "kind": "count", "outcome": "passed", "severity": "warning",
               "value": value, "created_at": when}  # fmt: skip
        store.replace(METRICS_TABLE, metric_key, [row])
    assert store.metric_history("d", "s", "m", datetime.datetime(2026, 2, 1), 2) == [12.0, 11.0]


def test_duckdb(tmp_path):
    import duckdb

    path = str(tmp_path / "wh.duckdb")
    with duckdb.connect(path) as conn:
        conn.execute("CREATE SCHEMA shop; CREATE TABLE shop.orders (id INT, amount DOUBLE, currency VARCHAR, "
                     "created_at TIMESTAMP, email VARCHAR)")  # fmt: skip
        conn.executemany("INSERT INTO shop.orders VALUES (?, ?, ?, ?, ?)", ROWS)
    connect = lambda: duckdb.connect(path)  # noqa: E731
    check_everything(in_warehouse(Warehouse.for_dialect("duckdb", connect), "shop.orders"), "shop.orders")
    roundtrip_results(ResultsStore(Warehouse.for_dialect("duckdb", connect), "aq"))


@pytest.mark.parametrize("store", ["local", "s3"])
def test_parquet_through_duckdb(tmp_path, store, request):
    """A step's committed Parquet output: by path on a local disk, as a pyarrow dataset on the
    S3 emulator (no DuckDB extension involved)."""
    import pyarrow as pa

    from aq_airflow.artifacts.store import Location, write_batches

    if store == "s3":
        request.getfixturevalue("s3_emulator")("outputs")
    columns = list(zip(*ROWS, strict=True))
    data = pa.table({"id": pa.array(columns[0], pa.int64()), "amount": columns[1], "currency": columns[2],
                     "created_at": columns[3], "email": columns[4]})  # fmt: skip
    location = Location.of(str(tmp_path / "orders") if store == "local" else "s3://outputs/dag/run/orders")
    attempt = location.begin()
    location.commit(write_batches(location, attempt, data.schema, data.to_batches()))
    check_everything(Dataset.artifact(location, location.read_manifest(), "orders"), '"orders"')


def test_postgresql(postgres_dsn):
    import psycopg2

    schema = f"aq_q_{uuid.uuid4().hex[:8]}"
    with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
        cursor.execute(f"CREATE TABLE {schema}.orders (id int, amount double precision, currency text, "
                       "created_at timestamp, email text)")  # fmt: skip
        cursor.executemany(f"INSERT INTO {schema}.orders VALUES (%s, %s, %s, %s, %s)", ROWS)
    connect = lambda: psycopg2.connect(postgres_dsn)  # noqa: E731
    try:
        check_everything(
            in_warehouse(Warehouse.for_dialect("postgres", connect), f"{schema}.orders"), f"{schema}.orders"
        )
        roundtrip_results(ResultsStore(Warehouse.for_dialect("postgres", connect), schema))
    finally:
        with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")


def test_snowflake_fakesnow():
    import fakesnow
    import snowflake.connector

    with fakesnow.patch():
        connect = lambda: snowflake.connector.connect(database="db", schema="shop")  # noqa: E731
        with connect() as conn:
            conn.cursor().execute("CREATE TABLE shop.orders (id int, amount double, currency varchar, "
                                  "created_at timestamp, email varchar)")  # fmt: skip
            conn.cursor().executemany("INSERT INTO shop.orders VALUES (%s, %s, %s, %s, %s)", ROWS)
        check_everything(in_warehouse(Warehouse.for_dialect("snowflake", connect), "shop.orders"), "shop.orders")
        roundtrip_results(ResultsStore(Warehouse.for_dialect("snowflake", connect), "aq"))


def test_fused_query_text_is_pinned_per_dialect():
    expected = {
        "duckdb": 'SELECT COUNT(*) - COUNT("id") AS "m0", COUNT(*) AS "m1", '
        'QUANTILE_CONT("amount", 0.9 ORDER BY "amount") AS "m2" FROM "shop"."orders" AS aq_source',
        "postgres": 'SELECT COUNT(*) - COUNT("id") AS "m0", COUNT(*) AS "m1", '
        'PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY "amount") AS "m2" FROM "shop"."orders" AS aq_source',
        "snowflake": 'SELECT COUNT(*) - COUNT("ID") AS "m0", COUNT(*) AS "m1", '
        'PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY "AMOUNT") AS "m2" FROM "SHOP"."ORDERS" AS aq_source',
    }
    for dialect, sql in expected.items():
        suite = Suite(table_expression("shop.orders", dialect), dialect)
        suite.add_check(*checks_of({"name": "a", "not_null": "id"}))
        suite.add_check(*checks_of({"name": "b", "row_count": {"min": 1}}))  # COUNT(*) is computed once
        suite.add_metric(*metrics_of({"name": "c", "quantile": {"column": "amount", "q": 0.9}}))
        assert suite.query() == sql


@pytest.mark.parametrize("text", ["1; DROP TABLE x", "(SELECT 1) FROM t", "a b c", "amount > 0 --"])
def test_user_expressions_must_be_one_expression(text):
    suite = Suite(table_expression("t", "duckdb"), "duckdb")
    compiled = suite.add_check(*checks_of({"name": "e", "expression": text}))
    assert compiled.error or (suite.query() is not None and "DROP" not in suite.query())


def test_history_bounds():
    from aq_airflow.quality.evaluate import metric_outcome
    from aq_airflow.quality.suite import Compiled

    (spec,) = metrics_of({"name": "rows", "count": "*", "history": {"window": 5, "max_zscore": 3}})
    compiled = Compiled(spec, {"value": "m0"})
    history = [100.0, 101.0, 99.0, 100.0, 102.0]
    assert metric_outcome(compiled, {"m0": 100}, history).outcome == "passed"
    out = metric_outcome(compiled, {"m0": 10}, history)
    assert out.outcome == "failed" and "standard deviations" in out.message
    short = metric_outcome(compiled, {"m0": 10}, history[:2])
    assert short.outcome == "passed" and "learning: 2 of 5 values" in short.message
    change = Compiled(*metrics_of({"name": "c", "sum": "x", "max_change": "20%"}), {"value": "m0"})
    assert metric_outcome(change, {"m0": 130}, [100.0]).outcome == "failed"
    assert metric_outcome(change, {"m0": 115}, [100.0]).outcome == "passed"
    assert "no earlier date's passed value" in metric_outcome(change, {"m0": 115}, []).message


def test_metric_messages_write_numbers_as_users_do():
    """`auc = 1234567.5`, not `1.23457e+06`: the message says what the value column holds."""
    from aq_airflow.quality.evaluate import metric_outcome
    from aq_airflow.quality.suite import Compiled

    (spec,) = metrics_of({"name": "revenue", "sum": "x", "bounds": {"min": 0, "max": 26500}})
    compiled = Compiled(spec, {"value": "m0"})
    assert metric_outcome(compiled, {"m0": 1234567.5}, []).message == "revenue = 1234567.5: above the maximum 26500"
    assert metric_outcome(compiled, {"m0": 26500}, []).message == "revenue = 26500"
    assert metric_outcome(compiled, {"m0": 0.8476}, []).message == "revenue = 0.8476"
    change = Compiled(*metrics_of({"name": "c", "sum": "x", "max_change": "20%"}), {"value": "m0"})
    assert "from 26500, the latest" in metric_outcome(change, {"m0": 50000}, [26500.0]).message


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"min": 1000}, "3 rows; expected at least 1000"),
        ({"max": 0}, "3 rows; expected at most 0"),  # a zero maximum is a bound, not "no bound"
        ({"min": 1, "max": 10}, "3 rows; expected between 1 and 10"),
    ],
)
def test_row_count_messages_say_the_bounds_as_written(bounds, expected):
    from aq_airflow.quality.evaluate import check_outcome
    from aq_airflow.quality.suite import Compiled

    (spec,) = checks_of({"name": "rows", "row_count": bounds})
    assert check_outcome(Compiled(spec, {"rows": "c0"}), {"c0": 3}, None).message == expected
