"""``aq-airflow results``: the check and metric history of a pipeline, and its promotion attempts
to serving endpoints (`serve:`), from the warehouse.

``aq-airflow results SPEC`` reads the spec's pipeline id, warehouse connection and
``results_schema``; ``aq-airflow results PIPELINE`` takes the dag_id and the flags. ``aq-airflow
run`` prints a run's results through the same code (:func:`report`, over ``ResultsHistory.newest_rows``).

stdout carries the results only (a table, a check's failing rows under its row, the deployments
when a `serve` task recorded any, or one JSON document with ``--format json``); logs and messages
go to stderr. A `foreach:` item is named as everywhere else, ``evaluate[2:us]``
(``artifacts.labels.item_name``); numbers as users write them
(:func:`number`). Exit codes: 0 results shown; 1 nothing recorded yet (no results tables,
or no rows for the pipeline or step); 2 the warehouse could not be reached or read, or the
arguments name none (a missing DuckDB file, an invalid spec, a connection Airflow cannot make).
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import math
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from aq_airflow.artifacts.labels import item_name
from aq_airflow.cli.connection import WarehouseError, also_mask, connection, display, masked_output
from aq_airflow.cli.terminal import ELLIPSIS, bounded
from aq_airflow.devstack.home import connection_variable
from aq_airflow.quality.numbers import EXACT_BITS, EXACT_DIGITS, number
from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.results.history import Deployment, ResultsHistory, Sample, map_index_of
from aq_airflow.results.rows import DEPLOYMENTS_TABLE
from aq_airflow.warehouse import FailureKind, Warehouse

SHOWN, NOTHING_RECORDED, CANNOT_READ = 0, 1, 2
# where `aq-airflow run` keeps its DuckDB warehouse (under its default --workdir)
LOCAL_WAREHOUSE = os.path.join(".aq-run", "warehouse.duckdb")
CLI_CONN_ID = "aq_results_cli"  # the connection a --warehouse value is read through
TABLES = ((CHECKS_TABLE, "checks"), (METRICS_TABLE, "metrics"))
# the table format's narrowest columns (wider when a value is longer, up to CELL_CHARS)
_WIDTHS = {"logical_date": 19, "run_id": 24, "step": 12, "name": 22, "kind": 15, "outcome": 7, "severity": 8,
           "value": 10, "failing_rows": 7, "created_at": 19, "endpoint": 10, "version": 13, "smoke_ms": 8}  # fmt: skip
_HEADERS = {"failing_rows": "failing", "created_at": "time", "smoke_ms": "smoke ms"}
# a promotion attempt's columns in the text table (its reason last, wrapped as a message is)
DEPLOYMENT_SHOWN = ("created_at", "run_id", "step", "endpoint", "version", "outcome", "serving", "smoke_ms", "reason")
_MESSAGE_WIDTH = 40  # the narrowest the wrapped message column gets
# what the table shows of a value (JSON has it whole): a cell of a fixed column, a message (cut
# before it is wrapped: the table costs the same for a 20 MB message as for a 2 KB one)
CELL_CHARS, MESSAGE_CHARS, MESSAGE_LINES = 120, 2000, 30
_JSON_DEPTH = 100  # nesting kept as JSON; deeper values (a sample made by hand) as their text
# a check's failing rows under its row: a few rows and columns, long values cut (JSON has them all)
SAMPLE_SHOWN_ROWS, SAMPLE_SHOWN_COLUMNS, SAMPLE_VALUE_CHARS = 5, 8, 24
_LISTED_STEPS = 20  # steps named in a --step hint
Sensitive = dict[str, Sequence[str]]  # step -> columns never shown in a failing-row sample


class CannotRead(Exception):
    """The warehouse could not be reached, or its results tables not read (not: nothing yet)."""


def store_for(conn_id: str, schema: str | None) -> ResultsStore:
    """The results tables of an Airflow connection's warehouse; CannotRead when Airflow cannot
    make its hook (an undefined connection, an unknown type)."""
    try:
        return ResultsStore(Warehouse.from_conn_id(conn_id), schema)
    except Exception as error:
        raise CannotRead(f"cannot connect to the warehouse: {type(error).__name__}: {error}") from None


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
            kind = store.warehouse.failure_kind(error)
            if kind == FailureKind.UNREACHABLE:
                raise CannotRead(f"cannot connect to the warehouse: {type(error).__name__}: {error}") from None
            if kind == FailureKind.UNREADABLE:
                raise CannotRead(f"cannot read the results table {table}: {type(error).__name__}: {error}") from None
            found[table] = None
    return found


def read_deployments(
    store: ResultsStore, dag_id: str, step: str | None, last: int, run_id: str | None = None
) -> list[Deployment]:
    """A pipeline's newest promotion attempts (``ResultsHistory.deployments``; none when the
    warehouse has no ``aq_deployments``); CannotRead when it cannot be reached or read."""
    try:
        return ResultsHistory(store).deployments(dag_id, step=step or None, run_id=run_id or None, last=last)
    except Exception as error:
        if store.warehouse.failure_kind(error) == FailureKind.UNREACHABLE:
            raise CannotRead(f"cannot connect to the warehouse: {type(error).__name__}: {error}") from None
        problem = f"{type(error).__name__}: {error}"
        raise CannotRead(f"cannot read the results table {DEPLOYMENTS_TABLE}: {problem}") from None


def _deployment_cells(attempt: Deployment) -> tuple:
    """An attempt as a row of the text table (:data:`DEPLOYMENT_SHOWN`): its time to the second,
    the smoke test's round trip to a tenth of a millisecond."""
    latency = f"{attempt.smoke_latency_ms:.1f}" if attempt.smoke_latency_ms is not None else ""
    moment = attempt.created_at.replace(microsecond=0) if attempt.created_at is not None else None
    return (moment, attempt.run_id, attempt.step, attempt.endpoint, attempt.version, attempt.outcome,
            attempt.serving, latency, attempt.reason)  # fmt: skip


