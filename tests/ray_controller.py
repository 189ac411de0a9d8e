"""A test-side RayJob controller for ``tests.kube_api.FakeKubernetes``: what KubeRay (v1.7.0,
``ray-operator/controllers/ray/rayjob_controller.go``) does with a RayJob in ``K8sJobMode``, as far
as the operator can see it.

On create it reports the deployment ``Initializing`` then ``Running`` (``jobStatus`` PENDING), and
makes the submitter Job's pod: the RayJob's ``submitterPodTemplate`` with the labels KubeRay and
the Job controller put on it (``ray.io/originated-from-*``, ``job-name``,
``batch.kubernetes.io/job-name``) and an owner reference to the submitter Job. There is no Ray
cluster: the pod runs the job's entrypoint itself (where KubeRay's runs ``ray job submit`` and
follows the job's log, here the log is the entrypoint's own) with the head container's
environment and the runtime env's ``env_vars``, as Ray's job supervisor gives the entrypoint on
the head, and the token KubeRay's ``authOptions`` give the cluster's pods; no ``RAY_ADDRESS``, so
a step starts a local Ray inside that process (with that token).
When the process ends it reports ``jobStatus`` SUCCEEDED or FAILED and the deployment Complete or
Failed (reason AppFailed, Ray's message with the exit code and the last lines), as KubeRay does
once the submitter finished. ``activeDeadlineSeconds`` stops the pod with DeadlineExceeded.
Deleting the RayJob stops the pod (the garbage collector's cascade through the submitter Job).
"""

from __future__ import annotations

import asyncio
import copy
import shlex
import time
import uuid

import yaml

SUCCEEDED_MESSAGE = "Job finished successfully."
FAILED_MESSAGE = (
    "Job entrypoint command failed with exit code {code}, last available logs (truncated to 20,000 chars):\n"
)


async def rayjob(api, key: tuple[str, str, str]) -> None:
    _, namespace, name = key
    resource = api.objects[key]
    spec = resource["spec"]
    job_id = f"{name}-{uuid.uuid4().hex[:5]}"

    def report(**status) -> bool:
        current = api.objects.get(key)
        if current is None or current["metadata"]["uid"] != resource["metadata"]["uid"]:
            return False
        current.setdefault("status", {}).update(status)
        return True

    if "rayClusterSpec" not in spec:  # (KubeRay's validation refuses more; this is what it needs here)
        report(jobDeploymentStatus="ValidationFailed", reason="ValidationFailed", message="no rayClusterSpec")
        return
    report(jobDeploymentStatus="Initializing", jobId=job_id, rayClusterName=f"{name}-raycluster")
    await asyncio.sleep(0.1)
    report(jobDeploymentStatus="Running", jobStatus="PENDING")
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    runtime_env = yaml.safe_load(spec.get("runtimeEnvYAML") or "{}") or {}
    env = [
        *copy.deepcopy(head.get("env") or []),
        *({"name": k, "value": str(v)} for k, v in (runtime_env.get("env_vars") or {}).items()),
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if (spec["rayClusterSpec"].get("authOptions") or {}).get("mode") == "token":  # KubeRay's Secret's token
        env += [{"name": "RAY_AUTH_MODE", "value": "token"}, {"name": "RAY_AUTH_TOKEN", "value": uuid.uuid4().hex * 2}]
    template = copy.deepcopy(spec["submitterPodTemplate"])
    labels = {
        **(template.get("metadata") or {}).get("labels", {}),
        "ray.io/originated-from-cr-name": name,
        "ray.io/originated-from-crd": "RayJob",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    job_uid = str(uuid.uuid4())
    labels.update({"job-name": name, "batch.kubernetes.io/job-name": name, "controller-uid": job_uid,
                   "batch.kubernetes.io/controller-uid": job_uid})  # fmt: skip
    container = template["spec"]["containers"][0]
    container["command"] = shlex.split(spec["entrypoint"])  # the job itself, where KubeRay's pod submits it
    container["env"] = env
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{uuid.uuid4().hex[:5]}",
            "labels": labels,
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job_uid, "controller": True}
            ],
        },
        "spec": template["spec"],
    }
    pod_key = api.start_pod(namespace, pod)
    started = time.monotonic()
    deadline = spec.get("activeDeadlineSeconds")
    running = False
    while not api.done[pod_key].is_set():
        if key not in api.objects:  # deleted: the garbage collector takes the Job and its pod
            await api.stop_pod(pod_key)
            return
        if not running and pod_key in api.pods and api.pods[pod_key]["status"]["phase"] == "Running":
            running = report(jobStatus="RUNNING")
        if deadline and time.monotonic() - started > deadline:
            await api.stop_pod(pod_key)  # KubeRay deletes the cluster and the submitter
            message = f"The RayJob has passed the activeDeadlineSeconds. ActiveDeadlineSeconds: {deadline}"
            report(jobDeploymentStatus="Failed", reason="DeadlineExceeded", message=message)
            return
        await asyncio.sleep(0.05)
    process = api.processes.get(pod_key)
    code = process.returncode if process is not None else None
    if code == 0:
        report(jobStatus="SUCCEEDED", jobDeploymentStatus="Complete", message=SUCCEEDED_MESSAGE)
    else:
        tail = "\n".join(text for _, text in api.logs[pod_key][-20:])
        report(jobStatus="FAILED", jobDeploymentStatus="Failed", reason="AppFailed",
               message=FAILED_MESSAGE.format(code=code) + tail)  # fmt: skip
    while key in api.objects:  # the finished pod stays until the RayJob (and so its Job) is deleted
        await asyncio.sleep(0.05)
    await api.stop_pod(pod_key)
