"""``aq-airflow run``: one pipeline, end to end, in a real Airflow on this machine.

A temporary AIRFLOW_HOME (SQLite metadata DB), the spec in a temporary dags folder, every step
on the ``local`` profile (processes, a local artifact folder) and a file-backed DuckDB warehouse
unless ``--warehouse`` names another. The DAG runs with ``dag.test()``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aq_airflow.artifacts.labels import item_name
from aq_airflow.artifacts.root import artifacts_root
from aq_airflow.cli.specs import dags_folder_of
from aq_airflow.cli.terminal import visible
from aq_airflow.devstack.home import connection_variable, core_settings
from aq_airflow.devstack.loader_file import write_local_loader
from aq_airflow.plan.model import TaskRole
from aq_airflow.runtime import contract
from aq_airflow.warehouse import DuckDB


@dataclass
class Progress:
    """Prints a line as each task starts and ends (with a live bar on a terminal)."""

    total: int
    started: dict[str, float] = field(default_factory=dict)
    finished: dict[str, tuple[str, float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    outputs: dict[tuple[str, int], dict] = field(default_factory=dict)  # (task_id, map_index) -> manifest
    served: dict[str, dict] = field(default_factory=dict)  # a serve task's endpoint, version and outcome
    tty: bool = field(default_factory=sys.stdout.isatty)

    def __post_init__(self) -> None:
        self.bar = None
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), transient=True)  # fmt: skip
            self.bar_task = self.bar.add_task("starting Airflow", total=self.total)
            self.bar.start()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def _line(self, text: str) -> None:
        # item labels and task names come from the spec: ESC, CR or a bidi override shown escaped
        line = f"[{len(self.finished):>2}/{self.total}] {visible(text)}"
        if self.bar is not None:
            self.bar.console.print(line, highlight=False, markup=False)
        else:
            print(line, flush=True)

    def on_start(self, context) -> None:
        task_id = _instance(context)
        if (context["ti"].map_index or 0) > 0:  # a `foreach:` step's further item: one more to run
            self.total += 1
            if self.bar is not None:
                self.bar.update(self.bar_task, total=self.total)
        self.started[task_id] = time.monotonic()
        if self.bar is not None:
            self.bar.update(self.bar_task, description=f"running {visible(task_id)}")
        self._line(f"start   {task_id}")

    def on_success(self, context) -> None:
        ti = context["ti"]
        value = ti.xcom_pull(task_ids=ti.task_id, key="return_value", map_indexes=ti.map_index)
        if isinstance(value, dict) and "kind" in value:
            self.outputs[ti.task_id, ti.map_index] = value
        elif isinstance(value, dict) and {"endpoint", "version", "outcome"} <= value.keys():
            self.served[ti.task_id] = value
        self._end(context, "success")

    def on_skipped(self, context) -> None:
        self._end(context, "skipped")

    def on_failure(self, context) -> None:
        error = context.get("exception")
        # Airflow's task log is hidden here: a failed step's last output lines say what happened
        output = "\n".join(getattr(error, "output", []))
        self.errors[_instance(context)] = f"{output}\n{error}".strip() if error else "failed"
        self._end(context, "failed")

    def _end(self, context, state: str) -> None:
        task_id = _instance(context)
        seconds = time.monotonic() - self.started.get(task_id, time.monotonic())
        self.finished[task_id] = (state, seconds)
        if self.bar is not None:
            self.bar.advance(self.bar_task)
        mark = {"success": "ok     ", "skipped": "skipped"}.get(state, "FAILED ")
        self._line(f"{mark} {task_id} ({seconds:.1f}s)")


def instance_name(ti, label: str | None = None) -> str:
    """A task instance as the run shows it: its task id, and for one item of a `foreach:` step
    its map index and the item's label, ``train.run[0:apac]`` (``artifacts.labels.item_name``, as
    ``aq-airflow results`` and the quality pages name it)."""
    return item_name(ti.task_id, ti.map_index, label)


def _instance(context) -> str:
    """The running task instance's name: the item's label from its operator (Airflow renders
    the grid's label only after the task ran)."""
    return instance_name(context["ti"], getattr(context.get("task"), "item_label", None))


def _connection(uri: str | None, workdir: Path) -> str:
    """An Airflow connection (URI or JSON) for the warehouse: the ``--warehouse`` value (a URI,
    JSON, or a DuckDB file path), or a DuckDB file in the workdir."""
    from aq_airflow.cli.connection import connection

    return connection(uri, must_exist=False) if uri else DuckDB.connection_json(workdir / "warehouse.duckdb")


def _prepare(
    spec: Path, home: Path, warehouse_uri: str | None, conn_id: str, verbose: bool, artifacts: str, workdir: Path
) -> Path:
    dags = home / "dags"
    dags.mkdir(parents=True)
    shutil.copy(spec, dags / spec.name)
    dags_root = dags_folder_of(str(spec))  # a spec inside a deployed dags folder: as the loader sees it there
    profiles = Path(dags_root or spec.parent) / "aq-profiles.yaml"
    if profiles.exists():
        shutil.copy(profiles, dags / profiles.name)
    write_local_loader(dags, "aq_run_dags.py")
    conn_var = connection_variable(conn_id)
    os.environ.update(
        {
            **core_settings(home, dags),  # the home, dags folder and SQLite metadata DB of a local Airflow
            # the progress lines, the summary and each failure's error say what happened; Airflow's own
            # logs (task tracebacks, scheduling-loop warnings) come with --verbose
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO" if verbose else "CRITICAL",
            contract.ARTIFACTS: artifacts,
            "AQ_AIRFLOW_CACHE": str(home / "plan-cache"),
            # the spec runs from the temporary dags folder; its steps' code stays beside the spec, where
            # the local runner finds it as it does in a deployed dags folder (the plan's code folder)
            contract.CODE_ROOT: str(spec.parent.resolve()),
            # the run's own outputs and warehouse are no code, if the workdir sits beside the spec
            contract.CODE_EXCLUDE: str(workdir.resolve()),
        }
    )
    if dags_root and Path(dags_root) != spec.parent.resolve():
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (dags_root, os.environ.get("PYTHONPATH")) if p)
    os.environ[conn_var] = _connection(warehouse_uri, workdir)  # reads a URI with Airflow: after its set-up
    sys.path.insert(0, str(spec.parent.resolve()))  # what runs in this process (an `on_failure:` callback)
    return dags


