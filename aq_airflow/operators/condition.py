"""The condition task of a step with `when:`: evaluates the planned condition and skips the step
when it does not hold.

Operands come from the run's params (Airflow's rendered params, run conf included) and from the
results rows this run's metrics and checks wrote (read through :class:`ResultsStore`, values as
query parameters). Nothing from the spec is evaluated as Python or pasted into SQL: the condition
is a tree of :class:`ConditionPlan` nodes and this module interprets it.

A condition that does not hold raises :class:`AirflowSkipException`: the task is skipped, and
Airflow's default trigger rule (``all_success``) skips every task downstream of it whose
upstreams include it, the step's own run, checks, metrics and publish, and any step that needs
the skipped output, however many other upstreams it has. Steps that do not depend on it run;
nothing fails because of a skip. The reason (each operand's value) goes to the task log; a
condition that reads results also records its verdict in ``aq_check_results`` (under the step's
own name, role ``when``, name and kind ``when``), which is how `{recorded: champion}` finds the
date of the current champion.
"""

from __future__ import annotations

import json
import math
from typing import Any

from airflow.exceptions import AirflowException
from airflow.sdk.exceptions import AirflowSkipException

from aq_airflow.operators.facts import ResultsRecorder
from aq_airflow.plan.model import ConditionPlan, WhenPlan
from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore, utcnow
from aq_airflow.results.rows import CheckRow, Outcome, Role, Severity, naive_utc
from aq_airflow.runtime.param_limits import param_problem
from aq_airflow.warehouse import Warehouse

_FALSE_TEXT = {"", "0", "false", "no", "off", "none", "null"}
_COMPARE = {
    "above": lambda a, b: a > b,
    "below": lambda a, b: a < b,
    "at_least": lambda a, b: a >= b,
    "at_most": lambda a, b: a <= b,
}
_WORDS = {"above": ">", "below": "<", "at_least": ">=", "at_most": "<=", "equals": "=="}


def truthy(value: Any) -> bool:
    """A param flag: booleans as they are, numbers when non-zero, text unless it says false."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXT
    return bool(value)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or value is None:
        raise AirflowException(f"{what} is {value!r}, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AirflowException(f"{what} is {value!r}, not a number") from None
    if math.isnan(number):
        raise AirflowException(f"{what} is NaN, not a number")
    return number


class ConditionContext:
    """What a condition reads: params, and (lazily) this run's results rows."""

    def __init__(self, plan: WhenPlan, params: dict, context: Any, store_factory):
        self.plan = plan
        self.params = params
        self.context = context
        self._store_factory = store_factory
        self._store: ResultsStore | None = None
        ti = context["ti"]
        self.dag_id, self.run_id = ti.dag_id, ti.run_id
        self.map_index = ti.map_index if ti.map_index not in (None, -1) else -1
        self.logical_date = naive_utc(_run_date(context))

    @property
    def store(self) -> ResultsStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def param(self, name: str) -> Any:
        """A param the condition reads; one past the limits (a triggered run's conf may hold
        anything) fails this condition only, naming it: other params are never looked at."""
        if name not in self.params:
            raise AirflowException(f"the run has no param `{name}`")
        value = self.params[name]
        problem = param_problem(name, value)
        if problem:
            raise AirflowException(f"step `{self.plan.step}`, `when:`: {problem}")
        return value


def _run_date(context: Any):
    return context.get("logical_date") or context["dag_run"].run_after


