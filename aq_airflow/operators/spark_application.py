"""The step operator of a ``spark:`` step on Kubernetes: a SparkApplication (the Kubeflow Spark
operator's custom resource), created, followed and deleted through the cncf provider's
``SparkKubernetesOperator``.

The provider's operator finds the driver pod, streams its log into the task log and deletes the
application when it is done; this subclass keeps that and replaces what does not hold for a step
(cncf provider 10.x):

- success is the application's state, ``COMPLETED``, not only the driver pod's exit: a driver
  that exits 0 after the Spark operator marked the application ``FAILED`` fails the task, with
  the Spark operator's reason and the driver's last lines;
- the wait for the driver polls every second (the provider's sleeps ten), and an application
  that ends before it runs (``SUBMISSION_FAILED``: a bad image, a refused pod) fails the task
  with its reason (the provider waits on it as if it were running);
- the body is built from the plan (``runners.spark_application``) and created as it is: the
  provider's own body check refuses dynamic allocation from zero executors;
- the application is deleted whatever the end: success, failure, a failed start, and a kill
  (``on_kill``); a retry is a new application (its name holds the try);
- the Kubernetes connection is the task's for the custom object as for the pods (the provider
  makes that client from the process's default configuration);
- never deferred (the provider's deferred path loses the driver's log).

Nothing here touches the network before ``execute``: the constructor only builds the body.
"""

from __future__ import annotations

import copy
import time
from functools import cached_property
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.cncf.kubernetes.operators.custom_object_launcher import CustomObjectLauncher
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
from kubernetes.client import models as k8s

from aq_airflow.artifacts.labels import item_label
from aq_airflow.artifacts.store import Location
from aq_airflow.operators.errors import StepFailed
from aq_airflow.operators.lineage import StepLineage
from aq_airflow.operators.pod import container_image_id, with_image_digest
from aq_airflow.plan.model import RunPlan
from aq_airflow.runners import code, custom_resource, environment, spark_application
from aq_airflow.runners.local import oversized_variable
from aq_airflow.runtime import contract

# how long the application may take to say how it ended once its driver's container has exited
# (the Spark operator reconciles within seconds; a stuck status must not hold the task forever)
OUTCOME_TIMEOUT_SECONDS = 300
_POLL_SECONDS = 1.0
DRIVER_TAIL_LINES = 20  # the driver's last lines in a failed task's message
DELETED = "DELETED"  # the outcome of an application that is gone before it said how it ended


class _Launcher(CustomObjectLauncher):
    """The provider's launcher over our body as it is (its body check and resource rewriting are
    for hand-written bodies; ours comes from the plan, validated against the CRD in the tests)."""

    def get_body(self) -> dict:
        body = copy.deepcopy(self.template_body["spark"])
        body.setdefault("metadata", {}).update({"name": self.name, "namespace": self.namespace})
        return body


