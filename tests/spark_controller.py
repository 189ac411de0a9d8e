"""A test-side SparkApplication controller for the loopback Kubernetes API (``tests.kube_api``).

What the Kubeflow Spark operator does with a created SparkApplication, as far as a task sees it:
the body is checked against the vendored CRD schema (the API server's own check: a body that fails
it is refused here as there, with a 422-like SUBMISSION_FAILED), then spark-submit makes the
driver pod ``<name>-driver`` (labels ``spark-role=driver``, ``sparkoperator.k8s.io/app-name``,
the application's driver labels; owned by the application, so deleting it deletes the pod), and
the status goes SUBMITTED -> RUNNING -> COMPLETED or FAILED (or SUBMISSION_FAILED, for a body
the schema refuses or a failure a test asks for in ``SUBMISSION_ERRORS``) (``errorMessage`` "driver container
failed with ExitCode: N, Reason: Error", as upstream's controller writes it), with
``driverInfo.podName``.

The driver's container runs what a real driver runs: Python on the application's main file with
its arguments, here without spark-submit, so the runtime's SparkSession is PySpark's local mode
in the driver's own process (executors are not made: the cluster's sizes, placement, GPUs and
``sparkConf`` are checked in the body, not exercised). The image's launcher,
``/opt/aq-airflow/spark_main.py``, is the installed ``aq_airflow/runtime/spark_main.py`` (what the
documented image links there).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import uuid

import aq_airflow.runtime.spark_main as spark_main
from tests.crd_schema import crd_problems

IMAGE_LAUNCHER = "/opt/aq-airflow/spark_main.py"
DRIVER_CONTAINER = "spark-kubernetes-driver"
# spark-submit failures a test asks for: {application name prefix: error message} (an image the
# node cannot pull, an admission webhook's refusal: what a real cluster reports as SUBMISSION_FAILED)
SUBMISSION_ERRORS: dict[str, str] = {}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _set_state(api, key, state: str, **extra) -> bool:
    """Write the application's status (False: it was deleted meanwhile)."""
    resource = api.objects.get(key)
    if resource is None:
        return False
    status = resource.setdefault("status", {})
    status["applicationState"] = {
        "state": state,
        **({"errorMessage": extra.pop("errorMessage")} if "errorMessage" in extra else {}),
    }
    status.update(extra)
    return True


def driver_pod(resource: dict) -> dict:
    """The driver pod spark-submit makes for ``resource``."""
    name, spec = resource["metadata"]["name"], resource["spec"]
    driver = spec["driver"]
    launcher = spec["mainApplicationFile"].removeprefix("local://")
    if launcher == IMAGE_LAUNCHER:
        launcher = os.path.abspath(spark_main.__file__)
    labels = {**(driver.get("labels") or {}), "spark-role": "driver", "sparkoperator.k8s.io/app-name": name,
              "sparkoperator.k8s.io/launched-by-spark-operator": "true",
              "sparkoperator.k8s.io/submission-id": resource["status"]["submissionID"]}  # fmt: skip
    owner = {"apiVersion": resource["apiVersion"], "kind": resource["kind"], "name": name,
             "uid": resource["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    container = {
        "name": DRIVER_CONTAINER,
        "image": spec["image"],
        "command": ["python", launcher, *(spec.get("arguments") or [])],
        "env": list(driver.get("env") or []),
        "securityContext": driver.get("securityContext") or {},
    }
    pod_spec = {"containers": [container], "restartPolicy": "Never",
                "securityContext": driver.get("podSecurityContext") or {}}  # fmt: skip
    if driver.get("serviceAccount"):
        pod_spec["serviceAccountName"] = driver["serviceAccount"]
    return {"metadata": {"name": f"{name}-driver", "labels": labels, "ownerReferences": [owner]}, "spec": pod_spec}


async def spark_applications(api, key) -> None:
    """Run one created SparkApplication to its end (or until it is deleted)."""
    _, namespace, _ = key
    resource = api.objects[key]
    await asyncio.sleep(0.1)
    problems = crd_problems(resource)
    refused = next((m for prefix, m in SUBMISSION_ERRORS.items() if key[2].startswith(prefix)), None)
    if problems or refused:
        _set_state(api, key, "SUBMISSION_FAILED", errorMessage=refused or "; ".join(problems))
        return
    if not _set_state(api, key, "", submissionID=str(uuid.uuid4())):
        return
    pod_key = api.start_pod(namespace, driver_pod(resource))
    _set_state(api, key, "SUBMITTED", driverInfo={"podName": pod_key[1]}, submissionAttempts=1,
               lastSubmissionAttemptTime=_now())  # fmt: skip
    while api.pods.get(pod_key, {}).get("status", {}).get("phase") == "Pending" and not api.done[pod_key].is_set():
        await asyncio.sleep(0.05)
    if not _set_state(api, key, "RUNNING"):
        return
    await api.done[pod_key].wait()
    pod = api.pods.get(pod_key)
    if pod is None:  # deleted with its application
        return
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    if terminated["exitCode"] == 0:
        _set_state(api, key, "COMPLETED", terminationTime=_now())
    else:
        message = f"driver container failed with ExitCode: {terminated['exitCode']}, Reason: {terminated['reason']}"
        _set_state(api, key, "FAILED", errorMessage=message, terminationTime=_now())