def undeclared_params(spec: Path, declared: dict, given: dict) -> list[str]:
    """One located line per ``--param`` key the spec's ``params:`` does not declare (Airflow
    would take it into the run's conf and no template would ever read it)."""
    from aq_airflow.pipeline_spec import Problem, SpecFile

    unknown = [key for key in given if key not in declared]
    if not unknown:
        return []
    import difflib

    spec_file = SpecFile.read(spec)
    names = ", ".join(sorted(declared))
    lines = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(declared), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        message = (
            f"--param {key}: `params:` declares no `{key}`; declared: {names}{hint}"
            if declared
            else f"--param {key}: this spec declares no params; add `{key}` under `params:` to take it"
        )
        lines.append(str(spec_file.issue(Problem(("params",), message, at_key=True))))
    return lines


def run_pipeline(
    spec: Path,
    date: str | None,
    params: dict[str, str],
    warehouse_uri: str | None,
    workdir: Path,
    verbose: bool = False,
    artifacts: str | None = None,
    from_step: str | None = None,
    steps: str | None = None,
) -> int:
    """Run ``spec`` end to end here with ``params`` (the ``--param`` texts, read as the spec
    declares each: ``cli.params``); step outputs go to ``artifacts`` (a folder or an s3://,
    gs:// or abfs:// URI; default ``workdir/artifacts``). ``from_step`` / ``steps`` resume: run
    that step and what follows it / those steps, reusing the latest successful run's outputs for
    everything upstream (``cli.resume``). Nothing printed holds the password of
    ``warehouse_uri`` (see ``cli.connection.masked_output``)."""
    from aq_airflow.cli.connection import masked_output

    with masked_output(warehouse_uri):
        return _run_pipeline(spec, date, params, warehouse_uri, workdir, verbose, artifacts, from_step, steps)


