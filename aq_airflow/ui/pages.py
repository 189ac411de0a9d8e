"""The quality pages: their data (read through :mod:`aq_airflow.results.history`, nothing else)
and their HTML (Jinja templates shipped in the wheel as ``aq_airflow/templates/quality_*.html.j2``,
autoescaped; charts are server-side SVG from :mod:`aq_airflow.ui.charts`). No request, session
or auth here: ``app`` does that, and the benchmark times these functions alone too.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup

from aq_airflow.artifacts.labels import item_name
from aq_airflow.artifacts.root import artifacts_root
from aq_airflow.client.provenance import StepRecord, output_records, short_digest
from aq_airflow.plan.model import TaskRole
from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE
from aq_airflow.results.history import (
    DEFAULT_SERIES,
    CheckResult,
    Deployment,
    MetricPoint,
    MetricSeries,
    Page,
    ResultsHistory,
    RunCheck,
    RunMetric,
    Summary,
    Window,
)
from aq_airflow.results.rows import Role
from aq_airflow.ui import charts
from aq_airflow.ui.pipelines import Pipeline

PER_PAGE = DEFAULT_SERIES  # charts (and check strips) per pipeline page
OVERVIEW_PER_PAGE = 50  # pipelines per overview page
TASK_HISTORY_POINTS = 60  # dates of history in a task instance's metric charts
RECENT_PROMOTIONS = 10  # promotion attempts a pipeline page shows, each with the checks that gated it


@functools.cache
def environment() -> jinja2.Environment:
    folder = resources.files("aq_airflow.templates")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (folder / name).read_text(encoding="utf-8")),
        autoescape=True,  # every value is escaped unless it is Markup (the SVG charts, escaped inside)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(day=charts.day, number=charts.number, label=lambda v: charts.LABELS.get(v, v))
    env.filters.update(short=short_digest)
    env.globals.update(colours=charts.COLOURS, path=path)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def path(base: str, *parts: str, **query: Any) -> str:
    """A link inside the app: ``base`` (the mount, e.g. ``/aq-quality``), the parts URL-quoted,
    the query's non-empty values encoded."""
    text = base.rstrip("/") + "/" + "/".join(quote(str(p), safe="") for p in parts)
    params = {k: v for k, v in query.items() if v not in (None, "")}
    return text + ("?" + urlencode(params) if params else "")


def series_label(step_label: str, name: str) -> str:
    """A check or metric under its step's label (a `foreach:` item's: ``evaluate[2:us].rmse``)."""
    return f"{step_label}.{name}"


# --- the pipeline page --------------------------------------------------------------------------


@dataclass(frozen=True)
class GatedAttempt:
    """A promotion attempt beside what gated it: its step's checks, `when:` verdict and metrics
    on the attempt's logical date (their latest rows: what the serve task ran after)."""

    deployment: Deployment
    checks: list[RunCheck]
    metrics: list[RunMetric]

    @property
    def gates(self) -> list[tuple[str, int]]:
        """(verdict, count) of the gating checks and metrics, in the legend's order."""
        verdicts = [c.result.verdict for c in self.checks] + [m.point.verdict for m in self.metrics]
        return [(v, verdicts.count(v)) for v in charts.COLOURS if v in verdicts]


@dataclass
class PipelinePage:
    pipeline: Pipeline
    window: Window
    page: int
    steps: list[str]
    checks: Page
    metrics: Page
    dates: list[datetime.datetime] = field(default_factory=list)  # the check strips' date axis
    endpoints: list[Deployment] = field(default_factory=list)  # each endpoint's latest attempt
    promotions: list[GatedAttempt] = field(default_factory=list)  # the newest attempts, newest first

    @property
    def has_more(self) -> bool:
        return self.checks.has_more or self.metrics.has_more

    @property
    def empty(self) -> bool:
        return not self.checks.items and not self.metrics.items


def load_pipeline(history: ResultsHistory, pipeline: Pipeline, window: Window, page: int = 1) -> PipelinePage:
    """A pipeline page's data: its steps, a page of checks and a page of metrics (three queries);
    on its first page its endpoints and newest promotion attempts (of the step and dates filtered
    on), each beside its gating results (four queries)."""
    offset = (max(page, 1) - 1) * PER_PAGE
    with history.reading():  # one connection, one snapshot
        steps = sorted(set(pipeline.steps) | set(history.steps(pipeline.dag_id)))
        # a passed row's message ("m = 1.2", "0 of 50 rows fail") is not drawn: left out of the read
        checks = history.check_series(pipeline.dag_id, window, PER_PAGE, offset, messages=False)
        metrics = history.metric_series(pipeline.dag_id, window, PER_PAGE, offset, messages=False)
        endpoints, promotions = load_promotions(history, pipeline, window) if page <= 1 else ([], [])
    dates = sorted({cell.logical_date for series in checks.items for cell in series.cells})
    return PipelinePage(pipeline, window, max(page, 1), steps, checks, metrics, dates, endpoints, promotions)


