"""Step operators: a step's compute, as a Kubernetes pod, a local process, or a warehouse query."""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import BaseOperator

from aq_airflow.operators.errors import NotBuiltYet
from aq_airflow.runners import kubernetes


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
            xcom_sidecar_container_security_context=container_security_context,
            do_xcom_push=True,
            **kwargs,
        )
        self.step = step


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
        raise NotBuiltYet("the local runner")


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
        raise NotBuiltYet("the sql step")
