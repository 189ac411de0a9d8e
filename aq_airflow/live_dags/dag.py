"""Plan -> live Airflow DAG objects (the dags-folder loader's backend)."""

from __future__ import annotations

import datetime
from typing import Any

from airflow.sdk import DAG, Asset, TaskGroup

from aq_airflow import operators
from aq_airflow.operators.registry import AQ_OPERATORS, operator_arguments, operator_expansion, operator_import
from aq_airflow.pipeline_spec.operator_classes import OperatorClassError, import_operator_class
from aq_airflow.plan import AssetRef, CallbackRef, DagPlan, Seconds, TaskPlan


class StepBuildError(Exception):
    """A step whose task cannot be built, with where in the spec (``path``) and why: an
    ``operator:`` class that does not import here (its provider missing on this machine)."""

    def __init__(self, path: tuple, message: str):
        self.path = path
        self.message = message
        super().__init__(message)


def materialize(value: Any) -> Any:
    """The plan's marker values as the objects Airflow expects (typed plans pass as they are)."""
    if isinstance(value, Seconds):
        return datetime.timedelta(seconds=value.value)
    if isinstance(value, AssetRef):
        return Asset(name=value.name, uri=value.uri)
    if isinstance(value, CallbackRef):
        return operators.ImportedCallback(value.path)
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [materialize(v) for v in value]
    return value


def operator_class(task: TaskPlan) -> type:
    """The class that runs ``task``: ours, or an ``operator:`` step's class, imported now (as
    Airflow imports what a Python DAG file names)."""
    module, name = operator_import(task)
    if module == AQ_OPERATORS:
        return getattr(operators, name)
    try:
        return import_operator_class(task.body.class_path)
    except OperatorClassError as error:
        raise StepBuildError(("steps", task.group, "operator"), str(error)) from None


def _task(operator: type, task: TaskPlan, task_id: str, dag: DAG, group: TaskGroup, arguments: dict) -> Any:
    """One task of ``operator``. An ``operator:`` step's class may refuse its ``args`` (a required
    argument missing, a value of the wrong type; ``validate`` checks the names, not every value):
    that is the step's error, located at its ``args:``, not a bug of ours."""
    if operator_import(task)[0] == AQ_OPERATORS:
        return operator(task_id=task_id, dag=dag, task_group=group, **arguments)
    try:
        return operator(task_id=task_id, dag=dag, task_group=group, **arguments)
    except Exception as error:  # whatever the user's class raises for its arguments
        message = f"`{operator.__name__}` refused its arguments: {error}; fix `args:` of this step"
        raise StepBuildError(("steps", task.group, "args"), message) from None


def build_dag(plan: DagPlan) -> DAG:
    """One DAG with a task group per step, wired as the plan says."""
    dag = DAG(**materialize(plan.dag_arguments()))
    groups = {g.group_id: TaskGroup(g.group_id, tooltip=g.tooltip, dag=dag) for g in plan.groups}
    tasks = {}
    for task in plan.tasks:
        operator = operator_class(task)
        short_id = task.task_id.removeprefix(f"{task.group}.")
        arguments = materialize(operator_arguments(task))
        expansion = operator_expansion(task)
        if expansion:  # a `foreach:` step's task: one instance per item of its items task's list
            partial = operator.partial(task_id=short_id, dag=dag, task_group=groups[task.group], **arguments)
            tasks[task.task_id] = partial.expand(**{k: tasks[over].output for k, over in expansion.items()})
            continue
        tasks[task.task_id] = _task(operator, task, short_id, dag, groups[task.group], arguments)
    for task in plan.tasks:
        for upstream in task.upstream:
            tasks[upstream] >> tasks[task.task_id]
    return dag
