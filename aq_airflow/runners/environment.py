"""A step's environment: the aq contract (``runtime.contract``) filled in from its run plan.

Pods and local processes get the same variables, built here and only here; the runtime reads
them. Values may hold Airflow templates (``{{ run_id }}``, a step's ``args``), which the operator
renders before the step starts.
"""

from __future__ import annotations

import json

from aq_airflow.plan.model import RunPlan
from aq_airflow.runtime import contract

RUN_ID_TEMPLATE = "{{ run_id }}"
# Airflow context values a step function may name as parameters (rendered by Airflow at run time).
# Runs without a logical date (asset-triggered, some manual runs) have no `ds` or `logical_date`
# in Airflow's context: there both are the run's own date (`run_after`).
CONTEXT_TEMPLATE = (
    "{% set when = logical_date if logical_date is defined and logical_date else dag_run.run_after %}"
    '{"run_id": {{ run_id | tojson }}, "ds": {{ when.strftime("%Y-%m-%d") | tojson }}, '
    '"logical_date": {{ when | string | tojson }}, "params": {{ dict(params) | tojson }}}'
)


def step_environment(run: RunPlan) -> dict[str, str]:
    """The user's plain values, then the contract's: who the step is, its args, its context and
    the names and form of its inputs (their locations come from :func:`locations`)."""
    env = {**run.env, contract.DAG_ID: run.output.dag_id, contract.RUN_ID: RUN_ID_TEMPLATE, contract.STEP: run.step}
    if run.args:
        env[contract.ARGS] = json.dumps(run.args, sort_keys=True)
    env[contract.CONTEXT] = CONTEXT_TEMPLATE
    if run.inputs:
        env[contract.INPUTS] = contract.encode_inputs([i.argument for i in run.inputs], run.inputs_as_list)
    return env


def locations(run: RunPlan, root: str, run_id: str) -> dict[str, str]:
    """The store root, the step's output location and one location per input, for one run."""
    env = {contract.ARTIFACTS: root, contract.OUTPUT: run.output.location(root, run_id)}
    for ref in sorted(run.inputs, key=lambda i: i.argument):
        env[contract.input_variable(ref.argument)] = ref.artifact.location(root, run_id)
    return env
