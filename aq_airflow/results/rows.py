"""What the results tables hold, defined once: the tables, their columns and SQL types, the rows
the store writes, and the words a row's ``outcome``, ``severity`` and ``role`` may hold.

The quality engine, the operators, the store, the read model, the CLI and the UI all spell an
outcome, a severity or a role through these enums (a ``StrEnum`` is the text it stands for, so
rows written before them read back equal). Column order here is the tables' order: a column added
since the first release is last, where ``ALTER TABLE ... ADD COLUMN`` puts it
(:mod:`aq_airflow.results.migrations`).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from aq_airflow.plan.model import Severity

__all__ = [
    "CHECKS_TABLE",
    "COLUMNS",
    "DEPLOYMENTS_TABLE",
    "KEY",
    "METRICS_TABLE",
    "CheckRow",
    "DeploymentOutcome",
    "DeploymentRow",
    "MetricRow",
    "Outcome",
    "Role",
    "Severity",
    "Verdict",
    "naive_utc",
    "row_type",
    "utcnow",
]

CHECKS_TABLE = "aq_check_results"
METRICS_TABLE = "aq_metric_results"
DEPLOYMENTS_TABLE = "aq_deployments"


class Outcome(StrEnum):
    """What a check, a metric or a `when:` condition recorded."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # could not be judged (the query failed, the value is NULL)
    SKIPPED = "skipped"  # a `when:` condition that did not hold: its step was skipped


class Role(StrEnum):
    """Which job a row of ``aq_check_results`` records. A step's checks are ``check``; its
    `when:` condition's verdict is ``when``, under the step's own name (its name and kind are
    ``when`` too). Tables of release N recorded a verdict under the step ``<step>.when``, without
    this column; :mod:`aq_airflow.results.migrations` moves them. New jobs (serve, deploy) are
    new members, never a new spelling of the step."""

    CHECK = "check"
    WHEN = "when"


class Verdict(StrEnum):
    """A row as the CLI and the UI colour and count it."""

    PASSED = "passed"
    WARNING = "warning"  # failed, warning severity
    FAILED = "failed"  # failed, error severity
    ERROR = "error"
    OTHER = "other"  # a condition's ``skipped``, anything newer

    @classmethod
    def of(cls, outcome: str | None, severity: str | None) -> Verdict:
        if outcome == Outcome.PASSED:
            return cls.PASSED
        if outcome == Outcome.FAILED:
            return cls.WARNING if severity == Severity.WARNING else cls.FAILED
        if outcome == Outcome.ERROR:
            return cls.ERROR
        return cls.OTHER


class DeploymentOutcome(StrEnum):
    """What a `serve:` attempt did to its endpoint (a row of ``aq_deployments``)."""

    PROMOTED = "promoted"  # the new version answers the smoke test and is the endpoint's model
    UNCHANGED = "unchanged"  # the version was the endpoint's already: nothing changed, the smoke test passed
    ROLLED_BACK = "rolled_back"  # the endpoint was changed, failed, and was put back on its previous model
    FAILED = "failed"  # failed before the endpoint changed (writing the model, the request), or could not be put back


@dataclass(frozen=True, kw_only=True)
class _Row:
    """A row of a results table: a field per column, in table order; each field's ``sql`` is the
    column's type (portable spelling: DuckDB's, rendered per dialect)."""

    table: ClassVar[str]

    def values(self) -> tuple[Any, ...]:
        """The row in column order, as DB-API parameters (an enum as its text, a moment as naive UTC)."""
        return tuple(_parameter(getattr(self, name)) for name, _ in COLUMNS[self.table])

    @classmethod
    def of(cls, mapping: Mapping[str, Any]) -> _Row:
        """A row from a mapping of column values; other keys (another table's columns) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in mapping.items() if k in names})


@dataclass(frozen=True, kw_only=True)
class CheckRow(_Row):
    """One row of ``aq_check_results``: a check's verdict, or (role ``when``) a condition's."""

    table: ClassVar[str] = CHECKS_TABLE
    dag_id: str = field(default=None, metadata={"sql": "VARCHAR"})
    run_id: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    step: str = field(default=None, metadata={"sql": "VARCHAR"})
    name: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    kind: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    outcome: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    severity: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    message: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    observed: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # JSON
    expected: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # JSON
    failing_rows: int | None = field(default=None, metadata={"sql": "BIGINT"})
    total_rows: int | None = field(default=None, metadata={"sql": "BIGINT"})
    sample: str | None = field(
        default=None, metadata={"sql": "VARCHAR"}
    )  # JSON: a list of failing rows (a Snowflake keyword)
    details: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # JSON
    map_index: int = field(default=-1, metadata={"sql": "INTEGER"})
    try_number: int | None = field(default=None, metadata={"sql": "INTEGER"})
    spec_hash: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    image: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    logical_date: datetime.datetime = field(default=None, metadata={"sql": "TIMESTAMP"})
    created_at: datetime.datetime | None = field(default=None, metadata={"sql": "TIMESTAMP"})
    item_label: str | None = field(
        default=None, metadata={"sql": "VARCHAR"}
    )  # a `foreach:` item's label; NULL when not mapped
    role: str = field(default=Role.CHECK, metadata={"sql": "VARCHAR"})  # since release N+1 (Role)
    # since release N+2: what made the data checked, from its output's provenance (NULL: a table
    # step's, an output without a code package or not made in a pod, or a row of an earlier release)
    code_digest: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    image_digest: str | None = field(default=None, metadata={"sql": "VARCHAR"})


@dataclass(frozen=True, kw_only=True)
class MetricRow(_Row):
    """One row of ``aq_metric_results``: a metric's value and its verdict."""

    table: ClassVar[str] = METRICS_TABLE
    dag_id: str = field(default=None, metadata={"sql": "VARCHAR"})
    run_id: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    step: str = field(default=None, metadata={"sql": "VARCHAR"})
    name: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    kind: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    outcome: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    severity: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    message: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    value: float | None = field(default=None, metadata={"sql": "DOUBLE"})
    expected: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # JSON: what the value was judged against
    map_index: int = field(default=-1, metadata={"sql": "INTEGER"})
    try_number: int | None = field(default=None, metadata={"sql": "INTEGER"})
    spec_hash: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    image: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    logical_date: datetime.datetime = field(default=None, metadata={"sql": "TIMESTAMP"})
    created_at: datetime.datetime | None = field(default=None, metadata={"sql": "TIMESTAMP"})
    item_label: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    code_digest: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # since release N+2, as in CheckRow
    image_digest: str | None = field(default=None, metadata={"sql": "VARCHAR"})