def _outside_dates(plan, when) -> str | None:
    """Why the date is outside the pipeline's ``start_date``..``end_date``, or None."""
    if when is None:
        return None
    if plan.start_date and when < plan.start_date:
        return f"before the pipeline's start_date {plan.start_date.date()}"
    if plan.end_date and when > plan.end_date:
        return f"after the pipeline's end_date {plan.end_date.date()}"
    return None


def _logical_date(text: str):
    """The run's logical date from ``--date``: exactly YYYY-MM-DD (midnight UTC), else None. A
    time (``2026-03-01T06:00``) or blanks around it are refused rather than read one way or
    another: a run is of a day (``ds``), and a resumed run finds earlier runs by that day."""
    import datetime
    import re

    import pendulum

    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:  # a day the month has not
        return None
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


def _date_problem(text: str) -> str:
    """Why ``--date`` is refused, with the form it takes."""
    stripped = text.strip()
    if stripped != text and _logical_date(stripped) is not None:
        return f"--date {text!r}: not a date: use YYYY-MM-DD, without blanks around it ({stripped})"
    if _logical_date(stripped[:10]) is not None and stripped[10:11] in ("T", " "):
        return f"--date {text}: a date and time; use YYYY-MM-DD, the day alone ({stripped[:10]}): a run is of a day"
    return f"--date {text}: not a date: use YYYY-MM-DD"