def load_promotions(
    history: ResultsHistory, pipeline: Pipeline, window: Window | None = None
) -> tuple[list[Deployment], list[GatedAttempt]]:
    """A pipeline's endpoints (each one's latest attempt; of the window's step) and its newest
    promotion attempts in the window, each with the results of its step on its date (the gates its
    serve task ran after; no samples): four queries, whatever the number of attempts."""
    window = window or Window()
    endpoints = history.endpoints(pipeline.dag_id)
    attempts = history.deployments(pipeline.dag_id, last=RECENT_PROMOTIONS, window=window)
    if window.step is not None:
        endpoints = [e for e in endpoints if e.step == window.step]
    dated_steps = list(dict.fromkeys((a.logical_date, a.step) for a in attempts if a.logical_date and a.step))
    checks, metrics = history.run_results(pipeline.dag_id, None, dated_steps=dated_steps, sample_rows=0)
    gates: dict[tuple, tuple[list[RunCheck], list[RunMetric]]] = {key: ([], []) for key in dated_steps}
    for check in checks:
        gates.setdefault((check.result.logical_date, check.result.step), ([], []))[0].append(check)
    for metric in metrics:
        gates.setdefault((metric.point.logical_date, metric.step), ([], []))[1].append(metric)
    promotions = [GatedAttempt(a, *gates.get((a.logical_date, a.step), ([], []))) for a in attempts]
    return endpoints, promotions


def gates_link(base: str, pipeline: Pipeline, promotion: GatedAttempt) -> str | None:
    """The checks task page of the run that made the attempt (its gates, failing rows and all);
    None when the step has no checks task now or the attempt names no run."""
    attempt = promotion.deployment
    task_id = pipeline.task_of(attempt.step or "", TaskRole.CHECKS)
    if not attempt.run_id or task_id is None:
        return None
    return path(base, "dags", pipeline.dag_id, "runs", attempt.run_id, "tasks", task_id, map_index=attempt.map_index)


def check_link(base: str, pipeline: Pipeline, cell: CheckResult) -> str | None:
    """The task instance page of the run that recorded a check's verdict (a condition's verdict:
    its ``when`` task); None when the DAG has no such task now (a step renamed since)."""
    task_id = pipeline.task_of(cell.step, TaskRole.WHEN if cell.role == Role.WHEN else TaskRole.CHECKS)
    if not cell.run_id or task_id is None:
        return None
    return path(base, "dags", pipeline.dag_id, "runs", cell.run_id, "tasks", task_id, map_index=cell.map_index)


def metric_link(base: str, pipeline: Pipeline, series: MetricSeries, point: MetricPoint) -> str | None:
    task_id = pipeline.task_of(series.step, TaskRole.METRICS)
    if not point.run_id or task_id is None:
        return None
    return path(base, "dags", pipeline.dag_id, "runs", point.run_id, "tasks", task_id, map_index=series.map_index)


def render_pipeline(view: PipelinePage, base: str, query: dict[str, str | None]) -> str:
    strips = [
        (series, Markup(charts.check_strip(series, view.dates, lambda c: check_link(base, view.pipeline, c))))  # noqa: S704
        for series in view.checks.items
    ]
    metric_charts = [
        (series, Markup(charts.metric_chart(series, link=lambda p, s=series: metric_link(base, view.pipeline, s, p))))  # noqa: S704
        for series in view.metrics.items
    ]
    return render(
        "quality_pipeline.html.j2",
        base=base,
        view=view,
        pipeline=view.pipeline,
        strips=strips,
        metric_charts=metric_charts,
        legend=Markup(charts.legend()),  # noqa: S704 - our constants
        query=query,
        series_label=series_label,
        gates_link=lambda promotion: gates_link(base, view.pipeline, promotion),
        previous_page=path(base, "dags", view.pipeline.dag_id, **{**query, "page": view.page - 1})
        if view.page > 1
        else None,
        next_page=path(base, "dags", view.pipeline.dag_id, **{**query, "page": view.page + 1})
        if view.has_more
        else None,
    )


