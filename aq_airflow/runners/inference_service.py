"""An endpoint's KServe InferenceService (``serving.kserve.io/v1beta1``), built from its serve plan,
and how its status reads.

One InferenceService per endpoint, named as the endpoint, in the profile's namespace: a promotion
changes its ``storageUri`` (the version's folder in the artifact store), so the endpoint's URL stays
the same from model to model. Its predictor is one model of the plan's format, over the Open
Inference Protocol (v2), on the plan's runtime (``ServePlan.runtime``: MLServer for every format,
which reads the version folder's ``model-settings.json`` beside the model),
sized and placed as the profile places any pod of ours (a GPU ask: the ``nvidia.com/gpu`` limit,
the GPU node labels and tolerations), run as the profile's service account (KServe's storage
initializer reads the store's credentials from the Secrets that service account names) and user,
non-root.

KServe's deployment mode is the profile's (``serving.kserve.io/deploymentMode``): in Standard mode
(a Deployment and a Service) a new model replaces the old as a rolling update, and
``canaryTrafficPercent`` would be ignored, so it is set only in Knative mode (the planner refuses
a ``canary:`` elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aq_airflow.artifacts.model_repository import ModelVersion
from aq_airflow.plan.model import ServePlan, ServingMode
from aq_airflow.runners.custom_resource import (
    DAG_LABEL,
    MANAGED_BY,
    STEP_LABEL,
    ResourceKind,
    container_security_context,
    label_value,
    placement_fields,
    resources,
)
from aq_airflow.runners.kubernetes import POD_SECURITY_CONTEXT

INFERENCE_SERVICE = ResourceKind(
    group="serving.kserve.io", version="v1beta1", plural="inferenceservices", kind="InferenceService"
)
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
VERSION_ANNOTATION = "aq-airflow/model-version"  # the version the spec asks for (its storageUri's)
PROTOCOL = "v2"  # the Open Inference Protocol

# modelStatus words (KServe pkg/apis/serving/v1beta1/inference_service_status.go)
UP_TO_DATE = "UpToDate"
FAILED_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")
FAILED_TO_LOAD = "FailedToLoad"


def service_labels(plan: ServePlan, dag_id: str) -> dict[str, str]:
    """The InferenceService's labels (KServe puts them on its pods too): the profile's, ours, the
    step's and the DAG's that promoted it."""
    assert plan.pod is not None, plan.step
    return {**plan.pod.labels, **MANAGED_BY, STEP_LABEL: label_value(plan.step), DAG_LABEL: label_value(dag_id)}


def inference_service(plan: ServePlan, version: ModelVersion, storage_uri: str, dag_id: str) -> dict[str, Any]:
    """The InferenceService serving ``version`` (at ``storage_uri``) at the plan's endpoint."""
    assert plan.pod is not None and plan.resources is not None and plan.runtime is not None, plan.step
    user = plan.pod.run_as_user
    model: dict[str, Any] = {
        "modelFormat": {"name": str(plan.format)},
        "runtime": plan.runtime,
        "protocolVersion": PROTOCOL,
        "storageUri": storage_uri,
        "resources": resources(plan.resources),
        "securityContext": container_security_context(),
    }
    predictor: dict[str, Any] = {
        "minReplicas": plan.min_replicas,
        "maxReplicas": plan.max_replicas,
        "securityContext": {**POD_SECURITY_CONTEXT, "runAsUser": user, "runAsGroup": user, "fsGroup": user},
        **placement_fields(plan.placement),
        "model": model,
    }
    if plan.pod.service_account:
        predictor["serviceAccountName"] = plan.pod.service_account
    if plan.mode == ServingMode.KNATIVE and plan.canary is not None:
        predictor["canaryTrafficPercent"] = plan.canary
    metadata = {
        "name": plan.endpoint,
        "namespace": plan.pod.namespace,
        "labels": service_labels(plan, dag_id),
        "annotations": {DEPLOYMENT_MODE: str(plan.mode), VERSION_ANNOTATION: version.version},
    }
    return {
        "apiVersion": INFERENCE_SERVICE.api_version,
        "kind": INFERENCE_SERVICE.kind,
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def storage_uri(resource: dict[str, Any] | None) -> str | None:
    """The ``storageUri`` a live InferenceService serves (None: none, or not a model predictor)."""
    model = (((resource or {}).get("spec") or {}).get("predictor") or {}).get("model") or {}
    return model.get("storageUri")


@dataclass(frozen=True)
class Rollout:
    """What an InferenceService's status says of its spec's latest generation: still rolling out,
    serving it (``ready``), or refused (``failed``, with KServe's reason)."""

    ready: bool = False
    failed: bool = False
    state: str = ""  # a word for the log: the transition status and the Ready condition
    reason: str = ""
    url: str | None = None  # where to reach it from inside the cluster (address.url), else its URL


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def rollout(resource: dict[str, Any]) -> Rollout:
    """How far the InferenceService is with its current generation: KServe reports a generation's
    status once its ``observedGeneration`` reached it; then ``modelStatus.transitionStatus``
    UpToDate and the Ready condition True are ready, BlockedByFailedLoad or InvalidSpec (or a
    target model state FailedToLoad) failed, with ``lastFailureInfo`` (or the Ready condition) as
    the reason. (In Standard mode KServe copies ``observedGeneration`` from the predictor's
    Deployment, whose generation moves with the spec's changes to the pods.)"""
    status = resource.get("status") or {}
    generation = (resource.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return Rollout(state=f"generation {generation} not yet observed")
    model = status.get("modelStatus") or {}
    transition = model.get("transitionStatus") or ""
    target = (model.get("states") or {}).get("targetModelState") or ""
    ready = _condition(status, "Ready")
    words = ", ".join(w for w in (transition, target, f"Ready {ready.get('status', 'Unknown')}") if w)
    if transition in FAILED_TRANSITIONS or target == FAILED_TO_LOAD:
        info = model.get("lastFailureInfo") or {}
        said = [w for w in (info.get("reason"), info.get("message"), ready.get("reason"), ready.get("message")) if w]
        return Rollout(failed=True, state=words, reason=": ".join(dict.fromkeys(said)) or transition or target)
    address = ((status.get("address") or {}).get("url")) or status.get("url")
    if transition == UP_TO_DATE and ready.get("status") == "True":
        return Rollout(ready=True, state=words, url=address)
    return Rollout(state=words, reason=": ".join(w for w in (ready.get("reason"), ready.get("message")) if w))
