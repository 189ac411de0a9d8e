"""Step operators: a step's compute, as a Kubernetes pod, a local process, or a warehouse query."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import BaseHook, BaseOperator

from aq_airflow.operators.errors import StepFailed
from aq_airflow.runners import kubernetes, local
from aq_airflow.runners import sql as sql_runner
from aq_airflow.runners.local import LocalProcess
from aq_airflow.runtime import contract
from aq_airflow.runtime.artifacts import Location, clear, commit_files


class AqPodStepOperator(KubernetesPodOperator):
    """A ``python`` or ``command`` step in its own pod.

    Takes the plan's plain pod settings (so live DAGs and generated files pass the same values)
    and hands KubernetesPodOperator the Kubernetes objects it expects.
    """

    def __init__(
        self,
        *,
        step: str,
        env_vars: dict[str, str],
        secret_env: list[dict],
        container_resources: dict,
        node_affinity: dict[str, list[str]],
        container_security_context: dict,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            env_vars=kubernetes.env_vars(env_vars, secret_env),
            container_resources=kubernetes.resource_requirements(container_resources),
            affinity=kubernetes.node_affinity(node_affinity),
            container_security_context=container_security_context,
            do_xcom_push=False,
            **kwargs,
        )
        self.step = step
        self.output_uri = env_vars.get(contract.OUTPUT)

    def execute(self, context: Any) -> Any:
        """Run the pod, then return the step's manifest from the artifact store.

        The manifest is the step's commit marker, already in the store the worker reads for
        checks; taking it from there needs no XCom sidecar (an extra image to pull) and no
        ``pods/exec`` permission.
        """
        command_step = not local.runs_runtime(self.cmds)
        output = Location.of(self.render_template(self.output_uri, context))
        attempt = clear(output) if command_step else None
        super().execute(context)
        manifest = (
            commit_files(output, attempt, {"step": self.step}) if command_step else output.read_manifest(self.step)
        )
        # ``do_xcom_push`` is off (it would add KPO's sidecar), so the manifest is pushed here
        context["ti"].xcom_push(key="return_value", value=manifest)
        return manifest


class AqLocalStepOperator(BaseOperator):
    """A ``python`` or ``command`` step as a process on the Airflow worker (the ``local`` profile)."""

    template_fields = ("arguments", "env_vars")

    def __init__(
        self,
        *,
        step: str,
        cmds: list[str],
        arguments: list[str],
        env_vars: dict[str, str],
        secret_env: list[dict],
        artifacts: str | None,
        resource_asks: dict,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.cmds = cmds
        self.arguments = arguments
        self.env_vars = env_vars
        self.secret_env = secret_env
        self.artifacts = artifacts
        self.resource_asks = resource_asks

    def execute(self, context: Any) -> Any:
        env = {**self.env_vars}
        for key in [k for k in env if contract.is_location(k)]:
            env[key] = local.artifact_uri(self.artifacts, env[key])
        env[contract.ARTIFACTS] = local.artifacts_root(self.artifacts)
        for ref in self.secret_env:
            if ref["name"] not in os.environ:
                raise AirflowException(
                    f"step `{self.step}` needs `{ref['name']}` (Kubernetes secret {ref['secret']}/{ref['key']} in a "
                    f"pod); on the local runner export it in the worker's environment"
                )
            env[ref["name"]] = os.environ[ref["name"]]
        if self.resource_asks:  # what the spec asked (profile defaults are no ask)
            note = ", ".join(f"{k}={v}" for k, v in sorted(self.resource_asks.items()))
            self.log.debug("local runner: resource asks (%s) are not enforced on this worker", note)
        if self.resource_asks.get("gpu"):
            self.log.warning(
                "local runner: step `%s` asks for a GPU; it runs here on whatever this machine has", self.step
            )
        output = Location.of(env[contract.OUTPUT])
        is_runtime = local.runs_runtime(self.cmds)
        attempt = None if is_runtime else clear(output)
        dags_folder = os.path.dirname(context["dag"].fileloc) if context.get("dag") else None
        pythonpath = os.pathsep.join(p for p in (dags_folder, os.environ.get("PYTHONPATH")) if p)
        with tempfile.TemporaryDirectory(prefix=f"aq-{self.step}-") as workdir:  # a clean cwd, as in a pod
            self._process = LocalProcess(
                local.local_command(self.cmds) + list(self.arguments),
                env={**os.environ, **env, "PYTHONPATH": pythonpath},
                cwd=workdir,
            )
            try:
                self._process.run()
            except local.ProcessFailed as failure:
                raise StepFailed(f"step `{self.step}` failed: {failure}", failure.tail) from None
        if is_runtime:
            return output.read_manifest(self.step)
        return commit_files(output, attempt, {"step": self.step})

    def on_kill(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None:
            process.kill()


class AqSqlStepOperator(BaseOperator):
    """A ``sql`` step, or the export of a ``table`` step that a python step reads: the query's
    result (or the whole table) into the artifact store."""

    template_fields = ("sql", "output_path")
    template_ext = ()

    def __init__(
        self,
        *,
        conn_id: str,
        sql: str | None,
        table: str | None,
        step: str,
        artifacts: str | None,
        output: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.sql = sql
        self.table = table
        self.step = step
        self.artifacts = artifacts
        self.output_path = output

    def execute(self, context: Any) -> Any:
        hook = BaseHook.get_connection(self.conn_id).get_hook()
        sql = self.sql or sql_runner.select_all(self.table, sql_runner.dialect_of(hook))
        output = Location.of(local.artifact_uri(self.artifacts, self.output_path))
        self.log.info("step `%s`: exporting the result of\n%s\nto %s", self.step, sql, output.uri)
        try:
            manifest = sql_runner.export_query(hook, sql, output)
        except Exception as error:
            raise AirflowException(f"step `{self.step}`: the query failed: {type(error).__name__}: {error}") from None
        self.log.info("step `%s`: %s rows, %s bytes", self.step, manifest["rows"], manifest["bytes"])
        return manifest
