"""What the read model returns: a check's verdict, a metric's point and its bounds, series of
them, pages, a pipeline's summary, failing-row samples; and how they are made from the rows a
query returns (values of any type a table made by hand may hold, never an error).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aq_airflow.artifacts.labels import item_name
from aq_airflow.results.rows import DeploymentOutcome, Outcome, Role, Verdict, naive_utc

SAMPLE_ROWS = 20  # failing rows shown per check (the engine records at most 5; older rows may hold more)


def verdict(outcome: str | None, severity: str | None) -> Verdict:
    """passed, warning (failed, warning severity), failed (error severity), error (could not be
    judged) or other (a condition's ``skipped``, anything newer)."""
    return Verdict.of(outcome, severity)


def role_of(role: Any, kind: Any) -> Role:
    """A checks row's role: as recorded; in a table of release N (NULL) ``when`` for a row of
    kind ``when`` (how release N marked a condition's verdict), else ``check``."""
    if role in tuple(Role):
        return Role(role)
    return Role.WHEN if kind == Role.WHEN else Role.CHECK


def _when(value: Any) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if isinstance(value, datetime.datetime):
        return naive_utc(value)
    return datetime.datetime.combine(value, datetime.time())


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _json(text: Any) -> Any:
    """JSON text parsed (anything else as it is); None for text that is no JSON, or nests deeper
    than the interpreter's recursion limit (a hand-written row)."""
    if text is None or not isinstance(text, str):
        return text
    try:  # Python's json reads the Infinity and NaN it writes (a z-score over a constant history)
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


@dataclass(frozen=True)
class Window:
    """Which rows: one step (or all), logical dates in [start, end) (either end open)."""

    step: str | None = None
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None


@dataclass(frozen=True)
class CheckResult:
    """A check's verdict on one logical date (the date's latest row)."""

    logical_date: datetime.datetime
    step: str
    map_index: int
    name: str
    kind: str | None
    severity: str | None
    outcome: str | None
    failing_rows: int | None
    total_rows: int | None
    message: str | None
    run_id: str | None
    item_label: str | None = None  # a `foreach:` item's label (NULL in rows of earlier versions)
    role: Role = Role.CHECK  # a check's verdict, or a `when:` condition's

    @property
    def verdict(self) -> str:
        return verdict(self.outcome, self.severity)

    @property
    def step_label(self) -> str:
        """The step as every place names it: ``evaluate[2:us]`` for an item (``artifacts.labels``)."""
        return item_name(self.step, self.map_index, self.item_label)

    @classmethod
    def of(cls, row: Sequence[Any]) -> CheckResult:
        date, step, index, name, kind, severity, outcome, failing, total, message, run_id, label, role = row[:13]
        return cls(_when(date), step, _int(index) if index is not None else -1, name, kind, severity, outcome,
                   _int(failing), _int(total), message, run_id, label, role_of(role, kind))  # fmt: skip


@dataclass(frozen=True)
class Bounds:
    """What a metric's row says it was judged against (parsed from its ``expected`` JSON)."""

    minimum: float | None = None  # static bounds
    maximum: float | None = None
    mean: float | None = None  # learned: history.mean, stddev, max_zscore
    stddev: float | None = None
    max_zscore: float | None = None
    history_values: int | None = None
    max_change: float | None = None  # a fraction; previous: the latest earlier date's passed value
    previous: float | None = None

    @functools.cached_property
    def band(self) -> tuple[float, float] | None:
        """The learned band: mean ± max_zscore · stddev, narrowed to previous ± |previous| ·
        max_change where the metric has one; None while learning (or without history bounds)."""
        low, high = -math.inf, math.inf
        if self.mean is not None and self.stddev is not None and self.max_zscore is not None:
            low, high = self.mean - self.max_zscore * self.stddev, self.mean + self.max_zscore * self.stddev
        if self.max_change is not None and self.previous is not None:
            spread = abs(self.previous) * self.max_change
            low, high = max(low, self.previous - spread), min(high, self.previous + spread)
        if not (math.isfinite(low) and math.isfinite(high)):
            return None
        return (low, high) if low <= high else (high, low)

    @classmethod
    def parse(cls, expected: Any) -> Bounds:
        """From a row's ``expected`` (JSON text; rows of a static bound repeat theirs: cached)."""
        if isinstance(expected, str):
            return _bounds_of(expected)
        return cls._parse(expected)

    @classmethod
    def _parse(cls, expected: Any) -> Bounds:
        data = _json(expected)
        if not isinstance(data, dict):
            return cls()
        static = data.get("bounds") if isinstance(data.get("bounds"), dict) else {}
        history = data.get("history") if isinstance(data.get("history"), dict) else {}
        return cls(
            minimum=_float(static.get("min")),
            maximum=_float(static.get("max")),
            mean=_float(history.get("mean")),
            stddev=_float(history.get("stddev")),
            max_zscore=_float(history.get("max_zscore")),
            history_values=_int(history.get("values")) if isinstance(history.get("values"), int) else None,
            max_change=_float(data.get("max_change")),
            previous=_float(data.get("previous")),
        )

    def as_dict(self) -> dict[str, Any]:
        band = self.band
        return {
            "min": self.minimum, "max": self.maximum, "mean": self.mean, "stddev": self.stddev,
            "max_zscore": self.max_zscore, "max_change": self.max_change, "previous": self.previous,
            "band": list(band) if band else None,
        }  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _bounds_of(text: str) -> Bounds:
    return Bounds._parse(text)


@dataclass(frozen=True)
class MetricPoint:
    """A metric's value on one logical date (the date's latest row) and what judged it."""

    logical_date: datetime.datetime
    value: float | None
    outcome: str | None
    severity: str | None
    message: str | None
    run_id: str | None
    bounds: Bounds

    @property
    def broken(self) -> bool:
        """Not passed: out of bounds, or no value could be computed."""
        return self.outcome != Outcome.PASSED

    @property
    def verdict(self) -> str:
        return verdict(self.outcome, self.severity)


@dataclass
class MetricSeries:
    """One metric of one step (one map index) over logical dates, oldest first."""

    step: str
    map_index: int
    name: str
    kind: str | None
    points: list[MetricPoint] = field(default_factory=list)
    item_label: str | None = None  # the latest date's item at this map index

    @property
    def step_label(self) -> str:
        return item_name(self.step, self.map_index, self.item_label)

    @property
    def key(self) -> tuple[str, int, str]:
        return self.step, self.map_index, self.name

    @property
    def latest(self) -> MetricPoint | None:
        return self.points[-1] if self.points else None


@dataclass
class CheckSeries:
    """One check of one step (one map index) over logical dates, oldest first."""

    step: str
    map_index: int
    name: str
    kind: str | None
    cells: list[CheckResult] = field(default_factory=list)
    item_label: str | None = None  # the latest date's item at this map index
    role: Role = Role.CHECK

    @property
    def step_label(self) -> str:
        return item_name(self.step, self.map_index, self.item_label)

    @property
    def key(self) -> tuple[str, int, str, Role]:
        return self.step, self.map_index, self.name, self.role

    @property
    def latest(self) -> CheckResult | None:
        return self.cells[-1] if self.cells else None


@dataclass
class Page:
    """One page of a listing: its items, where it starts, and the total when known."""

    items: list[Any]
    offset: int
    limit: int
    total: int | None = None

    @property
    def has_more(self) -> bool:
        if self.total is not None:
            return self.offset + len(self.items) < self.total
        return len(self.items) >= self.limit

    @property
    def has_previous(self) -> bool:
        return self.offset > 0


@dataclass(frozen=True)
class Summary:
    """A pipeline's latest recorded logical date and its verdict counts (checks and metrics;
    conditions are not counted)."""

    dag_id: str
    logical_date: datetime.datetime | None
    passed: int = 0
    warning: int = 0  # failed, warning severity
    failed: int = 0  # failed, error severity
    error: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.warning + self.failed + self.error + self.other

    def as_dict(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "logical_date": self.logical_date.isoformat() if self.logical_date else None,
                "passed": self.passed, "failed_warning": self.warning, "failed_error": self.failed,
                "error": self.error, "other": self.other}  # fmt: skip


@dataclass(frozen=True)
class Sample:
    """Failing rows a check recorded (columns in their first-seen order)."""

    columns: list[str]
    rows: list[list[Any]]
    hidden: list[str] = field(default_factory=list)  # columns removed here as sensitive
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The sample as the JSON of the quality pages and ``aq-airflow results`` carry it."""
        return {"columns": self.columns, "rows": self.rows, "hidden_columns": self.hidden, "truncated": self.truncated}


@dataclass(frozen=True)
class RunCheck:
    """A check's row for one date, with the failing-row sample a failed check recorded."""

    result: CheckResult
    try_number: int | None
    sample: Sample | None


@dataclass(frozen=True)
class RunMetric:
    step: str
    map_index: int
    name: str
    kind: str | None
    point: MetricPoint
    try_number: int | None
    item_label: str | None = None

    @property
    def step_label(self) -> str:
        return item_name(self.step, self.map_index, self.item_label)


#: how a promotion attempt is coloured, as a check is: the endpoint answers with the new (or the
#: same) model; it was put back on its previous one (a warning: it serves, not what the run made);
#: the attempt failed
_DEPLOYMENT_VERDICTS = {
    DeploymentOutcome.PROMOTED: Verdict.PASSED,
    DeploymentOutcome.UNCHANGED: Verdict.PASSED,
    DeploymentOutcome.ROLLED_BACK: Verdict.WARNING,
    DeploymentOutcome.FAILED: Verdict.FAILED,
}
#: the columns of ``aq_deployments`` a :class:`Deployment` is read from, in its fields' order
DEPLOYMENT_COLUMNS = ("logical_date", "run_id", "step", "endpoint", "version", "previous_version", "format", "target",
                      "storage_uri", "model_digest", "code_digest", "outcome", "reason", "smoke_rows",
                      "smoke_latency_ms", "map_index", "try_number", "created_at")  # fmt: skip


@dataclass(frozen=True)
class Deployment:
    """One attempt (a try of a `serve` task) to promote a step's model to its endpoint."""

    logical_date: datetime.datetime | None
    run_id: str | None
    step: str | None
    endpoint: str | None
    version: str | None
    previous_version: str | None
    format: str | None
    target: str | None
    storage_uri: str | None
    model_digest: str | None
    code_digest: str | None
    outcome: str | None
    reason: str | None
    smoke_rows: int | None
    smoke_latency_ms: float | None
    map_index: int
    try_number: int | None
    created_at: datetime.datetime | None

    @property
    def verdict(self) -> Verdict:
        """The attempt coloured as a check: passed (promoted, unchanged), warning (rolled back:
        the endpoint serves its previous model), failed; other for any other word."""
        return _DEPLOYMENT_VERDICTS.get(self.outcome, Verdict.OTHER)  # type: ignore[arg-type]

    @property
    def serving(self) -> str | None:
        """The version the endpoint served after this attempt, as its row tells: the new one when
        promoted or unchanged, else the one it had (None: it had none). A ``failed`` attempt that
        could not put the endpoint back says so in its reason."""
        if self.outcome in (DeploymentOutcome.PROMOTED, DeploymentOutcome.UNCHANGED):
            return self.version
        return self.previous_version

    @classmethod
    def of(cls, row: Sequence[Any]) -> Deployment:
        (date, run_id, step, endpoint, version, previous, fmt, target, uri, model, code, outcome, reason, rows,
         latency, index, tries, created) = row[: len(DEPLOYMENT_COLUMNS)]  # fmt: skip
        return cls(_when(date), run_id, step, endpoint, version, previous, fmt, target, uri, model, code, outcome,
                   reason, _int(rows), _float(latency), map_index_of(index) if index is not None else -1,
                   _int(tries), _when(created))  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """The attempt as the JSON of ``aq-airflow results`` and the quality pages carry it."""
        moment = lambda value: value.isoformat() if value is not None else None  # noqa: E731
        return {"endpoint": self.endpoint, "version": self.version, "previous_version": self.previous_version,
                "serving": self.serving, "outcome": self.outcome, "verdict": str(self.verdict),
                "reason": self.reason, "smoke_rows": self.smoke_rows, "smoke_latency_ms": self.smoke_latency_ms,
                "format": self.format, "target": self.target, "storage_uri": self.storage_uri,
                "model_digest": self.model_digest, "code_digest": self.code_digest, "step": self.step,
                "map_index": self.map_index, "run_id": self.run_id, "try_number": self.try_number,
                "logical_date": moment(self.logical_date), "created_at": moment(self.created_at)}  # fmt: skip


_WHOLE = re.compile(r"[+-]?[0-9]{1,30}")


def map_index_of(value: Any) -> int | None:
    """The whole number a row's ``map_index`` holds: an INTEGER as written; text of digits, a
    whole float or NUMERIC in a table made by hand. None when it holds none (NULL, ``"abc"``,
    2.5, NaN): a reader shows such a value as it is and never fails on it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, decimal.Decimal):
        whole = value.is_finite() and value.adjusted() < 30 and value == value.to_integral_value()
        return int(value) if whole else None
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _index_order(value: Any) -> tuple:
    """A sort key of a map index: not mapped (NULL, -1) first, whole numbers by number (2 before
    10, in a text column too), anything else after, by its text."""
    if value is None:
        return (0, -1, "")
    index = map_index_of(value)
    return (0, index, "") if index is not None else (1, 0, str(value))


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:  # a LIST or STRUCT column of a table made by hand
        return repr(value)
    return value


def items_in_order(columns: Sequence[str], rows: list[tuple]) -> list[tuple]:
    """``rows`` (newest first) with each step's rows of one run together where the newest of
    them is, in map index order (then by name): a `foreach:` step's items finish in any order,
    and ``evaluate[10:us]`` comes after ``evaluate[2:eu]``, whatever the column's type."""
    run, step, index, name = (columns.index(c) for c in ("run_id", "step", "map_index", "name"))
    groups: dict[tuple, list[tuple]] = {}
    for row in rows:
        groups.setdefault((_hashable(row[run]), _hashable(row[step])), []).append(row)
    order = lambda row: (_index_order(row[index]), row[name] is not None, str(row[name] or ""))  # noqa: E731
    return [row for group in groups.values() for row in sorted(group, key=order)]


def parse_sample(text: Any, sensitive: Iterable[str] = (), limit: int = SAMPLE_ROWS) -> Sample | None:
    """The failing rows of a ``sample`` column (JSON: a list of objects). Columns named in
    ``sensitive`` (case-insensitively) are dropped: the engine never writes them, this is a second
    guard for rows written before a column was marked. At most ``limit`` rows."""
    data = _json(text)
    if not isinstance(data, list) or not data:
        return None
    hidden_names = {name.lower() for name in sensitive}
    columns: list[str] = []
    hidden: list[str] = []
    records = [row if isinstance(row, dict) else {"value": row} for row in data[:limit]]
    for record in records:
        for key in record:
            name = str(key)
            if name.lower() in hidden_names:
                if name not in hidden:
                    hidden.append(name)
            elif name not in columns:
                columns.append(name)
    rows = [[record.get(c) for c in columns] for record in records]
    return Sample(columns, rows, hidden, truncated=len(data) > limit)