def _run_pipeline(
    spec: Path, date: str | None, params: dict, warehouse_uri: str | None, workdir: Path, verbose: bool,
    artifacts: str | None, from_step: str | None = None, steps: str | None = None,
) -> int:  # fmt: skip
    from aq_airflow.cli.connection import WarehouseError
    from aq_airflow.cli.params import typed_params
    from aq_airflow.pipeline_spec import SpecError
    from aq_airflow.pipeline_spec.roots import unsafe_root
    from aq_airflow.plan import compile_spec
    from aq_airflow.warehouse.secrets import is_path

    if date is not None and _logical_date(date) is None:
        print(_date_problem(date), file=sys.stderr)
        return 2
    try:  # a DuckDB file's folder now; a URI once Airflow is set up for the run (in _prepare)
        if warehouse_uri and is_path(warehouse_uri):
            _connection(warehouse_uri, workdir)
    except WarehouseError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        plan = compile_spec(spec, dags_folder_of(str(spec)))
    except SpecError as error:  # unreadable files too
        print(visible(str(error), newlines=True), file=sys.stderr)
        return 1
    undeclared = undeclared_params(spec, plan.params, params)
    if undeclared:
        print(visible("\n".join(undeclared), newlines=True), file=sys.stderr)
        return 2
    params, refused = typed_params(spec, plan.params, params)
    if refused:
        print(visible("\n".join(refused), newlines=True), file=sys.stderr)
        return 2
    outside = _outside_dates(plan, _logical_date(date) if date else None)
    if outside:
        print(f"--date {date}: {outside}; Airflow would run no task for it", file=sys.stderr)
        return 2
    written = (("--workdir", str(workdir)), ("--artifacts", artifacts or ""))  # a quoted '~' or '$X' as typed
    workdir = workdir.resolve()
    artifacts = artifacts_root(artifacts or str(workdir / "artifacts"))
    for flag, folder in (*written, ("--workdir", str(workdir)), ("--artifacts", artifacts)):
        why = unsafe_root(folder) if folder else None  # `/`, a home or a system folder: as for a spec's `artifacts:`
        if why:
            print(f"{flag} {folder}: {why}", file=sys.stderr)
            return 2
    reuse = None
    if from_step is not None or steps is not None:
        from aq_airflow.cli.resume import ResumeError, prepare

        try:
            import pendulum

            day = (_logical_date(date) if date else pendulum.now("UTC")).date().isoformat()
            reuse = prepare(plan, artifacts, from_step, steps, day)
        except ResumeError as error:
            print(visible(str(error), newlines=True), file=sys.stderr)
            return 2
    workdir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="aq-airflow-run-"))
    try:
        dags = _prepare(spec, home, warehouse_uri, plan.warehouse, verbose, artifacts, workdir)
        return _run(plan, dags, date, params, workdir, warehouse_uri, artifacts, reuse)
    except WarehouseError as error:
        print(error, file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run(
    plan, dags: Path, date: str | None, params: dict, workdir: Path, warehouse_uri: str | None, artifacts: str,
    reuse=None,
) -> int:  # fmt: skip
    dag_id = plan.dag_id
    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils import db
    from airflow.utils.types import DagRunType

    from aq_airflow.devstack.dagrun import dag_test
    from aq_airflow.live_dags import INVALID_TAG

    db.initdb()
    bag = DagBag(dag_folder=str(dags))
    dag = bag.dags.get(dag_id)
    if dag is None or INVALID_TAG in dag.tags:
        print(dag.description if dag else f"the DAG {dag_id} did not load: {bag.import_errors}", file=sys.stderr)
        return 1
    logical_date = _logical_date(date) if date else pendulum.now("UTC").start_of("day")
    run_after = pendulum.now("UTC")  # dag.test names the run after it: known before it starts
    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=logical_date, run_after=run_after)
    whole, notes = dag, {}
    if reuse is not None:
        from aq_airflow.cli.resume import ResumeError, copy_outputs

        print(visible(reuse.describe(), newlines=True))
        try:
            for note in copy_outputs(plan, reuse, artifacts, run_id):
                print(visible(note, newlines=True))
        except ResumeError as error:
            print(visible(str(error), newlines=True), file=sys.stderr)
            return 2
        dag = dag.partial_subset(task_ids=sorted(reuse.task_ids), include_upstream=False)
        reused = f"from run {reuse.source.run_id}"
        notes = {t.task_id: ("reused", reused) for t in plan.tasks if t.group in reuse.reused}
    progress = Progress(total=len(dag.tasks))
    for task in dag.tasks:
        task.on_execute_callback = [progress.on_start]
        task.on_success_callback = [progress.on_success]
        task.on_failure_callback = [progress.on_failure]
        task.on_skipped_callback = [progress.on_skipped]  # a `when:` that does not hold
    print(f"running {dag_id} for {logical_date.date()} ({len(dag.tasks)} tasks) on the local runner")
    began = pendulum.now("UTC")
    try:
        dag_run = dag_test(dag, logical_date, params, run_after=run_after)
    finally:
        progress.close()
    _record(plan, dag_run, artifacts, logical_date, began, reuse)
    return _summary(whole, dag_run, progress, workdir, warehouse_uri, plan, artifacts, notes)


def _record(plan, dag_run, artifacts: str, logical_date, began, reuse) -> None:
    """Leave the run record (``_run.json``) in the run's folder: how this run ended, which a
    later ``--from`` reads (Airflow's metadata DB goes with the temporary home)."""
    import pendulum

    from aq_airflow.client.runs import write_record

    state = getattr(dag_run.state, "value", dag_run.state)
    steps = list(dict.fromkeys(task.group for task in plan.tasks))
    record = {
        "dag_id": plan.dag_id, "run_id": dag_run.run_id, "state": str(state), "logical_date": logical_date.isoformat(),
        "spec_sha256": plan.spec_sha256, "started": began.isoformat(), "finished": pendulum.now("UTC").isoformat(),
        "resumed_from": reuse.source.run_id if reuse else None, "reused": list(reuse.reused) if reuse else [],
        "ran": list(reuse.run_steps) if reuse else steps,
    }  # fmt: skip
    try:
        write_record(artifacts, plan.dag_id, dag_run.run_id, record)
    except OSError as error:
        print(f"could not write the run record into {artifacts} ({error}): `--from` cannot resume from this run",
              file=sys.stderr)  # fmt: skip


