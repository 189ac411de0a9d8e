"""The benchmarked check set (bench/quality_checks.py) on a real PostgreSQL: the fused query (one
scan, ``COUNT(*) FILTER`` counts) gives every check and metric the same result as running each
alone, one query each, and as counting the rows in Python. A correctness test: no timings."""

from __future__ import annotations

import datetime
import math
import pathlib
import statistics
import uuid

import pytest
import yaml

from aq_airflow.pipeline_spec.models import Check, Metric
from aq_airflow.plan.model import QualitySource, SourceKind
from aq_airflow.plan.planner import compile_check, compile_metric
from aq_airflow.quality.engine import Dataset, run_checks, run_metrics
from aq_airflow.quality.suite import Suite
from aq_airflow.warehouse import Warehouse, table_expression

# the set the checks bench measures (a data file: tests and bench import nothing of each other)
BENCHED_SET = pathlib.Path(__file__).resolve().parents[1] / "bench" / "quality_checks.yaml"
_SET = yaml.safe_load(BENCHED_SET.read_text(encoding="utf-8"))
CHECKS, METRICS = _SET["checks"], _SET["metrics"]
CHECK_PLANS = tuple(compile_check(Check.model_validate(c)) for c in CHECKS)
METRIC_PLANS = tuple(compile_metric(Metric.model_validate(m)) for m in METRICS)
NOW = datetime.datetime(2026, 3, 2, tzinfo=datetime.timezone.utc)
ROWS = 3000
# the bench's columns, with NULLs, duplicates, out-of-range values and an unknown category
# mixed in, so most checks fail (c3 only 0.5% negative: `mostly: 0.99` holds)
TABLE = f"""
SELECT CASE WHEN i % 997 = 0 THEN NULL WHEN i % 500 = 1 THEN 0 ELSE i END::bigint AS c0,
       CASE WHEN i % 701 = 0 THEN 1.5 WHEN i % 911 = 0 THEN NULL ELSE (i % 100) / 100.0 END::float8 AS c1,
       ((i % 89) / 89.0)::float8 AS c2,
       CASE WHEN i % 200 = 0 THEN -1 ELSE i END::float8 AS c3,
       CASE WHEN i % 333 = 0 THEN NULL ELSE i / 10.0 END::float8 AS c4,
       CASE WHEN i % 1499 = 0 THEN NULL ELSE (i % 7) / 7.0 END::float8 AS c5,
       ((i % 13) / 13.0)::float8 AS c6,
       CASE WHEN i % 400 = 0 THEN 'd' ELSE (ARRAY['a', 'b', 'c'])[1 + i % 3] END AS cat,
       TIMESTAMP '2026-03-01' - make_interval(mins => i % 1000) AS ts
FROM generate_series(0, {ROWS - 1}) AS i
"""
FAILING = {"c0_not_null", "c1_not_null", "c0_unique", "c1_range", "cat_values", "sum_below_2", "c4_c5_not_null"}


@pytest.fixture
def bench_table(postgres_dsn, monkeypatch):
    """The table in a schema of its own, read through the real PostgresHook (an Airflow
    connection from the environment); the schema is dropped after."""
    import psycopg2

    schema = f"aq_fused_{uuid.uuid4().hex[:8]}"
    with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
        cursor.execute(f"CREATE TABLE {schema}.t AS {TABLE}")
        cursor.execute(f"CREATE TABLE {schema}.empty AS {TABLE} LIMIT 0")
        cursor.execute(f"SELECT c0, c1, c2, c3, c4, c5, c6, cat, ts FROM {schema}.t")
        rows = cursor.fetchall()
    conn.close()
    monkeypatch.setenv("AIRFLOW_CONN_AQ_FUSED_PG", postgres_dsn.replace("postgresql://", "postgres://"))
    try:
        yield schema, Warehouse.from_conn_id("aq_fused_pg"), rows
    finally:
        with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def dataset(warehouse: Warehouse, table: str) -> Dataset:
    return Dataset.warehouse_data(QualitySource(SourceKind.TABLE, table=table), warehouse)


def fields(outcome) -> tuple:
    """Everything an outcome records but its failing-row sample (LIMIT without ORDER BY)."""
    return (outcome.name, outcome.kind, outcome.outcome, outcome.message, outcome.observed, outcome.expected,
            outcome.failing_rows, outcome.rows)  # fmt: skip


