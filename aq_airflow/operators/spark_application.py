"""The step operator of a ``spark:`` step on Kubernetes: a SparkApplication (the Kubeflow Spark
operator's custom resource, v1beta2), built from the plan, as the cncf provider's
``SparkKubernetesOperator`` takes it.

It is the provider's operator (its class, its ``template_spec`` template field, its connection
and namespace arguments): a DAG reads as one with the provider's Spark operator, and Airflow
renders the body's templates (the run id) as the provider's. What the task does with the body is
every custom-resource step's (``operators.custom_resource``, the RayJob's too), in place of the
provider's pod-operator path (cncf provider 10.x), whose behaviour does not hold for a step:

- success is the application's state, ``COMPLETED``, not only the driver pod's exit (a driver
  that exits 0 after the Spark operator marked the application ``FAILED`` fails the task);
- an application that ends before it runs (``SUBMISSION_FAILED``: a bad image, a refused pod)
  fails the task with the Spark operator's reason (the provider waits on it as if it ran);
- the body is created as built (the provider's own body check refuses dynamic allocation from
  zero executors);
- one application per task try (its name and labels hold the try): a retry deletes the earlier
  try's and never reattaches to it; every end deletes it (success, failure, timeout, kill);
- the Kubernetes connection is the task's for the custom object as for the pods (the provider
  makes that client from the process's default configuration);
- never deferred (the provider's deferred path loses the driver's log).

Nothing here touches the network before ``execute``: the constructor only builds the body.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator

from aq_airflow.artifacts.labels import item_label
from aq_airflow.operators.custom_resource import CustomResourceStep
from aq_airflow.operators.environment import plain_values, prepared_environment, references
from aq_airflow.operators.lineage import StepLineage
from aq_airflow.plan.model import RunPlan
from aq_airflow.runners import spark_application
from aq_airflow.runners.custom_resource import Outcome, env_list

ROLES = ("driver", "executor")
# the Spark operator's message for a driver that failed: "driver container failed with ExitCode: 1, Reason: Error"
_EXIT_CODE = re.compile(r"ExitCode: (-?\d+)")


class AqSparkStepOperator(StepLineage, CustomResourceStep, SparkKubernetesOperator):
    """A ``spark:`` step as a SparkApplication; its driver runs the aq runtime, which commits the
    step's output; the task returns the committed manifest. The driver's log is the task's."""

    kind = spark_application.SPARK_APPLICATION
    log_container = spark_application.DRIVER_CONTAINER
    template_ext = ()  # a script argument ending in `.json` or `.yaml` is an argument, not a template file

    def __init__(self, *, plan: RunPlan, item: Any = None, **kwargs: Any) -> None:
        pod = plan.pod
        assert pod is not None, plan.step
        super().__init__(
            template_spec={"spark": spark_application.application(plan, item=item)},
            namespace=pod.namespace,
            kubernetes_conn_id=pod.kubernetes_conn_id,
            random_name_suffix=False,  # the name is the task try's (`custom_resource.resource_name`)
            deferrable=False,
            **kwargs,
        )
        self.plan = plan
        self.item = item
        self.item_label = item_label(item)

    def log_selector(self, name: str) -> str:
        return spark_application.driver_selector(name)

    def outcome(self, status: dict[str, Any] | None) -> Outcome:
        return spark_application.outcome(status)

    def exit_code(self, outcome: Outcome) -> int | None:
        found = _EXIT_CODE.search(outcome.message)
        return int(found.group(1)) if found else None

    def build(self, context: Any, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """The rendered body named for this try, with its labels (found again on reattach, and an
        earlier try's deleted) on it and its pods, and the environment made ready as every
        step's (``operators.environment``) in the driver's and executors'."""
        body = copy.deepcopy(self.template_spec["spark"])
        body["metadata"] = {**body.get("metadata", {}), "name": name, "namespace": self.namespace}
        body["metadata"].setdefault("labels", {}).update(labels)
        spec = body["spec"]
        entries = spec["driver"].get("env") or []
        env = prepared_environment(self, plain_values(entries), context)
        container_env = env_list(env, ()) + references(entries, env)  # then the Secret references
        for role in ROLES:
            spec[role].setdefault("labels", {}).update(labels)
            spec[role]["env"] = copy.deepcopy(container_env)
        return body
