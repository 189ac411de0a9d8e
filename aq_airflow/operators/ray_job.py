"""The step operator of a ``ray:`` step on Kubernetes: a KubeRay RayJob per task try.

Its own module: only DAGs with ray steps (and their workers) import it. The RayJob's body is
``runners.ray_job``'s; creating, watching, logging and deleting it is
``operators.custom_resource``'s.
"""

from __future__ import annotations

import re
from typing import Any

from aq_airflow.artifacts.labels import item_label
from aq_airflow.operators.custom_resource import AqCustomResourceOperator
from aq_airflow.operators.errors import StepFailed
from aq_airflow.operators.lineage import StepLineage
from aq_airflow.plan.model import RunPlan
from aq_airflow.runners import code, environment, ray_job
from aq_airflow.runners.custom_resource import Outcome
from aq_airflow.runners.local import oversized_variable
from aq_airflow.runtime import contract

# Ray's job message for an entrypoint that failed (ray dashboard/modules/job/job_manager.py):
# "Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars): ..."
_EXIT_CODE = re.compile(r"failed with exit code (-?\d+)")


class AqRayJobStepOperator(StepLineage, AqCustomResourceOperator):
    """A ``ray:`` step as a KubeRay RayJob: a Ray cluster of its own runs the step's function as
    the job's entrypoint (the aq runtime), which commits the step's output as a python step's;
    the task returns that manifest."""

    kind = ray_job.RAY_JOB
    log_container = ray_job.SUBMITTER_CONTAINER
    template_fields = ("env_vars",)

    def __init__(self, *, plan: RunPlan, item: Any = None, **kwargs: Any) -> None:
        assert plan.pod is not None, plan.step
        super().__init__(
            step=plan.step, namespace=plan.pod.namespace, kubernetes_conn_id=plan.pod.kubernetes_conn_id, **kwargs
        )
        self.plan = plan
        self.item = item  # a `foreach:` step's item (expanded: one task instance per item)
        self.item_label = item_label(item)
        self.env_vars = environment.step_environment(plan)  # rendered by Airflow: run id, context, args

    def log_selector(self, name: str) -> str:
        return ray_job.submitter_selector(name)

    def outcome(self, status: dict[str, Any] | None) -> Outcome:
        return ray_job.outcome(status)

    def build(self, context: Any, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """The RayJob of this try, with the environment as rendered for it: the locations of this
        run (and item), the context less params past the limits, the run's code package."""
        run = self.plan
        run_id, map_index = context["run_id"], context["ti"].map_index
        root = run.artifacts or ""
        env = {**self.env_vars, **environment.locations(run, root, run_id, map_index)}
        env = environment.item_environment(env, run, self.item, map_index, root, run_id)  # never templated
        env[contract.CONTEXT], refused = environment.bounded_context(env[contract.CONTEXT])
        for why in refused.values():
            self.log.warning("step `%s`: %s; left out of the step's `params`", run.step, why)
        problem = environment.args_problem(run, env.get(contract.ARGS), context.get("params"))
        if problem := problem or oversized_variable(env):
            raise StepFailed(f"step `{run.step}` cannot start: {problem}", [])
        env.update(self._ship_code(context))
        timeout = self.execution_timeout
        deadline = max(1, int(timeout.total_seconds())) if timeout else None
        return ray_job.ray_job(run, name, env, labels, deadline)

    def _ship_code(self, context: Any) -> dict[str, str]:
        """The run's code package's variables (built, stored and pinned by the run's first task
        that needs it); none for `code: image`."""
        dag = context.get("dag")
        try:
            return code.ship(self.plan, code.code_root(dag.fileloc if dag else None), context["run_id"])
        except code.CodeUnavailable as unavailable:
            raise StepFailed(f"step `{self.plan.step}` cannot start: {unavailable}", []) from None

    def succeeded(self, context: Any, outcome: Outcome) -> Any:
        """The manifest the entrypoint committed, read from the artifact store (the XCom value,
        as a pod step's)."""
        from aq_airflow.artifacts.store import Location

        run = self.plan
        ref = environment.output_ref(run, context["ti"].map_index)
        output = Location.of(ref.location(run.artifacts or "", context["run_id"]))
        self.committed = output.read_manifest(run.step)
        return self.committed

    def failed(self, outcome: Outcome, lines: list[str]) -> StepFailed:
        """The step's failure: for the runtime's own exit codes (its code package, a missing
        package: ``runners.code``) the runtime's reason, its marker line; else the job's last line
        (Ray's message ends with the job's last lines, the followed log too: a user's exception),
        with the exit code; else KubeRay's reason (a deadline, a cluster that never came up)."""
        run = self.plan
        message_lines = [line.strip() for line in outcome.message.splitlines() if line.strip()]
        found = _EXIT_CODE.search(outcome.message)
        exit_code = int(found.group(1)) if found else None
        marker = next((line.strip() for line in reversed([*lines, *message_lines]) if _is_marker(line)), "")
        known = code.failure_message(run, exit_code, marker)
        if known:
            return StepFailed(known, lines[-20:])
        said = [line.strip() for line in lines if line.strip()]
        last = (message_lines[1:] or said or message_lines)[-1:] if found else message_lines[-1:]
        why = f" (exit code {exit_code})" if exit_code is not None else ""
        why += f": {last[0]}" if last else ""
        message = f"step `{run.step}` failed: its RayJob {self.resource} ended {outcome.state}{why}"
        return StepFailed(message, lines[-20:])


def _is_marker(line: str) -> bool:
    return line.strip().startswith(contract.RUNTIME_MARKER)
