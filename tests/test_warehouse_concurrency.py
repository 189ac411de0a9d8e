"""A file-backed DuckDB warehouse under parallel tasks, and infrastructure errors that must never
be recorded as check or metric outcomes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import duckdb
import pytest
from airflow.providers.duckdb.hooks.duckdb import DuckDBHook

from aq_airflow.warehouse import Warehouse, is_infrastructure_error
from aq_airflow.warehouse import duckdb as duckdb_adapter
from tests.warehouse_backends import hold_lock


@pytest.fixture
def duckdb_conn(tmp_path, monkeypatch):
    path = tmp_path / "wh.duckdb"
    duckdb.connect(str(path)).close()
    monkeypatch.setenv("AIRFLOW_CONN_WH", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    return path


def test_a_duckdb_connection_waits_for_another_process_lock(duckdb_conn):
    hook = DuckDBHook(duckdb_conn_id="wh")
    holder = hold_lock(duckdb_conn, 1.5)
    try:
        with pytest.raises(duckdb.IOException, match="Could not set lock"):
            hook.get_conn()  # the conflict is real: the hook alone fails
        conn = Warehouse.of(hook).connect()  # waits for the lock, then connects
        assert conn.execute("SELECT 42").fetchone() == (42,)
        conn.close()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_held_past_the_wait_raises_the_real_error(duckdb_conn):
    holder = hold_lock(duckdb_conn, 30)
    try:
        with pytest.raises(duckdb.IOException, match="Could not set lock"):
            Warehouse.of(DuckDBHook(duckdb_conn_id="wh")).connect(wait=0.3)
    finally:
        holder.kill()
        holder.wait()


def test_infrastructure_errors_are_told_from_query_errors(duckdb_conn, postgres_dsn):
    """Classified on the drivers' own exceptions (PEP 249 classes), not on our wrappers."""
    import psycopg2

    holder = hold_lock(duckdb_conn, 30)
    try:
        with pytest.raises(duckdb.Error) as lock:
            duckdb.connect(str(duckdb_conn))
    finally:
        holder.kill()
        holder.wait()
    assert is_infrastructure_error(lock.value)
    with pytest.raises(duckdb.Error) as binder:
        duckdb.connect().execute("SELECT no_such_column FROM (SELECT 1 AS a)")
    assert not is_infrastructure_error(binder.value)
    with pytest.raises(psycopg2.Error) as refused:
        psycopg2.connect("postgresql://postgres@127.0.0.1:9/test", connect_timeout=2)
    assert is_infrastructure_error(refused.value)
    conn = psycopg2.connect(postgres_dsn)
    with pytest.raises(psycopg2.Error) as undefined:
        conn.cursor().execute("SELECT no_such_column FROM (SELECT 1 AS a) t")
    conn.close()
    assert not is_infrastructure_error(undefined.value)
    assert is_infrastructure_error(FileNotFoundError("s3://bucket/x.parquet"))


LOCKED = """
pipeline: {name}
warehouse: aq_warehouse
steps:
  orders:
    table: raw.orders
    checks: [{{name: ids_present, not_null: id}}]
    metrics: [{{name: rows, count: "*"}}]
"""


def test_a_locked_warehouse_fails_the_task_and_records_no_outcome(run_dag, tmp_path, monkeypatch):
    """The lock outlasts the wait: the quality tasks fail with the lock error (Airflow retries
    them), and no `error` or `failed` row claims the data was at fault."""
    path = tmp_path / "locked.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA raw; CREATE TABLE raw.orders AS SELECT 1 AS id")
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    monkeypatch.setattr(duckdb_adapter, "LOCK_WAIT_SECONDS", 0.5)
    holder = hold_lock(path, 120)
    try:
        _, _, states = run_dag("q_locked", LOCKED.format(name="q_locked"))
    finally:
        holder.kill()
        holder.wait()
    assert states == {"orders.checks": "failed", "orders.metrics": "failed"}
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert "aq_check_results" not in tables and "aq_metric_results" not in tables


def test_parallel_quality_tasks_share_the_warehouse_without_lock_failures(tmp_path):
    """Many processes writing results rows to one DuckDB file at once, as sibling tasks do under
    LocalExecutor or Celery: every write lands, none fails on the lock."""
    path = tmp_path / "shared.duckdb"
    script = (
        "import datetime, sys\n"
        "from airflow.providers.duckdb.hooks.duckdb import DuckDBHook\n"
        "from aq_airflow.results import CHECKS_TABLE, ResultsStore\n"
        "store = ResultsStore.of(DuckDBHook(duckdb_conn_id='wh'), None)\n"
        "for i in range(20):\n"
        "    store.ensure_tables()\n"
        "    key = {'dag_id': 'p', 'run_id': sys.argv[1], 'step': 's', 'map_index': i,\n"
        "           'logical_date': datetime.datetime(2026, 1, 1, int(sys.argv[1][3:]))}\n"
        "    store.replace(CHECKS_TABLE, key, [{**key, 'name': 'c', 'kind': 'unique', 'outcome': 'passed'}])\n"
    )
    env = {**__import__("os").environ, "AIRFLOW_CONN_WH": json.dumps({"conn_type": "duckdb", "host": str(path)})}
    started = time.monotonic()
    workers = [subprocess.Popen([sys.executable, "-c", script, f"run{n}"], env=env, stderr=subprocess.PIPE, text=True)
               for n in range(4)]  # fmt: skip
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], errors
    with duckdb.connect(str(path), read_only=True) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT run_id) FROM aq_check_results").fetchone() == (80, 4)
    print(f"4 processes x 20 result writes: {time.monotonic() - started:.1f}s")


def test_a_rejected_query_is_recorded_under_each_checks_own_kind(run_dag, tmp_path, monkeypatch):
    """A query error (a missing column) is about the spec and the data, so it is recorded, with
    each check's and metric's own kind; the task fails for the error-severity check."""
    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA raw; CREATE TABLE raw.orders AS SELECT 1 AS id")
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    text = LOCKED.replace("not_null: id", "not_null: no_such_column").replace('count: "*"', "mean: no_such_column")
    _, _, states = run_dag("q_rejected", text.format(name="q_rejected"))
    assert states == {"orders.checks": "failed", "orders.metrics": "success"}  # metrics default to warnings
    with duckdb.connect(str(path), read_only=True) as conn:
        checks = conn.execute("SELECT name, kind, outcome, message FROM aq_check_results").fetchall()
        metrics = conn.execute("SELECT name, kind, outcome FROM aq_metric_results").fetchall()
    assert [c[:3] for c in checks] == [("ids_present", "not_null", "error")]
    assert "BinderException" in checks[0][3] and "no_such_column" in checks[0][3]
    assert metrics == [("rows", "mean", "error")]
