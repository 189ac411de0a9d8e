"""The read model of the results tables: what ``aq-airflow results`` prints and what the quality
pages of the Airflow UI show, read through this one module (its values: :mod:`.views`, its
statements: :mod:`.statements`).

Every read here:

- runs in a ``Warehouse.reading()`` session: a read-only transaction where the warehouse has one
  (DuckDB, PostgreSQL; Snowflake has none, its role is the limit), rolled back after; a page's
  reads share one session (:meth:`ResultsHistory.reading`), so they see one snapshot;
- passes every value (dag id, step, dates, run id) as a DB-API parameter; identifiers are the
  tables' own, normalized and quoted as every statement writes them;
- reads tables written by earlier releases as they are (readers never migrate): a column added
  since reads as NULL where the table lacks it (``item_label``), ``role`` as release N marked a
  condition's verdict (kind ``when``); a warehouse without ``aq_deployments`` (no `serve` task has
  run there yet) has no deployments;
- is bounded: pages of at most :data:`MAX_ROWS` rows or :data:`MAX_SERIES` series of at most
  :data:`MAX_POINTS` points, samples of at most :data:`SAMPLE_ROWS` rows per check;
- reads a date's *current* verdict: the latest row (by ``created_at``, then ``try_number``) of each
  (logical_date, step, map_index, name, role), as learned bounds do (a re-run of a date replaces
  its rows, and tables written by earlier versions may still hold a date's older duplicates).

One query per table per page: a pipeline page of 20 metric charts over a year of dates is one
SELECT of at most 20 x 400 rows, whatever the number of metrics and dates in the table.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlglot import exp

from aq_airflow.results.migrations import missing
from aq_airflow.results.rows import CHECKS_TABLE, COLUMNS, DEPLOYMENTS_TABLE, METRICS_TABLE, Outcome, Role
from aq_airflow.results.statements import Binder, Present, Statement
from aq_airflow.results.store import ResultsStore
from aq_airflow.results.views import (
    DEPLOYMENT_COLUMNS,
    SAMPLE_ROWS,
    Bounds,
    CheckResult,
    CheckSeries,
    Deployment,
    MetricPoint,
    MetricSeries,
    Page,
    RunCheck,
    RunMetric,
    Sample,
    Summary,
    Window,
    _float,
    _int,
    _when,
    items_in_order,
    map_index_of,
    parse_sample,
    role_of,
    verdict,
)
from aq_airflow.warehouse import FailureKind
from aq_airflow.warehouse.session import ReadSession

__all__ = [
    "DEFAULT_ROWS",
    "DEFAULT_SERIES",
    "MAX_DAG_IDS",
    "MAX_POINTS",
    "MAX_ROWS",
    "MAX_SERIES",
    "SAMPLE_ROWS",
    "Bounds",
    "CheckResult",
    "CheckSeries",
    "Deployment",
    "MetricPoint",
    "MetricSeries",
    "Page",
    "ResultsHistory",
    "RunCheck",
    "RunMetric",
    "Sample",
    "Summary",
    "Window",
    "map_index_of",
    "parse_sample",
    "verdict",
]

MAX_ROWS = 500  # rows per page of a flat listing
DEFAULT_ROWS = 100
MAX_SERIES = 50  # charts (or check strips) per page
DEFAULT_SERIES = 20
MAX_POINTS = 400  # the newest points of each series a page reads (a year of daily runs and more)
MAX_DAG_IDS = 500  # pipelines summarized by one overview query
DEFAULT_DEPLOYMENTS = 20  # promotion attempts a listing shows
READ_WAIT_SECONDS = 5.0  # how long a read waits for a file-backed DuckDB's lock (a task writing)

_CHECK_COLUMNS = ("logical_date", "step", "map_index", "name", "kind", "severity", "outcome", "failing_rows",
                  "total_rows", "message", "run_id", "item_label", "role")  # fmt: skip
_METRIC_COLUMNS = ("logical_date", "step", "map_index", "name", "kind", "severity", "outcome", "value", "message",
                   "expected", "run_id", "item_label")  # fmt: skip
_RUN_CHECK_COLUMNS = (*_CHECK_COLUMNS, "sample", "try_number")
_RUN_METRIC_COLUMNS = (*_METRIC_COLUMNS, "try_number")


def _clamp(value: int | None, default: int, most: int) -> int:
    if value is None:
        return default
    return max(1, min(int(value), most))


def _offset(value: int | None) -> int:
    return max(0, int(value or 0))


def _one_session(method):
    """A read whose queries (a table's columns, then its rows) share one session and snapshot
    (:meth:`ResultsHistory.reading`; inside a block already, that block's)."""

    @functools.wraps(method)
    def read(self: ResultsHistory, *args: Any, **kwargs: Any) -> Any:
        with self.reading():
            return method(self, *args, **kwargs)

    return read


class ResultsHistory:
    """Reads the results tables of one warehouse (a :class:`ResultsStore`: adapter and schema)."""

    def __init__(self, store: ResultsStore, wait: float = READ_WAIT_SECONDS):
        self.store = store
        self.statements = store.statements
        self.wait = wait
        self._session: ReadSession | None = None  # the session of the current `reading()` block
        self._complete: set[str] = set()  # tables known to have every column of this version

    @property
    def warehouse(self):
        return self.store.warehouse

    # --- the one way a query runs ---------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[ResultsHistory]:
        """One ``Warehouse.reading()`` session for the reads inside the block: a page's queries
        see one snapshot and pay one connect (a DuckDB file's open, a PostgreSQL handshake)."""
        if self._session is not None:  # already inside one
            yield self
            return
        with self.warehouse.reading(wait=self.wait) as session:
            self._session = session
            try:
                yield self
            finally:
                self._session = None

    @_one_session
    def fetch(self, sql: str | exp.Expression | Statement, parameters: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one SELECT in this block's session (else in a session of its own)."""
        assert self._session is not None
        if isinstance(sql, Statement):
            return self._session.rows(sql.expression, sql.params)
        return self._session.rows(sql, parameters)

    @_one_session
    def _present(self, table: str) -> Present:
        """The columns ``table`` has, or None when it has all of this version's. A table made by
        an earlier version lacks the columns added since, until a task writes to it; only a
        table found complete is remembered."""
        if table in self._complete:
            return None
        assert self._session is not None
        lacking = missing(self._session, self.statements, table)
        if not lacking:
            self._complete.add(table)
            return None
        return {column for column, _ in COLUMNS[table]} - set(lacking)

    def _where(self, table: str, dag_id: str, present: Present, window: Window | None = None, **given: Any):
        """The WHERE of a read, bound where the statement reads it."""
        window = window or Window()

        def where(bind: Binder) -> exp.Expression:
            return self.statements.filters(bind, table, dag_id, present, step=window.step, start=window.start,
                                           end=window.end, **given)  # fmt: skip

        return where

    @_one_session
    def _series_rows(
        self, table: str, columns: Sequence[str], dag_id: str, window: Window | None, limit: int, offset: int,
        points: int, messages: bool = True,
    ) -> tuple[list[tuple], int | None]:  # fmt: skip
        """The rows of series ``offset+1 .. offset+limit``, oldest date first; and the number of
        series (:meth:`~aq_airflow.results.statements.Statements.series`)."""
        present = self._present(table)
        statement = self.statements.series(table, columns, present, self._where(table, dag_id, present, window),
                                           offset, offset + limit, points, messages)  # fmt: skip
        rows = self.fetch(statement)
        rows.sort(key=lambda row: (row[-2], row[0]))  # the series in key order, each oldest date first
        total = int(rows[0][-1]) if rows else None
        return [row[:-2] for row in rows], total

    # --- the pipeline page ------------------------------------------------------------------

    def check_series(
        self, dag_id: str, window: Window | None = None, limit: int | None = None, offset: int | None = None,
        points: int = MAX_POINTS, messages: bool = True,
    ) -> Page:  # fmt: skip
        """A page of checks (``CheckSeries``: each check of each step, map index and role, by
        step, map index, name and role), each with its verdict on every date of the window (the
        newest ``points``), oldest first. ``messages=False`` leaves passed rows' messages out."""
        limit, offset = _clamp(limit, DEFAULT_SERIES, MAX_SERIES), _offset(offset)
        rows, total = self._series_rows(CHECKS_TABLE, _CHECK_COLUMNS, dag_id, window, limit, offset,
                                        _clamp(points, MAX_POINTS, MAX_POINTS), messages)  # fmt: skip
        series: dict[tuple, CheckSeries] = {}
        for row in rows:
            cell = CheckResult.of(row)
            key = (cell.step, cell.map_index, cell.name, cell.role)
            if key not in series:
                series[key] = CheckSeries(cell.step, cell.map_index, cell.name, cell.kind, role=cell.role)
            series[key].cells.append(cell)
            series[key].kind, series[key].item_label = cell.kind, cell.item_label
        return Page(list(series.values()), offset, limit, total if rows else (0 if not offset else None))

    def metric_series(
        self, dag_id: str, window: Window | None = None, limit: int | None = None, offset: int | None = None,
        points: int = MAX_POINTS, messages: bool = True,
    ) -> Page:  # fmt: skip
        """A page of metrics (``MetricSeries``: each metric of each step and map index, by step,
        map index and name), each with its value, outcome and bounds on every date of the window
        (the newest ``points``), oldest first. ``messages=False`` leaves passed rows' messages out."""
        limit, offset = _clamp(limit, DEFAULT_SERIES, MAX_SERIES), _offset(offset)
        rows, total = self._series_rows(METRICS_TABLE, _METRIC_COLUMNS, dag_id, window, limit, offset,
                                        _clamp(points, MAX_POINTS, MAX_POINTS), messages)  # fmt: skip
        series: dict[tuple, MetricSeries] = {}
        for row in rows:
            date, step, index, name, kind, severity, outcome, value, message, expected, run_id, label = row
            index = _int(index) if index is not None else -1
            key = (step, index, name)
            if key not in series:
                series[key] = MetricSeries(step, index, name, kind)
            series[key].kind, series[key].item_label = kind, label
            series[key].points.append(
                MetricPoint(_when(date), _float(value), outcome, severity, message, run_id, Bounds.parse(expected))
            )
        return Page(list(series.values()), offset, limit, total if rows else (0 if not offset else None))

    @_one_session
    def check_timeline(
        self, dag_id: str, window: Window | None = None, limit: int | None = None, offset: int | None = None
    ) -> Page:
        """Check verdicts as rows (``CheckResult``), newest date first, then step, map index and
        name: each (logical_date, step, map_index, name, role)'s latest row."""
        limit, offset = _clamp(limit, DEFAULT_ROWS, MAX_ROWS), _offset(offset)
        present = self._present(CHECKS_TABLE)
        where = self._where(CHECKS_TABLE, dag_id, present, window)
        statement = self.statements.timeline(CHECKS_TABLE, _CHECK_COLUMNS, present, where, limit + 1, offset)
        rows = self.fetch(statement)
        items = [CheckResult.of(row) for row in rows[:limit]]
        known = (rows or not offset) and len(rows) <= limit  # past the end the total is unknown
        total = offset + len(rows) if known else None
        return Page(items, offset, limit, total)

    def steps(self, dag_id: str) -> list[str]:
        """Every step with recorded results, sorted."""
        return sorted(str(row[0]) for row in self.fetch(self.statements.steps(dag_id)) if row[0] is not None)

    # --- one run (a task instance's page) ------------------------------------------------------

    @_one_session
    def run_results(
        self, dag_id: str, logical_date: datetime.datetime | None, steps: Sequence[str] | None = None,
        map_index: int | None = None, sensitive: dict[str, Iterable[str]] | None = None,
        tables: Sequence[str] = (CHECKS_TABLE, METRICS_TABLE), sample_rows: int = SAMPLE_ROWS,
        role: Role | None = None, dated_steps: Sequence[tuple[datetime.datetime, str]] | None = None,
    ) -> tuple[list[RunCheck], list[RunMetric]]:  # fmt: skip
        """The checks and metrics one logical date recorded (its latest rows), for some steps, one
        map index and one role of check rows (all when None), with the failing-row samples of
        failed checks (at most ``sample_rows`` each; columns in ``sensitive[step]`` dropped).
        ``dated_steps`` (with ``logical_date`` None): those of several (date, step) pairs at once,
        one query per table (the gates of a page's promotion attempts)."""
        if (steps is not None and not steps) or (dated_steps is not None and not dated_steps):
            return [], []
        given = {"logical_date": logical_date, "steps": steps, "map_index": map_index, "dated_steps": dated_steps}
        checks: list[RunCheck] = []
        metrics: list[RunMetric] = []
        if CHECKS_TABLE in tables:
            present = self._present(CHECKS_TABLE)
            where = self._where(CHECKS_TABLE, dag_id, present, role=role, **given)
            for row in self.fetch(self.statements.run_rows(CHECKS_TABLE, _RUN_CHECK_COLUMNS, present, where)):
                result = CheckResult.of(row)
                sample = None
                if result.outcome != Outcome.PASSED:
                    hidden = (sensitive or {}).get(result.step, ())
                    sample = parse_sample(row[13], hidden, sample_rows)
                checks.append(RunCheck(result, _int(row[14]), sample))
        if METRICS_TABLE in tables:
            present = self._present(METRICS_TABLE)
            where = self._where(METRICS_TABLE, dag_id, present, **given)
            for row in self.fetch(self.statements.run_rows(METRICS_TABLE, _RUN_METRIC_COLUMNS, present, where)):
                date, step, index, name, kind, severity, outcome, value, message, expected, run_id, label, tries = row
                point = MetricPoint(_when(date), _float(value), outcome, severity, message, run_id,
                                    Bounds.parse(expected))  # fmt: skip
                metrics.append(RunMetric(step, _int(index) if index is not None else -1, name, kind, point,
                                         _int(tries), label))  # fmt: skip
        return checks, metrics

    def failing_samples(
        self, dag_id: str, logical_date: datetime.datetime, steps: Sequence[str] | None = None,
        map_index: int | None = None, sensitive: dict[str, Iterable[str]] | None = None,
        sample_rows: int = SAMPLE_ROWS,
    ) -> list[RunCheck]:  # fmt: skip
        """The failed checks of one logical date that recorded failing rows, with those rows."""
        checks, _ = self.run_results(dag_id, logical_date, steps, map_index, sensitive, (CHECKS_TABLE,),
                                     sample_rows)  # fmt: skip
        return [check for check in checks if check.sample is not None]

    # --- the overview ---------------------------------------------------------------------------

    def overview(self, dag_ids: Sequence[str]) -> dict[str, Summary]:
        """Each pipeline's latest recorded logical date and its verdict counts, checks and
        metrics together (each check or metric counted once: its latest row of that date;
        conditions' verdicts date a pipeline but are not counted). Pipelines without rows are
        left out. One query for up to :data:`MAX_DAG_IDS` pipelines."""
        found: dict[str, Summary] = {}
        ids = list(dict.fromkeys(dag_ids))
        for start in range(0, len(ids), MAX_DAG_IDS):
            found.update(self._overview(ids[start : start + MAX_DAG_IDS]))
        return found

    @_one_session
    def _overview(self, dag_ids: list[str]) -> dict[str, Summary]:
        if not dag_ids:
            return {}
        counts: dict[str, dict[str, Any]] = {}
        statement = self.statements.overview(dag_ids, self._present(CHECKS_TABLE))
        for dag_id, date, outcome, severity, count in self.fetch(statement):
            entry = counts.setdefault(dag_id, {"logical_date": _when(date)})
            kind = str(verdict(outcome, severity))
            entry[kind] = entry.get(kind, 0) + int(count)
        unseen = [d for d in dag_ids if d not in counts]  # only conditions recorded
        if unseen:
            for dag_id, date in self.fetch(self.statements.newest_dates(unseen)):
                if date is not None:
                    counts[dag_id] = {"logical_date": _when(date)}
        return {dag_id: Summary(dag_id, **entry) for dag_id, entry in counts.items()}

    # --- promotions to endpoints (`serve:`) -------------------------------------------------------

    @_one_session
    def _deployment_rows(self, read: Any) -> list[Deployment]:
        """``read(present)``'s rows of ``aq_deployments`` as :class:`Deployment`; none when the
        table is not there (no `serve` task has written to this warehouse: readers never create it)."""
        try:
            present = self._present(DEPLOYMENTS_TABLE)
            rows = self.fetch(read(present))
        except Exception as error:
            if self.warehouse.failure_kind(error) != FailureKind.MISSING:
                raise
            return []
        return [Deployment.of(row) for row in rows]

    def _deployments_where(self, dag_id: str, present: Present, **given: Any):
        def where(bind: Binder) -> exp.Expression:
            return self.statements.filters(bind, DEPLOYMENTS_TABLE, dag_id, present, **given)

        return where

    def deployments(
        self, dag_id: str, endpoint: str | None = None, step: str | None = None, run_id: str | None = None,
        last: int | None = None, window: Window | None = None,
    ) -> list[Deployment]:  # fmt: skip
        """A pipeline's promotion attempts (of an endpoint, a step, a run, logical dates in the
        window), newest first: every attempt (each try has its row), at most ``last``
        (:data:`MAX_ROWS`)."""
        last = _clamp(last, DEFAULT_DEPLOYMENTS, MAX_ROWS)
        window = window or Window()
        given = {"endpoint": endpoint, "step": step or window.step, "run_id": run_id, "start": window.start,
                 "end": window.end}  # fmt: skip
        return self._deployment_rows(
            lambda present: self.statements.deployments(
                DEPLOYMENT_COLUMNS, present, self._deployments_where(dag_id, present, **given), last
            )
        )

    def endpoints(self, dag_id: str) -> list[Deployment]:
        """Each endpoint a pipeline promotes to, by name, as its latest attempt left it
        (:attr:`Deployment.serving`: the version it serves since)."""
        return self._deployment_rows(
            lambda present: self.statements.endpoints(
                DEPLOYMENT_COLUMNS, present, self._deployments_where(dag_id, present)
            )
        )

    # --- aq-airflow results ---------------------------------------------------------------------

    @_one_session
    def newest_rows(
        self, table: str, dag_id: str, step: str | None = None, last: int = 50, run_id: str | None = None,
        sensitive: dict[str, Iterable[str]] | None = None,
    ) -> tuple[list[str], list[tuple]]:  # fmt: skip
        """The newest rows of a pipeline (a step, a run) as ``aq-airflow results`` prints them:
        every row, newest written first (not one per date: the CLI shows what was written). A
        step's check rows include its `when:` verdict (role ``when``). A `foreach:` step's rows
        carry their item's ``map_index`` (-1 for a step that is not mapped) and ``item_label``; a
        check's ``sample`` is parsed (a :class:`Sample` or None, at most :data:`SAMPLE_ROWS` rows,
        the columns in ``sensitive[step]`` dropped)."""
        if table not in (CHECKS_TABLE, METRICS_TABLE):
            raise ValueError(f"not a results table: {table}")
        columns = ["logical_date", "run_id", "step", "map_index", "item_label", "name", "kind"]
        if table == METRICS_TABLE:
            columns += ["outcome", "severity", "value"]
        else:
            columns += ["role", "outcome", "severity", "failing_rows", "sample"]
        columns += ["message"]
        present = self._present(table)
        where = self._where(table, dag_id, present, Window(step=step or None), run_id=run_id or None)
        try:
            rows = self.fetch(self.statements.newest_rows(table, columns, present, where, last))
        except Exception as error:  # a date the driver cannot convert (year 20000, BC): read as text
            if self.warehouse.failure_kind(error) != FailureKind.UNREADABLE:
                raise
            as_text = self.statements.newest_rows(table, columns, present, where, last, text=("logical_date",))
            try:  # (after an error of the server's own, the session opens a new transaction)
                rows = self.fetch(as_text)
            except Exception:
                raise error from None
        if "role" in columns:
            at, kind = columns.index("role"), columns.index("kind")
            rows = [(*row[:at], str(role_of(row[at], row[kind])), *row[at + 1 :]) for row in rows]
        if "sample" in columns:
            at, where_step = columns.index("sample"), columns.index("step")
            hidden = sensitive or {}
            rows = [(*row[:at], parse_sample(row[at], hidden.get(_step(row[where_step]), ())), *row[at + 1 :])
                    for row in rows]  # fmt: skip
        return columns, items_in_order(columns, rows)


def _step(recorded: Any) -> str:
    """A row's step; a NULL or non-text step (a table made by hand) is no step."""
    return recorded if isinstance(recorded, str) else ""
