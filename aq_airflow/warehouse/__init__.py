"""Warehouse adapters: one class per dialect over an Airflow DbApiHook (see ``base.Warehouse``).

``Warehouse.of(hook)`` chooses the adapter by the hook's connection
type: DuckDB, PostgreSQL, Snowflake, or a generic PEP 249 adapter for the rest.
"""

from aq_airflow.warehouse.base import (
    BATCH_ROWS,
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
from aq_airflow.warehouse.snowflake import Snowflake

__all__ = [
    "BATCH_ROWS",
    "DuckDB",
    "GenericWarehouse",
    "PostgreSQL",
    "Snowflake",
    "Warehouse",
    "column_expression",
    "is_infrastructure_error",
    "normalize_identifier",
    "select_all",
    "sql_type",
    "table_expression",
]
