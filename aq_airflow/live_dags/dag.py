"""Plan -> live Airflow DAG objects (the dags-folder loader's backend)."""

from __future__ import annotations

import datetime
from typing import Any

from airflow.sdk import DAG, Asset, TaskGroup

from aq_airflow import operators
from aq_airflow.operators.registry import operator_arguments, operator_expansion, operator_name
from aq_airflow.plan import AssetRef, CallbackRef, DagPlan, Seconds


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


def build_dag(plan: DagPlan) -> DAG:
    """One DAG with a task group per step, wired as the plan says."""
    dag = DAG(**materialize(plan.dag_arguments()))
    groups = {g.group_id: TaskGroup(g.group_id, tooltip=g.tooltip, dag=dag) for g in plan.groups}
    tasks = {}
    for task in plan.tasks:
        operator = getattr(operators, operator_name(task))
        short_id = task.task_id.removeprefix(f"{task.group}.")
        arguments = materialize(operator_arguments(task))
        expansion = operator_expansion(task)
        if expansion:  # a `foreach:` step's task: one instance per item of its items task's list
            partial = operator.partial(task_id=short_id, dag=dag, task_group=groups[task.group], **arguments)
            tasks[task.task_id] = partial.expand(**{k: tasks[over].output for k, over in expansion.items()})
            continue
        tasks[task.task_id] = operator(task_id=short_id, dag=dag, task_group=groups[task.group], **arguments)
    for task in plan.tasks:
        for upstream in task.upstream:
            tasks[upstream] >> tasks[task.task_id]
    return dag
