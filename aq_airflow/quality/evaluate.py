"""Outcomes from the fused query's values: each check passed, failed or errored, each metric's
value against its static or learned bounds."""

from __future__ import annotations

import datetime
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from aq_airflow.plan.model import CheckPlan, MetricPlan
from aq_airflow.quality.numbers import number
from aq_airflow.quality.suite import Compiled
from aq_airflow.results.rows import Outcome as Result
from aq_airflow.results.rows import Severity

PASSED, FAILED, ERROR = Result.PASSED, Result.FAILED, Result.ERROR  # what a check or metric recorded


@dataclass
class Outcome:
    """One row of a results table."""

    name: str
    kind: str
    outcome: str
    severity: str
    message: str
    observed: Any = None
    expected: Any = None
    failing_rows: int | None = None
    rows: int | None = None
    sample: list[dict] | None = None
    value: float | None = None
    details: dict = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return self.outcome != PASSED and self.severity == Severity.ERROR


def _number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} `{value}` is not a number") from None


def _allowed(failing: int, rows: int, mostly: float | None) -> int:
    """How many failing rows pass: none, or ``(1 - mostly)`` of the rows."""
    return math.floor(rows * (1 - mostly) + 1e-9) if mostly is not None else 0


def base_fields(spec: CheckPlan | MetricPlan) -> dict[str, str]:
    """The fields every outcome of a check or metric carries."""
    return {"name": spec.name, "kind": spec.kind, "severity": str(spec.severity)}


def check_outcome(compiled: Compiled, values: dict[str, Any], now: datetime.datetime) -> Outcome:
    spec: CheckPlan = compiled.spec
    kind = spec.kind
    base = base_fields(spec)
    if compiled.error:
        return Outcome(**base, outcome=ERROR, message=compiled.error)
    read = {role: values[alias] for role, alias in compiled.measures.items()}
    try:
        if kind in ("not_null", "between", "accepted_values", "expression", "unique"):
            rows = int(read["rows"] or 0)
            failing = rows - int(read["distinct"] or 0) if kind == "unique" else int(read["failing"] or 0)
            allowed = _allowed(failing, rows, spec.mostly)
            passed = failing <= allowed
            what = "duplicate rows" if kind == "unique" else "failing rows"
            expected = f"at most {allowed} {what}" + (f" (mostly {spec.mostly})" if spec.mostly else "")
            message = (
                f"{failing} of {rows} rows {'are duplicates' if kind == 'unique' else 'fail'}; expected {expected}"
            )
            return Outcome(**base, outcome=PASSED if passed else FAILED, message=message, observed=failing,
                           expected=expected, failing_rows=failing, rows=rows)  # fmt: skip
        if kind == "row_count":
            rows = int(read["rows"] or 0)
            low = None if spec.low is None else _number(spec.low, "row_count.min")
            high = None if spec.high is None else _number(spec.high, "row_count.max")
            passed = (low is None or rows >= low) and (high is None or rows <= high)
            expected = {"min": low, "max": high}
            message = f"{rows} rows; expected {_row_range(low, high)}"
            return Outcome(**base, outcome=PASSED if passed else FAILED, message=message, observed=rows,
                           expected=expected, rows=rows)  # fmt: skip
        if kind == "freshness":
            return _freshness(spec, base, read["latest"], now)
    except (ValueError, TypeError) as error:
        return Outcome(**base, outcome=ERROR, message=str(error))
    raise AssertionError(f"not a fused check kind: {kind}")


def _aware(moment: Any) -> datetime.datetime:
    """A column's newest value as an aware datetime (naive values are UTC, dates midnight)."""
    if isinstance(moment, str):
        moment = datetime.datetime.fromisoformat(moment)
    if not isinstance(moment, datetime.datetime):
        moment = datetime.datetime.combine(moment, datetime.time())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.timezone.utc)


