"""SQL steps: a query's result streamed from the warehouse into the artifact store as Arrow
record batches, through the driver's Arrow path where it has one (DuckDB, Snowflake) and a
server-side cursor otherwise (PostgreSQL and other DB-API drivers)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from aq_airflow.runtime.artifacts import ROW_GROUP_ROWS, Location, write_batches

log = logging.getLogger(__name__)
# how long a task waits for a file-backed DuckDB's lock before it fails (and Airflow retries it)
DUCKDB_LOCK_WAIT_SECONDS = 600.0
# PEP 249's classes for failures of the database's operation rather than of the query or data:
# a lost connection, a lock, a timeout, a full disk. Every driver names them so.
_INFRASTRUCTURE_ERRORS = frozenset({"OperationalError", "InterfaceError"})

DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "postgresql": "postgres", "snowflake": "snowflake"}


def dialect_of(hook) -> str | None:
    """The sqlglot dialect of a DbApiHook's connection type (None: generic SQL)."""
    return DIALECTS.get(getattr(hook, "conn_type", None) or getattr(hook, "conn_name_attr", "").split("_")[0])


def is_infrastructure_error(error: BaseException) -> bool:
    """Whether ``error`` says the warehouse or the store could not be used (so the task should fail
    and retry), rather than that the query or the data is wrong (a check outcome)."""
    if isinstance(error, OSError | TimeoutError):
        return True
    return any(kind.__name__ in _INFRASTRUCTURE_ERRORS for kind in type(error).__mro__)


def _is_lock_conflict(error: BaseException) -> bool:
    return type(error).__name__ == "IOException" and "Could not set lock" in str(error)


def connect(hook, wait: float | None = None):
    """A new DB-API connection from ``hook``.

    A file-backed DuckDB admits one process at a time: a step's checks and metrics tasks, or two
    runs of a pipeline, conflict on its file lock whenever an executor runs them in parallel.
    Connections are short-lived (opened per statement set, closed after), so a conflicting task
    waits for the lock with jittered exponential backoff instead of failing. Other warehouses
    take concurrent connections and are connected to at once (PostgreSQL without NOTICEs).
    """
    dialect = dialect_of(hook)
    if dialect == "postgres":
        return _quiet_postgres(hook.get_conn())
    if dialect != "duckdb":
        return hook.get_conn()
    deadline = time.monotonic() + (DUCKDB_LOCK_WAIT_SECONDS if wait is None else wait)
    delay = 0.05
    while True:
        try:
            return hook.get_conn()
        except Exception as error:
            if not _is_lock_conflict(error) or time.monotonic() + delay > deadline:
                raise
            log.debug("DuckDB file is locked by another task; retrying in %.2fs", delay)
            time.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not security
            delay = min(delay * 2, 2.0)


def _quiet_postgres(conn):
    """PostgreSQL reports `IF NOT EXISTS` statements that had nothing to do as NOTICEs, which
    the hook logs into every task; warnings and errors still come through."""
    cursor = conn.cursor()
    cursor.execute("SET client_min_messages TO warning")
    cursor.close()
    conn.commit()
    return conn


def select_all(table: str, dialect: str | None) -> str:
    """``SELECT * FROM table`` with each part of the (validated) name quoted for the dialect.

    Names are first normalized the way the dialect treats unquoted names (Snowflake upper-cases,
    PostgreSQL lower-cases), so quoting never changes which table is meant.
    """
    query = normalize_identifiers(exp.select("*").from_(exp.to_table(table, dialect=dialect)), dialect=dialect)
    return query.sql(dialect=dialect, identify=True)


def _duckdb_batches(conn, sql: str) -> tuple[pa.Schema, Iterator]:
    """DuckDB's relation API streams Arrow batches without a copy through Python rows."""
    reader = conn.sql(sql).to_arrow_reader(ROW_GROUP_ROWS)
    return reader.schema, reader


def _snowflake_batches(conn, sql: str) -> tuple[pa.Schema, Iterator]:
    cursor = conn.cursor()
    if not hasattr(cursor, "fetch_arrow_batches"):  # a Snowflake look-alike without the Arrow fetch
        return _dbapi_batches(conn, sql)
    cursor.execute(sql)
    batches = iter(cursor.fetch_arrow_batches())
    first = next(batches, None)
    if first is None:
        names = [d[0] for d in cursor.description or []]
        return pa.schema([(n, pa.null()) for n in names]), iter(())

    def chain():
        yield first
        yield from batches

    return first.schema, chain()


def _dbapi_batches(conn, sql: str) -> tuple[pa.Schema, Iterator]:
    """A named (server-side) cursor where the driver has one, rows turned into record batches."""
    try:
        cursor = conn.cursor(name="aq_export")
    except TypeError:
        cursor = conn.cursor()
    cursor.itersize = ROW_GROUP_ROWS
    cursor.execute(sql)
    rows = cursor.fetchmany(ROW_GROUP_ROWS)
    names = [d[0] for d in cursor.description]
    first = pa.RecordBatch.from_pylist([dict(zip(names, r, strict=True)) for r in rows]) if rows else None
    schema = first.schema if first is not None else pa.schema([(n, pa.null()) for n in names])

    def batches():
        if first is None:
            return
        yield first
        while chunk := cursor.fetchmany(ROW_GROUP_ROWS):
            yield pa.RecordBatch.from_pylist([dict(zip(names, r, strict=True)) for r in chunk], schema=schema)
        cursor.close()

    return schema, batches()


def export_query(hook, sql: str, output: Location) -> dict:
    """Run ``sql`` through ``hook`` and commit its result as the step's table output."""
    dialect = dialect_of(hook)
    conn = connect(hook)
    try:
        reader = {"duckdb": _duckdb_batches, "snowflake": _snowflake_batches}.get(dialect or "", _dbapi_batches)
        attempt = output.begin()
        schema, batches = reader(conn, sql)
        manifest = write_batches(output, attempt, schema, batches)
    finally:
        conn.close()
    manifest = {**manifest, "attempt": attempt, "uri": output.uri, "dialect": dialect}
    output.commit(manifest)
    return manifest


@contextmanager
def transaction(conn, dialect: str | None, begin: bool = True) -> Iterator:
    """A cursor whose statements commit together or not at all; the connection is closed after.

    DuckDB and Snowflake connections autocommit, so the transaction is opened explicitly
    (``begin=False`` lets a caller run set-up statements before opening it); PostgreSQL drivers
    open one implicitly.
    """
    try:
        cursor = conn if dialect == "duckdb" else conn.cursor()
        if begin and dialect in ("duckdb", "snowflake"):
            cursor.execute("BEGIN TRANSACTION")
        yield cursor
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()
