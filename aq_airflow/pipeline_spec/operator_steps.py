"""What an ``operator:`` step may say: the escape hatch to any Airflow operator or sensor class.

Such a step takes part in the pipeline's order (``depends_on``, ``when:``, retries, timeout,
pool) but not in its data contract: it reads no step output and writes none, so nothing may read
it, check it or publish it, and it runs in the Airflow worker (no image, resources or env).
Checked on the validated model, at parse time, without importing the class (validate imports it:
:mod:`aq_airflow.pipeline_spec.operator_classes`).
"""

from __future__ import annotations

import keyword

from aq_airflow.pipeline_spec.foreach import ForeachStep
from aq_airflow.pipeline_spec.models import Pipeline

# Keyword arguments the DAG builder gives every task itself; in `args` they would clash with it,
# so each is refused with where the setting goes instead.
BUILDER_ARGUMENTS = {
    "task_id": "the task id is the step's name (in its task group)",
    "dag": "the task belongs to this pipeline's DAG",
    "task_group": "the task is in its step's task group",
    "retries": "set the step's `retries:` (or under `defaults:`)",
    "retry_delay": "set the step's `retry_delay:` (or under `defaults:`)",
    "execution_timeout": "set the step's `timeout:` (or under `defaults:`)",
    "pool": "set the step's `pool:` (or under `defaults:`)",
}

_NO_OUTPUT = (
    "an `operator` step has no output: `checks`, `metrics`, `publish` and `sensitive` apply to the data a "
    "step writes; to check what the operator produced, read it with a `table:` or `sql:` step that lists "
    "this step under `depends_on`"
)
_IN_WORKER = (
    "an `operator` step runs its operator in the Airflow worker, not as a step process: `image`, `resources` "
    "and `env` do not apply; pass the operator's own settings under `args`"
)
_REFUSED = {
    "inputs": "an `operator` step reads no step outputs (its operator gets only `args`): to run it after "
    "other steps, list them under `depends_on`",
    "foreach": "an `operator` step runs once: `foreach:` runs a python or command step per item",
    "checks": _NO_OUTPUT,
    "metrics": _NO_OUTPUT,
    "publish": _NO_OUTPUT,
    "sensitive": _NO_OUTPUT,
    "image": _IN_WORKER,
    "resources": _IN_WORKER,
    "env": _IN_WORKER,
}


def operator_step_problems(pipeline: Pipeline) -> list[tuple[tuple, str, bool]]:
    """``(path, message, at_key)`` for what an operator step may not say, and for other steps
    that read an operator step as if it had an output."""
    found: list[tuple[tuple, str, bool]] = []
    operator_steps = {name for name, step in pipeline.steps.items() if step.kind == "operator"}
    for name, step in pipeline.steps.items():
        at = ("steps", name)
        if step.kind == "operator":
            found += [((*at, key), why, True) for key, why in _REFUSED.items() if getattr(step, key)]
            for key in step.args or {}:
                if key in BUILDER_ARGUMENTS:
                    found.append(((*at, "args", key), f"`{key}` is set by aq-airflow, not in `args`: "
                                  f"{BUILDER_ARGUMENTS[key]}", True))  # fmt: skip
                elif keyword.iskeyword(key):
                    found.append(((*at, "args", key), f"`{key}` is a Python keyword: no operator takes it "
                                  "as a keyword argument", True))  # fmt: skip
        inputs = step.inputs.items() if isinstance(step.inputs, dict) else enumerate(step.inputs or [])
        for where, producer in inputs:
            if producer in operator_steps:
                found.append(((*at, "inputs", where), f"`{producer}` is an `operator` step and has no output: "
                              "to run after it, list it under `depends_on` instead", False))  # fmt: skip
        if isinstance(step.foreach, ForeachStep) and step.foreach.step in operator_steps:
            found.append(((*at, "foreach", "step"), f"`{step.foreach.step}` is an `operator` step and has no "
                          "output to run over: take the items from a param, a list or a step that writes them",
                          False))  # fmt: skip
    return found