def _freshness(spec: CheckPlan, base: dict, latest: Any, now: datetime.datetime) -> Outcome:
    """The newest value's age as of ``now`` (the operator's reference: the later of the data
    interval end and the clock for a live run, the data interval end for a backfill). Data newer
    than the reference is fresh, 0 h old, and the message says so with both timestamps: an age
    is never negative, so "-6520 h old" cannot pass, or appear, by accident."""
    max_age = spec.max_age
    if latest is None:
        return Outcome(**base, outcome=FAILED, message="no rows: nothing is fresh", expected=spec.max_age_text)
    latest = _aware(latest)
    reference = _aware(now)
    ahead = (latest - reference).total_seconds()
    age = max(0.0, -ahead)
    details = {"reference": reference.isoformat(), "age_seconds": age}
    if ahead > 0:
        details["ahead_seconds"] = ahead
        message = (
            f"newest {spec.column} is {latest.isoformat()}, {ahead / 3600:.1f} h after the reference "
            f"{reference.isoformat()}: newer than the run's date, so 0 h old (fresh); "
            f"expected at most {spec.max_age_text}"
        )
    else:
        message = (
            f"newest {spec.column} is {latest.isoformat()}, {age / 3600:.1f} h old as of {reference.isoformat()}; "
            f"expected at most {spec.max_age_text}"
        )
    return Outcome(**base, outcome=PASSED if age <= max_age else FAILED, message=message,
                   observed=latest.isoformat(), expected=spec.max_age_text, details=details)  # fmt: skip


def _row_range(low: float | None, high: float | None) -> str:
    """``at least 1000``, ``at most 0``, ``between 1 and 10``: the bounds as the spec wrote them."""
    if high is None:
        return f"at least {number(low)}" if low is not None else "any number of rows"
    if low is None:
        return f"at most {number(high)}"
    return f"between {number(low)} and {number(high)}"


def metric_outcome(compiled: Compiled, values: dict[str, Any], history: list[float]) -> Outcome:
    """The metric's value and its bounds: static, z-score over history, or change from the latest
    earlier date's passed value."""
    spec: MetricPlan = compiled.spec
    base = base_fields(spec)
    if compiled.error:
        return Outcome(**base, outcome=ERROR, message=compiled.error)
    raw = values[compiled.measures["value"]]
    if raw is None:
        return Outcome(**base, outcome=ERROR, message="the metric is NULL (no rows?)")
    value = float(raw)
    problems, expected = [], {}
    if spec.bounds_min is not None or spec.bounds_max is not None:
        expected["bounds"] = {k: v for k, v in (("min", spec.bounds_min), ("max", spec.bounds_max)) if v is not None}
    if not math.isfinite(value):
        # NaN compares false with every bound (it would pass them all) and inf breaks JSON (the
        # XCom push): a value that is not a finite number fails, whatever bounds the spec gave
        return Outcome(**base, outcome=FAILED, observed=str(value), expected=expected,
                       message=f"{spec.name} = {value}: the value is not a number (NaN or infinite), "
                               "so it cannot be within its bounds")  # fmt: skip
    if expected:
        if spec.bounds_min is not None and value < spec.bounds_min:
            problems.append(f"below the minimum {number(spec.bounds_min)}")
        if spec.bounds_max is not None and value > spec.bounds_max:
            problems.append(f"above the maximum {number(spec.bounds_max)}")
    notes = []
    # ``history``: the latest passed value of each earlier logical date, newest first (the
    # results store's metric_history), so the judged date, later dates and failed values are
    # never in it
    if spec.history_window:
        window, limit, minimum = spec.history_window, spec.max_zscore, spec.history_minimum
        past = history[:window]
        expected["history"] = {"window": window, "max_zscore": limit, "min_history": minimum, "values": len(past)}
        if len(past) < minimum:
            notes.append(f"learning: {len(past)} of {minimum} values")
        else:
            mean, spread = statistics.fmean(past), statistics.stdev(past)
            z = 0.0 if value == mean else (math.inf if spread == 0 else abs(value - mean) / spread)
            expected["history"].update(mean=mean, stddev=spread, zscore=z)
            if z > limit:
                problems.append(
                    f"{z:.2f} standard deviations from the mean {number(mean)} of the {len(past)} earlier dates"
                )
    if spec.max_change is not None:
        limit = spec.max_change
        expected["max_change"] = limit
        if not history:
            notes.append("no earlier date's passed value to compare with")
        else:
            previous = history[0]
            moved = 0.0 if value == previous else (math.inf if previous == 0 else abs(value - previous) / abs(previous))
            expected["previous"] = previous
            if moved > limit:
                problems.append(
                    f"changed {moved:.1%} from {number(previous)}, the latest earlier date's passed value "
                    f"(at most {limit:.0%})"
                )
    outcome = FAILED if problems else PASSED
    message = f"{spec.name} = {number(value)}" + (": " + "; ".join(problems) if problems else "")
    if notes:
        message += " (" + "; ".join(notes) + ")"
    return Outcome(**base, outcome=outcome, message=message, value=value, observed=value, expected=expected)