def _cell(value: Any) -> str:
    """Any value a results table holds as text, whole (the caller cuts it), never raising: a
    number as users write it, bytes as UTF-8 (other bytes as ``\\xff``), anything else as
    Python prints it; a value that cannot be printed (nested past the recursion limit) as its
    type in angle brackets."""
    try:
        if value is None:
            return ""
        if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
            return number(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).decode("utf-8", "backslashreplace")
        return str(value)
    except Exception:  # a value no table should hold; the row is still shown
        return f"<{type(value).__name__}>"


def _fixed(value: Any) -> str:
    """A cell of a fixed-width column: one line, controls escaped, at most :data:`CELL_CHARS`."""
    return bounded(_cell(value), CELL_CHARS)[0]


def _wrap(text: str, width: int) -> list[str]:
    """``text`` (shown :func:`~aq_airflow.cli.terminal.visible`, so ``\\n`` is its only line
    break) in lines of at most ``width`` characters; long words are split, never dropped."""
    import textwrap

    lines: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            lines.append(line)
        else:
            lines += textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False) or [""]
    return lines


def _message_lines(value: Any, width: int) -> list[str]:
    """A message wrapped to ``width``: its first :data:`MESSAGE_CHARS` characters, controls
    escaped, newlines kept, at most :data:`MESSAGE_LINES` lines; a cut message says how long it
    is and where to read it whole. Cut first, then wrapped: linear in the message's size."""
    text = _cell(value)
    shown, cut = bounded(text, MESSAGE_CHARS, newlines=True)
    lines = _wrap(shown, width)
    if len(lines) > MESSAGE_LINES:
        lines, cut = lines[:MESSAGE_LINES], True
    if cut:
        lines.append(f"{ELLIPSIS} ({len(text):,} characters; --format json shows the whole message)")
    return lines


def _step_name(step: Any, index: Any, label: Any) -> str:
    """A row's step as every place names an item (``artifacts.labels.item_name``): ``train[2:us]``
    for the item ``us`` at map index 2 of a `foreach:` step (``train[2]`` in rows of earlier
    versions, which hold no label), ``train`` for a step that is not mapped (NULL or -1). A map
    index that is no whole number, or a negative one other than -1 (a table written by hand), is
    shown as it is: ``train[abc]``, ``train[-5]``."""
    name, whole = _cell(step), map_index_of(index)
    if index is None or whole == -1:
        return name
    text = _cell(label) if label is not None else ""
    if whole is not None and whole >= 0:
        return item_name(name, whole, text)
    shown = _cell(index) if whole is None else str(whole)
    return f"{name}[{shown}:{text}]" if text else f"{name}[{shown}]"


