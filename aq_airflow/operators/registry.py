"""Which operator runs a planned task, and with which arguments: one table for both backends.

``live_dags`` (live DAGs) and ``codegen`` (generated files) both ask here, so a task is the same
operator with the same arguments whichever backend made it. The choice is keyed by the task's
role and, for a step's compute, by its step kind and runner (the Plan never names a class of
ours). An ``operator:`` step is the exception: its plan names the user's class by its path, and
its arguments are the spec's ``args`` (no ``plan=``).
This module imports no Airflow: codegen uses it too.
"""

from __future__ import annotations

from typing import Any

from aq_airflow.plan.model import (
    OperatorPlan,
    PublishPlan,
    QualityPlan,
    Runner,
    RunPlan,
    ServePlan,
    StepKind,
    TaskPlan,
    TaskRole,
    WhenPlan,
)

AQ_OPERATORS = "aq_airflow.operators"

_RUN_OPERATORS: dict[tuple[StepKind, Runner | None], str] = {
    (StepKind.SQL, None): "AqSqlStepOperator",
    (StepKind.TABLE, None): "AqSqlStepOperator",
    (StepKind.PYTHON, Runner.KUBERNETES): "AqPodStepOperator",
    (StepKind.COMMAND, Runner.KUBERNETES): "AqPodStepOperator",
    (StepKind.PYTHON, Runner.LOCAL): "AqLocalStepOperator",
    (StepKind.COMMAND, Runner.LOCAL): "AqLocalStepOperator",
    (StepKind.SPARK, Runner.KUBERNETES): "AqSparkStepOperator",
    (StepKind.RAY, Runner.KUBERNETES): "AqRayJobStepOperator",
    (StepKind.SPARK, Runner.LOCAL): "AqLocalStepOperator",  # PySpark's local mode in the step's process
    (StepKind.RAY, Runner.LOCAL): "AqLocalStepOperator",  # a local Ray in the step's process
}
_QUALITY_OPERATORS = {
    TaskRole.CHECKS: "AqCheckOperator",
    TaskRole.METRICS: "AqMetricOperator",
    TaskRole.PUBLISH: "AqPublishOperator",
}

# a `serve:` step's promotion: the store's model repository (served by `aq-airflow serve`), or a
# KServe InferenceService
_SERVE_OPERATORS = {Runner.LOCAL: "AqLocalServeOperator", Runner.KUBERNETES: "AqInferenceServiceOperator"}


def operator_import(task: TaskPlan) -> tuple[str, str]:
    """Where the class that runs ``task`` comes from: (module, class name); ``AQ_OPERATORS``
    for ours, the user's module for an ``operator:`` step."""
    if isinstance(task.body, OperatorPlan):
        module, _, name = task.body.class_path.rpartition(".")
        return module, name
    return AQ_OPERATORS, operator_name(task)


def operator_name(task: TaskPlan) -> str:
    """The class in ``aq_airflow.operators`` that runs ``task`` (an ``operator:`` step's class is
    the user's: :func:`operator_import`)."""
    body = task.body
    if task.role == TaskRole.ITEMS:  # a `foreach:` step's item list
        return "AqItemsOperator"
    if isinstance(body, RunPlan):
        return _RUN_OPERATORS[body.kind, body.runner]
    if isinstance(body, WhenPlan):
        return "AqConditionOperator"
    if isinstance(body, ServePlan):
        return _SERVE_OPERATORS[body.runner]
    assert isinstance(body, QualityPlan | PublishPlan), body
    return _QUALITY_OPERATORS[task.role]


def operator_arguments(task: TaskPlan) -> dict[str, Any]:
    """The operator's keyword arguments besides ``task_id``: the task's plan and, for a task that
    records results, its facts (``TaskPlan.facts``: what the quality pages read in the serialized
    DAG), or an ``operator:`` step's ``args`` instead; then the Airflow task settings that are set
    (unset ones keep Airflow's defaults), then its outlets."""
    settings = task.settings
    body = task.body
    arguments: dict[str, Any] = dict(body.args) if isinstance(body, OperatorPlan) else {"plan": body, **task.facts()}
    for name in ("retries", "retry_delay", "execution_timeout", "pool", "max_active_tis_per_dag"):
        value = getattr(settings, name)
        if value is not None:
            arguments[name] = value
    if task.outlets:
        arguments["outlets"] = list(task.outlets)
    arguments.update(mapped_arguments(task))
    return arguments


# A mapped task's label in the grid: its item, as the operator shows it (``item_label``).
ITEM_LABEL_TEMPLATE = "{{ task.item_label }}"


def mapped_arguments(task: TaskPlan) -> dict[str, Any]:
    """A mapped task's arguments to ``partial()``: its grid label and how many items run at once."""
    if task.expand is None:
        return {}
    arguments: dict[str, Any] = {"map_index_template": ITEM_LABEL_TEMPLATE}
    if task.expand.max_parallel is not None:
        arguments["max_active_tis_per_dagrun"] = task.expand.max_parallel
    return arguments


def operator_expansion(task: TaskPlan) -> dict[str, str]:
    """A mapped task's ``expand()`` arguments: keyword -> the task id whose output (the item
    list) it expands over; empty for a task that is not mapped."""
    return {"item": task.expand.over} if task.expand is not None else {}
