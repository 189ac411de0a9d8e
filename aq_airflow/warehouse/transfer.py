"""Data between the warehouse and the artifact store, in both directions, through the warehouse
adapter's Arrow and bulk paths.

- :func:`export_query` (SQL steps): a query's result streamed from the warehouse into the store as
  Arrow record batches and committed as the step's table output.
- :func:`publish`: a step's Parquet output into a warehouse table with the warehouse's bulk path,
  in one transaction, so `replace` and `merge` never show readers a half-written or empty table.
  DuckDB inserts straight from ``read_parquet``; PostgreSQL COPYs CSV a row group at a time into
  a temporary staging table; Snowflake PUTs the Parquet files into a temporary stage and COPYs
  them into a temporary table. The table is created from the Arrow schema when missing.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from aq_airflow.artifacts.provenance import PROVENANCE, Provenance
from aq_airflow.artifacts.store import ROW_GROUP_ROWS, Location, write_batches
from aq_airflow.warehouse import Warehouse


def export_query(hook, sql: str, output: Location, provenance: Callable[[], Provenance] | None = None) -> dict:
    """Run ``sql`` in the warehouse of ``hook`` (a DbApiHook or an adapter) and commit its
    result as the step's table output; ``provenance`` makes its record once the result is
    written (so its finish time is the export's)."""
    warehouse = Warehouse.of(hook)
    with warehouse.reading() as session:  # read-only where the warehouse has it: the SQL is the user's
        schema, batches = session.arrow(sql, batch_rows=ROW_GROUP_ROWS)
        attempt = output.begin()
        manifest = write_batches(output, attempt, schema, batches)
    manifest = {**manifest, "attempt": attempt, "uri": output.uri, "dialect": warehouse.dialect}
    if provenance is not None:
        manifest[PROVENANCE] = provenance().to_json()
    return output.commit(manifest)


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
