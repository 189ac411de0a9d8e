"""A ray step's KubeRay RayJob (``ray.io/v1``), built from its run plan.

The RayJob brings up a Ray cluster for the one job (a head and one worker group, sized and
placed as the plan says), runs the step's entrypoint on the head (the aq runtime calling the
step's ``module:function``, which connects to that cluster: Ray's job supervisor sets
``RAY_ADDRESS``), and shuts the cluster down when the job finishes. The entrypoint's process
inherits the head container's environment, so the contract's variables (``runners.environment``,
Secret references for secrets) go on the head; the workers get the same, so Ray tasks see what
the step's function sees, as they do on a local Ray.

KubeRay submits the job from a Kubernetes Job of its own (``K8sJobMode``): its pod runs
``ray job submit`` and follows the job's log, which is the log the operator streams into the
task's (:func:`submitter_selector`).
"""

from __future__ import annotations

import math
import shlex
from decimal import Decimal
from typing import Any

import yaml

from aq_airflow.plan.model import NodeGroup, RunPlan
from aq_airflow.runners.custom_resource import (
    Outcome,
    ResourceKind,
    container_security_context,
    env_list,
    labels,
    pod_security_context,
    pod_template,
)
from aq_airflow.runtime import contract

RAY_JOB = ResourceKind(group="ray.io", version="v1", plural="rayjobs", kind="RayJob")

