"""`when:` conditions compiled into the Plan: references resolved once, here."""

from __future__ import annotations

from aq_airflow.pipeline_spec.conditions import Condition, ParamOperand, RecordedOperand
from aq_airflow.plan.model import ConditionPlan


def compile_condition(condition: Condition) -> ConditionPlan:
    """A spec condition as the condition operator reads it (a tree of ConditionPlan)."""
    kind = condition.kind
    if kind in ("all", "any"):
        return ConditionPlan(kind=kind, terms=tuple(compile_condition(c) for c in getattr(condition, kind)))
    if kind == "not_":
        return ConditionPlan(kind="not", terms=(compile_condition(condition.not_),))
    if kind == "check":
        step, name = condition.check.split(".")
        return ConditionPlan(kind="check", step=step, name=name, op="passed", value=condition.passed is not False)
    fields: dict = {}
    if kind == "metric":
        fields["step"], fields["name"] = condition.metric.split(".")
    else:
        fields["name"] = condition.param
    comparison = condition.comparison
    if comparison is None:
        return ConditionPlan(kind=kind, op="truthy", **fields)
    op, operand = comparison
    if isinstance(operand, ParamOperand):
        fields["value_param"] = operand.param
    elif isinstance(operand, RecordedOperand):
        fields["champion"] = True
    else:
        fields["value"] = operand
    return ConditionPlan(kind=kind, op=op, **fields)


def reads_results(plan: ConditionPlan) -> bool:
    """Whether evaluating the condition reads the results tables (metrics or checks)."""
    return plan.kind in ("metric", "check") or any(reads_results(t) for t in plan.terms)


def results_tasks(plan: ConditionPlan) -> set[str]:
    """The quality tasks whose rows the condition reads: they run before it."""
    own = {f"{plan.step}.{'metrics' if plan.kind == 'metric' else 'checks'}"} if plan.step else set()
    return own.union(*(results_tasks(t) for t in plan.terms))
