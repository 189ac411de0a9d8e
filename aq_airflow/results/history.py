"""The read model of the results tables: what ``aq-airflow results`` prints and what the quality
pages of the Airflow UI show, read through this one module.

Every read here:

- runs inside a read-only transaction where the warehouse has one (``Warehouse.begin_read_only``:
  DuckDB and PostgreSQL; Snowflake has none, its role is the limit), rolled back after;
- passes every value (dag id, step, dates, run id) as a DB-API parameter; identifiers are this
  module's own constants and the store's validated table names, never request text;
- reads tables written by earlier versions as they are (readers never migrate): a column added
  since (``item_label``) reads as NULL where the table lacks it;
- is bounded: pages of at most :data:`MAX_ROWS` rows or :data:`MAX_SERIES` series of at most
  :data:`MAX_POINTS` points, samples of at most :data:`SAMPLE_ROWS` rows per check;
- reads a date's *current* verdict: the latest row (by ``created_at``, then ``try_number``) of each
  (logical_date, step, map_index, name), as learned bounds do (a re-run of a date replaces its
  rows, and tables written by earlier versions may still hold a date's older duplicates).

One query per table per page: a pipeline page of 20 metric charts over a year of dates is one
SELECT of at most 20 x 400 rows, whatever the number of metrics and dates in the table.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from aq_airflow.artifacts.labels import item_name
from aq_airflow.results.store import (
    CHECKS_TABLE,
    COLUMNS,
    METRICS_TABLE,
    ResultsStore,
    naive_utc,
    recorded_steps,
    step_of,
    table_columns,
)
from aq_airflow.warehouse import is_infrastructure_error

MAX_ROWS = 500  # rows per page of a flat listing
DEFAULT_ROWS = 100
MAX_SERIES = 50  # charts (or check strips) per page
DEFAULT_SERIES = 20
MAX_POINTS = 400  # the newest points of each series a page reads (a year of daily runs and more)
SAMPLE_ROWS = 20  # failing rows shown per check (the engine records at most 5; older rows may hold more)
MAX_DAG_IDS = 500  # pipelines summarized by one overview query
READ_WAIT_SECONDS = 5.0  # how long a read waits for a file-backed DuckDB's lock (a task writing)

# what a verdict is, for colours and counts
PASSED, WARNING, FAILED, ERROR, OTHER = "passed", "warning", "failed", "error", "other"
_LATEST = "ORDER BY created_at DESC NULLS LAST, try_number DESC NULLS LAST"
_CHECK_COLUMNS = ("logical_date", "step", "map_index", "name", "kind", "severity", "outcome", "failing_rows",
                  "total_rows", "message", "run_id", "item_label")  # fmt: skip
_METRIC_COLUMNS = ("logical_date", "step", "map_index", "name", "kind", "severity", "outcome", "value", "message",
                   "expected", "run_id", "item_label")  # fmt: skip
_RUN_CHECK_COLUMNS = (*_CHECK_COLUMNS, "sample", "try_number")
_RUN_METRIC_COLUMNS = (*_METRIC_COLUMNS, "try_number")


def verdict(outcome: str | None, severity: str | None) -> str:
    """passed, warning (failed, warning severity), failed (error severity), error (could not be
    judged) or other (a condition's ``skipped``, anything newer)."""
    if outcome == "passed":
        return PASSED
    if outcome == "failed":
        return WARNING if severity == "warning" else FAILED
    if outcome == "error":
        return ERROR
    return OTHER


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


try:  # 5x json's speed on the rows of a year of metrics; an Airflow dependency
    import msgspec
    from msgspec import DecodeError as _DecodeError
    from msgspec.json import Decoder as _Decoder

    _decode = _Decoder().decode

    class _Static(msgspec.Struct):
        min: float | None = None
        max: float | None = None

    class _History(msgspec.Struct):
        mean: float | None = None
        stddev: float | None = None
        max_zscore: float | None = None
        values: int | None = None

    class _Expected(msgspec.Struct):
        """What a metric row's ``expected`` holds (other keys ignored); decoded in one pass."""

        bounds: _Static | None = None
        history: _History | None = None
        max_change: float | None = None
        previous: float | None = None

    _decode_expected = _Decoder(_Expected).decode
except ImportError:  # pragma: no cover - without msgspec, the standard library
    _decode, _DecodeError, _decode_expected = json.loads, ValueError, None


def _json(text: Any) -> Any:
    """JSON text parsed (anything else as it is); None for text that is no JSON, or nests deeper
    than the interpreter's recursion limit (a hand-written row)."""
    if text is None or not isinstance(text, str):
        return text
    try:
        return _decode(text)
    except (_DecodeError, ValueError, RecursionError):
        pass
    try:  # Python's json writes inf and NaN as Infinity and NaN (a z-score over a constant history)
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

    @property
    def verdict(self) -> str:
        return verdict(self.outcome, self.severity)

    @property
    def step_label(self) -> str:
        """The step as every place names it: ``evaluate[2:us]`` for an item (``artifacts.labels``)."""
        return item_name(self.step, self.map_index, self.item_label)

    @classmethod
    def of(cls, row: Sequence[Any]) -> CheckResult:
        date, step, index, name, kind, severity, outcome, failing, total, message, run_id, label = row[:12]
        return cls(_when(date), step, _int(index) if index is not None else -1, name, kind, severity, outcome,
                   _int(failing), _int(total), message, run_id, label)  # fmt: skip


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
    if _decode_expected is not None:
        try:
            found = _decode_expected(text)
        except (_DecodeError, ValueError):  # Infinity, NaN, a value of another type: the slow way
            return Bounds._parse(text)
        static, history = found.bounds, found.history
        return Bounds(
            minimum=_float(static.min) if static else None,
            maximum=_float(static.max) if static else None,
            mean=_float(history.mean) if history else None,
            stddev=_float(history.stddev) if history else None,
            max_zscore=_float(history.max_zscore) if history else None,
            history_values=history.values if history else None,
            max_change=_float(found.max_change),
            previous=_float(found.previous),
        )
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
        return self.outcome != "passed"

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

    @property
    def step_label(self) -> str:
        return item_name(self.step, self.map_index, self.item_label)

    @property
    def key(self) -> tuple[str, int, str]:
        return self.step, self.map_index, self.name

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


def _clamp(value: int | None, default: int, most: int) -> int:
    if value is None:
        return default
    return max(1, min(int(value), most))


def _offset(value: int | None) -> int:
    return max(0, int(value or 0))


def _one_connection(method):
    """A read whose queries (a table's columns, then its rows) share one connection and snapshot
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
        self.wait = wait
        self._session: Any = None  # the cursor of the current `reading()` block
        self._complete: set[str] = set()  # tables known to have every column of this version

    @property
    def warehouse(self):
        return self.store.warehouse

    def _table(self, name: str) -> str:
        return self.store._table(name)

    # --- the one way a query runs ---------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[ResultsHistory]:
        """One connection and one read-only transaction (where the warehouse has one) for the
        reads inside the block: a page's queries see one snapshot and pay one connect (a DuckDB
        file's open, a PostgreSQL handshake). Rolled back and closed after."""
        if self._session is not None:  # already inside one
            yield self
            return
        warehouse = self.warehouse
        conn = warehouse.connect(wait=self.wait)
        try:
            cursor = warehouse.cursor(conn)
            read_only = warehouse.begin_read_only(conn, cursor)
            self._session = cursor
            try:
                yield self
            finally:
                self._session = None
                if read_only:
                    warehouse.end_read_only(conn, cursor)
        finally:
            try:
                conn.close()
            except Exception:  # noqa: S110 - closing a connection that already failed
                pass

    def fetch(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one SELECT, in a read-only transaction where the warehouse has one (the
        block's, inside :meth:`reading`; else its own, rolled back and closed after)."""
        if self._session is None:
            with self.reading():
                return self.fetch(sql, parameters)
        cursor = self._session
        if parameters:
            cursor.execute(sql, tuple(parameters))
        else:
            cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]

    def _filters(self, dag_id: str, window: Window | None) -> tuple[str, list[Any]]:
        p = self.store.placeholder
        where, params = [f"dag_id = {p}"], [dag_id]
        window = window or Window()
        if window.step:
            where.append(f"step = {p}")
            params.append(window.step)
        if window.start is not None:
            where.append(f"logical_date >= {p}")
            params.append(naive_utc(window.start))
        if window.end is not None:
            where.append(f"logical_date < {p}")
            params.append(naive_utc(window.end))
        return " AND ".join(where), params

    def _columns(self, columns: Sequence[str]) -> str:
        """Our column names, quoted as the warehouse spells them (``sample`` is a Snowflake keyword)."""
        return ", ".join(self.warehouse.render(self.warehouse.column(name)) for name in columns)

    def _present(self, table: str) -> set[str] | None:
        """The columns ``table`` has, or None when it has all of this version's. A table made by
        an earlier version lacks the columns added since, until a task writes to it; only a
        table found complete is remembered."""
        if table in self._complete:
            return None
        if self._session is None:
            with self.reading():
                return self._present(table)
        present = table_columns(self._session, self._table(table))
        if all(column in present for column, _ in COLUMNS[table]):
            self._complete.add(table)
            return None
        return present

    def _sources(self, table: str, columns: Sequence[str], text: Sequence[str] = ()) -> str:
        """``columns`` as a SELECT list over ``table`` itself: one it lacks (a table of an earlier
        version) as NULL under its name, so the queries over it stay the same; those in ``text``
        cast to text (what the warehouse holds that its driver cannot convert)."""
        present = self._present(table)
        names = [self.warehouse.render(self.warehouse.column(name)) for name in columns]
        cast = {c: self.warehouse.render(exp.cast(self.warehouse.column(c), "VARCHAR")) + f" AS {q}"
                for c, q in zip(columns, names, strict=True) if c in text}  # fmt: skip
        pairs = zip(columns, names, strict=True)
        return ", ".join(cast.get(c, q) if present is None or c in present else f"NULL AS {q}" for c, q in pairs)

    def _latest(self, table: str, columns: Sequence[str], where: str) -> str:
        """Each (logical_date, step, map_index, name)'s latest row among ``where``'s."""
        names = self._columns(columns)
        return (
            f"SELECT {names} FROM (SELECT {self._sources(table, columns)}, ROW_NUMBER() OVER ("  # noqa: S608
            f"PARTITION BY logical_date, step, map_index, name {_LATEST}) AS aq_rank "
            f"FROM {self._table(table)} WHERE {where}) aq_latest WHERE aq_rank = 1"
        )

    @_one_connection
    def _series_rows(
        self, table: str, columns: Sequence[str], dag_id: str, window: Window | None, limit: int, offset: int,
        points: int, messages: bool = True,
    ) -> tuple[list[tuple], int | None]:  # fmt: skip
        """The rows of series ``offset+1 .. offset+limit`` (series ordered by step, map_index,
        name; each its newest ``points`` dates), oldest date first; and the number of series.
        ``messages=False``: the message of a passed row is left out (NULL), what charts need.

        One query: the page's series keys first (a grouping of the pipeline's rows, numbered and
        counted), then the latest row per date and the points cap over those series' rows only,
        partitioned by the key's number (an integer sort, not one of text under a collation);
        rows come back unordered and are sorted here."""
        where, params = self._filters(dag_id, window)
        names = self._columns(columns)
        selected = self._sources(table, columns)
        if not messages:
            message = self._columns(["message"])
            passed = f"CASE WHEN outcome = 'passed' THEN NULL ELSE {message} END AS {message}"
            selected = selected.replace(message, passed)
        source = self._table(table)
        first, last = int(offset), int(offset) + int(limit)
        query = (
            f"WITH aq_keys AS (SELECT step, map_index, name FROM {source} WHERE {where} "  # noqa: S608
            f"GROUP BY step, map_index, name), "
            f"aq_numbered AS (SELECT step AS aq_step, map_index AS aq_index, name AS aq_name, ROW_NUMBER() OVER ("
            f"ORDER BY step, map_index, name) AS aq_key, COUNT(*) OVER () AS aq_total FROM aq_keys), "
            f"aq_page AS (SELECT aq_step, aq_index, aq_name, aq_key, aq_total FROM aq_numbered "
            f"WHERE aq_key > {first} AND aq_key <= {last}), "
            f"aq_dated AS (SELECT {selected}, aq_key, aq_total, ROW_NUMBER() OVER ("
            f"PARTITION BY aq_key, logical_date {_LATEST}) AS aq_rank FROM {source} "
            f"JOIN aq_page ON step = aq_step AND map_index = aq_index AND name = aq_name WHERE {where}), "
            f"aq_pointed AS (SELECT {names}, aq_key, aq_total, ROW_NUMBER() OVER (PARTITION BY aq_key "
            f"ORDER BY logical_date DESC) AS aq_point FROM aq_dated WHERE aq_rank = 1) "
            f"SELECT {names}, aq_key, aq_total FROM aq_pointed WHERE aq_point <= {int(points)}"
        )
        rows = self.fetch(query, [*params, *params])
        rows.sort(key=lambda row: (row[-2], row[0]))  # the series in key order, each oldest date first
        total = int(rows[0][-1]) if rows else None
        return [row[:-2] for row in rows], total

    # --- the pipeline page ------------------------------------------------------------------

    def check_series(
        self, dag_id: str, window: Window | None = None, limit: int | None = None, offset: int | None = None,
        points: int = MAX_POINTS, messages: bool = True,
    ) -> Page:  # fmt: skip
        """A page of checks (``CheckSeries``: each check of each step and map index, by step,
        map index and name), each with its verdict on every date of the window (the newest
        ``points``), oldest first. ``messages=False`` leaves passed rows' messages out."""
        limit, offset = _clamp(limit, DEFAULT_SERIES, MAX_SERIES), _offset(offset)
        rows, total = self._series_rows(CHECKS_TABLE, _CHECK_COLUMNS, dag_id, window, limit, offset,
                                        _clamp(points, MAX_POINTS, MAX_POINTS), messages)  # fmt: skip
        series: dict[tuple, CheckSeries] = {}
        for row in rows:
            cell = CheckResult.of(row)
            key = (cell.step, cell.map_index, cell.name)
            if key not in series:
                series[key] = CheckSeries(cell.step, cell.map_index, cell.name, cell.kind)
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

    @_one_connection
    def check_timeline(
        self, dag_id: str, window: Window | None = None, limit: int | None = None, offset: int | None = None
    ) -> Page:
        """Check verdicts as rows (``CheckResult``), newest date first, then step, map index and
        name: each (logical_date, step, map_index, name)'s latest row."""
        limit, offset = _clamp(limit, DEFAULT_ROWS, MAX_ROWS), _offset(offset)
        where, params = self._filters(dag_id, window)
        query = (
            f"{self._latest(CHECKS_TABLE, _CHECK_COLUMNS, where)} "
            f"ORDER BY logical_date DESC, step, map_index, name LIMIT {limit + 1} OFFSET {offset}"
        )
        rows = self.fetch(query, params)
        items = [CheckResult.of(row) for row in rows[:limit]]
        known = (rows or not offset) and len(rows) <= limit  # past the end the total is unknown
        total = offset + len(rows) if known else None
        return Page(items, offset, limit, total)

    def steps(self, dag_id: str) -> list[str]:
        """Every step with recorded results, sorted."""
        p = self.store.placeholder
        query = (
            f"SELECT DISTINCT step FROM {self._table(CHECKS_TABLE)} WHERE dag_id = {p} "  # noqa: S608
            f"UNION SELECT DISTINCT step FROM {self._table(METRICS_TABLE)} WHERE dag_id = {p}"
        )
        return sorted(str(row[0]) for row in self.fetch(query, [dag_id, dag_id]) if row[0] is not None)

    # --- one run (a task instance's page) ------------------------------------------------------

    @_one_connection
    def run_results(
        self, dag_id: str, logical_date: datetime.datetime, steps: Sequence[str] | None = None,
        map_index: int | None = None, sensitive: dict[str, Iterable[str]] | None = None,
        tables: Sequence[str] = (CHECKS_TABLE, METRICS_TABLE), sample_rows: int = SAMPLE_ROWS,
    ) -> tuple[list[RunCheck], list[RunMetric]]:  # fmt: skip
        """The checks and metrics one logical date recorded (its latest rows), for some steps and
        one map index (all when None), with the failing-row samples of failed checks (at most
        ``sample_rows`` each; columns in ``sensitive[step]`` dropped)."""
        p = self.store.placeholder
        where = [f"dag_id = {p}", f"logical_date = {p}"]
        params: list[Any] = [dag_id, naive_utc(logical_date)]
        if steps is not None:
            if not steps:
                return [], []
            where.append(f"step IN ({', '.join([p] * len(steps))})")
            params += list(steps)
        if map_index is not None:
            where.append(f"map_index = {p}")
            params.append(int(map_index))
        condition = " AND ".join(where)
        order = " ORDER BY step, map_index, name"
        checks: list[RunCheck] = []
        metrics: list[RunMetric] = []
        if CHECKS_TABLE in tables:
            for row in self.fetch(self._latest(CHECKS_TABLE, _RUN_CHECK_COLUMNS, condition) + order, params):
                result = CheckResult.of(row)
                sample = None
                if result.outcome != "passed":
                    hidden = (sensitive or {}).get(step_of(result.step), ())
                    sample = parse_sample(row[12], hidden, sample_rows)
                checks.append(RunCheck(result, _int(row[13]), sample))
        if METRICS_TABLE in tables:
            for row in self.fetch(self._latest(METRICS_TABLE, _RUN_METRIC_COLUMNS, condition) + order, params):
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
        metrics together (each check or metric counted once: its latest row of that date).
        Pipelines without rows are left out. One query for up to :data:`MAX_DAG_IDS` pipelines."""
        found: dict[str, Summary] = {}
        ids = list(dict.fromkeys(dag_ids))
        for start in range(0, len(ids), MAX_DAG_IDS):
            found.update(self._overview(ids[start : start + MAX_DAG_IDS]))
        return found

    def _overview(self, dag_ids: list[str]) -> dict[str, Summary]:
        if not dag_ids:
            return {}
        p = self.store.placeholder
        marks = ", ".join([p] * len(dag_ids))
        columns = "dag_id, logical_date, step, map_index, name, kind, outcome, severity, created_at, try_number"
        rows = (
            f"SELECT 'c' AS aq_table, {columns} FROM {self._table(CHECKS_TABLE)} WHERE dag_id IN ({marks}) "  # noqa: S608
            f"UNION ALL SELECT 'm' AS aq_table, {columns} FROM {self._table(METRICS_TABLE)} WHERE dag_id IN ({marks})"
        )
        query = (
            f"WITH aq_rows AS ({rows}), "  # noqa: S608
            f"aq_newest AS (SELECT dag_id AS aq_dag, MAX(logical_date) AS aq_date FROM aq_rows GROUP BY dag_id), "
            f"aq_latest AS (SELECT dag_id, logical_date, kind, outcome, severity, ROW_NUMBER() OVER ("
            f"PARTITION BY aq_table, dag_id, step, map_index, name {_LATEST}) AS aq_rank "
            f"FROM aq_rows JOIN aq_newest ON dag_id = aq_dag AND logical_date = aq_date) "
            f"SELECT dag_id, logical_date, outcome, severity, COUNT(*) FROM aq_latest "
            f"WHERE aq_rank = 1 AND (kind IS NULL OR kind <> 'when') "
            f"GROUP BY dag_id, logical_date, outcome, severity"
        )
        counts: dict[str, dict[str, Any]] = {}
        for dag_id, date, outcome, severity, count in self.fetch(query, [*dag_ids, *dag_ids]):
            entry = counts.setdefault(dag_id, {"logical_date": _when(date)})
            kind = verdict(outcome, severity)
            entry[kind] = entry.get(kind, 0) + int(count)
        newest = self._newest_dates([d for d in dag_ids if d not in counts])  # only conditions recorded
        for dag_id, date in newest.items():
            counts[dag_id] = {"logical_date": date}
        return {dag_id: Summary(dag_id, **entry) for dag_id, entry in counts.items()}

    def _newest_dates(self, dag_ids: list[str]) -> dict[str, datetime.datetime]:
        if not dag_ids:
            return {}
        p = self.store.placeholder
        marks = ", ".join([p] * len(dag_ids))
        query = (
            f"SELECT dag_id, MAX(logical_date) FROM {self._table(CHECKS_TABLE)} WHERE dag_id IN ({marks}) "  # noqa: S608
            f"GROUP BY dag_id"
        )
        return {row[0]: _when(row[1]) for row in self.fetch(query, dag_ids) if row[1] is not None}

    # --- aq-airflow results ---------------------------------------------------------------------

    @_one_connection
    def newest_rows(
        self, table: str, dag_id: str, step: str | None = None, last: int = 50, run_id: str | None = None,
        sensitive: dict[str, Iterable[str]] | None = None,
    ) -> tuple[list[str], list[tuple]]:  # fmt: skip
        """The newest rows of a pipeline (a step, a run) as ``aq-airflow results`` prints them:
        every row, newest written first (not one per date: the CLI shows what was written). A
        step's rows include its `when:` verdict's (recorded as ``{step}.when``). A `foreach:`
        step's rows carry their item's ``map_index`` (-1 for a step that is not mapped) and
        ``item_label``; a check's ``sample`` is parsed (a :class:`Sample` or None, at most
        :data:`SAMPLE_ROWS` rows, the columns in ``sensitive[step]`` dropped)."""
        if table not in (CHECKS_TABLE, METRICS_TABLE):
            raise ValueError(f"not a results table: {table}")
        p = self.store.placeholder
        columns = ["logical_date", "run_id", "step", "map_index", "item_label", "name", "kind", "outcome", "severity"]
        columns += ["value"] if table == METRICS_TABLE else ["failing_rows", "sample"]
        columns += ["message"]
        params: list[Any] = [dag_id]
        where = f"dag_id = {p}"
        if step:
            steps = recorded_steps(step)
            where += f" AND step IN ({', '.join([p] * len(steps))})"
            params += steps
        if run_id:
            where += f" AND run_id = {p}"
            params.append(run_id)
        order = f"ORDER BY created_at DESC, step, map_index, name LIMIT {max(0, int(last))}"
        query = f"SELECT {self._sources(table, columns)} FROM {self._table(table)} WHERE {where} {order}"  # noqa: S608
        try:
            rows = self.fetch(query, params)
        except Exception as error:  # a date the driver cannot convert (year 20000, BC): read as text
            if is_infrastructure_error(error) or is_missing_table(error):
                raise
            as_text = self._sources(table, columns, text=("logical_date",))
            try:  # (after an error of the server's own, its transaction refuses this too)
                rows = self.fetch(f"SELECT {as_text} FROM {self._table(table)} WHERE {where} {order}", params)  # noqa: S608
            except Exception:
                raise error from None
        if "sample" in columns:
            at, where = columns.index("sample"), columns.index("step")
            hidden = sensitive or {}
            rows = [(*row[:at], parse_sample(row[at], hidden.get(_step_of(row[where]), ())), *row[at + 1 :])
                    for row in rows]  # fmt: skip
        return columns, items_in_order(columns, rows)


def _step_of(recorded: Any) -> str:
    """``step_of`` a row's step; a NULL or non-text step (a table made by hand) is no step."""
    return step_of(recorded) if isinstance(recorded, str) else ""


def is_missing_table(error: BaseException) -> bool:
    """Whether the warehouse says the table (or its schema) does not exist: nothing recorded yet."""
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if state in ("42P01", "3F000", "42S02", "42704"):  # undefined table / schema (PostgreSQL, ODBC, DB2)
        return True
    if getattr(error, "errno", None) == 2003:  # Snowflake: does not exist or not authorized
        return True
    text = str(error).lower()
    return type(error).__name__ == "CatalogException" or any(
        phrase in text for phrase in ("does not exist", "no such table", "doesn't exist")
    )


def failure_kind(error: BaseException) -> str:
    """``missing`` (no results tables yet), ``unreachable`` (the warehouse could not be used) or
    ``unreadable`` (it answered, but refused the read)."""
    if is_infrastructure_error(error):
        return "unreachable"
    if is_missing_table(error):
        return "missing"
    return "unreadable"
