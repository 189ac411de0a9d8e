"""The step operator on Kubernetes: a ``python`` or ``command`` step in its own pod.

Its own module: only DAGs with pod steps (and their workers) import the KubernetesPodOperator
and the Kubernetes client.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from aq_airflow.artifacts.labels import item_label
from aq_airflow.artifacts.provenance import PROVENANCE, Provenance
from aq_airflow.artifacts.store import BadOutput, Location, clear, commit_files
from aq_airflow.operators.errors import StepFailed
from aq_airflow.operators.lineage import StepLineage
from aq_airflow.plan.model import RunPlan
from aq_airflow.runners import code, environment, kubernetes
from aq_airflow.runners.local import oversized_variable
from aq_airflow.runtime import contract, record


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
        self._bound_context()
        self._check_environment(context)
        self._ship_code(context)
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
        return {v.name: v.value for v in self.env_vars or [] if isinstance(getattr(v, "value", None), str)}

    def _check_environment(self, context: Any) -> None:
        """Refuse, before a pod is asked for, an environment its container could not start with:
        a param past the limits templated into `args:` (``environment.args_problem``), or any
        variable over what Linux takes in one (the API server would take the pod; exec would not)."""
        plain = self._plain_environment()
        problem = environment.args_problem(self.plan, plain.get(contract.ARGS), context.get("params"))
        problem = problem or oversized_variable(plain)
        if problem:
            raise StepFailed(f"step `{self.plan.step}` cannot start: {problem}", [])

    def _bound_context(self) -> None:
        """The rendered ``AQ_CONTEXT`` less the params past the limits (a run's conf may hold
        anything; a pod's spec is refused over 1.5 MiB), each named in the task log."""
        for variable in self.env_vars or []:
            if getattr(variable, "name", None) == contract.CONTEXT and isinstance(variable.value, str):
                variable.value, refused = environment.bounded_context(variable.value)
                for why in refused.values():
                    self.log.warning("step `%s`: %s; left out of the step's `params`", self.plan.step, why)

    def _ship_code(self, context: Any) -> None:
        """The run's code package (built, stored and pinned by the run's first task that needs it)
        named in the pod's environment; nothing for `code: image`."""
        dag = context.get("dag")
        folder_root = code.code_root(dag.fileloc if dag else None)
        try:
            shipped = code.ship(self.plan, folder_root, context["run_id"])
        except code.CodeUnavailable as unavailable:
            raise StepFailed(f"step `{self.plan.step}` cannot start: {unavailable}", []) from None
        names = set(shipped)
        kept = [v for v in self.env_vars or [] if getattr(v, "name", None) not in names]  # a retry's earlier ones
        self.env_vars = kept + kubernetes.env_vars(shipped, ())

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


def with_image_digest(output: Location, manifest: dict, image_id: str | None) -> dict:
    """The step's committed manifest with the image digest its pod's status reported (the
    runtime knows the image only by the name the spec gives it), committed again; as it was when
    the status names no digest."""
    made = Provenance.of(manifest)
    digest = record.image_digest(image_id)
    if made is None or made.image is None or not digest:
        return manifest
    image = dataclasses.replace(made.image, digest=digest)
    return output.commit({**manifest, PROVENANCE: dataclasses.replace(made, image=image).to_json()})


def container_image_id(remote_pod: Any, container: str) -> str | None:
    """``container``'s ``imageID`` as a finished pod's status reports it (a real kubelet:
    ``<repository>@sha256:<hex>``), or None."""
    status = getattr(remote_pod, "status", None)
    for state in getattr(status, "container_statuses", None) or []:
        if state.name == container:
            return state.image_id or None
    return None


def _terminated(remote_pod: Any, container: str) -> Any:
    """The terminated state of ``container`` in the pod's last status, or None."""
    statuses = getattr(getattr(remote_pod, "status", None), "container_statuses", None) or []
    status = next((s for s in statuses if getattr(s, "name", None) == container), None)
    return getattr(getattr(status, "state", None), "terminated", None)
