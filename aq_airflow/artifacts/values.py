"""Step inputs as the values a function asks for, and return values as stored outputs.

Tables travel as Parquet and arrive as Arrow tables unless the parameter's annotation asks for a
pandas or polars frame, a lazy pyarrow dataset, or an iterator of record batches. Other Python
objects (a trained model) travel as pickle with their type recorded.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from aq_airflow.artifacts.store import (
    DIGEST,
    ROW_GROUP_ROWS,
    Location,
    iter_row_groups,
    open_dataset,
    refused,
    write_batches,
)


def _wants(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    text = text.lower()
    if "dataframe" in text and "polars" in text:
        return "polars"
    if "dataframe" in text or "pandas" in text:
        return "pandas"
    if "dataset" in text:
        return "dataset"
    if "recordbatchreader" in text:
        return "reader"
    if "recordbatch" in text or "iterator" in text or "iterable" in text:
        return "batches"
    return "table"


def read_input(location: Location, producer: str, annotation: Any) -> Any:
    """A committed output as the parameter's annotation asks for it, once its files agree with
    its manifest (:meth:`Location.read_output`: digests, a table's rows and schema; an object's
    pickle is read once and those bytes hashed, :meth:`Location.read_object`)."""
    manifest = location.read_manifest(producer)
    kind = manifest["kind"]
    if kind == "object":
        # unpickling runs code the pickle names: the store is trusted (README, "The artifact store
        # is a trust boundary"); the digest only proves these are the bytes its step wrote
        data = location.read_object(manifest, producer)
        try:
            return pickle.loads(data)  # noqa: S301 - written by this pipeline's own step
        except (pickle.UnpicklingError, EOFError) as error:  # a pickle cut short (a manifest without digests)
            name = manifest["files"][0]
            raise refused(location.uri, producer, f"file {name} is not a whole pickle ({error})") from None
    location.verified(manifest, producer)
    if kind == "none":
        return None
    if kind != "table":
        return location.uri  # a command step's files: the folder they are in
    dataset = open_dataset(location, manifest)
    wants = _wants(annotation)
    if wants == "dataset":
        return dataset
    if wants in ("batches", "reader"):
        batches = iter_row_groups(location, manifest)
        return pa.RecordBatchReader.from_batches(dataset.schema, batches) if wants == "reader" else batches
    table = dataset.to_table()
    if wants == "pandas":
        return _decimals_as_numbers(table).to_pandas()
    if wants == "polars":
        import polars

        return polars.from_arrow(table)
    return table


def _decimals_as_numbers(table: pa.Table) -> pa.Table:
    """DECIMAL columns as pandas numbers, as DuckDB's ``.df()`` and Snowflake's
    ``fetch_pandas_all`` give them: scale 0 (Snowflake's NUMBER(38,0) integers) as int64 where
    the values fit, the others as float64. pandas would otherwise hold ``decimal.Decimal``
    objects, on which ``price * 1.19`` raises. Arrow tables keep exact decimals."""
    for index, field in enumerate(table.schema):
        if not pa.types.is_decimal(field.type):
            continue
        column = table.column(index)
        try:
            # through text, which is correctly rounded (19.99 stays 19.99; Arrow's direct
            # decimal -> double cast gives 19.990000000000002, unlike DuckDB and Snowflake)
            converted = (
                column.cast(pa.int64()) if field.type.scale == 0 else column.cast(pa.string()).cast(pa.float64())
            )
        except pa.ArrowInvalid:  # an integer beyond int64
            converted = column.cast(pa.float64())
        table = table.set_column(index, field.with_type(converted.type), converted)
    return table


def _batches_of(value: Any) -> tuple[pa.Schema, Iterable] | None:
    """(schema, batches) when ``value`` is tabular, else None."""
    module = type(value).__module__.split(".")[0]
    if isinstance(value, pa.Table):
        return value.schema, value.to_batches(max_chunksize=ROW_GROUP_ROWS)
    if isinstance(value, pa.RecordBatch):
        return value.schema, [value]
    if isinstance(value, pa.RecordBatchReader):
        return value.schema, value
    if module == "pandas" and type(value).__name__ == "DataFrame":
        table = pa.Table.from_pandas(value, preserve_index=False)
        return table.schema, table.to_batches(max_chunksize=ROW_GROUP_ROWS)
    if module == "polars" and type(value).__name__ == "DataFrame":
        table = value.to_arrow()
        return table.schema, table.to_batches(max_chunksize=ROW_GROUP_ROWS)
    if module == "pyarrow" and hasattr(value, "to_batches") and hasattr(value, "schema"):
        return value.schema, value.to_batches(batch_size=ROW_GROUP_ROWS)
    if isinstance(value, Iterator):
        first = next(value, None)
        if isinstance(first, pa.RecordBatch | pa.Table):

            def chain() -> Iterator:
                yield first
                yield from value

            return first.schema, chain()
        raise TypeError(
            "a step returned an iterator whose items are "
            f"{type(first).__name__}, not pyarrow RecordBatch or Table: yield record batches to stream a table"
        )
    return None


def write_output(location: Location, attempt: str, value: Any) -> dict:
    """Store a return value; returns the manifest fields describing it."""
    if value is None:
        return {"kind": "none", "files": [], "rows": None, "bytes": 0}
    tabular = _batches_of(value)
    if tabular is not None:
        schema, batches = tabular
        return {**write_batches(location, attempt, schema, batches), "python_type": _type_name(value)}
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise TypeError(
            f"the step returned a {_type_name(value)}, which is neither a table (pyarrow, pandas, polars) "
            f"nor a picklable object: {error}"
        ) from None
    name = f"object-{attempt}.pkl"
    with location.fs.open_output_stream(location.join(name)) as handle:
        handle.write(data)
    digest = f"{DIGEST}:{hashlib.sha256(data).hexdigest()}"
    return {"kind": "object", "files": [name], "rows": None, "bytes": len(data), "python_type": _type_name(value),
            "digests": {name: digest}}  # fmt: skip


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"