HEAD_CONTAINER, WORKER_CONTAINER, SUBMITTER_CONTAINER = "ray-head", "ray-worker", "ray-job-submitter"
WORKER_GROUP = "workers"
# what KubeRay's own default submitter asks (common/job.go GetDefaultSubmitterContainer): it only
# runs `ray job submit` and follows the log
SUBMITTER_RESOURCES = {"requests": {"cpu": "500m", "memory": "200Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
# how long KubeRay keeps the finished job's cluster (shutdownAfterJobFinishes) before deleting it:
# the operator deletes the whole RayJob as soon as it has read the outcome; this bounds what a
# worker that died mid-task leaves running
CLUSTER_TTL_SECONDS = 60
# Token authentication on the job's Ray cluster (KubeRay's authOptions): KubeRay makes a Secret
# with a random token for the cluster and gives it (RAY_AUTH_MODE, RAY_AUTH_TOKEN from the Secret)
# to the head, the workers and the submitter; without it any pod that reaches the head's ports
# (its dashboard listens on every address) may submit jobs and run code as the step.
AUTH_OPTIONS = {"mode": "token"}
# the Ray the runtime is built for (requirements.lock): KubeRay refuses token authentication
# unless the cluster says its Ray is 2.52 or later (ray-operator validation.go)
RAY_VERSION = "2.60.0"
# the labels the Kubernetes Job controller puts on the pods of a Job (here, KubeRay's submitter Job,
# named as the RayJob) and that KubeRay puts on its submitter's pod template
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
ORIGIN_CRD_LABEL, ORIGIN_NAME_LABEL = "ray.io/originated-from-crd", "ray.io/originated-from-cr-name"

# RayJob status words (ray-operator/apis/ray/v1/rayjob_types.go). KubeRay marks the deployment
# Complete or Failed once the Ray job is terminal *and* the submitter has finished (so its log is
# whole); ValidationFailed is as final (KubeRay stops reconciling a RayJob it refused)
JOB_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
DEPLOYMENT_TERMINAL = {"Complete", "Failed", "ValidationFailed"}


def entrypoint(run: RunPlan) -> str:
    """The job's entrypoint, a shell command line (``ray job submit -- <entrypoint>``): the aq
    runtime calling the step's function."""
    argv = contract.runtime_command("python") + contract.runtime_arguments(run.command.function or "")
    return shlex.join(argv)


def cpus(group: NodeGroup) -> str:
    """``num-cpus`` for Ray on one pod of ``group``: its CPU limit (else request) in whole CPUs,
    rounded up as KubeRay rounds it when it derives the number itself (``500m`` is 1)."""
    quantity = group.resources.limits.get("cpu") or group.resources.requests.get("cpu") or "1"
    value = Decimal(quantity[:-1]) / 1000 if quantity.endswith("m") else Decimal(quantity)
    return str(max(1, math.ceil(value)))


def start_params(group: NodeGroup, head: bool) -> dict[str, str]:
    """``rayStartParams`` (``ray start`` flags, string values): the CPUs and GPUs Ray schedules
    on, from what the pod asks (a GPU Ray does not count is one no task gets); the head's
    dashboard listens on every address (the submitter pod reaches it through its Service).
    Written out rather than left to KubeRay's detection, so the body says what Ray will use."""
    params = {"num-cpus": cpus(group), "num-gpus": str(group.resources.gpu)}
    if head:
        params["dashboard-host"] = "0.0.0.0"  # noqa: S104  (in the head's pod; KubeRay's own default)
    return params


def ray_job(
    run: RunPlan,
    name: str,
    env: dict[str, str],
    identity: dict[str, str],
    deadline: int | None = None,
) -> dict[str, Any]:
    """The RayJob for one task instance: named ``name``, labelled with the step's labels and the
    task's ``identity`` (to find it again), its head and workers running ``run.image`` with
    ``env`` (the rendered contract environment) and the plan's Secret references; ``deadline``
    (the task's timeout, in seconds) is KubeRay's ``activeDeadlineSeconds`` too, so a cluster
    whose worker died still stops."""
    assert run.job is not None and run.pod is not None, run.step
    job = run.job
    pod_labels = labels(run)
    container_env = env_list(env, run.secrets)

    def group_template(group: NodeGroup, container: str) -> dict[str, Any]:
        return pod_template(run, group, {"name": container, "image": run.image or "", "env": container_env}, pod_labels)

    workers = job.workers
    spec: dict[str, Any] = {
        "entrypoint": entrypoint(run),
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": CLUSTER_TTL_SECONDS,
        "backoffLimit": 0,  # Airflow's retries are the step's retries: one cluster per try
        "rayClusterSpec": {
            "rayVersion": RAY_VERSION,
            "authOptions": dict(AUTH_OPTIONS),
            "headGroupSpec": {
                "rayStartParams": start_params(job.leader, head=True),
                "template": group_template(job.leader, HEAD_CONTAINER),
            },
            "workerGroupSpecs": [
                {
                    "groupName": WORKER_GROUP,
                    "replicas": workers.replicas,
                    "minReplicas": workers.min_replicas if workers.min_replicas is not None else workers.replicas,
                    "maxReplicas": workers.max_replicas if workers.max_replicas is not None else workers.replicas,
                    "rayStartParams": start_params(workers, head=False),
                    "template": group_template(workers, WORKER_CONTAINER),
                }
            ],
        },
        "submitterPodTemplate": submitter_template(run, pod_labels),
    }
    if job.runtime_env:
        spec["runtimeEnvYAML"] = yaml.safe_dump(job.runtime_env, sort_keys=True)
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    metadata = {"name": name, "namespace": run.pod.namespace, "labels": labels(run, identity)}
    return {"apiVersion": RAY_JOB.api_version, "kind": RAY_JOB.kind, "metadata": metadata, "spec": spec}


def submitter_template(run: RunPlan, pod_labels: dict[str, str]) -> dict[str, Any]:
    """The submitter's pod: KubeRay's default (the head's image, a small size; KubeRay fills in
    the ``ray job submit`` command) run as non-root as every pod of ours, as the profile's service
    account, never restarted in place (its Job is the retry)."""
    container = {
        "name": SUBMITTER_CONTAINER,
        "image": run.image or "",
        "imagePullPolicy": run.pod.image_pull_policy,
        "resources": {k: dict(v) for k, v in SUBMITTER_RESOURCES.items()},
        "securityContext": container_security_context(),
    }
    spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": "Never",
        "securityContext": pod_security_context(run),
    }
    if run.pod.service_account:
        spec["serviceAccountName"] = run.pod.service_account
    return {"metadata": {"labels": dict(pod_labels)}, "spec": spec}


def submitter_selector(name: str) -> str:
    """The label selector of the RayJob ``name``'s submitter pods (one per attempt of its Job)."""
    return f"{JOB_NAME_LABEL}={name},{ORIGIN_CRD_LABEL}=RayJob"


def outcome(status: dict[str, Any] | None) -> Outcome:
    """What a RayJob's status says: finished when KubeRay's deployment status is terminal
    (Complete: the Ray job ended SUCCEEDED or STOPPED and its submitter finished; Failed: the job
    FAILED, its submission failed, its deadline passed, its cluster never came up;
    ValidationFailed: KubeRay refused the body), succeeded only when Complete with SUCCEEDED.
    A terminal ``jobStatus`` alone is not the end: the submitter may still be writing its log."""
    status = status or {}
    job, deployment = status.get("jobStatus") or "", status.get("jobDeploymentStatus") or ""
    if deployment not in DEPLOYMENT_TERMINAL:
        return Outcome(False, state=job or deployment)
    succeeded = deployment == "Complete" and job == "SUCCEEDED"
    words = [w for w in (status.get("reason"), status.get("message")) if w]
    state = job if job in JOB_TERMINAL else deployment
    return Outcome(True, succeeded, state=state, message=": ".join(words))
