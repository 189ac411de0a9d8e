"""Any other DB-API warehouse (MySQL, SQLite, SQL Server, Trino, ...): PEP 249 only.

SQL is rendered in the sqlglot dialect the connection type (or the hook's SQLAlchemy dialect)
names, parameters use the hook's placeholder, queries are read as rows turned into Arrow, and
publish runs plain statements in one transaction: ``executemany`` INSERTs a row group at a
time, and for a merge first ``executemany`` DELETEs by key. Correct everywhere, fast nowhere:
a warehouse used for large publishes deserves its own adapter with its bulk path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow.fs as pafs
from sqlglot import exp

from aq_airflow.warehouse.base import Warehouse, row_groups

# Airflow connection types whose sqlglot dialect has another name (or that have one at all)
_CONN_TYPE_DIALECTS = {
    "mysql": "mysql", "sqlite": "sqlite", "mssql": "tsql", "oracle": "oracle", "trino": "trino",
    "presto": "presto", "redshift": "redshift", "databricks": "databricks", "clickhouse": "clickhouse",
    "teradata": "teradata", "exasol": "exasol", "drill": "drill", "hive_cli": "hive", "hiveserver2": "hive",
    "spark_sql": "spark", "athena": "athena", "vertica": None, "odbc": None, "jdbc": None,
}  # fmt: skip
# SQLAlchemy dialect names (DbApiHook.dialect_name) that differ from sqlglot's
_SQLALCHEMY_DIALECTS = {"postgresql": "postgres", "mssql": "tsql", "awsathena": "athena"}


class GenericWarehouse(Warehouse, fallback=True):
    """Not registered for a connection type: the fallback ``Warehouse.of`` returns."""

    def __init__(self, hook: Any, placeholder: str | None = None, dialect: str | None = None):
        super().__init__(hook, placeholder)
        self.dialect = dialect  # type: ignore[misc] - per instance here, per class elsewhere

    @classmethod
    def is_missing_table(cls, error: BaseException) -> bool:
        """A driver without an adapter may report no SQLSTATE: its message is the last signal
        (``no such table``; ``... does not exist`` naming a table, relation or schema, not the
        database a connection asked for)."""
        if super().is_missing_table(error):
            return True
        text = str(error).lower()
        if "no such table" in text or "invalid object name" in text:
            return True
        return any(p in text for p in ("does not exist", "doesn't exist")) and any(
            noun in text for noun in ("table", "relation", "schema")
        )

    @staticmethod
    def dialect_for(hook: Any, conn_type: str | None) -> str | None:
        """The sqlglot dialect for a hook without an adapter of its own (None: generic SQL)."""
        if conn_type in _CONN_TYPE_DIALECTS:
            return _CONN_TYPE_DIALECTS[conn_type]
        try:
            name = getattr(hook, "dialect_name", None)  # SQLAlchemy's name, from the connection URI
        except Exception:  # no SQLAlchemy dialect for it, or no connection to ask
            return None
        if not isinstance(name, str) or name == "default":
            return None
        name = _SQLALCHEMY_DIALECTS.get(name, name)
        from sqlglot.dialects.dialect import Dialect

        try:
            Dialect.get_or_raise(name)
        except ValueError:
            return None
        return name

    def portable_type(self, name: str) -> exp.DataType:
        """Types read in sqlglot's generic SQL (TIMESTAMP as such, where DuckDB's reading would
        name it TIMESTAMPNTZ in dialects without that spelling)."""
        return exp.DataType.build(name)

    def bulk_load(self, files, fs, schema, target, mode, keys=()) -> None:
        columns = self.check_load(mode, keys, schema)
        fs = fs or pafs.LocalFileSystem()
        with self.writing() as session:
            session.run(self.ddl_statements(target, schema))
            if mode == "replace":
                session.execute(exp.delete(self.table(target)))
            elif mode == "merge":
                delete = self.delete_by_key_sql(target, keys)
                for group in row_groups(files, fs, schema):
                    rows = {tuple(r) for r in zip(*(group.column(c).to_pylist() for c in columns), strict=True)}
                    if rows:
                        session.executemany(delete, sorted(rows, key=repr))
            insert = self.insert_sql(target, schema.names)
            for group in row_groups(files, fs, schema):
                if group.num_rows:
                    session.executemany(insert, list(zip(*(c.to_pylist() for c in group.columns), strict=True)))

    def insert_sql(self, target: str, names: Sequence[str]) -> str:
        columns = ", ".join(self.render(self.column(n).this) for n in names)
        marks = ", ".join([self.placeholder] * len(names))
        return f"INSERT INTO {self.quote_table(target)} ({columns}) VALUES ({marks})"  # noqa: S608 - quoted

    def delete_by_key_sql(self, target: str, keys: Sequence[str]) -> str:
        where = " AND ".join(f"{self.render(self.column(k))} = {self.placeholder}" for k in keys)
        return f"DELETE FROM {self.quote_table(target)} WHERE {where}"  # noqa: S608 - quoted
