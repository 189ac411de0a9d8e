"""The kubernetes runner: a step's run plan as KubernetesPodOperator arguments (image, command,
the contract's environment with Secret references, resources, placement, security context)."""

from __future__ import annotations

from functools import cache
from typing import Any

from kubernetes.client import Configuration
from kubernetes.client import models as k8s

from aq_airflow.plan.model import RunPlan, SecretEnv
from aq_airflow.runners.environment import (
    MAP_INDEX_TEMPLATE,
    RUN_ID_TEMPLATE,
    item_environment,
    locations,
    step_environment,
)
from aq_airflow.runtime import contract

POD_SECURITY_CONTEXT = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@cache
def _model_configuration() -> Configuration:
    """One client configuration shared by every model object built at parse time.

    Without it each ``V1EnvVar`` makes its own ``Configuration``, whose logger set-up is most of
    the cost of building a pod task (measured: about half of a 10-step DAG's parse time).
    """
    return Configuration()


def _model(kind: type, **fields):
    return kind(**fields, local_vars_configuration=_model_configuration())


def command(run: RunPlan) -> tuple[list[str], list[str]]:
    """The container's ``cmds`` and ``arguments``: the aq runtime calling the step's function,
    or the user's own command (through the runtime, which fetches the code package and runs the
    command in its folder, when one is shipped: such an image needs Python with aq-airflow, as a
    python step's does; with `code: image` the command runs as it is)."""
    if run.command.runs_runtime:
        return contract.runtime_command("python"), contract.runtime_arguments(run.command.function)
    if run.code_folder is not None:
        return contract.runtime_command("python"), contract.command_arguments(list(run.command.argv))
    return list(run.command.argv), []


def templated_environment(run: RunPlan, item: Any = None) -> dict[str, str]:
    """The step's plain environment in a pod (its own, or a SparkApplication's driver and
    executors): the contract's variables, its locations holding the run id (and a mapped step's
    map index) as Airflow templates, rendered by the operator before the pod or resource is
    created, and the item as written (``untemplated``)."""
    map_index = MAP_INDEX_TEMPLATE if run.foreach is not None else None
    env = {**step_environment(run), **locations(run, run.artifacts or "", RUN_ID_TEMPLATE, map_index)}
    env = item_environment(env, run, item, map_index, run.artifacts or "", RUN_ID_TEMPLATE)
    if contract.ITEM in env:  # the item as written; AQ_ITEM_FROM is a location, templated as AQ_OUTPUT
        env[contract.ITEM] = untemplated(env[contract.ITEM])
    return env


def pod_arguments(run: RunPlan, item: Any = None) -> dict[str, Any]:
    """KubernetesPodOperator keyword arguments for a python or command step (and one item of
    a `foreach:` step: its locations hold the map index as a template, rendered per instance)."""
    cmds, arguments = command(run)
    pod, placement, resources = run.pod, run.placement, run.resources
    env = templated_environment(run, item)
    return {
        "image": run.image or "",
        "cmds": cmds,
        "arguments": arguments,
        "env_vars": env_vars(env, run.secrets),
        "container_resources": _model(
            k8s.V1ResourceRequirements, requests=dict(resources.requests), limits=dict(resources.limits)
        ),
        "node_selector": dict(placement.node_selector),
        "affinity": node_affinity(placement.node_affinity),
        "tolerations": [dict(t) for t in placement.tolerations],
        "namespace": pod.namespace,
        "kubernetes_conn_id": pod.kubernetes_conn_id,
        "service_account_name": pod.service_account,
        "image_pull_policy": pod.image_pull_policy,
        "labels": {**pod.labels, "app.kubernetes.io/managed-by": "aq-airflow", "aq-airflow/step": run.step},
        "security_context": pod_security_context(run),
        "container_security_context": CONTAINER_SECURITY_CONTEXT,
        # a failed container's last log lines become its terminated state's message (unless the
        # runtime wrote the termination-message file): the runtime's one-line reason reaches the
        # pod's status, and so the task's error
        "termination_message_policy": "FallbackToLogsOnError",
    }


def pod_security_context(run: RunPlan) -> dict[str, Any]:
    """Non-root, as every pod of ours (a step's, a SparkApplication's, a RayJob's): the profile's
    user and group."""
    user = run.pod.run_as_user
    return {**POD_SECURITY_CONTEXT, "runAsUser": user, "runAsGroup": user, "fsGroup": user}


def untemplated(value: str) -> str:
    """A value KubernetesPodOperator must pass as it is (it renders ``env_vars``): an item holding
    ``{{`` inside a Jinja raw block."""
    if not any(mark in value for mark in ("{{", "{%", "{#")):
        return value
    return "{% raw %}" + value.replace("{% endraw %}", "{% endraw %}{{ '{% endraw %}' }}{% raw %}") + "{% endraw %}"


def env_vars(env: dict[str, str], secrets: tuple[SecretEnv, ...]) -> list[k8s.V1EnvVar]:
    """Plain values as they are (Airflow renders their templates); secrets only by reference."""
    plain = [_model(k8s.V1EnvVar, name=name, value=value) for name, value in env.items()]
    secret = [
        _model(
            k8s.V1EnvVar,
            name=ref.name,
            value_from=_model(
                k8s.V1EnvVarSource,
                secret_key_ref=_model(k8s.V1SecretKeySelector, name=ref.secret, key=ref.key),
            ),
        )
        for ref in secrets
    ]
    return plain + secret


def node_affinity(required: dict[str, tuple[str, ...]]) -> k8s.V1Affinity | None:
    """A required node-affinity term with one ``In`` expression per label (all must match)."""
    if not required:
        return None
    expressions = [
        _model(k8s.V1NodeSelectorRequirement, key=label, operator="In", values=list(values))
        for label, values in sorted(required.items())
    ]
    term = _model(k8s.V1NodeSelectorTerm, match_expressions=expressions)
    selector = _model(k8s.V1NodeSelector, node_selector_terms=[term])
    return _model(
        k8s.V1Affinity,
        node_affinity=_model(k8s.V1NodeAffinity, required_during_scheduling_ignored_during_execution=selector),
    )
