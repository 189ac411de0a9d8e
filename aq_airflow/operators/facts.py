"""The facts a task that records results (a step's checks, metrics or `when:` condition) carries
into the serialized DAG: its step, its role, the step's sensitive columns, the connection and
schema of the results tables, and the artifact store the spec names (``plan.model.FACT_FIELDS``,
made by ``TaskPlan.facts``).

They are operator arguments, so a mapped task (a `foreach:` step's checks and metrics) keeps them
in its ``partial()`` arguments, and template fields, so an unmapped one keeps them as attributes:
the two places Airflow's DAG serializer writes for a custom operator. The quality pages
(``aq_airflow.ui.pipelines``), which parse no DAG files, read them there. None holds a template:
step names, roles and column names are plain names, and the connection and schema are what
``conn_id`` already is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from aq_airflow.plan.model import FACT_FIELDS


class ResultsRecorder(BaseOperator):
    """An operator whose task records results, and says what it is in the serialized DAG."""

    template_fields: Sequence[str] = FACT_FIELDS

    def __init__(
        self, *, aq_step: str, aq_role: str, sensitive_columns: Sequence[str] = (), results_conn_id: str | None = None,
        results_schema: str | None = None, artifacts_root: str | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.aq_step, self.aq_role = aq_step, aq_role
        self.sensitive_columns = list(sensitive_columns)
        self.results_conn_id, self.results_schema = results_conn_id, results_schema
        self.artifacts_root = artifacts_root
