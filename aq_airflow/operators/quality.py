"""Quality operators: a step's checks, its metrics, and the publish they gate.

Checks and metrics read the data where it lives (the warehouse for `table` and `sql` steps,
DuckDB over the step's Parquet output otherwise), write one results row each to the warehouse,
and only then fail the task if an error-severity check failed. Warnings are logged loudly and
leave the task green.
"""

from __future__ import annotations

import datetime
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.common.sql.operators.sql import BaseSQLOperator, SQLCheckResult
from airflow.sdk import BaseHook, BaseOperator

from aq_airflow.plan.model import MetricPlan, PublishPlan, QualityPlan, SourceKind
from aq_airflow.quality.engine import Dataset, run_checks, run_metrics, unreadable
from aq_airflow.quality.evaluate import PASSED, Outcome
from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore, result_row, utcnow
from aq_airflow.runners import local
from aq_airflow.runners.publish import publish
from aq_airflow.runtime.artifacts import Location, MissingArtifact
from aq_airflow.warehouse import Warehouse, is_infrastructure_error


class _QualityTask:
    """What checks, metrics and publish share: the warehouse, the data, the results store."""

    plan: QualityPlan | PublishPlan

    def warehouse_hook(self):
        return BaseHook.get_connection(self.plan.warehouse).get_hook()

    def results(self, warehouse: Warehouse) -> ResultsStore:
        store = ResultsStore(warehouse, self.plan.results_schema)
        store.ensure_tables()
        return store

    def artifact(self, context: Any) -> tuple[Location, dict]:
        location = Location.of(local.artifact_uri(self.plan.artifacts, self.plan.source.artifact, context["run_id"]))
        return location, location.read_manifest(self.plan.step)

    def dataset(self, warehouse: Warehouse, context: Any) -> Dataset:
        """Pushed down to the warehouse for table and sql steps; DuckDB over Parquet otherwise."""
        source = self.plan.source
        if source.kind != SourceKind.ARTIFACT:
            dataset = Dataset.warehouse_data(source, warehouse)
            if source.artifact is not None:  # a sql step's output schema, for `schema` checks
                dataset.columns = [tuple(c) for c in self.artifact(context)[1].get("schema", [])]
            return dataset
        location, manifest = self.artifact(context)
        if manifest["kind"] != "table":
            raise MissingArtifact(f"step `{self.plan.step}` produced a {manifest['kind']}, not a table to check")
        return Dataset.artifact(location, manifest, self.plan.step)

    def common_row(self, context: Any) -> dict:
        ti = context["ti"]
        logical = context.get("logical_date") or context["dag_run"].run_after  # None for some manual runs
        return {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "step": self.plan.step,
            "map_index": ti.map_index if ti.map_index is not None else -1,
            "try_number": ti.try_number,
            "spec_hash": self.plan.spec_hash,
            "image": self.plan.image,
            "logical_date": logical.astimezone(datetime.timezone.utc).replace(tzinfo=None),
            "created_at": utcnow(),
        }

    def render_template_fields(self, context: Any, jinja_env=None) -> None:
        """Airflow templates in checks and metrics (``"{{ params.min_rows }}"``) are rendered
        into a new plan; the planned one stays as it was."""
        super().render_template_fields(context, jinja_env)
        if isinstance(self.plan, QualityPlan):
            self.plan = self.plan.rendered(lambda value: self.render_template(value, context, jinja_env))


def _report(log, what: str, outcomes: list[Outcome]) -> list[Outcome]:
    """Log every outcome; returns the ones that block (error severity, not passed)."""
    for outcome in outcomes:
        line = f"{what} `{outcome.name}` ({outcome.kind}): {outcome.outcome.upper()} - {outcome.message}"
        if outcome.outcome == PASSED:
            log.info(line)
        elif outcome.severity == "warning":
            log.warning(line)
        else:
            log.error(line)
        if outcome.sample:
            log.info("  failing rows (sample): %s", outcome.sample)
    return [o for o in outcomes if o.blocking]


