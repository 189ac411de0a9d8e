"""SQL steps on each warehouse: DuckDB (file), PostgreSQL (a real server), Snowflake (the real
SnowflakeHook over fakesnow's patch mode)."""

from __future__ import annotations

import json
import uuid

import pyarrow.parquet as pq
import pytest

from aq_airflow.warehouse import select_all
from tests.test_execution import manifest, output_dir

PIPELINE = """
pipeline: {name}
warehouse: {conn}
steps:
  totals:
    sql: SELECT region, count(*) AS customers, sum(fee) AS fees FROM {schema}.customers GROUP BY region ORDER BY region
  everyone:
    table: {schema}.customers
  summary:
    python: steps_for_warehouses:summarize
    inputs: [totals, everyone]
"""

ROWS = [(1, "eu", 9.5), (2, "eu", 19.0), (3, "us", 39.0)]


@pytest.fixture
def warehouse_steps(tmp_path, monkeypatch):
    (tmp_path / "steps_for_warehouses.py").write_text(
        "import pyarrow as pa\n\n"
        "def summarize(totals, everyone):\n"
        "    return pa.table({'regions': [totals.num_rows], 'people': [everyone.num_rows],\n"
        "                     'fees': [sum(totals.column(totals.column_names[2]).to_pylist())]})\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{__import__('os').environ['PYTHONPATH']}")


def check_outputs(tmp_path, dag_run, name):
    totals = pq.read_table(
        output_dir(tmp_path, dag_run, name, "totals") / manifest(tmp_path, dag_run, name, "totals")["files"][0]
    )
    assert [c.lower() for c in totals.column_names] == ["region", "customers", "fees"]
    assert totals.to_pylist()[0][totals.column_names[1]] == 2
    summary_manifest = manifest(tmp_path, dag_run, name, "summary")
    summary = pq.read_table(output_dir(tmp_path, dag_run, name, "summary") / summary_manifest["files"][0])
    assert summary.to_pylist() == [{"regions": 2, "people": 3, "fees": 67.5}]


def test_sql_steps_on_postgresql(run_dag, postgres_dsn, warehouse_steps, tmp_path, monkeypatch):
    import psycopg2

    schema = f"aq_test_{uuid.uuid4().hex[:8]}"
    with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
        cursor.execute(f"CREATE TABLE {schema}.customers (id int, region text, fee numeric(8,2))")
        cursor.executemany(f"INSERT INTO {schema}.customers VALUES (%s, %s, %s)", ROWS)
    monkeypatch.setenv("AIRFLOW_CONN_PG_WAREHOUSE", postgres_dsn.replace("postgresql://", "postgres://"))
    try:
        _, dag_run, states = run_dag(
            "on_postgres", PIPELINE.format(name="on_postgres", conn="pg_warehouse", schema=schema)
        )
        assert set(states.values()) == {"success"}, states
        check_outputs(tmp_path, dag_run, "on_postgres")
        assert manifest(tmp_path, dag_run, "on_postgres", "everyone")["dialect"] == "postgres"
    finally:
        with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")


def test_sql_steps_on_snowflake_through_the_real_hook(run_dag, warehouse_steps, tmp_path, monkeypatch):
    import fakesnow
    import snowflake.connector

    conn = {"conn_type": "snowflake", "login": "aq", "password": "test", "schema": "raw",
            "extra": {"account": "aq-test", "database": "analytics_db", "warehouse": "wh"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_SNOW_WAREHOUSE", json.dumps(conn))
    with fakesnow.patch():
        with snowflake.connector.connect(database="analytics_db", schema="raw") as sf:
            sf.cursor().execute("CREATE TABLE raw.customers (id int, region varchar, fee number(8,2))")
            sf.cursor().executemany("INSERT INTO raw.customers VALUES (%s, %s, %s)", ROWS)
        _, dag_run, states = run_dag(
            "on_snowflake", PIPELINE.format(name="on_snowflake", conn="snow_warehouse", schema="raw")
        )
    assert set(states.values()) == {"success"}, states
    check_outputs(tmp_path, dag_run, "on_snowflake")
    assert manifest(tmp_path, dag_run, "on_snowflake", "everyone")["dialect"] == "snowflake"


def test_sql_steps_on_duckdb(run_dag, warehouse_steps, tmp_path, monkeypatch):
    import duckdb

    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA shop; CREATE TABLE shop.customers (id int, region varchar, fee decimal(8,2))")
        conn.executemany("INSERT INTO shop.customers VALUES (?, ?, ?)", ROWS)
    monkeypatch.setenv("AIRFLOW_CONN_DUCK_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    _, dag_run, states = run_dag("on_duckdb", PIPELINE.format(name="on_duckdb", conn="duck_warehouse", schema="shop"))
    assert set(states.values()) == {"success"}, states
    check_outputs(tmp_path, dag_run, "on_duckdb")


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        ("duckdb", 'SELECT * FROM "raw"."orders"'),
        ("postgres", 'SELECT * FROM "raw"."orders"'),
        ("snowflake", 'SELECT * FROM "RAW"."ORDERS"'),
    ],
)
def test_table_exports_quote_identifiers_per_dialect(dialect, expected):
    assert select_all("raw.orders", dialect) == expected
