"""``aq-airflow results``: the check and metric history of a pipeline, from the warehouse.

``aq-airflow results SPEC`` reads the spec's pipeline id, warehouse connection and
``results_schema``; ``aq-airflow results PIPELINE`` takes the dag_id and the flags. ``aq-airflow
run`` prints a run's results through the same code (:func:`report`, over ``ResultsStore.read``).

stdout carries the results only (a table, a check's failing rows under its row, or one JSON
document with ``--format json``); logs and messages go to stderr. A `foreach:` item is named as
everywhere else, ``evaluate[2:us]`` (``runtime.labels.item_name``); numbers as users write them
(:func:`number`). Exit codes: 0 results shown; 1 nothing recorded yet (no results tables,
or no rows for the pipeline or step); 2 the warehouse could not be reached or read, or the
arguments name none (a missing DuckDB file, an invalid spec, a connection Airflow cannot make).
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from aq_airflow.cli.connection import WarehouseError, also_mask, connection, display, masked_output
from aq_airflow.quality.numbers import number
from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.results.history import ResultsHistory, Sample, is_missing_table
from aq_airflow.runtime.labels import item_name
from aq_airflow.warehouse import is_infrastructure_error

SHOWN, NOTHING_RECORDED, CANNOT_READ = 0, 1, 2
# where `aq-airflow run` keeps its DuckDB warehouse (under its default --workdir)
LOCAL_WAREHOUSE = os.path.join(".aq-run", "warehouse.duckdb")
CLI_CONN_ID = "aq_results_cli"  # the connection a --warehouse value is read through
TABLES = ((CHECKS_TABLE, "checks"), (METRICS_TABLE, "metrics"))
# the table format's narrowest columns (wider when a value is longer: nothing is ever cut)
_WIDTHS = {"logical_date": 19, "run_id": 24, "step": 12, "name": 22, "kind": 15, "outcome": 7, "severity": 8,
           "value": 10, "failing_rows": 7}  # fmt: skip
_HEADERS = {"failing_rows": "failing"}
_MESSAGE_WIDTH = 40  # the narrowest the wrapped message column gets
# a check's failing rows under its row: a few rows and columns, long values cut (JSON has them all)
SAMPLE_SHOWN_ROWS, SAMPLE_SHOWN_COLUMNS, SAMPLE_VALUE_CHARS = 5, 8, 24
Sensitive = dict[str, Sequence[str]]  # step -> columns never shown in a failing-row sample


class CannotRead(Exception):
    """The warehouse could not be reached, or its results tables not read (not: nothing yet)."""


def store_for(conn_id: str, schema: str | None) -> ResultsStore:
    """The results tables of an Airflow connection's warehouse; CannotRead when Airflow cannot
    make its hook (an undefined connection, an unknown type)."""
    from airflow.sdk import BaseHook

    try:
        return ResultsStore.of(BaseHook.get_connection(conn_id).get_hook(), schema)
    except Exception as error:
        raise CannotRead(f"cannot connect to the warehouse: {type(error).__name__}: {error}") from None


_missing_table = is_missing_table  # where it was defined before the read model


def read_results(
    store: ResultsStore, dag_id: str, step: str | None, last: int, run_id: str | None = None,
    sensitive: Sensitive | None = None,
) -> dict[str, tuple[list[str], list[tuple]] | None]:  # fmt: skip
    """Each results table's newest rows (``ResultsHistory.newest_rows``), None for a table not
    there yet; CannotRead when the warehouse cannot be reached or the tables cannot be read."""
    found: dict[str, tuple[list[str], list[tuple]] | None] = {}
    history = ResultsHistory(store)
    for table, _ in TABLES:
        try:
            found[table] = history.newest_rows(table, dag_id, step, last, run_id, sensitive)
        except Exception as error:
            if is_infrastructure_error(error):
                raise CannotRead(f"cannot connect to the warehouse: {type(error).__name__}: {error}") from None
            if not is_missing_table(error):
                raise CannotRead(f"cannot read the results table {table}: {type(error).__name__}: {error}") from None
            found[table] = None
    return found


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        return number(value)
    return str(value)


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, every character kept (its own line
    breaks too); long words are split, never dropped."""
    import textwrap

    lines: list[str] = []
    for line in text.splitlines() or [""]:
        if len(line) <= width:
            lines.append(line)
        else:
            lines += textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False) or [""]
    return lines


