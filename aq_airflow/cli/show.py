"""``aq-airflow show PIPELINE RUN``: what made each output of a run. Per step (per item of a
``foreach:`` step): the code package's digest and git state, the image and its digest, the inputs
with their manifests' digests, the output's kind, rows, bytes and schema, the try number and the
times, from the outputs' manifests (``client.provenance``); then the run's metric values and check
outcomes from the results warehouse, when it can be read (else a note says why).

An output written before aq-airflow recorded provenance shows its kind, rows and schema with
"provenance: not recorded". stdout carries the report (text, or one JSON document with
``--json``); notes go to stderr. Exit codes: 0 shown; 2 no such pipeline, store or run.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, TextIO

from aq_airflow.cli.run_lookup import (
    STORE_ERRORS,
    WAREHOUSE_FILE,
    LookupFailed,
    Target,
    find_run,
    resolve,
    store_failed,
)
from aq_airflow.cli.terminal import visible
from aq_airflow.client.outputs import Run
from aq_airflow.client.provenance import SHORT, StepRecord, run_code, step_records
from aq_airflow.client.provenance import short_digest as short

SHOWN, NOT_FOUND = 0, 2


def size(count: int | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


def git_text(git: Any) -> str:
    """A git state (``GitState`` or the pin's dict) as ``git 9f8e7d6c1b2a`` (``, dirty``)."""
    if git is None:
        return "not a git checkout"
    commit = git.commit if hasattr(git, "commit") else str(git.get("commit"))
    dirty = git.dirty if hasattr(git, "dirty") else bool(git.get("dirty"))
    return f"git {commit[:SHORT]}" + (" (dirty: files differ from the commit)" if dirty else "")


# --- the warehouse's results of a run -------------------------------------------------------------


def run_results(
    pipeline: str, warehouse: str | None, schema: str | None, run_ids: list[str]
) -> tuple[dict, str | None]:
    """Each run's metric values and check outcomes ({run_id: {"metrics": [...], "checks": [...]}})
    from the results warehouse, and a note when it could not be read (the report goes on without)."""
    from aq_airflow.cli.connection import WarehouseError
    from aq_airflow.cli.results import CannotRead, _json_value, _resolve, read_results, store_for
    from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE

    try:
        dag_id, conn_id, schema, _, _, _ = _resolve(pipeline, warehouse, schema)
        store = store_for(conn_id, schema)
        found = {}
        for run_id in run_ids:
            tables = read_results(store, dag_id, None, 10_000, run_id)
            rows = {}
            for table, title in ((METRICS_TABLE, "metrics"), (CHECKS_TABLE, "checks")):
                columns, values = tables.get(table) or ([], [])
                keep = [c for c in columns if c not in ("sample", "logical_date", "run_id")]
                rows[title] = [{c: _json_value(v) for c, v in zip(columns, row, strict=True) if c in keep}
                               for row in values]  # fmt: skip
            found[run_id] = rows
    except (WarehouseError, CannotRead) as error:
        return {}, f"metrics and checks not shown: {error}"
    except Exception as error:  # a warehouse of any kind: its failure is a note, never a traceback
        return {}, f"metrics and checks not shown: {type(error).__name__}: {error}"
    return found, None


def metric_key(row: dict) -> str:
    from aq_airflow.artifacts.labels import item_name

    index = row.get("map_index")
    return f"{item_name(str(row.get('step')), index if isinstance(index, int) else None, row.get('item_label'))}" \
           f".{row.get('name')}"  # fmt: skip


def latest_by_name(rows: list[dict]) -> dict[str, dict]:
    """One row per metric or check (the newest: a retry's row replaces the first try's)."""
    found: dict[str, dict] = {}
    for row in rows:  # newest first
        found.setdefault(metric_key(row), row)
    return found


# --- the report -----------------------------------------------------------------------------------


def report(target: Target, run: Run, records: list[StepRecord]) -> dict:
    """The run's steps and code, as ``--json`` prints them (the warehouse's results added by the caller)."""
    code = run_code(run, records)
    record = run.record or {}
    return {
        "pipeline": target.dag_id, "run_id": run.run_id, "store": target.pipeline.uri, "state": run.state,
        "logical_date": record.get("logical_date") or next(
            (r.provenance.logical_date for r in records if r.provenance and r.provenance.logical_date), None),
        "code": {"digest": code.digest, "uri": code.uri, "git": code.git} if code else None,
        "steps": [r.as_json() for r in records],
    }  # fmt: skip


def _step_lines(record: StepRecord) -> list[str]:
    p = record.provenance
    head = record.name
    if p is not None:
        times = " → ".join(t[11:19] if t and len(t) >= 19 else (t or "?") for t in (p.started, p.finished))
        head += f"  (try {p.try_number if p.try_number is not None else '?'}, {times})"
    lines = [visible(head)]
    if record.manifest is None:
        return [*lines, f"  output   not committed: {visible(record.problem or 'no manifest')}"]
    if p is None:
        lines.append("  provenance  not recorded (an output written before aq-airflow recorded provenance)")
    else:
        no_package = "no package (the image's own code, or a sql step)"
        code = f"{short(p.code.digest)}  {git_text(p.code.git)}" if p.code else no_package
        image = (f"{p.image.name}" + (f" @ {short(p.image.digest)}" if p.image.digest else " (digest not reported)")
                 if p.image else "a local process (no image)")  # fmt: skip
        lines += [f"  code     {visible(code)}", f"  image    {visible(image)}"]
        inputs = [f"{name} ← {i.step} {short(i.manifest_digest)}" for name, i in sorted(p.inputs.items())]
        lines.append("  inputs   " + (visible(", ".join(inputs)) if inputs else "none"))
        if p.args:
            lines.append("  args     " + visible(json.dumps(p.args, sort_keys=True, default=str)))
    rows = f"{record.rows:,} row{'' if record.rows == 1 else 's'}, " if record.rows is not None else ""
    lines.append(f"  output   {record.kind}, {rows}{size(record.bytes)}")
    if record.schema is not None:
        columns = ", ".join(f"{name} {kind}" for name, kind in record.schema)
        lines.append(f"  schema   {visible(columns) or '(no columns)'}")
    return lines


def print_text(document: dict, records: list[StepRecord], out: TextIO) -> None:
    state = document["state"] or "no run record"
    date = (document["logical_date"] or "unknown")[:10]
    print(visible(f"run {document['run_id']} of {document['pipeline']} ({state}; logical date {date})"), file=out)
    print(visible(f"store    {document['store']}"), file=out)
    code = document["code"]
    if code:
        print(f"code     {code['digest']}  {git_text(code['git'])}", file=out)
    else:
        print("code     not recorded (no packaged code in this run, or a run from before code packages)", file=out)
    params = next((r.provenance.params for r in records if r.provenance and r.provenance.params), None)
    if params:
        print("params   " + visible(json.dumps(params, sort_keys=True, default=str)), file=out)
    for record in records:
        print("", file=out)
        print("\n".join(_step_lines(record)), file=out)
    if not records:
        print("\n(no step outputs in this run's folder)", file=out)
    results = document.get("results")
    if results is None:
        return
    metrics, checks = latest_by_name(results["metrics"]), latest_by_name(results["checks"])
    if metrics:
        print("\nmetrics", file=out)
        for key, row in sorted(metrics.items()):
            print(visible(f"  {key} = {row.get('value')}  ({row.get('outcome')})"), file=out)
    if checks:
        print("\nchecks", file=out)
        for key, row in sorted(checks.items()):
            print(visible(f"  {key}: {row.get('outcome')} ({row.get('severity')})"), file=out)
    if not metrics and not checks:
        print("\nmetrics and checks: none recorded for this run", file=out)


def show(pipeline: str, run_name: str, artifacts: str | None, warehouse: str | None, schema: str | None,
         as_json: bool, out: TextIO | None = None, workdir: str | None = None) -> int:  # fmt: skip
    """``aq-airflow show``: print what made each output of one run. ``workdir``: an ``aq-airflow run
    --workdir`` folder (its ``artifacts/`` and ``warehouse.duckdb``, unless named on their own)."""
    out = out or sys.stdout
    warehouse = warehouse or (os.path.join(workdir, WAREHOUSE_FILE) if workdir else None)
    if "airflow" not in sys.modules:  # Airflow's own INFO lines are no report
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    from aq_airflow.cli.connection import masked_output

    with masked_output(warehouse), contextlib.redirect_stdout(sys.stderr):
        try:
            target = resolve(pipeline, artifacts, workdir)
            run = find_run(target, run_name)
            try:
                records = step_records(run)
            except STORE_ERRORS as error:  # the store failed while the run was read
                raise LookupFailed(store_failed(target.root, target.where, error)) from None
        except LookupFailed as error:
            print(visible(str(error), newlines=True), file=sys.stderr)
            return NOT_FOUND
        document = report(target, run, records)
        results, note = run_results(pipeline, warehouse, schema, [run.run_id])
        document["results"] = results.get(run.run_id)
        document["results_note"] = note
        if note:
            print(visible(note, newlines=True), file=sys.stderr)
        if as_json:
            print(json.dumps(document, indent=2, default=str), file=out)
        else:
            print_text(document, records, out)
    return SHOWN
