"""A step's environment: the aq contract (``runtime.contract``) filled in from its run plan.

Pods and local processes get the same variables, built here and only here; the runtime reads
them. Values may hold Airflow templates (``{{ run_id }}``, a step's ``args``), which the operator
renders before the step starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from aq_airflow.artifacts.item_refs import is_reference, item_file
from aq_airflow.plan.model import ArtifactRef, Runner, RunPlan, StepKind
from aq_airflow.runners import code
from aq_airflow.runners.local import oversized_variable
from aq_airflow.runtime import contract
from aq_airflow.runtime.param_limits import param_problem, params_problems

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


TRY_NUMBER_TEMPLATE = "{{ ti.try_number if ti is defined else '' }}"  # every task run has a ti; a bare render not


def record_environment(run: RunPlan) -> dict[str, str]:
    """What an output's provenance records of the task that made it (``runtime.record``): who the
    step is, the run, its context (params, logical date), the try and the spec's hash; the image
    as the spec names it for a pod. A sql step's operator renders just these."""
    env = {contract.DAG_ID: run.output.dag_id, contract.RUN_ID: RUN_ID_TEMPLATE, contract.STEP: run.step,
           contract.CONTEXT: CONTEXT_TEMPLATE, contract.TRY_NUMBER: TRY_NUMBER_TEMPLATE}  # fmt: skip
    if run.spec_hash:
        env[contract.SPEC_HASH] = run.spec_hash
    if run.runner == Runner.KUBERNETES and run.image:
        env[contract.IMAGE] = run.image
    return env


def step_environment(run: RunPlan) -> dict[str, str]:
    """The user's plain values, then the contract's: who the step is, its args, its context, what
    its provenance records (:func:`record_environment`) and the names and form of its inputs (their
    locations come from :func:`locations`)."""
    env = {**run.env, **record_environment(run)}
    if run.job is not None:  # a spark or ray step: the engine the runtime starts, and its settings
        env[contract.ENGINE] = str(run.kind)
        conf = run.job.conf if run.kind == StepKind.SPARK else run.job.runtime_env
        if conf:
            env[contract.ENGINE_CONF] = json.dumps(conf, sort_keys=True)
    if run.args:
        env[contract.ARGS] = json.dumps(run.args, sort_keys=True)
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


# `{{ params.name }}`, `{{ params['name'] }}`: a param an `args:` value templates in
_PARAM_REFERENCE = re.compile(r"""params\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([^'"]+)['"]\s*\])""")


def templated_params(args: Any) -> list[str]:
    """The params the step's `args:` (as planned, before rendering) template in, in order."""
    names: dict[str, None] = {}
    stack = [args]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            names.update((a or b, None) for a, b in _PARAM_REFERENCE.findall(node))
        elif isinstance(node, dict):
            stack += [*node.keys(), *node.values()]
        elif isinstance(node, list | tuple):
            stack += list(node)
    return list(names)


def args_problem(run: RunPlan, rendered: str | None, params: Any) -> str | None:
    """Why the step's rendered ``AQ_ARGS`` cannot go to it, or None. ``bounded_context`` leaves a
    param past ``runtime.param_limits`` out of ``AQ_CONTEXT``, but an `args:` value that templates
    it in (``{{ params.note }}``) carries it whole: a run's conf may hold anything. So: a param
    the args template in that is past the limits, named with the limit and the fix; else the
    rendered variable over what Linux takes in one (``contract.MAX_ENV_STRING``)."""
    if not rendered:
        return None
    values = dict(params) if isinstance(params, Mapping) else {}
    for name in templated_params(run.args):
        problem = param_problem(name, values[name]) if name in values else None
        if problem:
            return f"its `args:` template in param `{name}`, and {problem}"
    size = contract.env_string_bytes(contract.ARGS, rendered)
    if size > contract.MAX_ENV_STRING:
        named = ", ".join(f"`{n}`" for n in templated_params(run.args)) or "none"
        return (
            f"its `args:` come to {size:,} bytes as {contract.ARGS} (params templated in: {named}), and Linux starts "
            f"no process with one variable over {contract.MAX_ENV_STRING:,} (Argument list too long): make its "
            "`args:` smaller (keep large data in a file or table and pass its path or name)"
        )
    return None


# the item's variables: a mapped step gets exactly one of the first two (runtime.step reads AQ_ITEM first)
ITEM_VARIABLES = (contract.ITEM, contract.ITEM_FROM, contract.MAP_INDEX)


def item_environment(
    env: dict[str, str], run: RunPlan, item: Any, map_index: int | str | None, root: str, run_id: str
) -> dict[str, str]:
    """``env`` with a `foreach:` step's item and map index: the item is ``AQ_ITEM`` (its JSON),
    or for a large one (its stand-in from the items task, ``artifacts.item_refs``) ``AQ_ITEM_FROM``,
    its file in the step's folder under ``root``. Whatever ``env`` held of :data:`ITEM_VARIABLES`
    goes first, so the step gets exactly the one this item sets (an ``AQ_ITEM`` left beside an
    ``AQ_ITEM_FROM`` would be read instead of the large item); a step that is not mapped, none."""
    env = {name: value for name, value in env.items() if name not in ITEM_VARIABLES}
    if run.foreach is None:
        return env
    if is_reference(item):
        where = item_file(run.output.location(root, run_id), map_index)
        return {**env, contract.ITEM_FROM: where, contract.MAP_INDEX: str(map_index)}
    return {**env, contract.ITEM: json.dumps(item, sort_keys=True, default=str), contract.MAP_INDEX: str(map_index)}


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


class CannotStart(Exception):
    """Why a step's process or container would not start with its environment (the message
    completes "step `x` cannot start: ...")."""


def prepared(
    run: RunPlan, env: dict[str, str], params: Any, dag_file: str | None, run_id: str, warn: Callable[[str], None]
) -> dict[str, str]:
    """The step's rendered plain environment made ready to start it, the same for a local
    process, a pod, a SparkApplication and a RayJob: ``AQ_CONTEXT`` less the params past the
    limits (each named through ``warn``), the `args:` checked (``args_problem``), the run's code
    package named (``code.ship``: built, stored and pinned by the run's first task that needs it),
    and no variable over what Linux takes in one. Raises :class:`CannotStart` with the reason."""
    env = dict(env)
    if isinstance(env.get(contract.CONTEXT), str):
        env[contract.CONTEXT], refused = bounded_context(env[contract.CONTEXT])
        for why in refused.values():
            warn(f"step `{run.step}`: {why}; left out of the step's `params`")
    if problem := args_problem(run, env.get(contract.ARGS), params):
        raise CannotStart(problem)
    try:
        env.update(code.ship(run, code.code_root(dag_file), run_id))
    except code.CodeUnavailable as unavailable:
        raise CannotStart(str(unavailable)) from None
    if problem := oversized_variable(env):
        raise CannotStart(problem)
    return env