def _item_steps(columns: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
    """The ``map_index`` and ``item_label`` columns folded into the step, as every place names
    an item (``runtime.labels.item_name``): ``train[2:us]`` for the item ``us`` at map index 2
    of a `foreach:` step (``train[2]`` in rows of earlier versions, which hold no label),
    ``train`` for a step that is not mapped."""
    if "map_index" not in columns:
        return columns, rows
    step, index = columns.index("step"), columns.index("map_index")
    label = columns.index("item_label") if "item_label" in columns else None
    folded = []
    for row in rows:
        cells = list(row)
        cells[step] = item_name(cells[step], cells[index], cells[label] if label is not None else None)
        folded.append(tuple(c for i, c in enumerate(cells) if i not in (index, label)))
    return [c for c in columns if c not in ("map_index", "item_label")], folded


def _short(value: Any) -> str:
    text = "NULL" if value is None else _cell(value)
    text = " ".join(text.split())  # one line per failing row
    return text if len(text) <= SAMPLE_VALUE_CHARS else text[: SAMPLE_VALUE_CHARS - 1] + "…"


def _sample_lines(sample: Sample) -> list[str]:
    """A check's failing rows, compact: at most :data:`SAMPLE_SHOWN_ROWS` rows of
    :data:`SAMPLE_SHOWN_COLUMNS` columns, values cut to :data:`SAMPLE_VALUE_CHARS`."""
    columns, rows = sample.columns[:SAMPLE_SHOWN_COLUMNS], sample.rows[:SAMPLE_SHOWN_ROWS]
    notes = []
    if len(rows) < len(sample.rows) or sample.truncated:
        notes.append(f"first {len(rows)}")
    if len(columns) < len(sample.columns):
        notes.append(f"{len(sample.columns) - len(columns)} more columns")
    if sample.hidden:
        notes.append(f"hidden as sensitive: {', '.join(sample.hidden)}")
    cells = [[_short(value) for value in row[: len(columns)]] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  failing rows (sample" + "".join(f"; {note}" for note in notes) + "):"]
    for row in [list(columns), *cells]:
        lines.append(("    " + "  ".join(text.ljust(w) for text, w in zip(row, widths, strict=True))).rstrip())
    return lines


def _print_table(columns: list[str], rows: list[tuple], out: TextIO) -> None:
    """Columns as wide as their widest value; the message, when last, wrapped to the terminal;
    a check's failing rows under its row."""
    columns, rows = _item_steps(columns, rows)
    samples: list[Sample | None] = [None] * len(rows)
    if "sample" in columns:
        at = columns.index("sample")
        samples = [row[at] for row in rows]
        columns, rows = [c for c in columns if c != "sample"], [row[:at] + row[at + 1 :] for row in rows]
    cells = [[_cell(v) for v in row] for row in rows]
    wrapped = columns[-1] == "message"
    fixed = columns[:-1] if wrapped else columns
    widths = [max(_WIDTHS.get(c, 0), len(_HEADERS.get(c, c)), *(len(r[i]) for r in cells)) for i, c in enumerate(fixed)]
    indent = sum(widths) + 2 * len(widths)
    room = max(_MESSAGE_WIDTH, shutil.get_terminal_size((160, 24)).columns - indent - 1)
    header = "  ".join(_HEADERS.get(c, c).ljust(w) for c, w in zip(fixed, widths, strict=False))
    print((header + ("  message" if wrapped else "")).rstrip(), file=out)
    for row, sample in zip(cells, samples, strict=True):
        line = "  ".join(text.ljust(w) for text, w in zip(row, widths, strict=False))
        if not wrapped:
            print(line.rstrip(), file=out)
        else:
            first, *more = _wrap(row[-1], room)
            print(f"{line}  {first}".rstrip(), file=out)
            for part in more:
                print((" " * indent + part).rstrip(), file=out)
        if sample is not None and sample.columns:
            print("\n".join(_sample_lines(sample)), file=out)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Sample):
        return value.as_dict()
    return value


def print_results(
    store: ResultsStore,
    dag_id: str,
    step: str | None,
    last: int,
    run_id: str | None = None,
    fmt: str = "text",
    out: TextIO | None = None,
    sensitive: Sensitive | None = None,
) -> int:
    """Print the newest results of a pipeline (a step and its `when:` verdict, a run) to ``out``
    (stdout), a check's failing rows with it (the columns in ``sensitive[step]`` dropped);
    messages to stderr. Returns the exit code: SHOWN, NOTHING_RECORDED or CANNOT_READ."""
    out = out or sys.stdout
    try:
        found = read_results(store, dag_id, step, last, run_id, sensitive)
    except CannotRead as error:
        print(error, file=sys.stderr)
        return CANNOT_READ
    shown = sum(len(table[1]) for table in found.values() if table)
    if fmt == "json":
        document: dict[str, Any] = {"pipeline": dag_id, "step": step, "run_id": run_id,
                                    "results_schema": store.schema, "recorded": bool(shown)}  # fmt: skip
        for table, title in TABLES:
            columns, rows = found[table] or ([], [])
            document[title] = [{c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        print(json.dumps(document, indent=2), file=out)
        return SHOWN if shown else NOTHING_RECORDED
    for table, title in TABLES:
        if found[table] is None:
            where = f"schema {store.schema}" if store.schema else "the connection's default schema; --schema?"
            print(f"{title}: nothing recorded yet (no {table} table in {where})", file=out)
            continue
        columns, rows = found[table]
        if not rows:
            scope = f"{dag_id}" + (f", step {step}" if step else "") + (f", run {run_id}" if run_id else "")
            print(f"{title}: nothing recorded yet for {scope}", file=out)
            continue
        print(f"\n{title} ({table}), newest first", file=out)
        _print_table(columns, rows, out)
    return SHOWN if shown else NOTHING_RECORDED


def report(
    conn_id: str,
    schema: str | None,
    dag_id: str,
    step: str | None,
    last: int,
    run_id: str | None = None,
    fmt: str = "text",
    out: TextIO | None = None,
    sensitive: Sensitive | None = None,
) -> int:
    """The results of a pipeline in the warehouse of an Airflow connection: what ``aq-airflow
    results`` prints, and what ``aq-airflow run`` prints after a run."""
    try:
        store = store_for(conn_id, schema)
    except CannotRead as error:
        print(error, file=sys.stderr)
        return CANNOT_READ
    return print_results(store, dag_id, step, last, run_id, fmt, out, sensitive)


def _is_spec(target: str) -> bool:
    return target.endswith((".yaml", ".yml")) or os.path.isfile(target)


def _airflow_has(conn_id: str) -> bool:
    """Whether Airflow here defines the connection (an AIRFLOW_CONN_* variable, a secrets
    backend, the metadata database); its password is masked in the output from then on."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:
        return False
    also_mask(conn.password)
    return True


def sensitive_columns(plan) -> Sensitive:
    """The columns each step of a compiled spec marks ``sensitive`` (lower case): dropped again
    from samples read back, as the quality pages do (rows written before a column was marked)."""
    from aq_airflow.plan.model import TaskRole

    return {t.body.step: t.body.sensitive for t in plan.tasks if t.role == TaskRole.CHECKS and t.body.sensitive}


def _resolve(target: str, warehouse: str | None, schema: str | None) -> tuple[str, str, str | None, str, Sensitive]:
    """(dag_id, connection id, results schema, where, for the reader, sensitive columns by step)
    of a SPEC or PIPELINE argument; a --warehouse value becomes the CLI's own connection."""
    sensitive: Sensitive = {}
    if _is_spec(target):
        from aq_airflow.pipeline_spec import SpecError
        from aq_airflow.plan import compile_spec

        try:
            plan = compile_spec(target)
        except SpecError as error:  # unreadable files too
            raise WarehouseError(str(error)) from None
        dag_id, schema, sensitive = plan.dag_id, schema or plan.results_schema, sensitive_columns(plan)
        if warehouse is None:
            if _airflow_has(plan.warehouse):
                return dag_id, plan.warehouse, schema, f"the connection `{plan.warehouse}`", sensitive
            if not os.path.isfile(LOCAL_WAREHOUSE):
                raise WarehouseError(
                    f"the spec's warehouse connection `{plan.warehouse}` is not defined here, and there is no "
                    f"local run's warehouse at {LOCAL_WAREHOUSE}: pass --warehouse FILE|URI"
                )
            warehouse = LOCAL_WAREHOUSE
    else:
        dag_id = target
        if warehouse is None and not os.path.isfile(LOCAL_WAREHOUSE):
            raise WarehouseError(
                f"no such warehouse file: {LOCAL_WAREHOUSE} (where `aq-airflow run` keeps its warehouse): "
                "pass --warehouse FILE|URI, or the spec file"
            )
        warehouse = warehouse or LOCAL_WAREHOUSE
    os.environ["AIRFLOW_CONN_" + CLI_CONN_ID.upper()] = connection(warehouse, must_exist=True)
    return dag_id, CLI_CONN_ID, schema, display(warehouse) or warehouse, sensitive


def show(target: str, warehouse: str | None, step: str | None, last: int, schema: str | None,
         fmt: str = "text") -> int:  # fmt: skip
    """``aq-airflow results``: print the history of a spec's pipeline or of a dag_id."""
    if "airflow" not in sys.modules:  # Airflow's own INFO lines are no results
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    with masked_output(warehouse):
        out = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):  # whatever else prints (Airflow's logs) goes to stderr
            try:
                dag_id, conn_id, schema, where, sensitive = _resolve(target, warehouse, schema)
            except WarehouseError as error:
                print(error, file=sys.stderr)
                return CANNOT_READ
            print(f"results of {dag_id} from {where}" + (f" (schema {schema})" if schema else ""), file=sys.stderr)
            return report(conn_id, schema, dag_id, step, last, None, fmt, out, sensitive)
