"""DuckDB: a file (or in-memory) database in the task's own process.

What differs: a file admits one process at a time (connections wait for its lock), the
connection is its own cursor (``conn.cursor()`` is a second connection with its own
transaction), connections autocommit, ``?`` marks parameters, query results stream as Arrow
natively, and publish inserts straight from ``read_parquet`` (a local disk) or a registered
pyarrow dataset (an object store: no DuckDB extension is downloaded at run time).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from sqlglot import exp

from aq_airflow.warehouse.base import Warehouse

log = logging.getLogger(__name__)

#: how long a connection waits for a file-backed DuckDB's lock before it fails (and Airflow
#: retries the task); read at each connect, so tests may patch it
LOCK_WAIT_SECONDS = 600.0
PUBLISH_SOURCE = "aq_publish_source"  # the name an object-store output is registered under


def parquet_relation(paths: Sequence[str]) -> exp.Expression:
    """DuckDB's ``read_parquet([...])`` over files on a local disk."""
    return exp.func("read_parquet", exp.Array(expressions=[exp.Literal.string(p) for p in paths]))


class DuckDB(Warehouse):
    dialect = "duckdb"
    conn_types = ("duckdb",)
    default_placeholder = "?"
    explicit_begin = True
    read_only_begin = "BEGIN TRANSACTION READ ONLY"
    add_column_if_not_exists = True
    driver_module = "duckdb"
    # a query interrupted (a task's timeout or kill) says nothing about the data
    infrastructure_error_names = frozenset({"InterruptException"})

    @classmethod
    def is_missing_table(cls, error: BaseException) -> bool:
        """DuckDB reports an unknown table or schema as a ``CatalogException``."""
        return type(error).__name__ == "CatalogException" and "does not exist" in str(error)

    @classmethod
    def is_lock_conflict(cls, error: BaseException) -> bool:
        """Another process holds the database file's lock (DuckDB admits one writer process)."""
        return type(error).__name__ == "IOException" and "Could not set lock" in str(error)

    @staticmethod
    def connection_json(path: str | os.PathLike) -> str:
        """An Airflow connection (JSON, for ``AIRFLOW_CONN_*``) for a DuckDB file."""
        return json.dumps({"conn_type": "duckdb", "host": os.path.abspath(path)})

    @classmethod
    def in_memory(
        cls,
        data: Mapping[str, Any] | None = None,
        readable: Sequence[str] = (),
        views: Mapping[str, exp.Expression] | None = None,
    ) -> DuckDB:
        """An in-memory DuckDB, each connection with ``data`` (Arrow tables, datasets or readers)
        registered under their names, and ``views`` (relations, such as ``read_parquet`` of an
        output's files) made under theirs, so the SQL users write can name them: how Parquet
        outputs are scanned.

        It reads no file but those under the ``readable`` folders (the output's own): checks
        and metrics are user SQL run on the worker, and ``read_text('/proc/self/environ')`` or
        ``glob('/etc/*')`` would otherwise read the worker's files. The setting is locked.
        """

        def connect() -> Any:
            import duckdb

            conn = duckdb.connect()
            for name, table in (data or {}).items():
                conn.register(name, table)
            folders = ", ".join("'" + folder.rstrip("/").replace("'", "''") + "/'" for folder in readable)
            conn.execute(f"SET allowed_directories = [{folders}]")
            conn.execute("SET enable_external_access = false")
            conn.execute("SET lock_configuration = true")
            for name, relation in (views or {}).items():
                view = exp.Create(this=exp.to_identifier(name, quoted=True), kind="VIEW", replace=True,
                                  expression=exp.select("*").from_(relation))  # fmt: skip
                conn.execute(view.sql(dialect="duckdb"))
            return conn

        return cls.for_dialect("duckdb", connect)  # type: ignore[return-value]

    @classmethod
    def refused_statement(cls, error: BaseException) -> bool:
        """DuckDB raises a write in a read-only transaction as a TransactionException, which
        derives from OperationalError: it is the statement's fault, not the database's."""
        return (
            type(error).__name__ == "TransactionException"
            and type(error).__module__.split(".")[0] in ("duckdb", "_duckdb")
            and "read-only mode" in str(error)
        )

    def connect(self, wait: float | None = None) -> Any:
        """A file-backed DuckDB admits one process at a time: a step's checks and metrics tasks,
        or two runs of a pipeline, conflict on its file lock whenever an executor runs them in
        parallel. Connections are short-lived (opened per statement set, closed after), so a
        conflicting task waits for the lock with jittered exponential backoff, up to ``wait``
        seconds (``LOCK_WAIT_SECONDS`` by default), instead of failing."""
        deadline = time.monotonic() + (LOCK_WAIT_SECONDS if wait is None else wait)
        delay = 0.05
        while True:
            try:
                return self.hook.get_conn()
            except Exception as error:
                if not self.is_lock_conflict(error) or time.monotonic() + delay > deadline:
                    raise
                log.debug("DuckDB file is locked by another task; retrying in %.2fs", delay)
                time.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not security
                delay = min(delay * 2, 2.0)

    def cursor(self, conn: Any) -> Any:
        return conn  # conn.cursor() would be another connection, outside this one's transaction

    def read_arrow(self, conn: Any, sql: str, batch_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """DuckDB's relation API streams Arrow batches without a pass through Python rows."""
        relation = conn.sql(sql)
        if relation is None:
            raise ValueError("the SQL is not a query: it returns no rows to read")
        reader = relation.to_arrow_reader(batch_rows)
        return reader.schema, iter(reader)

    def bulk_load(self, files, fs, schema, target, mode, keys=()) -> None:
        self.check_load(mode, keys, schema)
        fs = fs or pafs.LocalFileSystem()
        with self.writing(begin=False) as session:
            source = self._source(session.conn, files, fs)
            session.begin()
            session.run(self.ddl_statements(target, schema))
            session.run(self.load_statements(target, source, schema.names, mode, keys))

    def _source(self, conn: Any, files: list[str], fs: pafs.FileSystem) -> exp.Expression:
        if isinstance(fs, pafs.LocalFileSystem):
            return parquet_relation(files)
        # an object store: DuckDB scans the pyarrow dataset (no extension downloads)
        import pyarrow.dataset as ds  # imports pandas: only where an object store needs it

        conn.register(PUBLISH_SOURCE, ds.dataset(files, filesystem=fs, format="parquet"))
        return exp.to_table(PUBLISH_SOURCE)
