"""The results tables in the team's warehouse: ``aq_check_results`` and ``aq_metric_results``.

Created on first use. A task's rows are keyed by (dag_id, logical_date, step, map_index), not
by run id: a retry, a cleared task or a whole new run of the same date (``aq-airflow run --date``,
a backfill re-run) replaces that date's rows as a set in one transaction (delete, then insert),
so a date never holds two verdicts and readers never see half a set. ``run_id`` and
``try_number`` stay columns, saying which run and try wrote the rows. Tables made by earlier
versions (keyed by run id, same columns) need no migration: the key is only what the DELETE
matches, and a date's old duplicates go with its next write. Columns added since (``item_label``)
are added to an older table by its first write here (:meth:`ResultsStore.ensure_tables`: additive,
idempotent); readers never migrate, and read a table without them as NULL.

Metric history for learned bounds is read from the same table: the latest row of each earlier
logical date, kept only if it passed (see :meth:`ResultsStore.metric_history`).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from aq_airflow.warehouse import Warehouse

CHECKS_TABLE = "aq_check_results"
METRICS_TABLE = "aq_metric_results"
# what a task's rows are replaced by: one set per date, whichever run (or try) wrote it last
KEY = ("dag_id", "logical_date", "step", "map_index")

_COMMON = [
    ("dag_id", "VARCHAR"), ("run_id", "VARCHAR"), ("step", "VARCHAR"), ("name", "VARCHAR"), ("kind", "VARCHAR"),
    ("outcome", "VARCHAR"), ("severity", "VARCHAR"), ("message", "VARCHAR"),
]  # fmt: skip
_TRAILER = [
    ("map_index", "INTEGER"), ("try_number", "INTEGER"), ("spec_hash", "VARCHAR"), ("image", "VARCHAR"),
    ("logical_date", "TIMESTAMP"), ("created_at", "TIMESTAMP"),
    ("item_label", "VARCHAR"),  # a `foreach:` item's label (artifacts.labels.item_label); NULL when not mapped
]  # fmt: skip
COLUMNS = {
    CHECKS_TABLE: [*_COMMON, ("observed", "VARCHAR"), ("expected", "VARCHAR"), ("failing_rows", "BIGINT"),
                   ("total_rows", "BIGINT"), ("sample", "VARCHAR"), ("details", "VARCHAR"), *_TRAILER],
    METRICS_TABLE: [*_COMMON, ("value", "DOUBLE"), ("expected", "VARCHAR"), *_TRAILER],
}  # fmt: skip
# A step's `when:` verdict is a row of aq_check_results under the step ``{step}.when`` (the id of
# its condition task), name and kind ``when``.
WHEN = "when"


def when_step(step: str) -> str:
    """The step a `when:` verdict of ``step`` is recorded under."""
    return f"{step}.{WHEN}"


def recorded_steps(step: str) -> tuple[str, str]:
    """The steps a step's rows are recorded under: its own, and its `when:` verdict's."""
    return step, when_step(step)


def step_of(recorded: str) -> str:
    """The pipeline step a recorded step belongs to (``notify.when`` is step ``notify``; step
    names hold no dots)."""
    return recorded.split(".", 1)[0]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def _value(value: Any) -> Any:
    return naive_utc(value) if isinstance(value, datetime.datetime) else value


class ResultsStore:
    """Reads and writes the results tables (in ``schema``, or the connection's default) through
    a warehouse adapter."""

    def __init__(self, warehouse: Warehouse, schema: str | None = None):
        self.warehouse = warehouse
        self.schema = schema

    @classmethod
    def of(cls, hook, schema: str | None) -> ResultsStore:
        """The results tables in the warehouse of a DbApiHook (in ``schema``, or its default)."""
        return cls(Warehouse.of(hook), schema)

    @property
    def placeholder(self) -> str:
        return self.warehouse.placeholder

    def _name(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def _table(self, name: str) -> str:
        return self.warehouse.quote_table(self._name(name))

    def _ddl(self) -> list[str]:
        statements = []
        if self.schema:
            schema = exp.Create(this=self.warehouse.table(self.schema), kind="SCHEMA", exists=True)
            statements.append(self.warehouse.render(schema))
        for name, columns in COLUMNS.items():
            defs = [exp.ColumnDef(this=exp.to_identifier(c), kind=self.warehouse.portable_type(k)) for c, k in columns]
            table = exp.Schema(this=self.warehouse.table(self._name(name)), expressions=defs)
            statements.append(self.warehouse.render(exp.Create(this=table, kind="TABLE", exists=True)))
        return statements

    def ensure_tables(self) -> None:
        """Create the schema and tables, or add to tables of earlier versions the columns they
        lack (columns added since are last in :data:`COLUMNS`, where ADD COLUMN puts them).
        Columns are looked up first, so a table that has them takes no ALTER (no lock); ``IF NOT
        EXISTS``, where the warehouse has it, keeps two first writes at once from failing."""
        with self.warehouse.transaction(begin=False) as cursor:
            for statement in self._ddl():
                cursor.execute(statement)
            for name in COLUMNS:
                for statement in self._migrations(name, table_columns(cursor, self._table(name))):
                    cursor.execute(statement)

    def _migrations(self, table: str, present: set[str]) -> list[str]:
        """The ALTER TABLE statements that add to ``table`` the columns of :data:`COLUMNS` it lacks."""
        statements = []
        for column, kind in COLUMNS[table]:
            if column not in present:
                definition = exp.ColumnDef(this=exp.to_identifier(column), kind=self.warehouse.portable_type(kind),
                                           exists=self.warehouse.add_column_if_not_exists)  # fmt: skip
                alter = exp.Alter(this=self.warehouse.table(self._name(table)), kind="TABLE", actions=[definition])
                statements.append(self.warehouse.render(alter))
        return statements

    def replace(self, table: str, key: dict, rows: Sequence[dict], items: int | None = None) -> None:
        """Replace the rows of ``key``'s (dag_id, logical_date, step, map_index) with ``rows``,
        atomically: whichever run or try wrote them before, the date keeps one set. ``items``: a
        `foreach:` step's item count in this run; rows of its step and date at a map index past it
        (a run of the date that had more items) go too, so the date holds this run's items only."""
        missing = [k for k in KEY if key.get(k) is None]
        if missing:
            raise ValueError(f"a results key needs {', '.join(KEY)}; missing: {', '.join(missing)}")
        key = {**key, "logical_date": naive_utc(key["logical_date"])}
        target = self._table(table)
        p = self.placeholder
        names = [column for column, _ in COLUMNS[table]]
        where = " AND ".join(f"{k} = {p}" for k in KEY)
        marks = ", ".join([p] * len(names))
        insert = f"INSERT INTO {target} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608 - names are ours
        values = [tuple(_value(row.get(n)) for n in names) for row in rows]

        with self.warehouse.transaction() as cursor:
            cursor.execute(f"DELETE FROM {target} WHERE {where}", tuple(key[k] for k in KEY))  # noqa: S608
            if items is not None:
                past = f"dag_id = {p} AND logical_date = {p} AND step = {p} AND map_index >= {p}"
                stale = (key["dag_id"], key["logical_date"], key["step"], items)
                cursor.execute(f"DELETE FROM {target} WHERE {past}", stale)  # noqa: S608
            if values:
                cursor.executemany(insert, values)

    def metric_history(
        self, dag_id: str, step: str, name: str, before: datetime.datetime, limit: int, map_index: int = -1
    ) -> list[float]:
        """What a learned bound learns from, newest first: for each logical date strictly before
        ``before`` (never the date being judged, never a later one: a backfill learns only from
        its past), the date's latest row (its current verdict, whichever run wrote it), and only
        if that row passed (a failed value never teaches the bound its own drift). At most
        ``limit`` values, one per date."""
        p = self.placeholder
        latest = (
            f"SELECT value, outcome, logical_date, ROW_NUMBER() OVER (PARTITION BY logical_date "  # noqa: S608
            f"ORDER BY created_at DESC NULLS LAST, try_number DESC NULLS LAST) AS aq_rank "
            f"FROM {self._table(METRICS_TABLE)} "
            f"WHERE dag_id = {p} AND step = {p} AND name = {p} AND map_index = {p} AND logical_date < {p}"
        )
        query = (
            f"SELECT value FROM ({latest}) aq_latest "  # noqa: S608 - names are ours
            f"WHERE aq_rank = 1 AND outcome = 'passed' AND value IS NOT NULL "
            f"ORDER BY logical_date DESC LIMIT {int(limit)}"
        )
        _, rows = self.warehouse.fetch_all(query, (dag_id, step, name, map_index, naive_utc(before)))
        return [float(row[0]) for row in rows]

    def run_result(
        self, table: str, dag_id: str, run_id: str, step: str, name: str, logical_date: datetime.datetime,
        map_index: int = -1,
    ) -> tuple[Any, str] | None:  # fmt: skip
        """(value or None, outcome) of one check or metric as a run recorded it for its date
        (`when:` conditions read this run's results); None when the run recorded none."""
        p = self.placeholder
        value = "value" if table == METRICS_TABLE else "NULL"
        query = (
            f"SELECT {value}, outcome FROM {self._table(table)} WHERE dag_id = {p} AND run_id = {p} "  # noqa: S608
            f"AND step = {p} AND name = {p} AND map_index = {p} AND logical_date = {p} "
            f"ORDER BY created_at DESC NULLS LAST, try_number DESC NULLS LAST LIMIT 1"
        )
        _, rows = self.warehouse.fetch_all(query, (dag_id, run_id, step, name, map_index, naive_utc(logical_date)))
        return (rows[0][0], rows[0][1]) if rows else None

    def champion(
        self, dag_id: str, when_step: str, metric_step: str, name: str, before: datetime.datetime,
        map_index: int = -1,
    ) -> tuple[datetime.datetime, Any] | None:  # fmt: skip
        """(date, value) of metric ``metric_step.name`` on the latest logical date before
        ``before`` on which the condition recorded as step ``when_step`` held (`{recorded:
        champion}`); None when no earlier date's condition held."""
        p = self.placeholder
        held = (
            f"SELECT logical_date FROM {self._table(CHECKS_TABLE)} WHERE dag_id = {p} AND step = {p} "  # noqa: S608
            f"AND name = 'when' AND kind = 'when' AND outcome = 'passed' AND map_index = {p} AND logical_date < {p} "
            f"ORDER BY logical_date DESC LIMIT 1"
        )
        _, dates = self.warehouse.fetch_all(held, (dag_id, when_step, map_index, naive_utc(before)))
        if not dates:
            return None
        query = (
            f"SELECT value FROM {self._table(METRICS_TABLE)} WHERE dag_id = {p} AND step = {p} "  # noqa: S608
            f"AND name = {p} AND map_index = {p} AND logical_date = {p} "
            f"ORDER BY created_at DESC NULLS LAST, try_number DESC NULLS LAST LIMIT 1"
        )
        _, rows = self.warehouse.fetch_all(query, (dag_id, metric_step, name, map_index, dates[0][0]))
        return dates[0][0], (rows[0][0] if rows else None)

    def read(
        self, table: str, dag_id: str, step: str | None = None, last: int = 50, run_id: str | None = None,
        sensitive: dict[str, Sequence[str]] | None = None,
    ) -> tuple[list[str], list[tuple]]:  # fmt: skip
        """The newest rows of a pipeline (a step, a run) for ``aq-airflow results``: read through
        :class:`aq_airflow.results.history.ResultsHistory`, the read model the UI shares."""
        from aq_airflow.results.history import ResultsHistory

        return ResultsHistory(self).newest_rows(table, dag_id, step, last, run_id, sensitive)


def table_columns(cursor: Any, table: str) -> set[str]:
    """The (lower-case) column names of a quoted ``table``, from an empty SELECT's description:
    the same on every warehouse, no information_schema spelling needed."""
    cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")  # noqa: S608 - a quoted name of ours
    cursor.fetchall()
    return {str(column[0]).lower() for column in cursor.description or []}


def naive_utc(moment: datetime.datetime) -> datetime.datetime:
    """Naive UTC, the form every warehouse's TIMESTAMP takes as a parameter (and the results
    tables' timestamps are written in)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def utcnow() -> datetime.datetime:
    """Now, as naive UTC."""
    return naive_utc(datetime.datetime.now(datetime.timezone.utc))


def result_row(outcome, common: dict) -> dict:
    return {
        **common,
        "name": outcome.name,
        "kind": outcome.kind,
        "outcome": outcome.outcome,
        "severity": outcome.severity,
        "message": outcome.message,
        "observed": _json(outcome.observed),
        "expected": _json(outcome.expected),
        "failing_rows": outcome.failing_rows,
        "total_rows": outcome.rows,
        "sample": _json(outcome.sample),
        "details": _json(outcome.details or None),
        "value": outcome.value,
    }