def evaluate(node: ConditionPlan, ctx: ConditionContext, lines: list[str], depth: int = 0) -> bool:
    """Whether ``node`` holds; appends one line per node (its operands and verdict) to ``lines``."""
    pad = "  " * depth
    if node.kind in ("all", "any", "not"):
        at = len(lines)
        lines.append("")
        verdicts = [evaluate(term, ctx, lines, depth + 1) for term in node.terms]  # every term, for the log
        held = all(verdicts) if node.kind == "all" else any(verdicts) if node.kind == "any" else not verdicts[0]
        lines[at] = f"{pad}{node.kind}: {'holds' if held else 'does not hold'}"
        return held
    if node.kind == "check":
        found = ctx.store.run_result(CHECKS_TABLE, ctx.dag_id, ctx.run_id, node.step, node.name, ctx.logical_date,
                                     ctx.map_index)  # fmt: skip
        outcome = found[1] if found else None
        held = outcome is not None and (outcome == Outcome.PASSED) == bool(node.value)
        shown = outcome if outcome is not None else "not recorded by this run"
        want = Outcome.PASSED.value if node.value else f"not {Outcome.PASSED}"
        lines.append(f"{pad}check {node.step}.{node.name}: {shown}; wanted {want}: {_verdict(held)}")
        return held
    if node.kind == "param":
        left, label = ctx.param(node.name), f"param {node.name}"
    else:
        found = ctx.store.run_result(METRICS_TABLE, ctx.dag_id, ctx.run_id, node.step, node.name, ctx.logical_date,
                                     ctx.map_index)  # fmt: skip
        label = f"metric {node.step}.{node.name}"
        if found is None or found[0] is None:
            lines.append(f"{pad}{label}: no value recorded by this run: does not hold")
            return False
        left = found[0]
    if node.op == "truthy":
        held = truthy(left)
        lines.append(f"{pad}{label} = {left!r}: {'truthy' if held else 'not truthy'}: {_verdict(held)}")
        return held
    if node.champion:
        champion = ctx.store.champion(ctx.dag_id, ctx.plan.step, node.step, node.name, ctx.logical_date,
                                      ctx.map_index)  # fmt: skip
        if champion is None:
            lines.append(f"{pad}{label} = {left!r}; no champion recorded before this date: holds")
            return True
        date, right = champion
        if right is None:
            lines.append(f"{pad}{label} = {left!r}; the champion of {date} has no recorded value: does not hold")
            return False
        shown = f"champion {right!r} (recorded {_day(date)})"
    elif node.value_param is not None:
        right = ctx.param(node.value_param)
        shown = f"param {node.value_param} = {right!r}"
    else:
        right = node.value
        shown = repr(right)
    if node.op == "equals":
        held = left == right
    else:
        held = _COMPARE[node.op](_number(left, label), _number(right, shown))
    lines.append(f"{pad}{label} = {left!r} {_WORDS[node.op]} {shown}: {_verdict(held)}")
    return held


def _day(moment) -> str:
    """A logical date as written: the day alone at midnight."""
    text = str(moment)
    return text.removesuffix(" 00:00:00")


def _verdict(held: bool) -> str:
    return "holds" if held else "does not hold"


class AqConditionOperator(ResultsRecorder):
    """A step's `when:`: skips the step (Airflow's skipped state) when the condition does not hold.
    Its facts (``ResultsRecorder``) say where its verdict is recorded."""

    ui_color = "#fdf6e3"

    def __init__(self, *, plan: WhenPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def _store(self) -> ResultsStore:
        store = ResultsStore(Warehouse.from_conn_id(self.plan.warehouse), self.plan.results_schema)
        store.ensure_tables(verdicts=True)  # and verdicts a release-N worker wrote during an upgrade
        return store

    def execute(self, context: Any) -> Any:
        plan = self.plan
        ctx = ConditionContext(plan, dict(context.get("params") or {}), context, self._store)
        lines: list[str] = []
        held = evaluate(plan.condition, ctx, lines)
        reason = "\n".join(lines)
        self.log.info("`when:` of step `%s`:\n%s", plan.step, reason)
        if plan.reads_results:
            self._record(ctx, held, reason)
        if not held:
            raise AirflowSkipException(f"step `{plan.step}` skipped: its `when:` does not hold\n{reason}")
        return {"step": plan.step, "held": True}

    def _record(self, ctx: ConditionContext, held: bool, reason: str) -> None:
        """The verdict as a row of aq_check_results (the step's own, role ``when``): what
        ``{recorded: champion}`` finds the champion's date by, and what ``aq-airflow results`` shows."""
        ti = ctx.context["ti"]
        row = CheckRow(
            dag_id=ctx.dag_id,
            run_id=ctx.run_id,
            step=self.plan.step,
            role=Role.WHEN,
            map_index=ctx.map_index,
            item_label=None,  # a condition task is never mapped: it runs before the items task
            try_number=ti.try_number,
            spec_hash=self.plan.spec_hash,
            logical_date=ctx.logical_date,
            created_at=utcnow(),
            name=Role.WHEN,
            kind=Role.WHEN,
            outcome=Outcome.PASSED if held else Outcome.SKIPPED,
            severity=Severity.WARNING,
            message=reason,
            details=json.dumps({"held": held}),
        )
        key = {"dag_id": row.dag_id, "logical_date": row.logical_date, "step": row.step, "map_index": row.map_index,
               "role": row.role}  # fmt: skip
        ctx.store.replace(CHECKS_TABLE, key, [row])
