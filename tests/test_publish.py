"""Publish into each warehouse with its bulk path: append, replace and merge, in one transaction."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aq_airflow.warehouse.transfer import publish


class Hook:
    """The part of a DbApiHook that publish uses, around a real connection."""

    def __init__(self, conn_type: str, connect):
        self.conn_type = conn_type
        self.get_conn = connect


def parquet(tmp_path, name, ids, values):
    path = tmp_path / f"{name}.parquet"
    pq.write_table(pa.table({"id": ids, "score": values, "day": pa.array([None] * len(ids), pa.date32())}), path)
    return [str(path)]


def exercise(hook, target, tmp_path, read):
    assert publish(hook, parquet(tmp_path, "a", [1, 2, 3], [0.1, 0.2, 0.3]), target, "append", []) == 3
    assert read() == [(1, 0.1), (2, 0.2), (3, 0.3)]
    publish(hook, parquet(tmp_path, "b", [3, 4], [0.9, 0.4]), target, "merge", ["id"])
    assert read() == [(1, 0.1), (2, 0.2), (3, 0.9), (4, 0.4)]
    publish(hook, parquet(tmp_path, "c", [7], [0.7]), target, "replace", [])
    assert read() == [(7, 0.7)]
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error type
        publish(hook, parquet(tmp_path, "d", [8], [0.8]), target, "merge", ["no_such_column"])
    assert read() == [(7, 0.7)]  # a failed publish leaves the table as it was


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "snowflake"])
def test_merge_on_a_composite_key_is_valid_sql(dialect):
    """DuckDB rejected `(a, b) IN SELECT ...` (found by a first deployment)."""
    import sqlglot

    from aq_airflow.warehouse import Warehouse

    staged = sqlglot.exp.to_table("stage")
    delete, _ = Warehouse.for_dialect(dialect).load_statements("out.t", staged, ["id", "region", "v"], "merge",
                                                               ["id", "region"])  # fmt: skip
    assert " IN (SELECT " in delete
    sqlglot.parse_one(delete, read=dialect)


def test_duckdb_merges_on_a_composite_key(tmp_path):
    import duckdb

    path = str(tmp_path / "wh.duckdb")
    hook = Hook("duckdb", lambda: duckdb.connect(path))
    for name, ids in (("first", [1, 2]), ("second", [2, 3])):
        file = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"id": ids, "region": ["eu"] * len(ids), "v": [name] * len(ids)}), file)
        publish(hook, [str(file)], "out.t", "merge", ["id", "region"])
    with duckdb.connect(path) as conn:
        assert conn.execute("SELECT id, v FROM out.t ORDER BY id").fetchall() == [(1, "first"), (2, "second"),
                                                                                  (3, "second")]  # fmt: skip


def test_duckdb(tmp_path):
    import duckdb

    path = str(tmp_path / "wh.duckdb")
    hook = Hook("duckdb", lambda: duckdb.connect(path))

    def read():
        with duckdb.connect(path) as conn:
            return conn.execute("SELECT id, score FROM analytics.scores ORDER BY id").fetchall()

    exercise(hook, "analytics.scores", tmp_path, read)


def test_postgresql(tmp_path, postgres_dsn):
    import psycopg2

    schema = f"aq_pub_{uuid.uuid4().hex[:8]}"
    hook = Hook("postgres", lambda: psycopg2.connect(postgres_dsn))

    def read():
        with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
            cursor.execute(f"SELECT id, score FROM {schema}.scores ORDER BY id")
            return cursor.fetchall()

    try:
        exercise(hook, f"{schema}.scores", tmp_path, read)
    finally:
        with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_snowflake_fakesnow(tmp_path):
    import fakesnow
    import snowflake.connector

    with fakesnow.patch():
        connect = lambda: snowflake.connector.connect(database="db", schema="analytics")  # noqa: E731
        hook = Hook("snowflake", connect)

        def read():
            with connect() as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT id, score FROM analytics.scores ORDER BY id")
                return [tuple(r) for r in cursor.fetchall()]

        exercise(hook, "analytics.scores", tmp_path, read)
