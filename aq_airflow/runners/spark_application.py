"""A spark step on Kubernetes: its run plan as a SparkApplication (``sparkoperator.k8s.io/v1beta2``,
the Kubeflow Spark operator's), which ``operators.spark_application`` creates, follows and deletes.

The driver runs aq-airflow's own runtime, as a python step's pod does: it reads the inputs, hands
the step's function a SparkSession (or runs the step's script) and commits the output with the
same manifest protocol. A SparkApplication's driver starts a ``.py`` main file, so the body names
aq-airflow's launcher, ``aq_airflow/runtime/spark_main.py``, **as the image holds it** (the
profile's ``spark_launcher``, by default ``local:///opt/aq-airflow/spark_main.py``), with the
runtime's arguments. The launcher is taken from the image rather than uploaded to the artifact
store with each run because: the image must hold aq-airflow's runtime anyway (the launcher only
calls it), so the two can never be of different versions; nothing is uploaded per run; and
spark-submit (in the Spark operator's pod, not ours) would otherwise have to read our store with
its own Hadoop connectors and credentials before the driver even starts.

Sizes: Kubernetes quantities become Spark's (``cores`` an integer of at least 1 with the exact
request in ``coreRequest``, ``coreLimit`` a string). The spec's ``memory`` is the pod's whole memory:
Spark sizes a pod as its JVM heap (``memory``) plus ``memoryOverhead`` (Python workers, native
buffers), so the body splits the ask into the two (:func:`memory_split`) rather than passing it as
the heap, which would make Spark ask Kubernetes for 40% more than the spec says.
"""

from __future__ import annotations

import math
import re
from typing import Any

from aq_airflow.plan.model import ComputeResources, NodeGroup, RunPlan
from aq_airflow.runners.custom_resource import (
    Outcome,
    ResourceKind,
    container_security_context,
    gpu_resource,
    labels,
    placement_fields,
    pod_security_context,
    step_env,
)
from aq_airflow.runtime import contract
from aq_airflow.runtime.spark_session import ALWAYS

SPARK_APPLICATION = ResourceKind("sparkoperator.k8s.io", "v1beta2", "sparkapplications", "SparkApplication")
DRIVER_CONTAINER = "spark-kubernetes-driver"  # the Spark operator's name for the driver's container
# A backstop only: the operator deletes the application when its task ends (success, failure,
# kill); one a lost worker left behind is deleted by the Spark operator a day after it finished.
TIME_TO_LIVE_SECONDS = 24 * 3600

# the driver's application states (api/v1beta2 ApplicationStateType) that end a run
COMPLETED = "COMPLETED"
FAILED_STATES = ("FAILED", "SUBMISSION_FAILED")

# RAPIDS Accelerator for Apache Spark on executors that ask for GPUs (docs/spark.md): the plugin,
# one GPU share per task, and Spark's own discovery script (in the Spark image's examples)
RAPIDS_PLUGIN = "com.nvidia.spark.SQLPlugin"
GPU_DISCOVERY_SCRIPT = "/opt/spark/examples/src/main/scripts/getGpusResources.sh"

# the part of a pod's memory outside the JVM's heap: Spark's own share for a Python application
# (an overhead of 40% of the heap, i.e. 2/7 of the pod), at least Spark's minimum overhead
OVERHEAD_SHARE = 0.4 / 1.4
MIN_OVERHEAD_MIB = 384

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``2Gi``, ``1500M``, ``1e9``, ``536870912``) in bytes."""
    match = re.fullmatch(r"([0-9.]+(?:[eE][0-9]+)?)([KMGTPE]i|[kMGTPE])?", str(quantity).strip())
    if match is None:
        raise ValueError(f"not a Kubernetes memory quantity: {quantity!r}")
    number, unit = match.groups()
    return math.ceil(float(number) * (_BINARY.get(unit or "") or _DECIMAL[unit or ""]))


def memory_split(quantity: str) -> tuple[str, str]:
    """(heap, overhead) in Spark's MiB (``2Gi`` is 2048 MiB, rounded up) adding up to the pod's
    memory ``quantity``: the overhead Spark would add for a Python application
    (:data:`OVERHEAD_SHARE`, at least :data:`MIN_OVERHEAD_MIB`), the heap the rest."""
    total = math.ceil(quantity_bytes(quantity) / 2**20)
    overhead = max(MIN_OVERHEAD_MIB, math.ceil(total * OVERHEAD_SHARE))
    return f"{total - overhead}m", f"{overhead}m"


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity (``2``, ``500m``, ``1.5``) in cores."""
    text = str(quantity).strip()
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def sizes(compute: ComputeResources) -> dict[str, Any]:
    """A driver's or executor's ``cores``/``coreRequest``/``coreLimit``/``memory``/``memoryOverhead``
    from its pod resources (the memory: :func:`memory_split`). Spark's ``cores`` is a whole number
    (its task slots), so a fractional request is rounded up there and kept exact in
    ``coreRequest`` (what the pod asks the scheduler for)."""
    fields: dict[str, Any] = {}
    cpu = compute.requests.get("cpu")
    if cpu is not None:
        cores = cpu_cores(cpu)
        fields["cores"] = max(1, math.ceil(cores))
        if cores != fields["cores"]:
            fields["coreRequest"] = str(cpu)
    if "cpu" in compute.limits:
        fields["coreLimit"] = str(compute.limits["cpu"])
    memory = compute.limits.get("memory") or compute.requests.get("memory")
    if memory is not None:
        fields["memory"], fields["memoryOverhead"] = memory_split(memory)
    return fields


