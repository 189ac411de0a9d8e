"""Publish: a step's Parquet output into a warehouse table with the warehouse's bulk path, in
one transaction, so `replace` and `merge` never show readers a half-written or empty table.

DuckDB inserts straight from ``read_parquet``; PostgreSQL COPYs CSV (written by pyarrow, a row
group at a time) into a temporary staging table; Snowflake loads a staging table with
``write_pandas``. The table is created from the Arrow schema when missing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from sqlglot import exp

from aq_airflow.quality.sql import column, parquet_relation
from aq_airflow.quality.sql import table as table_name
from aq_airflow.runners.sql import connect, dialect_of, transaction


def _sql_type(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_floating(kind):
        return "DOUBLE"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_decimal(kind):
        return f"DECIMAL({kind.precision}, {kind.scale})"
    if pa.types.is_date(kind):
        return "DATE"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ" if kind.tz else "TIMESTAMP"
    return "TEXT"


def create_table_sql(target: str, schema: pa.Schema, dialect: str | None) -> str:
    columns = [
        exp.ColumnDef(this=column(f.name, dialect).this, kind=exp.DataType.build(_sql_type(f.type), dialect="duckdb"))
        for f in schema
    ]
    create = exp.Create(this=exp.Schema(this=table_name(target, dialect), expressions=columns), kind="TABLE",
                        exists=True)  # fmt: skip
    return create.sql(dialect=dialect)


def _schema_sql(target: str, dialect: str | None) -> str | None:
    parts = target.split(".")
    if len(parts) < 2:
        return None
    return exp.Create(this=table_name(".".join(parts[:-1]), dialect), kind="SCHEMA", exists=True).sql(dialect=dialect)


def _load_statements(target: str, staged: exp.Expression, names: list[str], mode: str, keys: list[str],
                     dialect: str | None) -> list[str]:  # fmt: skip
    """The statements that move staged rows into the target for a mode."""
    table = table_name(target, dialect)
    cols = [column(n, dialect) for n in names]
    statements = []
    if mode == "replace":
        statements.append(exp.delete(table.copy()).sql(dialect=dialect))
    elif mode == "merge":
        key_cols = [column(k, dialect) for k in keys]
        staged_keys = exp.select(*[c.copy() for c in key_cols]).from_(staged.copy())
        if len(key_cols) > 1:  # (a, b) IN (SELECT a, b ...): the subquery needs its own parentheses
            matched = exp.In(this=exp.Tuple(expressions=[c.copy() for c in key_cols]), query=staged_keys.subquery())
        else:
            matched = key_cols[0].copy().isin(query=staged_keys)
        statements.append(exp.delete(table.copy(), where=matched).sql(dialect=dialect))
    insert = exp.insert(exp.select(*[c.copy() for c in cols]).from_(staged.copy()),
                        exp.Schema(this=table.copy(), expressions=[c.this.copy() for c in cols]))  # fmt: skip
    statements.append(insert.sql(dialect=dialect))
    return statements


def publish(hook, files: list[str], target: str, mode: str, keys: list[str], fs: pafs.FileSystem | None = None) -> int:
    """Load ``files`` (one table's Parquet, on ``fs``: a local disk by default, or the artifact
    store's S3, GCS or Azure filesystem) into ``target``; returns the rows loaded."""
    fs = fs or pafs.LocalFileSystem()
    dialect = dialect_of(hook)
    schema = pq.read_schema(files[0], filesystem=fs)
    rows = sum(pq.ParquetFile(fs.open_input_file(f)).metadata.num_rows for f in files)
    loader = {"duckdb": _duckdb, "postgres": _postgres, "snowflake": _snowflake}.get(dialect or "")
    if loader is None:
        raise NotImplementedError(f"publish to a `{dialect}` warehouse is not built yet")
    loader(hook, files, fs, schema, target, mode, keys)
    return rows


def _run(cursor, statements: list[str]) -> None:
    for statement in statements:
        cursor.execute(statement)


def _duckdb(hook, files, fs, schema, target, mode, keys) -> None:
    conn = connect(hook)
    if isinstance(fs, pafs.LocalFileSystem):
        source = parquet_relation(files)
    else:  # an object store: DuckDB scans the pyarrow dataset (no extension downloads)
        import pyarrow.dataset as ds  # imports pandas: only where an object store needs it

        conn.register("aq_publish_source", ds.dataset(files, filesystem=fs, format="parquet"))
        source = exp.to_table("aq_publish_source")
    with transaction(conn, "duckdb") as cursor:
        _run(cursor, [s for s in (_schema_sql(target, "duckdb"), create_table_sql(target, schema, "duckdb")) if s])
        _run(cursor, _load_statements(target, source, schema.names, mode, keys, "duckdb"))


def _postgres(hook, files, fs, schema, target, mode, keys) -> None:
    stage = exp.to_identifier("aq_publish_stage", quoted=True).sql(dialect="postgres")
    names = ", ".join(column(n, "postgres").sql(dialect="postgres") for n in schema.names)
    with transaction(connect(hook), "postgres") as cursor:
        _run(cursor, [s for s in (_schema_sql(target, "postgres"), create_table_sql(target, schema, "postgres")) if s])
        like = table_name(target, "postgres").sql(dialect="postgres")
        cursor.execute(f"CREATE TEMPORARY TABLE {stage} (LIKE {like}) ON COMMIT DROP")
        copy = f"COPY {stage} ({names}) FROM STDIN WITH (FORMAT csv)"
        for group in _row_groups(files, fs, schema):  # a row group of CSV at a time
            buffer = io.BytesIO()
            pacsv.write_csv(group, buffer, pacsv.WriteOptions(include_header=False))
            _copy(cursor, copy, buffer)
        staged = exp.Table(this=exp.to_identifier("aq_publish_stage", quoted=True))
        _run(cursor, _load_statements(target, staged, schema.names, mode, keys, "postgres"))


def _copy(cursor, statement: str, buffer: io.BytesIO) -> None:
    """COPY ... FROM STDIN with psycopg2 (``copy_expert``) or psycopg 3 (``copy``)."""
    if hasattr(cursor, "copy_expert"):
        buffer.seek(0)
        cursor.copy_expert(statement, buffer)
    else:
        with cursor.copy(statement) as copy:
            copy.write(buffer.getvalue())


def _row_groups(files: list[str], fs: pafs.FileSystem, schema: pa.Schema) -> Iterator[pa.Table]:
    """The output's row groups one at a time (an empty table for an empty output)."""
    empty = True
    for path in files:
        parquet = pq.ParquetFile(fs.open_input_file(path))
        for index in range(parquet.num_row_groups):
            empty = False
            yield parquet.read_row_group(index)
    if empty:
        yield schema.empty_table()


def _snowflake(hook, files, fs, schema, target, mode, keys) -> None:
    from snowflake.connector.pandas_tools import write_pandas

    conn = connect(hook)
    stage = "AQ_PUBLISH_STAGE"
    parts = table_name(target, "snowflake")
    with transaction(conn, "snowflake", begin=False) as cursor:
        _run(
            cursor, [s for s in (_schema_sql(target, "snowflake"), create_table_sql(target, schema, "snowflake")) if s]
        )
        # the staging table is loaded first, a row group at a time (memory holds one, never the
        # whole output); only the target's change is the transaction
        for index, batch in enumerate(_row_groups(files, fs, schema)):
            frame = batch.to_pandas()
            frame.columns = [c.upper() for c in frame.columns]
            write_pandas(conn, frame, stage, database=parts.catalog or None, schema=parts.db or None,
                         auto_create_table=index == 0, table_type="temporary", overwrite=index == 0)  # fmt: skip
        cursor.execute("BEGIN TRANSACTION")
        staged = exp.Table(this=exp.to_identifier(stage, quoted=True),
                           db=exp.to_identifier(parts.db, quoted=True) if parts.db else None)  # fmt: skip
        _run(cursor, _load_statements(target, staged, schema.names, mode, keys, "snowflake"))
