"""The session contract (``Warehouse.reading()``, ``Warehouse.writing()``, ``from_conn_id``) and
the failure classification every adapter answers for its own driver (``is_missing_table``,
``is_lock_conflict``, ``is_infrastructure_error``, ``failure_kind``): the same tests on DuckDB (a
file), PostgreSQL (the test server) and Snowflake (fakesnow under the real SnowflakeHook), each
reached through an Airflow connection in ``AIRFLOW_CONN_*``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import aq_airflow.warehouse.base as base
from aq_airflow.warehouse import DuckDB, GenericWarehouse, PostgreSQL, Snowflake, Warehouse
from tests.warehouse_backends import NAMES, backend_for, hold_lock

HOOKS = {"duckdb": (DuckDB, "DuckDBHook"), "postgres": (PostgreSQL, "PostgresHook"),
         "snowflake": (Snowflake, "SnowflakeHook")}  # fmt: skip


@pytest.fixture(params=NAMES)
def backend(request, tmp_path, monkeypatch):
    with backend_for(request.param, request, tmp_path, monkeypatch) as found:
        yield found


def _table(backend, name: str = "t", rows: tuple[int, ...] = (1,)) -> str:
    """A fresh table in the backend's schema holding ``rows``; its quoted name."""
    wh = backend.warehouse
    table = wh.quote_table(backend.table(name))
    backend.execute(wh.create_schema_sql(backend.table(name)), f"CREATE TABLE {table} (id INTEGER)")
    if rows:
        backend.execute(f"INSERT INTO {table} VALUES {', '.join(f'({r})' for r in rows)}")
    return table


def _error(wh: Warehouse, sql: str) -> BaseException:
    """What the warehouse raises for ``sql`` in a read session."""
    with pytest.raises(Exception) as raised, wh.reading() as session:
        session.fetch(sql)
    return raised.value


# --- from_conn_id: the provider's hook owns the connection ---------------------------------


def test_from_conn_id_makes_the_adapter_over_the_providers_hook(backend):
    adapter, hook = HOOKS[backend.name]
    wh = Warehouse.from_conn_id("ct_wh")
    assert type(wh) is adapter and type(wh.hook).__name__ == hook
    with wh.reading() as session:
        assert session.rows("SELECT 41 + 1") == [(42,)]


