"""The step operator of ``sql`` steps (and of ``table`` steps a python step reads): the
query's result, or the whole table, exported from the warehouse into the artifact store."""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator

from aq_airflow.artifacts.root import artifact_uri
from aq_airflow.artifacts.store import Location
from aq_airflow.plan.model import RunPlan
from aq_airflow.quality.sql import QualitySQLError, user_query
from aq_airflow.runners import environment
from aq_airflow.runtime import record
from aq_airflow.warehouse import Warehouse
from aq_airflow.warehouse.transfer import export_query


class AqSqlStepOperator(BaseOperator):
    """A ``sql`` step, or the export of a ``table`` step that a python step reads: the query's
    result (or the whole table) into the artifact store."""

    template_fields = ("sql", "env_vars")
    template_ext = ()

    def __init__(self, *, plan: RunPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.sql = plan.sql
        # not a process's environment: what the output's provenance records (rendered as a step's is)
        self.env_vars = environment.record_environment(plan)

    def execute(self, context: Any) -> Any:
        run = self.plan
        warehouse = Warehouse.from_conn_id(run.warehouse)
        try:  # one SELECT that only reads, as sqlglot renders it (a second statement cannot ride along)
            sql = (
                user_query(self.sql, warehouse.dialect, "a `sql` step") if self.sql else warehouse.select_all(run.table)
            )
        except QualitySQLError as error:
            raise AirflowException(f"step `{run.step}`: {error}") from None
        output = Location.of(artifact_uri(run.artifacts, run.output, context["run_id"]))
        self.log.info("step `%s`: exporting the result of\n%s\nto %s", run.step, sql, output.uri)
        started = record.now()

        def made():
            return record.provenance(self.env_vars, started, record.now())

        try:
            manifest = export_query(warehouse, sql, output, made)
        except Exception as error:
            raise AirflowException(f"step `{run.step}`: the query failed: {type(error).__name__}: {error}") from None
        self.log.info("step `%s`: %s rows, %s bytes", run.step, manifest["rows"], manifest["bytes"])
        self.committed, self.query = manifest, sql
        return manifest

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The output the step's manifest records, its schema and the query (``operators.lineage``)."""
        from aq_airflow.operators.lineage import step_lineage

        return step_lineage(getattr(self, "committed", None), getattr(self, "query", None))
