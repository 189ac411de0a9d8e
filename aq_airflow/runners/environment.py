"""A step's environment: the aq contract (``runtime.contract``) filled in from its run plan.

Pods and local processes get the same variables, built here and only here; the runtime reads
them. Values may hold Airflow templates (``{{ run_id }}``, a step's ``args``), which the operator
renders before the step starts.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aq_airflow.plan.model import ArtifactRef, RunPlan
from aq_airflow.runtime import contract
from aq_airflow.runtime.item_refs import is_reference, item_file
from aq_airflow.runtime.param_limits import params_problems

RUN_ID_TEMPLATE = "{{ run_id }}"
MAP_INDEX_TEMPLATE = "{{ ti.map_index }}"  # a mapped pod's item, rendered per instance
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
        env[contract.INPUTS] = contract.encode_inputs(
            {i.argument: i.artifact.step for i in run.inputs},
            run.inputs_as_list,
            gathered=[i.argument for i in run.inputs if i.gather],  # fan-ins from mapped steps
        )
    return env


def bounded_context(rendered: str) -> tuple[str, dict[str, str]]:
    """``AQ_CONTEXT`` as Airflow rendered it, less the params past the limits of
    ``runtime.param_limits`` (a run's conf may hold anything): each is left out of ``params`` and
    named with why under ``refused_params``, and returned as ``{param: why}``. The runtime fails a
    function that takes ``params`` with that reason; a step that does not read them runs (with
    them it would not start at all: one environment string over 128 KiB stops the process)."""
    try:
        context = json.loads(rendered)
    except ValueError:  # not rendered (no run): nothing to bound
        return rendered, {}
    params = context.get("params") if isinstance(context, dict) else None
    refused = params_problems(params) if isinstance(params, dict) else {}
    if not refused:
        return rendered, {}
    context["params"] = {name: value for name, value in params.items() if name not in refused}
    context[contract.REFUSED_PARAMS] = refused
    return json.dumps(context), refused


def code_environment(run: RunPlan, dags_folder: str) -> dict[str, str]:
    """``AQ_CODE``: the step's code folder (its spec's folder, from the plan) under the folder the
    plan's paths are relative to. Pods carry their code in the image and get none of it yet."""
    if run.code_folder is None:
        return {}
    return {contract.CODE: os.path.normpath(os.path.join(dags_folder, run.code_folder))}


def item_environment(run: RunPlan, item: Any, map_index: int | str | None, root: str, run_id: str) -> dict[str, str]:
    """A `foreach:` step's item and map index; nothing for a step that is not mapped. The item
    is ``AQ_ITEM`` (its JSON), or for a large one (its stand-in from the items task,
    ``runtime.item_refs``) ``AQ_ITEM_FROM``: its file in the step's folder under ``root``."""
    if run.foreach is None:
        return {}
    if is_reference(item):
        where = item_file(run.output.location(root, run_id), map_index)
        return {contract.ITEM_FROM: where, contract.MAP_INDEX: str(map_index)}
    return {contract.ITEM: json.dumps(item, sort_keys=True, default=str), contract.MAP_INDEX: str(map_index)}


def output_ref(run: RunPlan, map_index: int | str | None) -> ArtifactRef:
    """Where this task instance writes: the step's output, or its item's for a mapped step."""
    return run.output.item(map_index) if run.foreach is not None else run.output


def locations(run: RunPlan, root: str, run_id: str, map_index: int | str | None = None) -> dict[str, str]:
    """The store root, the step's output location and one location per input, for one run
    (and, in a mapped step, one item: an input from a step mapped over the same items is that
    item's output; a fan-in's is the producer's folder of items)."""
    env = {contract.ARTIFACTS: root, contract.OUTPUT: output_ref(run, map_index).location(root, run_id)}
    for ref in sorted(run.inputs, key=lambda i: i.argument):
        artifact = ref.artifact.item(map_index) if ref.artifact.each and not ref.gather else ref.artifact
        env[contract.input_variable(ref.argument)] = artifact.location(root, run_id)
    return env