def test_from_conn_id_of_an_undefined_connection_names_it(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CT_NOWHERE", raising=False)
    with pytest.raises(Exception, match="ct_nowhere"):
        Warehouse.from_conn_id("ct_nowhere")


# --- reading ---------------------------------------------------------------------------------


def test_reading_refuses_a_write_where_the_dialect_has_read_only_transactions(backend):
    wh = backend.warehouse
    table = _table(backend)
    with wh.reading() as session:
        if backend.name == "snowflake":  # no read-only transaction: the parse and the role are the guard
            session.execute(f"INSERT INTO {table} VALUES (2)")
            assert wh.read_only_begin is None
            return
        with pytest.raises(Exception) as refused:
            session.execute(f"INSERT INTO {table} VALUES (2)")
    assert not wh.is_infrastructure_error(refused.value)  # a verdict on the statement, never a retry
    assert wh.failure_kind(refused.value) == "unreadable"
    assert backend.rows(f"SELECT id FROM {table}") == [(1,)]


def test_a_failed_read_does_not_poison_the_next_in_the_same_session(backend):
    wh = backend.warehouse
    table = _table(backend)
    with wh.reading() as session:
        conn = session.conn
        with pytest.raises(Exception) as failed:
            session.fetch(f"SELECT no_such_column FROM {table}")
        assert wh.failure_kind(failed.value) == "unreadable"
        assert session.rows(f"SELECT id FROM {table}") == [(1,)]  # the next read opens another transaction
        if wh.read_only_begin is not None:  # ... read-only again
            with pytest.raises(Exception) as refused:
                session.execute(f"INSERT INTO {table} VALUES (2)")
            assert wh.failure_kind(refused.value) == "unreadable"
            assert session.rows(f"SELECT count(*) FROM {table}") == [(1,)]
    assert backend.is_closed(conn)


def test_reading_streams_arrow_inside_the_session(backend):
    table = _table(backend, rows=(1, 2, 3))
    with backend.warehouse.reading() as session:
        schema, batches = session.arrow(f"SELECT id FROM {table} ORDER BY id", batch_rows=2)
        assert [n.lower() for n in schema.names] == ["id"]
        assert [v for b in batches for v in b.column(0).to_pylist()] == [1, 2, 3]


# --- writing -----------------------------------------------------------------------------------


def test_writing_commits_every_statement_together(backend):
    wh = backend.warehouse
    table = _table(backend, rows=())
    with wh.writing() as session:
        conn = session.conn
        session.execute(f"INSERT INTO {table} VALUES (1)")
        session.executemany(f"INSERT INTO {table} VALUES ({wh.placeholder})", [(2,), (3,)])
        session.execute(f"INSERT INTO {table} VALUES ({wh.placeholder})", (4,))
    assert backend.is_closed(conn)
    assert sorted(backend.rows(f"SELECT id FROM {table}")) == [(1,), (2,), (3,), (4,)]


def test_an_error_mid_block_leaves_nothing_visible(backend):
    wh = backend.warehouse
    table = _table(backend)
    with pytest.raises(Exception) as failed, wh.writing() as session:
        session.execute(f"DELETE FROM {table}")
        session.execute(f"INSERT INTO {table} VALUES (2)")
        session.execute(f"SELECT no_such_column FROM {table}")
    assert wh.failure_kind(failed.value) == "unreadable"
    with pytest.raises(RuntimeError), wh.writing() as session:
        session.execute(f"INSERT INTO {table} VALUES (3)")
        raise RuntimeError("the caller's own failure")
    assert backend.rows(f"SELECT id FROM {table}") == [(1,)]


def test_writing_without_begin_runs_set_up_then_opens_the_transaction(backend):
    wh = backend.warehouse
    table = wh.quote_table(backend.table("staged"))
    with pytest.raises(RuntimeError), wh.writing(begin=False) as session:
        session.run([wh.create_schema_sql(backend.table("staged")), f"CREATE TABLE {table} (id INTEGER)"])
        if backend.name != "postgres":  # PostgreSQL's DDL is transactional: the set-up commits with the rest
            session.conn.commit()
        session.begin()
        session.execute(f"INSERT INTO {table} VALUES (1)")
        raise RuntimeError("after the set-up")
    if backend.name == "postgres":
        assert wh.is_missing_table(_error(wh, f"SELECT id FROM {table}"))
    else:
        assert backend.rows(f"SELECT id FROM {table}") == []  # the table stays, the insert does not


# --- telling failures apart ------------------------------------------------------------------


def test_a_missing_table_or_schema_is_missing_and_a_bad_statement_is_not(backend):
    wh = backend.warehouse
    table = _table(backend)
    missing_table = _error(wh, f"SELECT id FROM {wh.quote_table(backend.table('no_such_table'))}")
    missing_schema = _error(wh, f"SELECT id FROM {wh.quote_table('no_such_schema_xyz.t')}")
    syntax = _error(wh, "SELEC 1")
    missing_column = _error(wh, f"SELECT no_such_column FROM {table}")
    assert wh.is_missing_table(missing_table) and wh.is_missing_table(missing_schema)
    assert not wh.is_missing_table(syntax) and not wh.is_missing_table(missing_column)
    assert [wh.failure_kind(e) for e in (missing_table, missing_schema, syntax, missing_column)] == [
        "missing", "missing", "unreadable", "unreadable"]  # fmt: skip
    assert not any(wh.is_lock_conflict(e) for e in (missing_table, syntax, missing_column))


def _unreachable(backend, tmp_path, monkeypatch) -> BaseException:
    """What the warehouse's driver raises when it cannot be used at all, through a real Airflow
    connection where the driver can fail so (fakesnow has no network to lose)."""
    if backend.name == "snowflake":
        from snowflake.connector.errors import ServiceUnavailableError

        return ServiceUnavailableError(msg="503 Service Unavailable")
    if backend.name == "duckdb":
        where = DuckDB.connection_json(tmp_path / "no_such_folder" / "wh.duckdb")
    else:
        where = "postgres://postgres@127.0.0.1:9/test"  # nothing listens on port 9
    monkeypatch.setenv("AIRFLOW_CONN_CT_DOWN", where)
    with pytest.raises(Exception) as raised, Warehouse.from_conn_id("ct_down").reading(wait=0) as session:
        session.fetch("SELECT 1")
    return raised.value


def test_an_unusable_warehouse_is_unreachable(backend, tmp_path, monkeypatch):
    wh = backend.warehouse
    error = _unreachable(backend, tmp_path, monkeypatch)
    assert wh.is_infrastructure_error(error) and wh.failure_kind(error) == "unreachable"
    assert not wh.is_missing_table(error)
    assert wh.failure_kind(FileNotFoundError("s3://bucket/x.parquet")) == "unreachable"


def test_a_duckdb_file_held_by_another_process_is_a_lock_conflict(tmp_path, monkeypatch):
    path = tmp_path / "held.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_CT_HELD", DuckDB.connection_json(path))
    wh = Warehouse.from_conn_id("ct_held")
    holder = hold_lock(path, 30)
    try:
        with pytest.raises(Exception) as held, wh.reading(wait=0.2):
            pass
    finally:
        holder.kill()
        holder.wait()
    error = held.value
    assert DuckDB.is_lock_conflict(error) and wh.is_infrastructure_error(error)
    assert wh.failure_kind(error) == "unreachable" and not wh.is_missing_table(error)
    assert not PostgreSQL.is_lock_conflict(error) and not Snowflake.is_lock_conflict(error)
    with wh.reading(wait=5) as session:  # the holder is gone: the file opens
        assert session.rows("SELECT 1") == [(1,)]


