"""A mapped (``foreach:``) step's items: their list beside the items' outputs, their labels in
the grid, and the fan-in that reads every item's output.

A mapped step's folder ``{dag_id}/{run_id}/{step}/`` holds ``_items.json`` (written by the
step's items task before any item runs: ``{"count": n, "items": [...]}``), one output folder per
item, ``0/``, ``1/``, ... in item order, and ``_items/{index}.json`` for each item too large to
travel in the environment (``artifacts.item_refs``). No Airflow here: the runtime reads them in
the step's process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from aq_airflow.artifacts.item_refs import ITEMS_FOLDER, MAX_ITEMS_BYTES
from aq_airflow.artifacts.labels import LABEL_CHARS, item_label  # noqa: F401  (the grid label, without pyarrow)
from aq_airflow.artifacts.store import BadOutput, Location, MissingArtifact, filesystem

ITEMS_FILE = "_items.json"
# the largest `_items.json` an items task writes: its list within MAX_ITEMS_BYTES, and the count
MAX_LIST_BYTES = MAX_ITEMS_BYTES + 64 * 1024


def write_items(folder: Location, items: list) -> None:
    """Record the items of this run (replacing an earlier attempt's), with their count, which
    every reader holds the list to (:class:`ItemList`)."""
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


@dataclass(frozen=True)
class ItemList:
    """A mapped step's ``_items.json``, read back: the one reader of it (the runtime's fan-ins,
    the checks and metrics tasks' item count, the client, ``run --from`` and ``aq-airflow gc``).

    It holds what :func:`write_items` writes, or it is not read: a JSON object whose ``items``
    is a list and whose ``count``, when there (an older writer put none), is that list's length;
    nothing else in it, no NaN or infinity (the items task refuses those), at most
    :data:`MAX_LIST_BYTES`. Anything else is :class:`BadOutput` naming the step and the file:
    a list of one number, ``{"items": "abc"}`` (three "items"), text that is not JSON, or a
    count that disagrees with the list would otherwise become a TypeError deep in a fan-in, a
    wrong number of item folders, or results of real items deleted as stale."""

    items: list

    @property
    def count(self) -> int:
        return len(self.items)

    @classmethod
    def parse(cls, data: bytes, uri: str, step: str) -> ItemList:
        """``_items.json``'s bytes (``uri``: where they were read, named in the error)."""
        if len(data) > MAX_LIST_BYTES:
            raise _bad_list(uri, step, f"it is larger than {MAX_LIST_BYTES >> 20} MiB, more than an items task writes")
        try:
            value = json.loads(data, parse_constant=_no_constant)
        except _NonFinite:
            raise _bad_list(uri, step, "it holds NaN or Infinity, which an items task never writes") from None
        except (ValueError, RecursionError) as error:  # not JSON, not UTF-8, a number past Python's digits, too deep
            reason = getattr(error, "msg", None) or type(error).__name__
            raise _bad_list(uri, step, f"it is not valid JSON ({reason})") from None
        if not isinstance(value, dict):
            raise _bad_list(uri, step, f"it is {_json_kind(value)}, not an object with `count` and `items`")
        if "items" not in value:
            raise _bad_list(uri, step, "it has no `items`")
        unknown = sorted(set(value) - {"count", "items"})
        if unknown:
            raise _bad_list(
                uri, step, f"it holds {', '.join(f'`{k}`' for k in unknown[:5])} besides `count` and `items`"
            )
        items = value["items"]
        if not isinstance(items, list):
            raise _bad_list(uri, step, f"its `items` is {_json_kind(items)}, not a list")
        count = value.get("count", len(items))
        if not isinstance(count, int) or isinstance(count, bool) or count != len(items):
            shown = json.dumps(count)[:40] if not isinstance(count, int) or isinstance(count, bool) else str(count)
            raise _bad_list(uri, step, f"its `count` says {shown}, its `items` hold {len(items)}")
        return cls(items)

    @classmethod
    def read(cls, folder: Location, step: str) -> ItemList:
        """The item list in a mapped step's folder: :class:`MissingArtifact` when there is none
        (its items task has not run), :class:`BadOutput` when it is not one (:meth:`parse`)."""
        try:
            with folder.fs.open_input_stream(folder.join(ITEMS_FILE)) as handle:
                data = handle.read(MAX_LIST_BYTES + 1)
        except (FileNotFoundError, OSError) as error:
            raise MissingArtifact(
                f"no item list of step `{step}` at {folder.uri}: its items task has not run in this DAG run "
                f"({type(error).__name__})"
            ) from None
        return cls.parse(data, f"{folder.uri.rstrip('/')}/{ITEMS_FILE}", step)


class _NonFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NonFinite(name)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"


def _bad_list(uri: str, step: str, why: str) -> BadOutput:
    return BadOutput(
        f"the item list of step `{step}` at {uri}: {why}; it is not read. Run step `{step}` again (its items task "
        "writes the list)"
    )


def count_items(folder: Location, step: str) -> int:
    """How many items the step's ``_items.json`` lists (:class:`ItemList`: the whole list is read
    and held to its ``count``, which alone could say anything)."""
    return ItemList.read(folder, step).count


def read_items(folder: Location, step: str) -> list:
    """The items of a mapped step, in map index order (:class:`ItemList`)."""
    return ItemList.read(folder, step).items


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
    from aq_airflow.artifacts.values import read_input

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
    from aq_airflow.artifacts.values import _decimals_as_numbers, _wants

    wants = _wants(annotation)
    if wants == "pandas":
        return _decimals_as_numbers(table).to_pandas()
    if wants == "polars":
        import polars

        return polars.from_arrow(table)
    return table
