"""The step operator of a ``ray:`` step on Kubernetes: a KubeRay RayJob per task try.

Its own module: only DAGs with ray steps (and their workers) import it. The RayJob's body and
how its status reads are ``runners.ray_job``'s; creating, watching, logging and deleting it, and
reading the committed manifest, are ``operators.custom_resource``'s, as for a spark step.
"""

from __future__ import annotations

import re
from typing import Any

from airflow.sdk import BaseOperator

from aq_airflow.artifacts.labels import item_label
from aq_airflow.operators.custom_resource import CustomResourceStep
from aq_airflow.operators.environment import prepared_environment
from aq_airflow.operators.lineage import StepLineage
from aq_airflow.plan.model import RunPlan
from aq_airflow.runners import environment, ray_job
from aq_airflow.runners.custom_resource import Outcome

# Ray's job message for an entrypoint that failed (ray dashboard/modules/job/job_manager.py):
# "Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars): ..."
_EXIT_CODE = re.compile(r"failed with exit code (-?\d+)")


class AqRayJobStepOperator(StepLineage, CustomResourceStep, BaseOperator):
    """A ``ray:`` step as a KubeRay RayJob: a Ray cluster of its own runs the step's function as
    the job's entrypoint (the aq runtime), which commits the step's output as a python step's;
    the task returns that manifest. The submitter pod's log is the job's (``ray job submit``
    follows it)."""

    kind = ray_job.RAY_JOB
    log_container = ray_job.SUBMITTER_CONTAINER
    template_fields = ("env_vars",)

    def __init__(self, *, plan: RunPlan, item: Any = None, **kwargs: Any) -> None:
        assert plan.pod is not None, plan.step
        super().__init__(**kwargs)
        self.plan = plan
        self.namespace = plan.pod.namespace
        self.kubernetes_conn_id = plan.pod.kubernetes_conn_id
        self.item = item  # a `foreach:` step's item (expanded: one task instance per item)
        self.item_label = item_label(item)
        self.env_vars = environment.step_environment(plan)  # rendered by Airflow: run id, context, args

    def log_selector(self, name: str) -> str:
        return ray_job.submitter_selector(name)

    def outcome(self, status: dict[str, Any] | None) -> Outcome:
        return ray_job.outcome(status)

    def build(self, context: Any, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """The RayJob of this try, with the environment as rendered for it: the locations of this
        run (and item), made ready as every step's (``operators.environment``)."""
        run = self.plan
        run_id, map_index = context["run_id"], context["ti"].map_index
        root = run.artifacts or ""
        env = {**self.env_vars, **environment.locations(run, root, run_id, map_index)}
        env = environment.item_environment(env, run, self.item, map_index, root, run_id)  # never templated
        env = prepared_environment(self, env, context)
        timeout = self.execution_timeout
        deadline = max(1, int(timeout.total_seconds())) if timeout else None
        return ray_job.ray_job(run, name, env, labels, deadline)

    def exit_code(self, outcome: Outcome) -> int | None:
        found = _EXIT_CODE.search(outcome.message)
        return int(found.group(1)) if found else None

    def reason(self, outcome: Outcome, lines: list[str]) -> str:
        """The entrypoint's exit code and the job's last line (Ray's message ends with the job's
        last lines, the followed log too: a user's exception); else KubeRay's reason (a deadline,
        a cluster that never came up, a refused body)."""
        message_lines = [line.strip() for line in outcome.message.splitlines() if line.strip()]
        exit_code = self.exit_code(outcome)
        said = [line.strip() for line in lines if line.strip()]
        last = (message_lines[1:] or said or message_lines)[-1:] if exit_code is not None else message_lines[-1:]
        why = f" (exit code {exit_code})" if exit_code is not None else ""
        return why + (f": {last[0]}" if last else "")
