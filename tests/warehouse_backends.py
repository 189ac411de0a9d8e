"""The three warehouses the adapter and session contract suites run on, each reached the way a
task reaches it: an Airflow connection (``AIRFLOW_CONN_CT_WH``) resolved by
``Warehouse.from_conn_id``, whose provider hook owns the connection. DuckDB is a file, PostgreSQL
the test server, Snowflake the real SnowflakeHook over fakesnow's patch mode."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from aq_airflow.warehouse import DuckDB, Warehouse

CONN_ID = "ct_wh"
SNOWFLAKE_CONN = {"conn_type": "snowflake", "login": "aq", "password": "test", "schema": "ct",
                  "extra": {"account": "aq-test", "database": "ct_db", "warehouse": "wh"}}  # fmt: skip
NAMES = ("duckdb", "postgres", "snowflake")
HOLD_LOCK = "import duckdb, sys, time\nc = duckdb.connect(sys.argv[1])\nprint('locked', flush=True)\ntime.sleep({})\n"


def hold_lock(path, seconds: float) -> subprocess.Popen:
    """Another process holding the DuckDB file's write lock for ``seconds`` (kill it after)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK.format(seconds), str(path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    return process


class Backend:
    """One warehouse under test: its adapter, a schema of its own, and how to tell a closed
    connection."""

    def __init__(self, name: str, warehouse: Warehouse, schema: str):
        self.name = name
        self.warehouse = warehouse
        self.schema = schema

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}"

    def execute(self, *statements: str) -> None:
        """Set-up statements, each committing on its own (DDL, seed rows)."""
        with self.warehouse.writing(begin=False) as session:
            session.run(statements)

    def rows(self, sql: str) -> list[tuple]:
        with self.warehouse.reading() as session:
            return session.rows(sql)

    def is_closed(self, conn) -> bool:
        if self.name == "duckdb":
            try:
                conn.execute("SELECT 1")
            except Exception:  # duckdb.ConnectionException: Connection already closed
                return True
            return False
        if self.name == "postgres":
            return bool(conn.closed)
        return conn.is_closed()


@contextmanager
def backend_for(name: str, request, tmp_path, monkeypatch) -> Iterator[Backend]:
    """``name``'s warehouse behind ``AIRFLOW_CONN_CT_WH``, with a fresh schema name (dropped
    after on PostgreSQL, the one that outlives the test)."""
    schema = f"aq_ct_{uuid.uuid4().hex[:8]}"
    if name == "duckdb":
        monkeypatch.setenv("AIRFLOW_CONN_CT_WH", DuckDB.connection_json(tmp_path / "wh.duckdb"))
        yield Backend("duckdb", Warehouse.from_conn_id(CONN_ID), schema)
    elif name == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        monkeypatch.setenv("AIRFLOW_CONN_CT_WH", dsn.replace("postgresql://", "postgres://"))
        found = Backend("postgres", Warehouse.from_conn_id(CONN_ID), schema)
        try:
            yield found
        finally:
            found.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    else:
        import fakesnow

        monkeypatch.setenv("AIRFLOW_CONN_CT_WH", json.dumps(SNOWFLAKE_CONN))
        with fakesnow.patch():
            yield Backend("snowflake", Warehouse.from_conn_id(CONN_ID), schema)
