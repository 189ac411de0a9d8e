"""Warehouse adapters: one class per dialect over an Airflow DbApiHook (see ``base.Warehouse``),
and sessions, the one way statements run on one (``session``).

``Warehouse.of(hook)`` (or ``Warehouse.from_conn_id(conn_id)``) chooses the adapter by the
connection type: DuckDB, PostgreSQL, Snowflake, or a generic PEP 249 adapter for the rest. Each
adapter registers itself when its module is imported, which is why this package imports them all.
"""

from aq_airflow.warehouse.base import (
    FailureKind,
    Warehouse,
    column_expression,
    is_infrastructure_error,
    normalize_identifier,
    select_all,
    sql_type,
    table_expression,
)
from aq_airflow.warehouse.duckdb import DuckDB
from aq_airflow.warehouse.generic import GenericWarehouse
from aq_airflow.warehouse.postgres import PostgreSQL
from aq_airflow.warehouse.session import BATCH_ROWS, ReadSession, WriteSession
from aq_airflow.warehouse.snowflake import Snowflake

__all__ = [
    "BATCH_ROWS",
    "DuckDB",
    "FailureKind",
    "GenericWarehouse",
    "PostgreSQL",
    "ReadSession",
    "Snowflake",
    "Warehouse",
    "WriteSession",
    "column_expression",
    "is_infrastructure_error",
    "normalize_identifier",
    "select_all",
    "sql_type",
    "table_expression",
]
