"""SQL steps: a query's result streamed from the warehouse into the artifact store as Arrow
record batches, through the warehouse adapter's Arrow path (``aq_airflow.warehouse``).

The other functions here are the earlier names of adapter methods, kept while callers move to
``Warehouse.of(hook)``: ``connect`` (``.connect``), ``dialect_of`` (``.dialect``),
``transaction`` (``.transaction``), ``select_all`` and ``is_infrastructure_error``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aq_airflow.runtime.artifacts import ROW_GROUP_ROWS, Location, write_batches
from aq_airflow.warehouse import Warehouse, is_infrastructure_error, select_all

__all__ = ["connect", "dialect_of", "export_query", "is_infrastructure_error", "select_all", "transaction"]


def dialect_of(hook) -> str | None:
    """The sqlglot dialect of a DbApiHook's warehouse (None: generic SQL)."""
    return Warehouse.of(hook).dialect


def connect(hook, wait: float | None = None):
    """A new DB-API connection from ``hook`` (a file-backed DuckDB waits up to ``wait`` seconds
    for its lock, ``aq_airflow.warehouse.duckdb.LOCK_WAIT_SECONDS`` by default)."""
    return Warehouse.of(hook).connect(wait)


@contextmanager
def transaction(conn, dialect: str | None, begin: bool = True) -> Iterator:
    """A cursor whose statements commit together or not at all; the connection is closed after."""
    with Warehouse.for_dialect(dialect).transaction(conn, begin=begin) as cursor:
        yield cursor


def export_query(hook, sql: str, output: Location) -> dict:
    """Run ``sql`` through ``hook`` and commit its result as the step's table output."""
    warehouse = Warehouse.of(hook)
    with warehouse.arrow_batches(sql, batch_rows=ROW_GROUP_ROWS) as (schema, batches):
        attempt = output.begin()
        manifest = write_batches(output, attempt, schema, batches)
    manifest = {**manifest, "attempt": attempt, "uri": output.uri, "dialect": warehouse.dialect}
    output.commit(manifest)
    return manifest