@dataclass(frozen=True, kw_only=True)
class DeploymentRow(_Row):
    """One row of ``aq_deployments``: one attempt (a try of a `serve` task) to promote a step's
    model to its endpoint, and what came of it."""

    table: ClassVar[str] = DEPLOYMENTS_TABLE
    dag_id: str = field(default=None, metadata={"sql": "VARCHAR"})
    run_id: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    step: str = field(default=None, metadata={"sql": "VARCHAR"})
    endpoint: str = field(default=None, metadata={"sql": "VARCHAR"})
    version: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # ModelVersion.version
    previous_version: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # what it served before
    format: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # ModelFormat
    # `local`, or the InferenceService's `<namespace>/<name>`
    target: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    storage_uri: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    model_digest: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # sha256:<hex> of the model file
    code_digest: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # the code package behind it
    outcome: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # DeploymentOutcome
    reason: str | None = field(default=None, metadata={"sql": "VARCHAR"})  # why it failed or was rolled back
    smoke_rows: int | None = field(default=None, metadata={"sql": "INTEGER"})  # rows the smoke test sent
    smoke_latency_ms: float | None = field(default=None, metadata={"sql": "DOUBLE"})  # its request's round trip
    map_index: int = field(default=-1, metadata={"sql": "INTEGER"})
    try_number: int | None = field(default=None, metadata={"sql": "INTEGER"})
    spec_hash: str | None = field(default=None, metadata={"sql": "VARCHAR"})
    logical_date: datetime.datetime = field(default=None, metadata={"sql": "TIMESTAMP"})
    created_at: datetime.datetime | None = field(default=None, metadata={"sql": "TIMESTAMP"})


_ROWS: dict[str, type[_Row]] = {CHECKS_TABLE: CheckRow, METRICS_TABLE: MetricRow, DEPLOYMENTS_TABLE: DeploymentRow}
#: each table's (column, portable SQL type), in table order
COLUMNS: dict[str, list[tuple[str, str]]] = {
    table: [(f.name, f.metadata["sql"]) for f in dataclasses.fields(kind)] for table, kind in _ROWS.items()
}
#: what a task's rows are replaced by: one set per date, whichever run (or try) wrote it last; in
#: the checks table a step's checks and its `when:` verdict are two sets
KEY: dict[str, tuple[str, ...]] = {
    CHECKS_TABLE: ("dag_id", "logical_date", "step", "map_index", "role"),
    METRICS_TABLE: ("dag_id", "logical_date", "step", "map_index"),
    # one row per attempt: a retry adds its own row (the attempts are the record), a re-run of the
    # same try of the same run replaces it
    DEPLOYMENTS_TABLE: ("dag_id", "run_id", "step", "try_number"),
}
#: the defaults a key may leave out
KEY_DEFAULTS: dict[str, dict[str, Any]] = {CHECKS_TABLE: {"role": Role.CHECK}, METRICS_TABLE: {}, DEPLOYMENTS_TABLE: {}}


def row_type(table: str) -> type[_Row]:
    """The row class of a results table; a clear error for any other name."""
    try:
        return _ROWS[table]
    except KeyError:
        raise ValueError(f"not a results table: {table} (one of {', '.join(_ROWS)})") from None


def naive_utc(moment: datetime.datetime) -> datetime.datetime:
    """Naive UTC, the form every warehouse's TIMESTAMP takes as a parameter (and the results
    tables' timestamps are written in)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def utcnow() -> datetime.datetime:
    """Now, as naive UTC."""
    return naive_utc(datetime.datetime.now(datetime.timezone.utc))


def _parameter(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.datetime):
        return naive_utc(value)
    return value