def test_a_postgresql_lock_timeout_is_a_lock_conflict(postgres_dsn, monkeypatch):
    """One session holds a table's lock; another's read gives up after its ``lock_timeout``
    (SQLSTATE 55P03, outside the SQLSTATE classes that are infrastructure by themselves)."""
    monkeypatch.setenv("AIRFLOW_CONN_CT_PG", postgres_dsn.replace("postgresql://", "postgres://"))
    wh = Warehouse.from_conn_id("ct_pg")
    table = "aq_ct_locked"
    with wh.writing(begin=False) as session:
        session.execute(f"DROP TABLE IF EXISTS {table}")
        session.execute(f"CREATE TABLE {table} (id INTEGER)")
    try:
        with wh.writing() as holder:
            holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(Exception) as waited, wh.reading() as session:
                session.execute("SET LOCAL lock_timeout = '100ms'")
                session.fetch(f"SELECT id FROM {table}")
        error = waited.value
        assert type(error).__name__ == "LockNotAvailable" and wh.is_lock_conflict(error)
        assert wh.is_infrastructure_error(error) and wh.failure_kind(error) == "unreachable"
        assert not wh.is_missing_table(error)
    finally:
        with wh.writing(begin=False) as session:
            session.execute(f"DROP TABLE IF EXISTS {table}")


def test_serialization_failures_and_deadlocks_are_lock_conflicts():
    class DriverError(Exception):
        def __init__(self, sqlstate: str):
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    assert all(PostgreSQL.is_lock_conflict(DriverError(s)) for s in ("40001", "40P01", "55P03"))
    assert Warehouse.is_lock_conflict(DriverError("40001")) and not Warehouse.is_lock_conflict(DriverError("55P03"))
    assert not PostgreSQL.is_lock_conflict(DriverError("42P01")) and PostgreSQL.is_missing_table(DriverError("42P01"))


def test_the_generic_adapter_reads_missing_tables_from_the_message(tmp_path):
    import sqlite3

    class Hook:
        conn_type = "sqlite"

        def get_conn(self):
            return sqlite3.connect(str(tmp_path / "wh.sqlite"))

    wh = Warehouse.of(Hook())
    assert type(wh) is GenericWarehouse
    # sqlite3 raises both as OperationalError: the message tells them apart
    assert wh.failure_kind(_error(wh, "SELECT * FROM no_such_table")) == "missing"
    assert not wh.is_missing_table(_error(wh, "SELEC 1"))
    assert not wh.is_missing_table(Exception('FATAL: database "nowhere" does not exist'))


# --- the registry: base imports no adapter ---------------------------------------------------


def test_base_imports_no_adapter_and_every_adapter_is_registered():
    tree = ast.parse(Path(base.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    adapters = {f"aq_airflow.warehouse.{name}" for name in ("duckdb", "postgres", "snowflake", "generic")}
    assert not imported & adapters, imported & adapters
    assert Warehouse.adapters() == [DuckDB, PostgreSQL, Snowflake, GenericWarehouse]
    assert type(Warehouse.for_dialect("tsql")) is GenericWarehouse and Warehouse.for_dialect("tsql").dialect == "tsql"


def test_a_connection_json_reaches_duckdb_through_airflow(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CT_FILE", json.dumps({"conn_type": "duckdb", "host": str(tmp_path / "f.duckdb")}))
    with Warehouse.from_conn_id("ct_file").writing(begin=False) as session:
        session.execute("CREATE TABLE t AS SELECT 7 AS v")
    assert (tmp_path / "f.duckdb").is_file()
    with Warehouse.from_conn_id("ct_file").reading() as session:
        assert session.rows("SELECT v FROM t") == [(7,)]