class AqSparkStepOperator(StepLineage, SparkKubernetesOperator):
    """A ``spark:`` step as a SparkApplication; its driver runs the aq runtime, which commits the
    step's output; the task returns the committed manifest."""

    template_ext = ()  # a script argument ending in `.json` or `.yaml` is an argument, not a template file

    def __init__(self, *, plan: RunPlan, item: Any = None, **kwargs: Any) -> None:
        pod = plan.pod
        assert pod is not None, plan.step
        super().__init__(
            template_spec={"spark": spark_application.application(plan, item=item)},
            namespace=pod.namespace,
            kubernetes_conn_id=pod.kubernetes_conn_id,
            random_name_suffix=False,  # the name is the task try's (`custom_resource.resource_name`)
            reattach_on_restart=True,
            delete_on_termination=True,
            deferrable=False,
            do_xcom_push=False,
            **kwargs,
        )
        self.plan = plan
        self.item = item
        self.item_label = item_label(item)

    @cached_property
    def custom_obj_api(self) -> Any:
        """The custom-object client of the task's Kubernetes connection (the provider's is the
        process's default configuration, which a `kube_config_path` connection never sets)."""
        return self.hook.custom_object_client

    # -- execute -------------------------------------------------------------------------------
    def execute(self, context: Any) -> Any:
        """Create the application (or reattach to this try's), follow its driver, decide by its
        state, delete it; then return the manifest the driver committed."""
        plan = self.plan
        ti = context["ti"]
        output = Location.of(environment.output_ref(plan, ti.map_index).location(plan.artifacts, context["run_id"]))
        name = custom_resource.resource_name(plan.output.dag_id, plan.step, context["run_id"], ti.map_index,
                                             ti.try_number)  # fmt: skip
        body = self._prepared_body(context)
        self.name = name
        self.launcher = _Launcher(name, self.namespace, self.client, self.custom_obj_api, {"spark": body})
        try:
            existing = self.find_spark_job(context)
            if existing is not None:  # this try's application, started before the worker restarted
                self.log.info("reattaching to the driver pod %s", existing.metadata.name)
                self.pod = existing
                self.name = existing.metadata.name.removesuffix("-driver")
                self.launcher.name = self.name
            else:
                self.pod = self._start(context)
            self.pod_request_obj = self.pod
            try:
                KubernetesPodOperator.execute(self, context)
            except Exception:
                # the provider's own error (a 404 reading the driver pod) when the application was
                # deleted under it, its driver with it: say that instead
                if self._killed or self._read_application() is not None:
                    raise
                raise StepFailed(self._failure(self._outcome(), ""), []) from None
        finally:
            self._delete_application()
        # the driver's commit, with the image digest its pod's status reports
        image_id = container_image_id(self.remote_pod, spark_application.DRIVER_CONTAINER)
        manifest = with_image_digest(output, output.read_manifest(plan.step), image_id)
        ti.xcom_push(key="return_value", value=manifest)
        self.committed = manifest
        return manifest

    def _prepared_body(self, context: Any) -> dict:
        """The rendered body with this try's labels (found again on reattach), the run's code
        package in the driver's and executors' environment, and the run's params bounded."""
        body = copy.deepcopy(self.template_spec["spark"])
        spec = body["spec"]
        task = self._get_ti_pod_labels(context)
        body["metadata"].setdefault("labels", {}).update(task)
        for role in ("driver", "executor"):
            spec[role].setdefault("labels", {}).update(task)
        shipped = self._ship_code(context)
        for role in ("driver", "executor"):
            env = [v for v in spec[role].get("env") or [] if v["name"] not in shipped]  # a retry's earlier ones
            env += [{"name": name, "value": value} for name, value in shipped.items()]
            for variable in env:
                if variable["name"] == contract.CONTEXT and isinstance(variable.get("value"), str):
                    variable["value"], refused = environment.bounded_context(variable["value"])
                    if role == "driver":
                        for why in refused.values():
                            self.log.warning("step `%s`: %s; left out of the step's `params`", self.plan.step, why)
            spec[role]["env"] = env
        plain = {v["name"]: v["value"] for v in spec["driver"]["env"] if isinstance(v.get("value"), str)}
        problem = environment.args_problem(self.plan, plain.get(contract.ARGS), context.get("params"))
        problem = problem or oversized_variable(plain)
        if problem:
            raise StepFailed(f"step `{self.plan.step}` cannot start: {problem}", [])
        return body

    def _ship_code(self, context: Any) -> dict[str, str]:
        """The run's code package (built, stored and pinned by the run's first task that needs
        it), as a pod step's; nothing for `code: image`."""
        dag = context.get("dag")
        try:
            return code.ship(self.plan, code.code_root(dag.fileloc if dag else None), context["run_id"])
        except code.CodeUnavailable as unavailable:
            raise StepFailed(f"step `{self.plan.step}` cannot start: {unavailable}", []) from None

    def _start(self, context: Any) -> k8s.V1Pod:
        """Create the application and wait until its driver runs (or the application ends: a
        submission that failed, or a driver that was quicker than this poll)."""
        launcher = self.launcher
        kind = spark_application.SPARK_APPLICATION
        self.log.info("creating SparkApplication %s/%s", self.namespace, self.name)
        launcher.spark_obj_spec = self.custom_obj_api.create_namespaced_custom_object(
            group=kind.group, version=kind.version, namespace=self.namespace, plural=kind.plural, body=launcher.body
        )
        driver = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=f"{self.name}-driver", namespace=self.namespace,
                                                     labels=launcher.body["spec"]["driver"].get("labels")))  # fmt: skip
        launcher.pod_spec = driver
        deadline = time.monotonic() + self.startup_timeout_seconds
        while True:
            outcome = self._outcome()
            if outcome.finished and not outcome.succeeded and self.find_spark_job(context) is None:
                # refused before it ran, or a driver that failed faster than this poll (its pod,
                # failed, is no pod to follow): the reason, and the driver's log where there is one
                raise StepFailed(self._failure(outcome, self._driver_tail(driver.metadata.name)), [])
            if outcome.state not in spark_application.WAITING_STATES:
                return self.find_spark_job(context) or driver
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"step `{self.plan.step}`: SparkApplication {self.name} did not start its driver in "
                    f"{self.startup_timeout_seconds}s (state {outcome.state or 'new'}): is the Spark operator "
                    f"running and watching namespace `{self.namespace}`?",
                    [],
                )
            time.sleep(_POLL_SECONDS)

    def _read_application(self) -> dict | None:
        from kubernetes.client.rest import ApiException

        kind = spark_application.SPARK_APPLICATION
        try:
            return self.custom_obj_api.get_namespaced_custom_object(
                group=kind.group, version=kind.version, namespace=self.namespace, plural=kind.plural, name=self.name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _await_outcome(self) -> spark_application.Outcome:
        """The application's final state once its driver has exited (the Spark operator writes
        it within a reconcile), or the last state read after :data:`OUTCOME_TIMEOUT_SECONDS`."""
        deadline = time.monotonic() + OUTCOME_TIMEOUT_SECONDS
        while True:
            outcome = self._outcome()
            if outcome.finished or time.monotonic() > deadline:
                return outcome
            time.sleep(_POLL_SECONDS)

    def _outcome(self) -> spark_application.Outcome:
        """The application's outcome; one that is gone (deleted by hand or by another process,
        its driver and executors with it) has ended, without success: no state will come."""
        resource = self._read_application()
        if resource is None:
            return spark_application.Outcome(
                finished=True, state=DELETED, message="it was deleted before it finished (by hand, or by another "
                "process), and its driver and executors with it"
            )  # fmt: skip
        return spark_application.outcome(resource)

    def cleanup(self, pod: Any, remote_pod: Any, *args: Any, **kwargs: Any) -> None:
        """Decide by the application's state: COMPLETED is success; otherwise the task fails with
        the state, the Spark operator's reason and the driver's last lines. (KPO's own clean-up
        runs first: it marks a failed driver pod as checked, so no later try reattaches to it.)"""
        if self._killed or not remote_pod:
            return
        phase = getattr(getattr(remote_pod, "status", None), "phase", None)
        if phase not in ("Succeeded", "Failed"):
            # the driver still runs: the wait was interrupted (the task's timeout, an API error),
            # whose exception is on its way; `execute` deletes the application
            return
        outcome = self._await_outcome()
        try:
            super().cleanup(pod, remote_pod, *args, **kwargs)
        except AirflowException:
            raise StepFailed(self._failure(outcome, self._driver_tail(remote_pod.metadata.name)), []) from None
        if not outcome.succeeded:
            raise StepFailed(self._failure(outcome, self._driver_tail(remote_pod.metadata.name)), [])

    def _driver_tail(self, pod_name: str) -> str:
        """The driver's last log lines (its error), for the task's failure message (a driver that
        ran had its whole log streamed into the task log already); empty when there is no driver."""
        from kubernetes.client.rest import ApiException

        try:
            text = self.client.read_namespaced_pod_log(
                pod_name, self.namespace, container=spark_application.DRIVER_CONTAINER, tail_lines=DRIVER_TAIL_LINES
            )
        except ApiException as error:
            return "" if error.status == 404 else f"(the driver's log could not be read: {error.status} {error.reason})"
        lines = [line for line in str(text).splitlines() if line.strip()]
        return "\n".join(lines[-DRIVER_TAIL_LINES:])

    def _failure(self, outcome: spark_application.Outcome, driver_log: str | None) -> str:
        state = outcome.state or "never reported"
        lines = [f"step `{self.plan.step}` failed: SparkApplication {self.name} ended {state}"]
        if outcome.message:
            lines[0] += f": {outcome.message}"
        if not outcome.finished:
            lines[0] += f" (its state after {OUTCOME_TIMEOUT_SECONDS}s: the driver's container has exited)"
        if driver_log:
            lines.append("the driver's last lines:\n" + driver_log)
        return "\n".join(lines)

    def process_pod_deletion(self, pod: Any, *, reraise: bool = True) -> None:
        """The application goes when the task ends (``execute``'s ``finally``), never only the pod."""

    def _delete_application(self) -> None:
        launcher = self.__dict__.get("launcher")
        if launcher is not None and self.name:
            self.log.info("deleting SparkApplication %s/%s", self.namespace, self.name)
            launcher.delete_spark_job(spark_job_name=self.name)

    def on_kill(self) -> None:
        """The task was stopped (marked failed, timed out): delete the application, and with it
        (its owner) the driver and executors."""
        self._killed = True
        self._delete_application()
