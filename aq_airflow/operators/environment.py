"""The step's environment made ready in an operator, the same for every step operator (a local
process, a pod, a SparkApplication, a RayJob): ``runners.environment.prepared`` with its reasons
as the task's error and its warnings in the task's log."""

from __future__ import annotations

from typing import Any

from aq_airflow.operators.errors import StepFailed
from aq_airflow.runners import environment


def prepared_environment(operator: Any, env: dict[str, str], context: Any) -> dict[str, str]:
    """``env`` (the rendered plain variables of ``operator.plan``'s step) ready to start it, or
    :class:`StepFailed` with why it cannot start."""
    run = operator.plan
    dag = context.get("dag")
    try:
        return environment.prepared(
            run, env, context.get("params"), dag.fileloc if dag else None, context["run_id"], operator.log.warning
        )
    except environment.CannotStart as why:
        raise StepFailed(f"step `{run.step}` cannot start: {why}", []) from None


def plain_values(entries: list[Any]) -> dict[str, str]:
    """The plain variables of a container's ``env`` (dicts or ``V1EnvVar``; Secret references,
    which have no value, left out)."""
    found = {}
    for entry in entries or []:
        name, value = (entry.get("name"), entry.get("value")) if isinstance(entry, dict) else (entry.name, entry.value)
        if isinstance(value, str):
            found[name] = value
    return found


def references(entries: list[Any], env: dict[str, str]) -> list[Any]:
    """The entries of a container's ``env`` that ``env`` does not replace (its Secret references)."""
    return [e for e in entries or [] if (e.get("name") if isinstance(e, dict) else e.name) not in env]