# --- a task instance's page ---------------------------------------------------------------------


@dataclass
class TaskPage:
    pipeline: Pipeline
    run_id: str
    task_id: str
    logical_date: datetime.datetime
    map_index: int | None
    steps: list[str]
    tables: tuple[str, ...]
    checks: list[RunCheck]
    metrics: list[RunMetric]
    history: list[MetricSeries]
    outputs: list[StepRecord] = field(default_factory=list)  # the step's output (its item's): what made it
    outputs_note: str | None = None  # why none is shown
    deployments: list[Deployment] = field(default_factory=list)  # this run's promotions the checks gated

    @property
    def instance(self) -> str:
        """The task instance as every place names it: ``evaluate.checks[2:us]`` for an item (its
        label from the rows it recorded; none recorded, the map index alone)."""
        labels = [c.result.item_label for c in self.checks] + [m.item_label for m in self.metrics]
        return item_name(self.task_id, self.map_index, next((label for label in labels if label), None))

    @property
    def other_runs(self) -> list[str]:
        """Runs other than this one that wrote the rows shown (a later run of the same date)."""
        runs = {c.result.run_id for c in self.checks} | {m.point.run_id for m in self.metrics}
        return sorted(r for r in runs if r and r != self.run_id)


def task_scope(pipeline: Pipeline, task_id: str) -> tuple[list[str], tuple[str, ...], Role]:
    """Which step, tables and check rows a task instance's page shows, as the task's facts say: a
    checks task its step's checks, a metrics task its metrics, a condition its step's `when:`
    verdict; nothing for other tasks (they record no results)."""
    task = pipeline.tasks.get(task_id)
    if task is None:
        return [], (), Role.CHECK
    if task.role == TaskRole.CHECKS:
        return [task.step], (CHECKS_TABLE,), Role.CHECK
    if task.role == TaskRole.METRICS:
        return [task.step], (METRICS_TABLE,), Role.CHECK
    return [task.step], (CHECKS_TABLE,), Role.WHEN


def load_task(
    history: ResultsHistory, pipeline: Pipeline, run_id: str, task_id: str, logical_date: datetime.datetime,
    map_index: int | None,
) -> TaskPage:  # fmt: skip
    """One task instance's results on its run's date, failing-row samples included, the recent
    history of its metrics, and the promotion attempts of its step in this run that its results
    gated (one query per table, one for the history, one for the attempts)."""
    steps, tables, role = task_scope(pipeline, task_id)
    if not tables:
        return TaskPage(pipeline, run_id, task_id, logical_date, map_index, steps, tables, [], [], [])
    recent: list[MetricSeries] = []
    with history.reading():  # one connection, one snapshot
        checks, metrics = history.run_results(pipeline.dag_id, logical_date, steps, map_index, pipeline.sensitive,
                                              tables, role=role)  # fmt: skip
        if pipeline.withheld.intersection(steps):  # its sensitive columns are not known: no sample is shown
            checks = [dataclasses.replace(check, sample=None) for check in checks]
        if METRICS_TABLE in tables and metrics:
            window = Window(step=steps[0], end=logical_date + datetime.timedelta(microseconds=1))
            found = history.metric_series(pipeline.dag_id, window, limit=50, points=TASK_HISTORY_POINTS)
            recent = [s for s in found.items if map_index is None or s.map_index == map_index]
        # what these results gated: the step's promotion attempts in this run (none without `serve:`)
        gated = history.deployments(pipeline.dag_id, step=steps[0], run_id=run_id) if steps else []
    return TaskPage(pipeline, run_id, task_id, logical_date, map_index, steps, tables, checks, metrics, recent,
                    deployments=gated)  # fmt: skip


def load_outputs(
    pipeline: Pipeline, run_id: str, task_id: str, map_index: int | None
) -> tuple[list[StepRecord], str | None]:
    """The manifest and provenance of the output of the step a task records results of, in this
    run (``client.provenance``), from the store the spec names (else ``$AQ_ARTIFACTS`` here); a
    note when there is none or it cannot be read. Never raises: the results are shown anyway."""
    task = pipeline.tasks.get(task_id)
    if task is None:
        return [], None
    root = artifacts_root(pipeline.artifacts)
    try:
        records = output_records(root, pipeline.dag_id, run_id, task.step, map_index)
    except Exception as error:  # a store that cannot be reached from here: a note, never a failed page
        return [], f"The output of step `{task.step}` could not be read from the artifact store {root} " \
                   f"({type(error).__name__})."  # fmt: skip
    if not records:
        return [], f"Step `{task.step}` left no output in the artifact store {root} for this run (a `table:` " \
                   "step's data stays in the warehouse; a step that did not run has none)."  # fmt: skip
    return records, None