def _summary(
    dag, dag_run, progress: Progress, workdir: Path, warehouse_uri: str | None, plan, artifacts: str,
    notes: dict[str, tuple[str, str]] | None = None,
) -> int:  # fmt: skip
    """The run's table of tasks; ``notes`` gives the (state, output) of tasks that did not run
    (a resumed run's reused steps)."""
    conn_id, results_schema = plan.warehouse, plan.results_schema
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from aq_airflow.cli.connection import display

    with create_session() as session:
        recorded = session.get(DagRun, dag_run.id)  # the run as Airflow's UI shows it: its times from the DB
        seconds = (recorded.end_date - recorded.start_date).total_seconds()
        started = f"{recorded.start_date:%Y-%m-%d %H:%M:%S} UTC"
        print(f"\n{dag.dag_id}: {recorded.state} in {seconds:.1f}s, started {started}\n")
    print(f"{'task':28} {'state':16} {'seconds':>8}  output")
    with create_session() as session:
        tis: dict[str, list] = {}
        for ti in sorted(dag_run.get_task_instances(session=session), key=lambda ti: ti.map_index):
            tis.setdefault(ti.task_id, []).append(ti)  # a `foreach:` step's task: one per item
        for task, ti in [(t, ti) for t in dag.tasks for ti in tis.get(t.task_id) or [None]]:
            state = str(ti.state.value if hasattr(ti.state, "value") else ti.state) if ti and ti.state else "not run"
            duration = f"{ti.duration:.1f}" if ti and ti.duration else ""
            manifest = progress.outputs.get((ti.task_id, ti.map_index)) if ti else None
            name = instance_name(ti, ti.rendered_map_index) if ti else task.task_id
            output = ""
            if ti is None and task.task_id in (notes or {}):
                state, output = notes[task.task_id]
            if manifest:
                rows = f"{manifest['rows']} rows, " if manifest.get("rows") is not None else ""
                output = f"{manifest['kind']}: {rows}{manifest.get('uri', '')}"
            if ti is not None and ti.task_id in progress.served:
                served = progress.served[ti.task_id]
                output = f"endpoint {served['endpoint']}: {served['version']} {served['outcome']}"
            print(f"{visible(name):28} {state:16} {duration:>8}  {visible(output)}")
    print(f"\nartifacts: {artifacts}")
    if progress.served:
        names = ", ".join(sorted(served["endpoint"] for served in progress.served.values()))
        store = f"--workdir {workdir}" if artifacts == str(workdir / "artifacts") else f"--artifacts {artifacts}"
        print(f"endpoints: {names}; `aq-airflow serve {dag.dag_id} {store}` serves their promoted models")
    print(f"warehouse: {display(warehouse_uri) or workdir / 'warehouse.duckdb'}")
    if any(t.role in (TaskRole.CHECKS, TaskRole.METRICS) for t in plan.tasks):
        from aq_airflow.cli.results import report

        print(f"\ncheck and metric results of this run, read back from the warehouse ({conn_id}):")
        report(conn_id, results_schema, dag.dag_id, None, 100, dag_run.run_id)
    if dag_run.state != "success":
        for task_id, error in progress.errors.items():
            print(f"\n{visible(task_id)} failed:\n{visible(error, newlines=True)}", file=sys.stderr)
        return 1
    return 0
