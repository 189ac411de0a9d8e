"""PostgreSQL, through psycopg2 or psycopg 3 (whichever the PostgresHook uses).

What differs: connections are told to keep ``IF NOT EXISTS`` NOTICEs to themselves, queries are
read through a named (server-side) cursor with Arrow types from the column type OIDs, and
publish COPYs CSV (written by pyarrow a row group at a time) into a temporary staging table
that is dropped at commit.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
from sqlglot import exp

from aq_airflow.warehouse.base import Warehouse, row_groups

STAGE = "aq_publish_stage"
EXPORT_CURSOR = "aq_export"

# type OIDs (pg_type) with an unambiguous Arrow type for the values both psycopg versions return
_OID_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),  # oid
    700: pa.float32(),
    701: pa.float64(),
    18: pa.string(),  # "char"
    19: pa.string(),  # name
    25: pa.string(),  # text
    1042: pa.string(),  # char(n)
    1043: pa.string(),  # varchar
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    17: pa.binary(),  # bytea
}
_NUMERIC = 1700


class PostgreSQL(Warehouse):
    dialect = "postgres"
    conn_types = ("postgres", "postgresql")
    default_placeholder = "%s"
    read_only_begin = "SET TRANSACTION READ ONLY"
    add_column_if_not_exists = True
    #: serialization failure, deadlock detected, lock not available (``lock_timeout``, NOWAIT)
    lock_conflict_sqlstates = frozenset({"40001", "40P01", "55P03"})

    def begin_read_only(self, conn: Any, cursor: Any) -> bool:
        """``SET TRANSACTION READ ONLY`` as the first statement of the transaction psycopg opens
        implicitly; ``BEGIN READ ONLY`` on a connection in autocommit mode, which opens none."""
        cursor.execute("BEGIN READ ONLY" if getattr(conn, "autocommit", False) else self.read_only_begin)
        return True

    def end_read_only(self, conn: Any, cursor: Any) -> None:
        if getattr(conn, "autocommit", False):  # the driver knows of no transaction to roll back
            try:
                cursor.execute("ROLLBACK")
            except Exception:  # a lost connection: the error that caused it is what matters
                return
            return
        super().end_read_only(conn, cursor)

    def connect(self, wait: float | None = None) -> Any:
        """PostgreSQL reports `IF NOT EXISTS` statements that had nothing to do as NOTICEs, which
        the hook logs into every task; warnings and errors still come through."""
        conn = self.hook.get_conn()
        try:
            cursor = conn.cursor()
            cursor.execute("SET client_min_messages TO warning")
            cursor.close()
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def read_arrow(self, conn: Any, sql: str, batch_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """A named cursor: the server keeps the result, the client holds one batch of rows."""
        cursor = conn.cursor(name=EXPORT_CURSOR)
        if hasattr(cursor, "itersize"):  # psycopg2
            cursor.itersize = batch_rows
        cursor.execute(sql)
        return self.batches_from_rows(cursor, batch_rows)

    def arrow_type(self, column: Sequence[Any]) -> pa.DataType | None:
        oid, precision, scale = column[1], column[4], column[5]
        if oid == _NUMERIC:  # numeric(p, s); unconstrained numeric has no fixed scale: inferred
            if precision is None or scale is None or not 0 < precision <= 76 or not 0 <= scale <= precision:
                return None
            return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        return _OID_TYPES.get(oid)

    def copy_sql(self, names: Sequence[str]) -> str:
        columns = ", ".join(self.render(self.column(n)) for n in names)
        return f"COPY {self._stage_sql()} ({columns}) FROM STDIN WITH (FORMAT csv)"

    def stage_sql(self, target: str) -> str:
        return f"CREATE TEMPORARY TABLE {self._stage_sql()} (LIKE {self.quote_table(target)}) ON COMMIT DROP"

    def _stage_sql(self) -> str:
        return self.render(exp.to_identifier(STAGE, quoted=True))

    def bulk_load(self, files, fs, schema, target, mode, keys=()) -> None:
        self.check_load(mode, keys, schema)
        fs = fs or pafs.LocalFileSystem()
        with self.writing() as session:
            session.run(self.ddl_statements(target, schema))
            session.execute(self.stage_sql(target))
            copy = self.copy_sql(schema.names)
            for group in row_groups(files, fs, schema):  # a row group of CSV at a time
                buffer = io.BytesIO()
                pacsv.write_csv(group, buffer, pacsv.WriteOptions(include_header=False))
                _copy(session.cursor, copy, buffer)
            staged = exp.Table(this=exp.to_identifier(STAGE, quoted=True))
            session.run(self.load_statements(target, staged, schema.names, mode, keys))


def _copy(cursor: Any, statement: str, buffer: io.BytesIO) -> None:
    """COPY ... FROM STDIN with psycopg2 (``copy_expert``) or psycopg 3 (``copy``)."""
    if hasattr(cursor, "copy_expert"):
        buffer.seek(0)
        cursor.copy_expert(statement, buffer)
    else:
        with cursor.copy(statement) as copy:
            copy.write(buffer.getvalue())
