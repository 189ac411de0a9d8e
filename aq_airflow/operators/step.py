"""Step operators: a step's compute, as a Kubernetes pod, a local process, or a warehouse query."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import BaseHook, BaseOperator

from aq_airflow.operators.errors import StepFailed
from aq_airflow.plan.model import RunPlan
from aq_airflow.quality.sql import QualitySQLError, user_query
from aq_airflow.runners import environment, kubernetes, local
from aq_airflow.runners.local import LocalProcess
from aq_airflow.runners.sql import export_query
from aq_airflow.runtime.artifacts import Location, clear, commit_files
from aq_airflow.runtime.items import item_label
from aq_airflow.warehouse import Warehouse


class AqPodStepOperator(KubernetesPodOperator):
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
        attempt = None if runtime else clear(output)
        super().execute(context)
        manifest = output.read_manifest(plan.step) if runtime else commit_files(output, attempt, {"step": plan.step})
        # ``do_xcom_push`` is off (it would add KPO's sidecar), so the manifest is pushed here
        context["ti"].xcom_push(key="return_value", value=manifest)
        return manifest


class AqLocalStepOperator(BaseOperator):
    """A ``python`` or ``command`` step as a process on the Airflow worker (the ``local`` profile)."""

    template_fields = ("argv", "env_vars")

    def __init__(self, *, plan: RunPlan, item: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.item = item  # a `foreach:` step's item (expanded: one task instance per item)
        self.item_label = item_label(item)
        self.argv = local.command(plan)  # Airflow-templated, as a pod's command is
        self.env_vars = environment.step_environment(plan)

    def execute(self, context: Any) -> Any:
        run = self.plan
        root = local.artifacts_root(run.artifacts)
        map_index = context["ti"].map_index
        env = {**self.env_vars, **environment.locations(run, root, context["run_id"], map_index)}
        env.update(environment.item_environment(run, self.item, map_index))  # never templated
        for ref in run.secrets:
            if ref.name not in os.environ:
                raise AirflowException(
                    f"step `{run.step}` needs `{ref.name}` (Kubernetes secret {ref.secret}/{ref.key} in a "
                    f"pod); on the local runner export it in the worker's environment"
                )
            env[ref.name] = os.environ[ref.name]
        asked = run.resources.asked if run.resources else {}
        if asked:  # what the spec asked (profile defaults are no ask)
            note = ", ".join(f"{k}={v}" for k, v in sorted(asked.items()))
            self.log.debug("local runner: resource asks (%s) are not enforced on this worker", note)
        if run.resources and run.resources.gpu:
            self.log.warning(
                "local runner: step `%s` asks for a GPU; it runs here on whatever this machine has", run.step
            )
        output = Location.of(environment.output_ref(run, map_index).location(root, context["run_id"]))
        attempt = None if run.command.runs_runtime else clear(output)
        dags_folder = os.path.dirname(context["dag"].fileloc) if context.get("dag") else None
        pythonpath = os.pathsep.join(p for p in (dags_folder, os.environ.get("PYTHONPATH")) if p)
        with tempfile.TemporaryDirectory(prefix=f"aq-{run.step}-") as workdir:  # a clean cwd, as in a pod
            self._process = LocalProcess(
                local.executable(self.argv), env={**os.environ, **env, "PYTHONPATH": pythonpath}, cwd=workdir
            )
            try:
                self._process.run()
            except local.ProcessFailed as failure:
                raise StepFailed(f"step `{run.step}` failed: {failure}", failure.tail) from None
        if run.command.runs_runtime:
            return output.read_manifest(run.step)
        return commit_files(output, attempt, {"step": run.step})

    def on_kill(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None:
            process.kill()


class AqSqlStepOperator(BaseOperator):
    """A ``sql`` step, or the export of a ``table`` step that a python step reads: the query's
    result (or the whole table) into the artifact store."""

    template_fields = ("sql",)
    template_ext = ()

    def __init__(self, *, plan: RunPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.sql = plan.sql

    def execute(self, context: Any) -> Any:
        run = self.plan
        warehouse = Warehouse.of(BaseHook.get_connection(run.warehouse).get_hook())
        try:  # one SELECT that only reads, as sqlglot renders it (a second statement cannot ride along)
            sql = (
                user_query(self.sql, warehouse.dialect, "a `sql` step") if self.sql else warehouse.select_all(run.table)
            )
        except QualitySQLError as error:
            raise AirflowException(f"step `{run.step}`: {error}") from None
        output = Location.of(local.artifact_uri(run.artifacts, run.output, context["run_id"]))
        self.log.info("step `%s`: exporting the result of\n%s\nto %s", run.step, sql, output.uri)
        try:
            manifest = export_query(warehouse, sql, output)
        except Exception as error:
            raise AirflowException(f"step `{run.step}`: the query failed: {type(error).__name__}: {error}") from None
        self.log.info("step `%s`: %s rows, %s bytes", run.step, manifest["rows"], manifest["bytes"])
        return manifest
