"""Publish: a step's Parquet output into a warehouse table with the warehouse's bulk path, in
one transaction, so `replace` and `merge` never show readers a half-written or empty table.

The bulk path is the warehouse adapter's (``Warehouse.bulk_load``): DuckDB inserts straight
from ``read_parquet``; PostgreSQL COPYs CSV a row group at a time into a temporary staging
table; Snowflake PUTs the Parquet files into a temporary stage and COPYs them into a temporary
table. The table is created from the Arrow schema when missing.
"""

from __future__ import annotations

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from aq_airflow.warehouse import Warehouse


def publish(
    warehouse, files: list[str], target: str, mode: str, keys: list[str], fs: pafs.FileSystem | None = None
) -> int:
    """Load ``files`` (one table's Parquet, on ``fs``: a local disk by default, or the artifact
    store's S3, GCS or Azure filesystem) into ``target``; returns the rows loaded."""
    fs = fs or pafs.LocalFileSystem()
    schema = pq.read_schema(files[0], filesystem=fs)
    rows = 0
    for path in files:
        with fs.open_input_file(path) as handle:
            rows += pq.ParquetFile(handle).metadata.num_rows
    Warehouse.of(warehouse).bulk_load(files, fs, schema, target, mode, keys)
    return rows
