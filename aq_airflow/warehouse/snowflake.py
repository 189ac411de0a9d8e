"""Snowflake, through snowflake-connector-python (the SnowflakeHook's connection).

What differs: unquoted names are upper-cased, connections autocommit (a transaction is opened
with BEGIN), queries are read as the connector's Arrow result chunks, HTTP-level connector
errors are infrastructure failures, and publish stages the Parquet files themselves: PUT into a
temporary stage, then ``COPY INTO`` a temporary table, so memory never holds more than a
download buffer whatever the output's size (the files are uploaded as they are; the warehouse
parses them).
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from sqlglot import exp

from aq_airflow.warehouse.base import Warehouse

STAGE_TABLE = "AQ_PUBLISH_STAGE"  # the temporary table the staged files are copied into
_SAFE_PATH = re.compile(r"/[A-Za-z0-9_./-]+")  # a local path PUT can take as it is
# the connector's FIELD_TYPES order (snowflake.connector.constants), read without importing it
_FIELD_TYPES = ("FIXED", "REAL", "TEXT", "DATE", "TIMESTAMP", "VARIANT", "TIMESTAMP_LTZ", "TIMESTAMP_TZ",
                "TIMESTAMP_NTZ", "OBJECT", "ARRAY", "BINARY", "TIME", "BOOLEAN")  # fmt: skip
_ARROW_TYPES = {
    "REAL": pa.float64(),
    "TEXT": pa.string(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMP_NTZ": pa.timestamp("us"),
    "TIMESTAMP_LTZ": pa.timestamp("us", tz="UTC"),
    "TIMESTAMP_TZ": pa.timestamp("us", tz="UTC"),
    "BINARY": pa.binary(),
    "BOOLEAN": pa.bool_(),
}


class Snowflake(Warehouse):
    dialect = "snowflake"
    conn_types = ("snowflake",)
    default_placeholder = "%s"  # the connector's default paramstyle (pyformat)
    explicit_begin = True
    # Snowflake has no read-only transaction (BEGIN takes no READ ONLY, and DDL commits on its
    # own anyway): the SQL users write is still parsed to one SELECT, and the connection's role
    # is what bounds it (give it SELECT on the data, write rights on the results schema only)
    read_only_begin = None
    add_column_if_not_exists = True
    driver_module = "snowflake"
    # the connector's HTTP failures derive from its Error, not from OperationalError
    infrastructure_error_names = frozenset({
        "ServiceUnavailableError", "RequestTimeoutError", "BadGatewayError", "GatewayTimeoutError",
        "OtherHTTPRetryableError", "HttpError", "ForbiddenError",
    })  # fmt: skip

    @classmethod
    def is_missing_table(cls, error: BaseException) -> bool:
        """Snowflake's errno 2003: the object does not exist or is not authorized (one code for
        both, by design: an unauthorized role may not learn that a table exists)."""
        return getattr(error, "errno", None) == 2003 or super().is_missing_table(error)

    # --- reading -----------------------------------------------------------------------

    def arrow_type(self, column: Sequence[Any]) -> pa.DataType | None:
        code, precision, scale = column[1], column[4], column[5]
        name = _FIELD_TYPES[code] if isinstance(code, int) and 0 <= code < len(_FIELD_TYPES) else None
        if name == "FIXED":
            if not scale:
                return pa.int64()
            if precision and 0 < precision <= 38:
                return pa.decimal128(precision, scale)
            return None
        return _ARROW_TYPES.get(name or "")

    def read_arrow(self, conn: Any, sql: str, batch_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The connector's Arrow result chunks (downloaded one at a time), each cast to one
        schema: chunk types vary with the data (int8 here, int64 there). A look-alike without
        the Arrow fetch (fakesnow), or a JSON-format result, is read as rows."""
        cursor = conn.cursor()
        if not hasattr(cursor, "fetch_arrow_batches"):
            cursor.execute(sql)
            return self.batches_from_rows(cursor, batch_rows)
        if hasattr(conn, "_arrow_number_to_decimal"):  # NUMBER(p, s) as decimal128, not float64
            conn._arrow_number_to_decimal = True
        cursor.execute(sql)
        try:
            try:
                tables = cursor.fetch_arrow_batches(force_microsecond_precision=True)
            except TypeError:  # a connector before force_microsecond_precision
                tables = cursor.fetch_arrow_batches()
        except Exception as error:
            if type(error).__name__ not in ("NotSupportedError", "MissingDependencyError"):
                raise
            return self.batches_from_rows(cursor, batch_rows)
        return self.conform(list(cursor.description or []), iter(tables), batch_rows)

    def conform(
        self, description: list[Any], tables: Iterator[pa.Table], batch_rows: int
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """One schema for a stream of Arrow chunks: the description's types where known, the
        first chunk's otherwise; every chunk is cast to it."""
        known = [self.arrow_type(d) for d in description]
        first = next(tables, None)
        if first is None:
            return pa.schema([(d[0], kind or pa.null()) for d, kind in zip(description, known, strict=True)]), iter(())
        schema = pa.schema(
            [
                pa.field(d[0], kind or field.type)
                for d, kind, field in zip(description, known, first.schema, strict=True)
            ]
        )

        def batches() -> Iterator[pa.RecordBatch]:
            for table in chain([first], tables):
                table = table.rename_columns(schema.names)
                if table.schema != schema:
                    table = table.cast(schema)
                yield from table.to_batches(max_chunksize=batch_rows)

        return schema, batches()

    # --- publishing --------------------------------------------------------------------

    def stage_statements(self, target: str, stage: str) -> list[str]:
        """The session's temporary stage and staging table, in the target's schema: a
        temporary table may not name its schema on every Snowflake look-alike, so the session
        is moved there first."""
        table = self.table(target)
        statements = []
        if table.db:
            parts = [p for p in (table.args.get("catalog"), table.args.get("db")) if p is not None]
            statements.append(f"USE SCHEMA {'.'.join(self.render(p) for p in parts)}")
        statements.append(f"CREATE OR REPLACE TEMPORARY STAGE {stage}")
        statements.append(f"CREATE OR REPLACE TEMPORARY TABLE {self._stage_sql()} LIKE {self.render(table)}")
        return statements

    @staticmethod
    def put_sql(path: str, stage: str) -> str:
        """PUT a local file into the stage as it is (Parquet is compressed already)."""
        if not _SAFE_PATH.fullmatch(path):
            raise ValueError(f"not a plain absolute path for PUT: {path!r}")
        return f"PUT 'file://{path}' @{stage} AUTO_COMPRESS = FALSE OVERWRITE = TRUE"

    def copy_sql(self, schema: pa.Schema, stage: str) -> str:
        """COPY the staged Parquet into the staging table, each column by its Parquet name and
        cast to its type (a transformation, so the table's columns need not match by name)."""
        columns = ", ".join(self.render(self.column(f.name).this) for f in schema)
        values = ", ".join(
            f"$1:{self.render(exp.to_identifier(f.name, quoted=True))}::{self.render(self.column_type(f.type))}"
            for f in schema
        )
        return (
            f"COPY INTO {self._stage_sql()} ({columns}) FROM (SELECT {values} FROM @{stage}) "  # noqa: S608 - quoted
            "FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE) FORCE = TRUE PURGE = TRUE"
        )

    def _stage_sql(self) -> str:
        return self.render(exp.to_identifier(STAGE_TABLE, quoted=True))

    def bulk_load(self, files, fs, schema, target, mode, keys=()) -> None:
        """Parquet files PUT into a temporary stage (object-store files downloaded one at a
        time, each deleted once uploaded), one ``COPY INTO`` a temporary table, then the
        target's change as the only transaction (DDL, PUT and COPY commit on their own)."""
        self.check_load(mode, keys, schema)
        fs = fs or pafs.LocalFileSystem()
        stage = f"AQ_PUBLISH_{uuid.uuid4().hex[:16].upper()}"
        staged = exp.Table(this=exp.to_identifier(STAGE_TABLE, quoted=True))
        with tempfile.TemporaryDirectory(prefix="aq-publish-") as scratch, self.writing(begin=False) as session:
            session.run(self.ddl_statements(target, schema))
            session.run(self.stage_statements(target, stage))
            for path in _local_files(files, fs, scratch):
                session.execute(self.put_sql(path, stage))
            session.execute(self.copy_sql(schema, stage))
            session.begin()
            session.run(self.load_statements(target, staged, schema.names, mode, keys))


def _local_files(files: list[str], fs: pafs.FileSystem, scratch: str) -> Iterator[str]:
    """The files as local paths PUT can read: as they are on a local disk, otherwise (or when
    names would clash in the stage) copied into ``scratch`` one at a time, in a streamed copy,
    and deleted after their PUT."""
    paths = [os.path.abspath(f) for f in files] if isinstance(fs, pafs.LocalFileSystem) else None
    if (
        paths
        and all(_SAFE_PATH.fullmatch(p) for p in paths)
        and len({posixpath.basename(p) for p in paths}) == len(paths)
    ):
        yield from paths
        return
    local_fs = pafs.LocalFileSystem()
    for index, path in enumerate(files):
        local = os.path.join(scratch, f"part-{index:05d}.parquet")
        pafs.copy_files(path, local, source_filesystem=fs, destination_filesystem=local_fs)
        try:
            yield local
        finally:
            os.remove(local)
