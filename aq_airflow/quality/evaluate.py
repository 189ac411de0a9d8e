"""Outcomes from the fused query's values: each check passed, failed or errored, each metric's
value against its static or learned bounds."""

from __future__ import annotations

import datetime
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from aq_airflow.plan.model import CheckPlan, MetricPlan
from aq_airflow.quality.suite import Compiled

PASSED, FAILED, ERROR = "passed", "failed", "error"
MIN_HISTORY = 3


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
        return self.outcome != PASSED and self.severity == "error"


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
            message = f"{rows} rows; expected between {low if low is not None else '-inf'} and {high or 'inf'}"
            return Outcome(**base, outcome=PASSED if passed else FAILED, message=message, observed=rows,
                           expected=expected, rows=rows)  # fmt: skip
        if kind == "freshness":
            latest = read["latest"]
            max_age = spec.max_age
            if latest is None:
                return Outcome(**base, outcome=FAILED, message="no rows: nothing is fresh", expected=max_age)
            if isinstance(latest, str):
                latest = datetime.datetime.fromisoformat(latest)
            if not isinstance(latest, datetime.datetime):
                latest = datetime.datetime.combine(latest, datetime.time())
            if latest.tzinfo is None:
                latest = latest.replace(tzinfo=datetime.timezone.utc)
            age = (now - latest).total_seconds()
            passed = age <= max_age
            message = f"newest {spec.column} is {latest.isoformat()}, {age / 3600:.1f} h old; " \
                      f"expected at most {spec.max_age_text}"  # fmt: skip
            return Outcome(**base, outcome=PASSED if passed else FAILED, message=message, observed=latest.isoformat(),
                           expected=spec.max_age_text)  # fmt: skip
    except (ValueError, TypeError) as error:
        return Outcome(**base, outcome=ERROR, message=str(error))
    raise AssertionError(f"not a fused check kind: {kind}")


def metric_outcome(compiled: Compiled, values: dict[str, Any], history: list[float]) -> Outcome:
    """The metric's value and its bounds: static, z-score over history, or change from last run."""
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
        if spec.bounds_min is not None and value < spec.bounds_min:
            problems.append(f"below the minimum {spec.bounds_min}")
        if spec.bounds_max is not None and value > spec.bounds_max:
            problems.append(f"above the maximum {spec.bounds_max}")
    notes = []
    if spec.history_window:
        window, limit = spec.history_window, spec.max_zscore
        past = history[:window]
        expected["history"] = {"window": window, "max_zscore": limit, "runs": len(past)}
        if len(past) < MIN_HISTORY:
            notes.append(f"not enough history for a learned bound ({len(past)} of at least {MIN_HISTORY} runs)")
        else:
            mean, spread = statistics.fmean(past), statistics.stdev(past)
            z = 0.0 if value == mean else (math.inf if spread == 0 else abs(value - mean) / spread)
            expected["history"].update(mean=mean, stddev=spread, zscore=z)
            if z > limit:
                problems.append(f"{z:.2f} standard deviations from the mean {mean:.4g} of the last {len(past)} runs")
    if spec.max_change is not None:
        limit = spec.max_change
        expected["max_change"] = limit
        if not history:
            notes.append("no previous run to compare with")
        else:
            previous = history[0]
            moved = 0.0 if value == previous else (math.inf if previous == 0 else abs(value - previous) / abs(previous))
            expected["previous"] = previous
            if moved > limit:
                problems.append(f"changed {moved:.1%} from the previous run's {previous:.4g} (at most {limit:.0%})")
    outcome = FAILED if problems else PASSED
    message = f"{spec.name} = {value:.6g}" + (": " + "; ".join(problems) if problems else "")
    if notes:
        message += " (" + "; ".join(notes) + ")"
    return Outcome(**base, outcome=outcome, message=message, value=value, observed=value, expected=expected)
