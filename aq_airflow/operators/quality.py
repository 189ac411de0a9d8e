"""Quality operators: a step's checks, its metrics, and the publish they gate."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.sql.operators.sql import BaseSQLOperator
from airflow.sdk import BaseOperator

from aq_airflow.operators.errors import NotBuiltYet


class AqCheckOperator(BaseSQLOperator):
    """All checks of one step, evaluated in one scan of its output; results to the warehouse.

    A BaseSQLOperator, so Airflow's ``check_results`` (and the OpenLineage data-quality facets
    built from them) come with it.
    """

    template_fields = ("source", "checks")

    def __init__(self, *, step: str, source: dict, checks: list[dict], artifacts: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.source = source
        self.checks = checks
        self.artifacts = artifacts

    def execute(self, context: Any) -> Any:
        raise NotBuiltYet("checks")


class AqMetricOperator(BaseOperator):
    """All metrics of one step in one scan, with static or learned bounds; results to the warehouse."""

    template_fields = ("source", "metrics")

    def __init__(
        self, *, conn_id: str, step: str, source: dict, metrics: list[dict], artifacts: str | None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.step = step
        self.source = source
        self.metrics = metrics
        self.artifacts = artifacts

    def execute(self, context: Any) -> Any:
        raise NotBuiltYet("metrics")


class AqPublishOperator(BaseOperator):
    """Loads the step's output into a warehouse table (append, replace or merge); the table is
    the task's Asset outlet."""

    template_fields = ("source",)

    def __init__(
        self,
        *,
        conn_id: str,
        step: str,
        source: dict,
        table: str,
        mode: str,
        keys: list[str],
        artifacts: str | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.step = step
        self.source = source
        self.table = table
        self.mode = mode
        self.keys = keys
        self.artifacts = artifacts

    def execute(self, context: Any) -> Any:
        raise NotBuiltYet("publish")