def render_task(view: TaskPage, base: str) -> str:
    charts_by_key = {
        series.key: Markup(charts.metric_chart(series, mark=view.logical_date))  # noqa: S704 - escaped inside
        for series in view.history
    }
    return render("quality_task.html.j2", base=base, view=view, pipeline=view.pipeline, charts=charts_by_key,
                  series_label=series_label)  # fmt: skip


# --- the overview -------------------------------------------------------------------------------


@dataclass
class OverviewRow:
    dag_id: str
    summary: Summary | None = None
    problem: str | None = None  # why its results could not be read


def render_overview(rows: Sequence[OverviewRow], base: str, page: int, has_more: bool, total: int) -> str:
    return render(
        "quality_overview.html.j2",
        base=base,
        rows=rows,
        page=page,
        total=total,
        previous_page=path(base, "", page=page - 1) if page > 1 else None,
        next_page=path(base, "", page=page + 1) if has_more else None,
    )


def render_message(title: str, message: str, base: str, detail: str | None = None, dag_id: str | None = None) -> str:
    """A page that only says something: an empty state, a 404, a warehouse that cannot be read."""
    return render("quality_message.html.j2", base=base, title=title, message=message, detail=detail, dag_id=dag_id)


# --- JSON -----------------------------------------------------------------------------------------


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def check_json(row: CheckResult) -> dict[str, Any]:
    return {"logical_date": _iso(row.logical_date), "step": row.step, "map_index": row.map_index,
            "item_label": row.item_label, "name": row.name, "role": str(row.role), "kind": row.kind,
            "severity": row.severity,
            "outcome": row.outcome, "verdict": row.verdict, "failing_rows": row.failing_rows,
            "total_rows": row.total_rows, "message": row.message, "run_id": row.run_id}  # fmt: skip


def point_json(point: MetricPoint) -> dict[str, Any]:
    return {"logical_date": _iso(point.logical_date), "value": point.value, "outcome": point.outcome,
            "broken": point.broken, "message": point.message, "run_id": point.run_id,
            "bounds": point.bounds.as_dict()}  # fmt: skip


def series_json(series: MetricSeries) -> dict[str, Any]:
    return {"step": series.step, "map_index": series.map_index, "item_label": series.item_label,
            "name": series.name, "kind": series.kind,
            "points": [point_json(p) for p in series.points]}  # fmt: skip


def page_json(page: Page, items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"items": list(items), "offset": page.offset, "limit": page.limit, "total": page.total,
            "has_more": page.has_more}  # fmt: skip


def promotions_json(endpoints: Sequence[Deployment], promotions: Sequence[GatedAttempt]) -> dict[str, Any]:
    """A pipeline's endpoints and newest attempts, each attempt with its gating verdicts."""
    attempts = [{**p.deployment.as_dict(), "gates": [check_json(c.result) for c in p.checks],
                 "gate_metrics": [{"step": m.step, "name": m.name, **point_json(m.point)} for m in p.metrics]}
                for p in promotions]  # fmt: skip
    return {"endpoints": [e.as_dict() for e in endpoints], "attempts": attempts}


def task_json(view: TaskPage) -> dict[str, Any]:
    checks = []
    for check in view.checks:
        sample = check.sample.as_dict() if check.sample is not None else None
        checks.append({**check_json(check.result), "try_number": check.try_number, "sample": sample})
    metrics = [{"step": m.step, "map_index": m.map_index, "item_label": m.item_label, "name": m.name, "kind": m.kind,
                "try_number": m.try_number, **point_json(m.point)} for m in view.metrics]  # fmt: skip
    return {"dag_id": view.pipeline.dag_id, "run_id": view.run_id, "task_id": view.task_id,
            "logical_date": _iso(view.logical_date), "map_index": view.map_index, "steps": view.steps,
            "checks": checks, "metrics": metrics, "outputs": [r.as_json() for r in view.outputs],
            "outputs_note": view.outputs_note,
            "deployments": [d.as_dict() for d in view.deployments]}  # fmt: skip