def _item_steps(columns: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
    """The ``map_index`` and ``item_label`` columns folded into the step (:func:`_step_name`)."""
    if "map_index" not in columns:
        return columns, rows
    step, index = columns.index("step"), columns.index("map_index")
    label = columns.index("item_label") if "item_label" in columns else None
    folded = []
    for row in rows:
        cells = list(row)
        cells[step] = _step_name(cells[step], cells[index], cells[label] if label is not None else None)
        folded.append(tuple(c for i, c in enumerate(cells) if i not in (index, label)))
    return [c for c in columns if c not in ("map_index", "item_label")], folded


def _short(value: Any) -> str:
    """A failing row's value on one line (its whitespace runs as one space), controls escaped,
    at most :data:`SAMPLE_VALUE_CHARS`; only its first characters are looked at."""
    text = "NULL" if value is None else _cell(value)
    head = text[: 4 * SAMPLE_VALUE_CHARS]
    return bounded(" ".join(head.split()), SAMPLE_VALUE_CHARS, more=len(head) < len(text))[0]


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
        notes.append(f"hidden as sensitive: {', '.join(_short(name) for name in sample.hidden)}")
    names = [_short(name) for name in columns]
    cells = [[_short(value) for value in row[: len(columns)]] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(names)]
    lines = ["  failing rows (sample" + "".join(f"; {note}" for note in notes) + "):"]
    for row in [names, *cells]:
        lines.append(("    " + "  ".join(text.ljust(w) for text, w in zip(row, widths, strict=True))).rstrip())
    return lines


def _print_table(columns: list[str], rows: list[tuple], out: TextIO) -> None:
    """Columns as wide as their widest value (at most :data:`CELL_CHARS`); the message, when
    last, wrapped to the terminal (:func:`_message_lines`); a check's failing rows under its row.
    Every value shown with its controls escaped (``aq_airflow.cli.terminal``)."""
    columns, rows = _item_steps(columns, rows)
    samples: list[Sample | None] = [None] * len(rows)
    if "sample" in columns:
        at = columns.index("sample")
        samples = [row[at] for row in rows]
        columns, rows = [c for c in columns if c != "sample"], [row[:at] + row[at + 1 :] for row in rows]
    wrapped = columns[-1] in ("message", "reason")
    fixed = columns[:-1] if wrapped else columns
    cells = [[_fixed(v) for v in row[: len(fixed)]] for row in rows]
    messages = [row[-1] for row in rows] if wrapped else [None] * len(rows)
    widths = [max(_WIDTHS.get(c, 0), len(_HEADERS.get(c, c)), *(len(r[i]) for r in cells)) for i, c in enumerate(fixed)]
    indent = sum(widths) + 2 * len(widths)
    room = max(_MESSAGE_WIDTH, shutil.get_terminal_size((160, 24)).columns - indent - 1)
    header = "  ".join(_HEADERS.get(c, c).ljust(w) for c, w in zip(fixed, widths, strict=False))
    print((header + (f"  {columns[-1]}" if wrapped else "")).rstrip(), file=out)
    for row, message, sample in zip(cells, messages, samples, strict=True):
        line = "  ".join(text.ljust(w) for text, w in zip(row, widths, strict=True))
        if not wrapped:
            print(line.rstrip(), file=out)
        else:
            first, *more = _message_lines(message, room)
            print(f"{line}  {first}".rstrip(), file=out)
            for part in more:
                print((" " * indent + part).rstrip(), file=out)
        if sample is not None and sample.columns:
            print("\n".join(_sample_lines(sample)), file=out)


def _json_value(value: Any, depth: int = 0) -> Any:
    """A value of a results table as JSON holds it, whole: dates in ISO 8601, an integral
    NUMERIC as an integer (exact), NaN and infinities (no JSON number) and numbers past JSON's
    or Python's reach as their text, bytes as UTF-8 text (other bytes as ``\\xff``), LIST and
    STRUCT values (a table made by hand) as arrays and objects, anything else as its text."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= EXACT_BITS else str(decimal.Decimal(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else number(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return number(value)
        if value == value.to_integral_value():
            return int(value) if value.adjusted() < EXACT_DIGITS else str(value)
        as_float = float(value)
        return as_float if math.isfinite(as_float) and as_float else str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, Sample):
        return _json_value(value.as_dict(), depth)
    if depth >= _JSON_DEPTH:
        return _cell(value)
    if isinstance(value, dict):
        return {_cell(k) if not isinstance(k, str) else k: _json_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v, depth + 1) for v in value]
    return _cell(value)


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
    (stdout), a check's failing rows with it (the columns in ``sensitive[step]`` dropped), and
    its promotion attempts when it has any; messages to stderr. Returns the exit code: SHOWN,
    NOTHING_RECORDED or CANNOT_READ."""
    out = out or sys.stdout
    try:
        found = read_results(store, dag_id, step, last, run_id, sensitive)
        deployments = read_deployments(store, dag_id, step, last, run_id)
    except CannotRead as error:
        print(error, file=sys.stderr)
        return CANNOT_READ
    shown = sum(len(table[1]) for table in found.values() if table) + len(deployments)
    if fmt == "json":
        document: dict[str, Any] = {"pipeline": dag_id, "step": step, "run_id": run_id,
                                    "results_schema": store.schema, "recorded": bool(shown)}  # fmt: skip
        for table, title in TABLES:
            columns, rows = found[table] or ([], [])
            document[title] = [{c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        document["deployments"] = [_json_value(attempt.as_dict()) for attempt in deployments]
        print(json.dumps(document, indent=2, allow_nan=False), file=out)
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
    if deployments:  # a pipeline without `serve:` gets no section
        print(f"\ndeployments ({DEPLOYMENTS_TABLE}), newest first", file=out)
        _print_table(list(DEPLOYMENT_SHOWN), [_deployment_cells(attempt) for attempt in deployments], out)
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


def _resolve(
    target: str, warehouse: str | None, schema: str | None
) -> tuple[str, str, str | None, str, Sensitive, list[str]]:
    """(dag_id, connection id, results schema, where, for the reader, sensitive columns by step,
    the spec's steps) of a SPEC or PIPELINE argument; a --warehouse value becomes the CLI's own
    connection."""
    sensitive: Sensitive = {}
    steps: list[str] = []
    if _is_spec(target):
        from aq_airflow.pipeline_spec import SpecError
        from aq_airflow.plan import compile_spec

        try:
            plan = compile_spec(target)
        except SpecError as error:  # unreadable files too
            raise WarehouseError(str(error)) from None
        dag_id, schema, sensitive = plan.dag_id, schema or plan.results_schema, sensitive_columns(plan)
        steps = list(dict.fromkeys(task.group for task in plan.tasks))
        if warehouse is None:
            if _airflow_has(plan.warehouse):
                return dag_id, plan.warehouse, schema, f"the connection `{plan.warehouse}`", sensitive, steps
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
    os.environ[connection_variable(CLI_CONN_ID)] = connection(warehouse, must_exist=True)
    return dag_id, CLI_CONN_ID, schema, display(warehouse) or warehouse, sensitive, steps


def step_hint(store: ResultsStore, dag_id: str, step: str, spec_steps: Sequence[str] = ()) -> str | None:
    """For a ``--step`` with no rows: the line that says the pipeline has no such step, with the
    closest name (a typo) among the spec's steps and those with results; None when the step is
    one of them (it has just recorded nothing yet) or the steps cannot be read."""
    import difflib

    try:
        recorded = ResultsHistory(store).steps(dag_id)
    except Exception:  # the hint is a courtesy: the missing rows were already reported
        recorded = []
    known = list(dict.fromkeys([*spec_steps, *recorded]))
    if not known or step in known:
        return None
    close = difflib.get_close_matches(step, known, n=1)
    hint = f"; did you mean `{bounded(close[0], CELL_CHARS)[0]}`?" if close else ""
    listed = ", ".join(bounded(name, CELL_CHARS)[0] for name in known[:_LISTED_STEPS])
    listed += f", … ({len(known)} in all)" if len(known) > _LISTED_STEPS else ""
    named = bounded(step, CELL_CHARS)[0]
    return f"--step {named}: pipeline `{dag_id}` has no step of that name{hint} (steps: {listed})"


def show(target: str, warehouse: str | None, step: str | None, last: int, schema: str | None,
         fmt: str = "text") -> int:  # fmt: skip
    """``aq-airflow results``: print the history of a spec's pipeline or of a dag_id."""
    if "airflow" not in sys.modules:  # Airflow's own INFO lines are no results
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    with contextlib.suppress(Exception):  # a terminal that cannot show `é` (ASCII) gets `\xe9`, not a traceback
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    with masked_output(warehouse):
        out = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):  # whatever else prints (Airflow's logs) goes to stderr
            try:
                dag_id, conn_id, schema, where, sensitive, steps = _resolve(target, warehouse, schema)
            except WarehouseError as error:
                print(error, file=sys.stderr)
                return CANNOT_READ
            print(f"results of {dag_id} from {where}" + (f" (schema {schema})" if schema else ""), file=sys.stderr)
            code = report(conn_id, schema, dag_id, step, last, None, fmt, out, sensitive)
            if code == NOTHING_RECORDED and step:
                with contextlib.suppress(CannotRead):
                    hint = step_hint(store_for(conn_id, schema), dag_id, step, steps)
                    if hint:
                        print(hint, file=sys.stderr)
            return code