class AqCheckOperator(_QualityTask, BaseSQLOperator):
    """All checks of one step in one scan of its output; results to the warehouse.

    A BaseSQLOperator, so it takes common-sql's connection handling (``conn_id``,
    ``get_db_hook``) and keeps Airflow's ``check_results`` shape for lineage.
    """

    def __init__(self, *, plan: QualityPlan, **kwargs: Any) -> None:
        super().__init__(conn_id=plan.warehouse, **kwargs)
        self.plan = plan

    def execute(self, context: Any) -> Any:
        warehouse = Warehouse.of(self.get_db_hook())
        checks = self.plan.checks
        try:
            # freshness is judged at the end of the run's data interval (so backfills are judged
            # as of their own date), or now when the run has none
            as_of = context.get("data_interval_end") or _now()
            outcomes = run_checks(self.dataset(warehouse, context), checks, set(self.plan.sensitive), as_of)
        except MissingArtifact as error:
            outcomes = unreadable(checks, f"could not read the data: {error}")
        except Exception as error:
            if is_infrastructure_error(error):  # not a verdict on the data: fail (and retry), record nothing
                raise
            # the warehouse rejected the fused query (a missing column, a bad expression): every check errors
            outcomes = unreadable(checks, f"{type(error).__name__}: {error}")
        common = self.common_row(context)
        self.results(warehouse).replace(CHECKS_TABLE, common, [result_row(o, common) for o in outcomes])
        self.check_results = [self._lineage_result(o) for o in outcomes]
        blocking = _report(self.log, "check", outcomes)
        if blocking:
            listing = "\n".join(f"  {o.name}: {o.message}" for o in blocking)
            raise AirflowException(f"step `{self.plan.step}`: {len(blocking)} check(s) failed:\n{listing}")
        return {"checks": len(outcomes), "passed": sum(o.outcome == PASSED for o in outcomes)}

    def _lineage_dataset(self) -> tuple[str, str]:
        """(namespace, name) of the data the checks read, for OpenLineage."""
        source = self.plan.source
        if source.kind == SourceKind.TABLE:
            return f"{self.get_db_hook().conn_type}://{self.plan.warehouse}", source.table
        return "file", f"{self.plan.step}:{source.kind}"

    def _lineage_result(self, outcome: Outcome) -> SQLCheckResult:
        spec = next(c for c in self.plan.checks if c.name == outcome.name)
        return SQLCheckResult(
            name=outcome.name,
            check_type=outcome.kind,
            success=outcome.outcome == PASSED,
            severity="error" if outcome.severity == "error" else "warn",
            column=spec.column,
            table=self._lineage_dataset()[1],
            expected=None if outcome.expected is None else str(outcome.expected),
            actual=None if outcome.observed is None else str(outcome.observed),
            description=spec.description or outcome.message,
        )

    def get_openlineage_facets_on_start(self):
        """The dataset the checks assert on; common-sql attaches ``check_results`` to it as a
        ``DataQualityAssertionsDatasetFacet`` when the task completes."""
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset

        namespace, name = self._lineage_dataset()
        return OperatorLineage(inputs=[Dataset(namespace=namespace, name=name)])


class AqMetricOperator(_QualityTask, BaseOperator):
    """All metrics of one step in one scan, with static or learned bounds; results to the warehouse."""

    def __init__(self, *, plan: QualityPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Any) -> Any:
        warehouse = Warehouse.of(self.warehouse_hook())
        store = self.results(warehouse)
        ti = context["ti"]
        metrics = self.plan.metrics

        def history(spec: MetricPlan) -> list[float]:
            if not spec.history_needed:
                return []
            return store.metric_history(ti.dag_id, self.plan.step, spec.name, ti.run_id, spec.history_needed)

        try:
            outcomes = run_metrics(self.dataset(warehouse, context), metrics, history)
        except MissingArtifact as error:
            outcomes = unreadable(metrics, f"could not read the data: {error}")
        except Exception as error:
            if is_infrastructure_error(error):  # not a verdict on the data: fail (and retry), record nothing
                raise
            outcomes = unreadable(metrics, f"{type(error).__name__}: {error}")
        common = self.common_row(context)
        store.replace(METRICS_TABLE, common, [result_row(o, common) for o in outcomes])
        blocking = _report(self.log, "metric", outcomes)
        if blocking:
            listing = "\n".join(f"  {o.name}: {o.message}" for o in blocking)
            raise AirflowException(f"step `{self.plan.step}`: {len(blocking)} metric(s) out of bounds:\n{listing}")
        return {o.name: o.value for o in outcomes}


class AqPublishOperator(_QualityTask, BaseOperator):
    """Loads the step's output into a warehouse table (append, replace or merge) in one
    transaction; the table is the task's Asset outlet."""

    def __init__(self, *, plan: PublishPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Any) -> Any:
        plan = self.plan
        location, manifest = self.artifact(context)
        if manifest["kind"] != "table":
            raise AirflowException(f"step `{plan.step}` produced a {manifest['kind']}; only tables can be published")
        files = [location.join(f) for f in manifest["files"]]
        rows = publish(Warehouse.of(self.warehouse_hook()), files, plan.table, plan.mode, list(plan.keys), location.fs)
        self.log.info("published %s rows of step `%s` into %s (%s)", rows, plan.step, plan.table, plan.mode)
        return {"table": plan.table, "mode": plan.mode, "rows": rows}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