def python_failing(rows: list[tuple]) -> dict[str, int]:
    """Each row-level check's failing rows, counted here rather than by any SQL."""
    c0, c1, c2, c3, c4, c5, c6, cat, _ = zip(*rows, strict=True)
    present = [v for v in c0 if v is not None]

    def outside(values):
        return sum(v is not None and not 0 <= v <= 1 for v in values)

    return {
        "c0_not_null": c0.count(None),
        "c1_not_null": c1.count(None),
        "c0_unique": len(present) - len(set(present)),
        "c1_range": outside(c1),
        "c2_range": outside(c2),
        "cat_values": sum(v is not None and v not in ("a", "b", "c") for v in cat),
        "sum_below_2": sum(not (a is not None and b is not None and a + b < 2) for a, b in zip(c1, c2, strict=True)),
        "c3_positive": sum(not (v is not None and v >= 0) for v in c3),
        "c4_c5_not_null": sum(a is None or b is None for a, b in zip(c4, c5, strict=True)),
        "c6_range": outside(c6),
    }


def test_fused_equals_each_check_alone_and_python(bench_table):
    schema, warehouse, rows = bench_table
    data = dataset(warehouse, f"{schema}.t")
    fused = run_checks(data, CHECK_PLANS, set(), NOW)
    alone = [run_checks(data, (plan,), set(), NOW)[0] for plan in CHECK_PLANS]
    assert [fields(o) for o in fused] == [fields(o) for o in alone]
    assert {o.name for o in fused if o.outcome == "failed"} == FAILING, [o.message for o in fused]
    assert all(o.outcome in ("passed", "failed") for o in fused), [o.message for o in fused]
    counted = {o.name: o.failing_rows for o in fused if o.failing_rows is not None}
    assert counted == python_failing(rows)
    assert all(o.rows == ROWS for o in fused if o.kind != "unique" and o.rows is not None)
    assert all(o.sample for o in fused if o.outcome == "failed")  # a failing check shows its rows


def test_fused_metrics_equal_each_metric_alone_and_python(bench_table):
    schema, warehouse, rows = bench_table
    data = dataset(warehouse, f"{schema}.t")
    fused = {o.name: o for o in run_metrics(data, METRIC_PLANS, lambda spec: [])}
    alone = {o.name: o for plan in METRIC_PLANS for o in run_metrics(data, (plan,), lambda spec: [])}
    c1, c2, c3, c4, c5 = (list(column) for column in list(zip(*rows, strict=True))[1:6])
    expected = {
        "count": ROWS,
        "mean_c1": statistics.fmean(v for v in c1 if v is not None),
        "min_c2": min(c2),
        "max_c3": max(c3),
        "std_c4": statistics.stdev(v for v in c4 if v is not None),
        "nulls_c5": c5.count(None) / ROWS,
    }
    for name, value in expected.items():
        assert fused[name].outcome == alone[name].outcome == "passed", (fused[name].message, alone[name].message)
        # a parallel scan sums floats in another order: equal to the last few bits
        assert math.isclose(fused[name].value, alone[name].value, rel_tol=1e-12), name
        assert fused[name].value == pytest.approx(value, rel=1e-12), name


def test_empty_table_fused_equals_each_alone(bench_table):
    """No rows: COUNT(*) FILTER gives 0 where SUM(CASE ...) gave NULL; the outcomes agree."""
    schema, warehouse, _ = bench_table
    data = dataset(warehouse, f"{schema}.empty")
    fused = run_checks(data, CHECK_PLANS, set(), NOW)
    alone = [run_checks(data, (plan,), set(), NOW)[0] for plan in CHECK_PLANS]
    assert [fields(o) for o in fused] == [fields(o) for o in alone]
    outcomes = {o.name: o.outcome for o in fused}
    assert outcomes.pop("rows") == "failed" and outcomes.pop("fresh") == "failed"
    assert set(outcomes.values()) == {"passed"}, [o.message for o in fused]


@pytest.mark.parametrize(
    ("dialect", "count"),
    [("postgres", 'COUNT(*) FILTER(WHERE "c1" < 0 OR "c1" > 1)'),
     ("duckdb", 'SUM(CASE WHEN "c1" < 0 OR "c1" > 1 THEN 1 ELSE 0 END)'),
     ("snowflake", 'SUM(IFF("C1" < 0 OR "C1" > 1, 1, 0))'),
     (None, 'SUM(CASE WHEN "c1" < 0 OR "c1" > 1 THEN 1 ELSE 0 END)')],
)  # fmt: skip
def test_failing_counts_use_filter_on_postgres_only(dialect, count):
    """Conditions are counted with FILTER on PostgreSQL, SUM(CASE ...) elsewhere; the NULLs of one
    column everywhere as COUNT(*) - COUNT(column); one DISTINCT, for the one unique check."""
    suite = Suite(table_expression("t", dialect), dialect)
    for plan in CHECK_PLANS:
        suite.add_check(plan)
    query = suite.query()
    c0 = '"C0"' if dialect == "snowflake" else '"c0"'
    assert f" {count} AS " in query
    assert query.startswith(f"SELECT COUNT(*) - COUNT({c0}) AS ")
    assert query.count("DISTINCT") == 1