def arguments(run: RunPlan) -> list[str]:
    """The launcher's arguments: the runtime's, for the step's function or its script."""
    if run.command.script is not None:
        return contract.script_arguments(run.command.script, list(run.command.argv))
    assert run.command.function is not None, run.step
    return contract.runtime_arguments(run.command.function)


def conf_value(value: Any) -> str:
    """A ``spark_conf`` value as Spark reads it (``sparkConf`` holds strings): ``true``, ``64``."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def gpu_conf(executors: NodeGroup) -> dict[str, str]:
    """RAPIDS on executors that ask for GPUs: the plugin, each executor's GPUs as a Spark resource
    (found by the discovery script), and each task's share of them (its GPUs over its cores, so
    every task slot runs on a GPU; the planner has made sure that share is one Spark takes: a whole
    number, or one GPU over a whole number of tasks)."""
    compute = executors.resources
    if not compute.gpu:
        return {}
    cores = sizes(compute).get("cores", 1)
    return {
        "spark.plugins": RAPIDS_PLUGIN,
        "spark.rapids.sql.enabled": "true",
        "spark.rapids.sql.concurrentGpuTasks": "1",
        "spark.executor.resource.gpu.amount": str(compute.gpu),
        "spark.executor.resource.gpu.vendor": "nvidia.com",
        "spark.executor.resource.gpu.discoveryScript": GPU_DISCOVERY_SCRIPT,
        "spark.task.resource.gpu.amount": f"{compute.gpu / cores:.4g}",
    }


def spark_conf(run: RunPlan) -> dict[str, str]:
    """``sparkConf``: what every spark step runs with (``runtime.spark_session.ALWAYS``, as in
    local mode), the GPUs' settings, then the step's own ``spark_conf`` (which wins: a team's
    RAPIDS tuning, its own S3A settings). The object store's Hadoop settings are not here: the
    runtime in the driver sets them from the environment it actually has
    (``runtime.spark_session.configure_stores``), the same code as in local mode, and Spark ships
    the driver's Hadoop configuration to the executors with each job."""
    assert run.job is not None, run.step
    user = {key: conf_value(value) for key, value in run.job.conf.items()}
    return {**ALWAYS, **gpu_conf(run.job.workers), **user}


def _pod_fields(run: RunPlan, group: NodeGroup, env: list[dict[str, Any]], pod_labels: dict[str, str]) -> dict:
    """What a driver and an executor share: sizes, labels, the contract's environment (Secret
    references only), the profile's service account, placement, non-root security contexts."""
    fields: dict[str, Any] = {**sizes(group.resources), "labels": dict(pod_labels), "env": env}
    if run.pod.service_account:
        fields["serviceAccount"] = run.pod.service_account
    fields["podSecurityContext"] = pod_security_context(run)
    fields["securityContext"] = container_security_context()
    return {**fields, **placement_fields(group.placement)}


def application(run: RunPlan, name: str = "", item: Any = None, extra_labels: dict[str, str] | None = None) -> dict:
    """The SparkApplication of a spark step (``name``: set by the operator, one per task try).

    Its environment values hold Airflow templates (the run id), rendered by the operator in the
    body before it is created. ``restartPolicy`` is ``Never``: a failed run is Airflow's to retry
    (the task's ``retries:``), so a retry is a task try with its own log, not a hidden rerun."""
    job, pod = run.job, run.pod
    assert job is not None and pod is not None, run.step
    pod_labels = labels(run, extra_labels)
    env = step_env(run, item)
    executor = _pod_fields(run, job.workers, env, pod_labels)
    if job.workers.replicas:  # dynamic allocation from none: Spark starts with `minExecutors`
        executor["instances"] = job.workers.replicas
    if (gpu := gpu_resource(job.workers.resources)) is not None:
        executor["gpu"] = {"name": gpu, "quantity": job.workers.resources.gpu}
    spec: dict[str, Any] = {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": run.image or "",
        "imagePullPolicy": pod.image_pull_policy,
        "sparkVersion": pod.spark_version,
        "mainApplicationFile": pod.spark_launcher,
        "arguments": arguments(run),
        "sparkConf": spark_conf(run),
        "restartPolicy": {"type": "Never"},
        "timeToLiveSeconds": TIME_TO_LIVE_SECONDS,
        "driver": _pod_fields(run, job.leader, env, pod_labels),
        "executor": executor,
    }
    if job.workers.max_replicas is not None:
        spec["dynamicAllocation"] = {
            "enabled": True,
            "initialExecutors": job.workers.replicas,
            "minExecutors": job.workers.min_replicas or 0,
            "maxExecutors": job.workers.max_replicas,
        }
    metadata = {"name": name, "namespace": pod.namespace, "labels": dict(pod_labels)}
    return {"apiVersion": SPARK_APPLICATION.api_version, "kind": SPARK_APPLICATION.kind, "metadata": metadata,
            "spec": spec}  # fmt: skip


def outcome(status: dict | None) -> Outcome:
    """What a SparkApplication's ``status`` (its ``applicationState``) says: COMPLETED succeeded; FAILED
    and SUBMISSION_FAILED failed (with the Spark operator's error message); anything else (new,
    SUBMITTED, RUNNING, SUCCEEDING, FAILING, UNKNOWN, ...) is not finished yet."""
    state = (status or {}).get("applicationState") or {}
    name, message = str(state.get("state") or ""), str(state.get("errorMessage") or "")
    finished = name == COMPLETED or name in FAILED_STATES
    return Outcome(finished=finished, succeeded=name == COMPLETED, state=name, message=message)


def driver_selector(name: str) -> str:
    """The label selector of the SparkApplication ``name``'s driver pod (the Spark operator's labels)."""
    return f"spark-role=driver,sparkoperator.k8s.io/app-name={name}"
