"""The writer of the results tables in the team's warehouse: ``aq_check_results`` and
``aq_metric_results`` (their rows: :mod:`aq_airflow.results.rows`).

Created on first use (:mod:`aq_airflow.results.migrations`). A task's rows are keyed by (dag_id,
logical_date, step, map_index), and in the checks table by role too (a step's checks and its
`when:` verdict are two sets), not by run id: a retry, a cleared task or a whole new run of the same
date (``aq-airflow run --date``, a backfill re-run) replaces that date's rows as a set in one
transaction (delete, then insert), so a date never holds two verdicts and readers never see half a
set. ``run_id`` and ``try_number`` stay columns, saying which run and try wrote the rows.

The lookups here are the ones the tasks make while they run, after :meth:`ResultsStore.ensure_tables`
(so on tables of this release): learned bounds' history (:meth:`ResultsStore.metric_history`) and
what a `when:` condition reads. The read model of the CLI and the UI is
:class:`aq_airflow.results.history.ResultsHistory`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

from aq_airflow.results import migrations
from aq_airflow.results.rows import (
    CHECKS_TABLE,
    KEY,
    KEY_DEFAULTS,
    METRICS_TABLE,
    CheckRow,
    MetricRow,
    naive_utc,
    row_type,
)
from aq_airflow.results.statements import Statement, Statements
from aq_airflow.warehouse import Warehouse


class ResultsStore:
    """Writes the results tables (in ``schema``, or the connection's default) through a
    warehouse adapter, and makes the lookups the tasks need."""

    def __init__(self, warehouse: Warehouse, schema: str | None = None):
        self.warehouse = warehouse
        self.schema = schema
        self.statements = Statements(warehouse, schema)

    @classmethod
    def of(cls, hook, schema: str | None) -> ResultsStore:
        """The results tables in the warehouse of a DbApiHook (in ``schema``, or its default)."""
        return cls(Warehouse.of(hook), schema)

    @property
    def placeholder(self) -> str:
        return self.warehouse.placeholder

    def ensure_tables(self, verdicts: bool = False) -> None:
        """Create the tables, or bring tables of earlier releases to this one's shape
        (:func:`aq_airflow.results.migrations.ensure_tables`: additive, idempotent; ``verdicts``:
        a `when:` task's, which also moves verdicts an older worker wrote since)."""
        migrations.ensure_tables(self.statements, verdicts)

    def replace(
        self, table: str, key: Mapping[str, Any], rows: Sequence[CheckRow | MetricRow | Mapping[str, Any]],
        items: int | None = None,
    ) -> None:  # fmt: skip
        """Replace the rows of ``key`` (:data:`~aq_airflow.results.rows.KEY`; a checks key's role
        is ``check`` unless it says) with ``rows``, atomically: whichever run or try wrote them
        before, the date keeps one set. ``items``: a `foreach:` step's item count in this run;
        rows of its step and date at a map index past it (a run of the date that had more items)
        go too, so the date holds this run's items only."""
        kind = row_type(table)
        key = {**KEY_DEFAULTS[table], **key}
        missing = [k for k in KEY[table] if key.get(k) is None]
        if missing:
            raise ValueError(f"a results key needs {', '.join(KEY[table])}; missing: {', '.join(missing)}")
        if "logical_date" in key:
            key["logical_date"] = naive_utc(key["logical_date"])
        typed = [row if isinstance(row, kind) else kind.of(row) for row in rows]
        statements = [self.statements.delete_key(table, key)]
        if items is not None:
            statements.append(self.statements.delete_items_past(table, key, items))
        insert = self.warehouse.render(self.statements.insert(table).expression)
        with self.warehouse.writing() as session:
            for statement in statements:
                session.execute(statement.expression, statement.params)
            if typed:
                session.executemany(insert, [row.values() for row in typed])

    def _fetch(self, statement: Statement) -> list[tuple]:
        with self.warehouse.reading() as session:
            return session.rows(statement.expression, statement.params)

    def metric_history(
        self, dag_id: str, step: str, name: str, before: datetime.datetime, limit: int, map_index: int = -1
    ) -> list[float]:
        """What a learned bound learns from, newest first: for each logical date strictly before
        ``before`` (never the date being judged, never a later one: a backfill learns only from
        its past), the date's latest row (its current verdict, whichever run wrote it), and only
        if that row passed (a failed value never teaches the bound its own drift). At most
        ``limit`` values, one per date."""
        rows = self._fetch(self.statements.metric_history(dag_id, step, name, map_index, before, limit))
        return [float(row[0]) for row in rows]

    def run_result(
        self, table: str, dag_id: str, run_id: str, step: str, name: str, logical_date: datetime.datetime,
        map_index: int = -1,
    ) -> tuple[Any, str] | None:  # fmt: skip
        """(value or None, outcome) of one check or metric as a run recorded it for its date
        (`when:` conditions read this run's results); None when the run recorded none."""
        rows = self._fetch(self.statements.run_result(table, dag_id, run_id, step, name, map_index, logical_date))
        return (rows[0][0], rows[0][1]) if rows else None

    def champion(
        self, dag_id: str, step: str, metric_step: str, name: str, before: datetime.datetime, map_index: int = -1
    ) -> tuple[datetime.datetime, Any] | None:
        """(date, value) of metric ``metric_step.name`` on the latest logical date before
        ``before`` on which ``step``'s `when:` condition held (`{recorded: champion}`); None when
        no earlier date's condition held."""
        dates = self._fetch(self.statements.champion_date(dag_id, step, map_index, before))
        if not dates:
            return None
        rows = self._fetch(self.statements.metric_value(dag_id, metric_step, name, map_index, dates[0][0]))
        return dates[0][0], (rows[0][0] if rows else None)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def result_row(outcome, common: Mapping[str, Any], table: str = CHECKS_TABLE) -> CheckRow | MetricRow:
    """The row of ``table`` a quality outcome (``aq_airflow.quality.evaluate.Outcome``) is
    recorded as, with the columns every row of its task shares (``common``)."""
    fields = {
        **common,
        "name": outcome.name,
        "kind": outcome.kind,
        "outcome": outcome.outcome,
        "severity": outcome.severity,
        "message": outcome.message,
        "expected": _json(outcome.expected),
    }
    if table == METRICS_TABLE:
        return MetricRow.of({**fields, "value": outcome.value})
    return CheckRow.of({**fields, "observed": _json(outcome.observed), "failing_rows": outcome.failing_rows,
                        "total_rows": outcome.rows, "sample": _json(outcome.sample),
                        "details": _json(outcome.details or None)})  # fmt: skip
