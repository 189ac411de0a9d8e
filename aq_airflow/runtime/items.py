"""A mapped (``foreach:``) step's items: their list beside the items' outputs, their labels in
the grid, and the fan-in that reads every item's output.

A mapped step's folder ``{dag_id}/{run_id}/{step}/`` holds ``_items.json`` (written by the
step's items task before any item runs: ``{"count": n, "items": [...]}``), one output folder per
item, ``0/``, ``1/``, ... in item order, and ``_items/{index}.json`` for each item too large to
travel in the environment (``runtime.item_refs``). No Airflow here: the runtime reads them in
the step's process.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from aq_airflow.runtime.artifacts import Location, MissingArtifact, filesystem
from aq_airflow.runtime.item_refs import ITEMS_FOLDER
from aq_airflow.runtime.labels import LABEL_CHARS, item_label  # noqa: F401  (the grid label, without pyarrow)

ITEMS_FILE = "_items.json"
_COUNT = re.compile(rb'\{"count": (\d+), "items": ')  # how write_items begins (keys sorted)


def write_items(folder: Location, items: list) -> None:
    """Record the items of this run (replacing an earlier attempt's). The count comes first, so
    a reader that needs only it (:func:`count_items`) reads a few bytes, not the list."""
    folder.fs.create_dir(folder.path, recursive=True)
    with folder.fs.open_output_stream(folder.join(ITEMS_FILE)) as handle:
        handle.write(json.dumps({"count": len(items), "items": items}, sort_keys=True).encode())


def write_item_files(folder: Location, texts: dict[int, str]) -> None:
    """The by-reference items' files: ``{index: the item's JSON}`` into ``_items/{index}.json``
    (an earlier attempt's files go first: this run's items are these)."""
    try:
        folder.fs.delete_dir_contents(folder.join(ITEMS_FOLDER), missing_dir_ok=True)
    except (FileNotFoundError, OSError):
        pass
    if not texts:
        return
    folder.fs.create_dir(folder.join(ITEMS_FOLDER), recursive=True)
    for index, text in texts.items():
        with folder.fs.open_output_stream(folder.join(f"{ITEMS_FOLDER}/{index}.json")) as handle:
            handle.write(text.encode())


def read_item(uri: str, step: str) -> Any:
    """A by-reference item (``AQ_ITEM_FROM``): the JSON its items task wrote at ``uri``."""
    try:
        fs, path = filesystem(uri)
        with fs.open_input_stream(path) as handle:
            return json.loads(handle.read())
    except (FileNotFoundError, OSError) as error:
        raise MissingArtifact(
            f"no item of step `{step}` at {uri}: its items task wrote none there in this DAG run "
            f"({type(error).__name__}: {error})"
        ) from None
    except ValueError as error:
        raise MissingArtifact(f"the item of step `{step}` at {uri} is not JSON: {error}") from None


def count_items(folder: Location, step: str) -> int:
    """How many items ``_items.json`` lists, from its first bytes (the whole list when an older
    writer put no count first)."""
    try:
        with folder.fs.open_input_stream(folder.join(ITEMS_FILE)) as handle:
            head = handle.read(64)
    except (FileNotFoundError, OSError):
        head = b""
    match = _COUNT.match(head)
    return int(match.group(1)) if match else len(read_items(folder, step))


def read_items(folder: Location, step: str) -> list:
    try:
        with folder.fs.open_input_stream(folder.join(ITEMS_FILE)) as handle:
            return json.loads(handle.read())["items"]
    except (FileNotFoundError, OSError) as error:
        raise MissingArtifact(
            f"no item list of step `{step}` at {folder.uri}: its items task has not run in this DAG run "
            f"({type(error).__name__})"
        ) from None


def item_column(items: list) -> pa.Array:
    """The fan-in's ``item`` column: the items themselves when they are all strings, all
    integers, all numbers or all booleans; otherwise each item as JSON text."""
    kinds = {type(i) for i in items}
    if len(kinds) == 1 and kinds <= {str, int, float, bool}:
        return pa.array(items)
    if kinds <= {int, float}:
        return pa.array([float(i) for i in items])
    return pa.array([json.dumps(i, sort_keys=True, default=str) for i in items], pa.string())


def _wants_list(annotation: Any) -> bool:
    text = (annotation if isinstance(annotation, str) else repr(annotation)).lower().replace("typing.", "")
    return text.startswith(("list", "<class 'list'>", "tuple", "<class 'tuple'>", "sequence", "collections.abc.s"))


def gather(folder: Location, producer: str, annotation: Any) -> Any:
    """Every item's output of the mapped ``producer``, in item order (a fan-in).

    Tables become one table with a first column ``item`` (see :func:`item_column`; outputs
    with an ``item`` column of their own keep theirs), as an
    Arrow table or the pandas / polars frame the annotation asks for; anything else, or a
    parameter annotated ``list[...]``, gets the list of the items' outputs (tables each as the
    annotation's element type asks, Arrow by default)."""
    from aq_airflow.runtime.values import read_input

    items = read_items(folder, producer)
    locations = [folder.child(str(index)) for index in range(len(items))]
    manifests = [location.read_manifest(producer) for location in locations]
    as_list = _wants_list(annotation)
    if as_list or not manifests or any(m["kind"] != "table" for m in manifests):
        element = getattr(annotation, "__args__", (None,))[0] if as_list else None
        return [read_input(location, producer, element) for location in locations]
    column, tables = item_column(items), []
    for index, location in enumerate(locations):
        table = read_input(location, producer, None)
        if "item" not in table.column_names:  # outputs that carry their own `item` column keep it
            table = table.add_column(0, "item", pa.repeat(column[index], table.num_rows))
        tables.append(table)
    combined = pa.concat_tables(tables, promote_options="permissive")
    return read_table_as(combined, annotation)


def read_table_as(table: pa.Table, annotation: Any) -> Any:
    from aq_airflow.runtime.values import _decimals_as_numbers, _wants

    wants = _wants(annotation)
    if wants == "pandas":
        return _decimals_as_numbers(table).to_pandas()
    if wants == "polars":
        import polars

        return polars.from_arrow(table)
    return table
