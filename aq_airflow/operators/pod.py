"""The step operator on Kubernetes: a ``python`` or ``command`` step in its own pod.

Its own module: only DAGs with pod steps (and their workers) import the KubernetesPodOperator
and the Kubernetes client.
"""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from aq_airflow.artifacts.labels import item_label
from aq_airflow.artifacts.provenance import PROVENANCE
from aq_airflow.artifacts.store import BadOutput, Location, clear, commit_files
from aq_airflow.operators.environment import plain_values, prepared_environment, references
from aq_airflow.operators.errors import StepFailed
from aq_airflow.operators.image import container_image_id, with_image_digest
from aq_airflow.operators.lineage import StepLineage
from aq_airflow.plan.model import RunPlan
from aq_airflow.runners import code, environment, kubernetes
from aq_airflow.runtime import record


class AqPodStepOperator(StepLineage, KubernetesPodOperator):
    """A ``python`` or ``command`` step in its own pod.

    Takes the step's run plan (so live DAGs and generated files pass the same value) and hands
    KubernetesPodOperator the Kubernetes objects it expects.
    """

    def __init__(self, *, plan: RunPlan, item: Any = None, **kwargs: Any) -> None:
        super().__init__(**kubernetes.pod_arguments(plan, item), do_xcom_push=False, **kwargs)
        self.plan = plan
        self.item = item  # a `foreach:` step's item (expanded: one task instance per item)
        self.item_label = item_label(item)

    def execute(self, context: Any) -> Any:
        """Run the pod, then return the step's manifest from the artifact store.

        The manifest is the step's commit marker, already in the store the worker reads for
        checks; taking it from there needs no XCom sidecar (an extra image to pull) and no
        ``pods/exec`` permission.
        """
        plan = self.plan
        output_ref = environment.output_ref(plan, context["ti"].map_index)
        output = Location.of(output_ref.location(plan.artifacts, context["run_id"]))
        runtime = plan.command.runs_runtime
        env = prepared_environment(self, self._plain_environment(), context)
        self.env_vars = kubernetes.env_vars(env, ()) + references(self.env_vars, env)  # then Secret references
        attempt = None if runtime else clear(output)
        started = record.now()
        super().execute(context)
        finished = record.now()
        image_id = container_image_id(self.remote_pod, self.base_container_name)
        # the pod's own commit, its shape checked (its files are verified by every reader after this task),
        # with the image digest the pod's status reports; or a command step's files committed here, each hashed
        try:
            if runtime:
                manifest = with_image_digest(output, output.read_manifest(plan.step), image_id)
            else:
                made = record.provenance(self._plain_environment(), started, finished, image_id=image_id)
                manifest = commit_files(output, attempt, {"step": plan.step, PROVENANCE: made.to_json()})
        except BadOutput as error:  # a command step's Parquet files of two schemas, or one that is not Parquet
            raise StepFailed(str(error), []) from None
        # ``do_xcom_push`` is off (it would add KPO's sidecar), so the manifest is pushed here
        context["ti"].xcom_push(key="return_value", value=manifest)
        self.committed = manifest
        return manifest

    def _plain_environment(self) -> dict[str, str]:
        """The pod's plain variables, as Airflow rendered them (secrets are references: left out)."""
        return plain_values(self.env_vars)

    def cleanup(self, pod: Any, remote_pod: Any, *args: Any, **kwargs: Any) -> None:
        """KubernetesPodOperator's clean-up, whose failure for the runtime's own exit codes (the
        code package, a missing Python package) says so, with the runtime's one-line reason (the
        container's termination message); any other failure, the user code's, is KPO's."""
        try:
            super().cleanup(pod, remote_pod, *args, **kwargs)
        except AirflowException:
            terminated = _terminated(remote_pod, self.base_container_name)
            text = (getattr(terminated, "message", None) or "").strip()
            last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
            message = code.failure_message(self.plan, getattr(terminated, "exit_code", None), last)
            if message is None:
                raise
            raise StepFailed(message, []) from None


def _terminated(remote_pod: Any, container: str) -> Any:
    """The terminated state of ``container`` in the pod's last status, or None."""
    statuses = getattr(getattr(remote_pod, "status", None), "container_statuses", None) or []
    status = next((s for s in statuses if getattr(s, "name", None) == container), None)
    return getattr(getattr(status, "state", None), "terminated", None)
