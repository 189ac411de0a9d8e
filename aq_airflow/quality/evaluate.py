"""Outcomes from the fused query's values: each check passed, failed or errored, each metric's
value against its static or learned bounds."""

from __future__ import annotations

import datetime
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from aq_airflow.quality.suite import Compiled
from aq_airflow.spec.types import duration_seconds

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


def check_outcome(compiled: Compiled, values: dict[str, Any], now: datetime.datetime) -> Outcome:
    spec, kind = compiled.spec, compiled.kind
    base = {"name": spec["name"], "kind": kind, "severity": spec.get("severity", "error")}
    if compiled.error:
        return Outcome(**base, outcome=ERROR, message=compiled.error)
    read = {role: values[alias] for role, alias in compiled.measures.items()}
    try:
        if kind in ("not_null", "between", "accepted_values", "expression", "unique"):
            rows = int(read["rows"] or 0)
            failing = rows - int(read["distinct"] or 0) if kind == "unique" else int(read["failing"] or 0)
            allowed = _allowed(failing, rows, spec.get("mostly"))
            passed = failing <= allowed
            what = "duplicate rows" if kind == "unique" else "failing rows"
            expected = f"at most {allowed} {what}" + (f" (mostly {spec['mostly']})" if spec.get("mostly") else "")
            message = (
                f"{failing} of {rows} rows {'are duplicates' if kind == 'unique' else 'fail'}; expected {expected}"
            )
            return Outcome(**base, outcome=PASSED if passed else FAILED, message=message, observed=failing,
                           expected=expected, failing_rows=failing, rows=rows)  # fmt: skip
        if kind == "row_count":
            rows = int(read["rows"] or 0)
            low, high = spec["row_count"].get("min"), spec["row_count"].get("max")
            low = None if low is None else _number(low, "row_count.min")
            high = None if high is None else _number(high, "row_count.max")
            passed = (low is None or rows >= low) and (high is None or rows <= high)
            expected = {"min": low, "max": high}
            message = f"{rows} rows; expected between {low if low is not None else '-inf'} and {high or 'inf'}"
            return Outcome(**base, outcome=PASSED if passed else FAILED, message=message, observed=rows,
                           expected=expected, rows=rows)  # fmt: skip
        if kind == "freshness":
            latest = read["latest"]
            max_age = duration_seconds(spec["freshness"]["max_age"])
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
            message = f"newest {spec['freshness']['column']} is {latest.isoformat()}, {age / 3600:.1f} h old; " \
                      f"expected at most {spec['freshness']['max_age']}"  # fmt: skip
            return Outcome(**base, outcome=PASSED if passed else FAILED, message=message, observed=latest.isoformat(),
                           expected=spec["freshness"]["max_age"])  # fmt: skip
    except (ValueError, TypeError) as error:
        return Outcome(**base, outcome=ERROR, message=str(error))
    raise AssertionError(f"not a fused check kind: {kind}")


def metric_outcome(compiled: Compiled, values: dict[str, Any], history: list[float]) -> Outcome:
    """The metric's value and its bounds: static, z-score over history, or change from last run."""
    spec = compiled.spec
    base = {"name": spec["name"], "kind": compiled.kind, "severity": spec.get("severity", "warning")}
    if compiled.error:
        return Outcome(**base, outcome=ERROR, message=compiled.error)
    raw = values[compiled.measures["value"]]
    if raw is None:
        return Outcome(**base, outcome=ERROR, message="the metric is NULL (no rows?)")
    value = float(raw)
    problems, expected = [], {}
    bounds = spec.get("bounds") or {}
    if bounds:
        expected["bounds"] = bounds
        if bounds.get("min") is not None and value < bounds["min"]:
            problems.append(f"below the minimum {bounds['min']}")
        if bounds.get("max") is not None and value > bounds["max"]:
            problems.append(f"above the maximum {bounds['max']}")
    notes = []
    if spec.get("history"):
        window, limit = spec["history"]["window"], spec["history"]["max_zscore"]
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
    if spec.get("max_change") is not None:
        change = spec["max_change"]
        limit = float(change.rstrip("%")) / 100 if isinstance(change, str) else float(change)
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
    message = f"{spec['name']} = {value:.6g}" + (": " + "; ".join(problems) if problems else "")
    if notes:
        message += " (" + "; ".join(notes) + ")"
    return Outcome(**base, outcome=outcome, message=message, value=value, observed=value, expected=expected)
