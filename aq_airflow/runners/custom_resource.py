"""What every custom-resource step shares (a spark step's SparkApplication, a ray step's RayJob;
a third engine's resource is an addition here, not a copy): the resource's kind and how its
status reads as an outcome, its name, its labels, and the pieces of its pods built from the
typed Plan (the contract's environment with Secret references, resources, placement, security).

The engine's own module (``runners.spark_application``, ``runners.ray_job``) arranges these in
its resource's body; ``operators.custom_resource`` submits, watches, logs and deletes it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from aq_airflow.plan.model import ComputeResources, Placement, RunPlan, SecretEnv
from aq_airflow.runners.kubernetes import CONTAINER_SECURITY_CONTEXT, pod_security_context, templated_environment

MANAGED_BY = {"app.kubernetes.io/managed-by": "aq-airflow"}
STEP_LABEL = "aq-airflow/step"
# the labels that find a task's resource again (a retry, a worker that restarted): the DAG, the
# task, the run and the try, as KubernetesPodOperator labels its pods
DAG_LABEL, TASK_LABEL, RUN_LABEL, TRY_LABEL = "dag_id", "task_id", "run_id", "try_number"

# Kubernetes names: DNS-1035 labels (a Service is made from a SparkApplication's name)
_NAME_LIMIT = 52  # a Spark driver's pod is `<name>-driver`, its Service `<name>-<hash>-driver-svc`; both ≤ 63


@dataclass(frozen=True)
class ResourceKind:
    """A custom resource's API coordinates (``group/version``, ``plural``, ``kind``)."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


@dataclass(frozen=True)
class Outcome:
    """What a resource's status says: still running, or finished (succeeded or not, and why)."""

    finished: bool
    succeeded: bool = False
    state: str = ""  # the resource's own word for it (COMPLETED, FAILED, SUCCEEDED, ...)
    message: str = ""


def resource_name(dag_id: str, step: str, run_id: str, map_index: int | None = None, try_number: int = 1) -> str:
    """A name for one task instance's resource: readable (``aq-<dag>-<step>``, cut to fit) and
    unique per run, item and try (a hash of them), a DNS-1035 label of at most 52 characters."""
    stem = re.sub(r"[^a-z0-9-]+", "-", f"aq-{dag_id}-{step}".lower()).strip("-")
    unique = hashlib.sha256(f"{dag_id}\0{step}\0{run_id}\0{map_index}\0{try_number}".encode()).hexdigest()[:10]
    stem = stem[: _NAME_LIMIT - len(unique) - 1].rstrip("-")
    return f"{stem}-{unique}"


def label_value(value: str) -> str:
    """A label value for any text (a run id holds `:` and `+`): itself when it is one, else a
    readable prefix and a hash."""
    if re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:40].strip("-_.")
    return f"{prefix}-{digest}" if prefix else digest


def labels(run: RunPlan, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The labels of a step's resource and every pod it makes: the profile's, ours, and ``extra``
    (the task's identity, for reattaching)."""
    return {**run.pod.labels, **MANAGED_BY, STEP_LABEL: label_value(run.step), **(extra or {})}


def env_list(env: dict[str, str], secrets: tuple[SecretEnv, ...]) -> list[dict[str, Any]]:
    """A container's ``env``: plain values, then Secret references (never their values)."""
    plain = [{"name": name, "value": value} for name, value in env.items()]
    return plain + [
        {"name": ref.name, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}} for ref in secrets
    ]


def step_env(run: RunPlan, item: Any = None) -> list[dict[str, Any]]:
    """The step's container ``env`` in a custom resource's pods: a pod's
    (``kubernetes.templated_environment``, rendered by the operator in the resource's body before
    it is created), then the step's Secret references."""
    return env_list(templated_environment(run, item), run.secrets)


def gpu_resource(compute: ComputeResources) -> str | None:
    """The extended resource a GPU ask limits (``nvidia.com/gpu``, or the profile's own), or None."""
    if not compute.gpu:
        return None
    return next((name for name in compute.limits if name not in ("cpu", "memory", "ephemeral-storage")), None)


def resources(compute: ComputeResources) -> dict[str, dict[str, str]]:
    return {"requests": dict(compute.requests), "limits": dict(compute.limits)}


def affinity(placement: Placement) -> dict[str, Any] | None:
    """A required node-affinity term with one ``In`` expression per label (all must match)."""
    if not placement.node_affinity:
        return None
    expressions = [
        {"key": label, "operator": "In", "values": list(values)}
        for label, values in sorted(placement.node_affinity.items())
    ]
    terms = {"nodeSelectorTerms": [{"matchExpressions": expressions}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}


def placement_fields(placement: Placement | None) -> dict[str, Any]:
    """``nodeSelector``, ``affinity`` and ``tolerations`` of a pod (or of a SparkApplication's
    driver or executor, which take the same fields), leaving out what is empty."""
    if placement is None:
        return {}
    fields: dict[str, Any] = {}
    if placement.node_selector:
        fields["nodeSelector"] = dict(placement.node_selector)
    if (term := affinity(placement)) is not None:
        fields["affinity"] = term
    if placement.tolerations:
        fields["tolerations"] = [dict(t) for t in placement.tolerations]
    return fields


def container_security_context() -> dict[str, Any]:
    return dict(CONTAINER_SECURITY_CONTEXT)


def pod_template(
    run: RunPlan,
    container: dict[str, Any],
    pod_labels: dict[str, str],
    sizes: dict[str, dict[str, str]],
    placement: Placement | None = None,
    **spec_fields: Any,
) -> dict[str, Any]:
    """A pod template (a RayJob's head or worker group, its submitter) with one ``container``
    (name, image, command, env) of ``sizes`` (requests and limits) and our security context,
    placed by ``placement``, run as the profile's service account and user, with ``spec_fields``
    (``restartPolicy``, ...)."""
    spec: dict[str, Any] = {
        "containers": [
            {
                "imagePullPolicy": run.pod.image_pull_policy,
                **container,
                "resources": sizes,
                "securityContext": container_security_context(),
            }
        ],
        **spec_fields,
        "securityContext": pod_security_context(run),
        **placement_fields(placement),
    }
    if run.pod.service_account:
        spec["serviceAccountName"] = run.pod.service_account
    return {"metadata": {"labels": dict(pod_labels)}, "spec": spec}


MAP_LABEL = "map_index"


def identity(dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int) -> dict[str, str]:
    """The labels that name one task instance's try on its resource (as KubernetesPodOperator
    labels its pods): what finds it again, and an earlier try's (:func:`earlier_tries`)."""
    return {
        DAG_LABEL: label_value(dag_id),
        TASK_LABEL: label_value(task_id),
        RUN_LABEL: label_value(run_id),
        MAP_LABEL: str(map_index),
        TRY_LABEL: str(try_number),
    }


def earlier_tries(labels_: dict[str, str]) -> str:
    """A label selector for the same task instance's resources of other tries than ``labels_``'s."""
    same = ",".join(f"{k}={labels_[k]}" for k in (DAG_LABEL, TASK_LABEL, RUN_LABEL, MAP_LABEL))
    return f"{same},{TRY_LABEL}!={labels_[TRY_LABEL]}"
