"""Quality operators: a step's checks, its metrics, and the publish they gate.

Checks and metrics read the data where it lives (the warehouse for `table` and `sql` steps,
DuckDB over the step's Parquet output otherwise), write one results row each to the warehouse,
and only then fail the task if an error-severity check failed. Warnings are logged loudly and
leave the task green.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.common.sql.operators.sql import BaseSQLOperator, SQLCheckResult
from airflow.sdk import BaseOperator

from aq_airflow.artifacts.items import item_label
from aq_airflow.artifacts.provenance import Provenance
from aq_airflow.artifacts.root import artifact_uri, artifacts_root
from aq_airflow.artifacts.store import Location, MissingArtifact
from aq_airflow.client.earlier import find_earlier
from aq_airflow.operators.facts import ResultsRecorder
from aq_airflow.operators.links import QualityLink
from aq_airflow.plan.model import FACT_FIELDS, CheckPlan, MetricPlan, PublishPlan, QualityPlan, SourceKind
from aq_airflow.quality.drift import SCHEMA_CHANGE, schema_change_outcome
from aq_airflow.quality.engine import Dataset, run_checks, run_metrics, unreadable
from aq_airflow.quality.evaluate import PASSED, Outcome
from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore, result_row, utcnow
from aq_airflow.results.rows import Severity, naive_utc
from aq_airflow.warehouse import Warehouse, is_infrastructure_error
from aq_airflow.warehouse.transfer import publish


class _QualityTask:
    """What checks, metrics and publish share: the warehouse, the data, the results store."""

    plan: QualityPlan | PublishPlan
    item_label: str  # a `foreach:` step's item as the grid labels it (set by checks and metrics)

    def warehouse(self) -> Warehouse:
        """The adapter for the plan's connection (its provider's hook owns the connection)."""
        return Warehouse.from_conn_id(self.plan.warehouse)

    def results(self, warehouse: Warehouse) -> ResultsStore:
        store = ResultsStore(warehouse, self.plan.results_schema)
        store.ensure_tables()
        return store

    def item_count(self, context: Any) -> int | None:
        """A `foreach:` step's item count in this run (its recorded item list), None when the
        step is not mapped: the results of items past it, from an earlier run of the date, go.
        An item list that is missing or not one the items task wrote (``artifacts.items.ItemList``)
        fails the task naming the step and the file, before any result is replaced: a count it
        cannot trust would delete the results of real items."""
        ref = self.plan.source.artifact
        if ref is None or not ref.each:
            return None
        from aq_airflow.artifacts.items import count_items

        folder = Location.of(artifact_uri(self.plan.artifacts, ref, context["run_id"]))
        try:
            return count_items(folder, self.plan.step)
        except MissingArtifact as error:
            raise AirflowException(f"step `{self.plan.step}`: {error}") from None

    def artifact(self, context: Any, contents: bool = True) -> tuple[Location, dict]:
        """The step's committed output, its files held to its manifest before anything reads them
        (``contents=False``: its Parquet footers only, where just the schema is used)."""
        ref = self.plan.source.artifact
        if ref.each:  # a `foreach:` step's checks and metrics: this instance's item
            ref = ref.item(context["ti"].map_index)
        location = Location.of(artifact_uri(self.plan.artifacts, ref, context["run_id"]))
        self.output_manifest = location.read_output(self.plan.step, contents=contents)
        return location, self.output_manifest

    def made_by(self) -> dict:
        """The result columns that say what made the data: the code digest, image and image digest
        the step's output records (:class:`Provenance`, read with the data, never again); the
        image the spec names where the output records none (a table step, a local process, an
        output of a release before provenance)."""
        made = Provenance.of(getattr(self, "output_manifest", None) or {})
        image = made.image if made is not None else None
        return {
            "code_digest": made.code.digest if made is not None and made.code is not None else None,
            "image": image.name if image is not None else self.plan.image,
            "image_digest": image.digest if image is not None else None,
        }

    def dataset(self, warehouse: Warehouse, context: Any) -> Dataset:
        """Pushed down to the warehouse for table and sql steps; DuckDB over Parquet otherwise."""
        source = self.plan.source
        if source.kind != SourceKind.ARTIFACT:
            dataset = Dataset.warehouse_data(source, warehouse)
            if source.artifact is not None:  # a sql step's output schema, for `schema` checks
                dataset.columns = [tuple(c) for c in self.artifact(context, contents=False)[1].get("schema", [])]
            return dataset
        location, manifest = self.artifact(context)
        if manifest["kind"] != "table":
            raise MissingArtifact(f"step `{self.plan.step}` produced a {manifest['kind']}, not a table to check")
        return Dataset.artifact(location, manifest, self.plan.step)

    def common_row(self, context: Any) -> dict:
        """The columns every row of this task shares; (dag_id, logical_date, step, map_index) is
        the key a re-run of the date replaces (run_id and try_number say which run wrote it); a
        `foreach:` item's rows carry its label, which ``aq-airflow results`` and the quality pages
        name the item by."""
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        return {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "step": self.plan.step,
            "map_index": map_index,
            "item_label": self.item_label if map_index >= 0 else None,
            "try_number": ti.try_number,
            "spec_hash": self.plan.spec_hash,
            **self.made_by(),
            "logical_date": naive_utc(run_date(context)),
            "created_at": utcnow(),
        }

    def _do_render_template_fields(self, parent, template_fields, context, jinja_env, seen_oids) -> None:
        """Airflow templates in checks and metrics (``"{{ params.min_rows }}"``) are rendered
        into a new plan; the planned one stays as it was. Here, not in ``render_template_fields``:
        a mapped task (a `foreach:` step's checks and metrics) renders its unmapped instance
        through this method only."""
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is self and isinstance(self.plan, QualityPlan):
            self.plan = self.plan.rendered(lambda value: self.render_template(value, context, jinja_env))


def _report(log, what: str, outcomes: list[Outcome]) -> list[Outcome]:
    """Log every outcome; returns the ones that block (error severity, not passed)."""
    for outcome in outcomes:
        line = f"{what} `{outcome.name}` ({outcome.kind}): {outcome.outcome.upper()} - {outcome.message}"
        if outcome.outcome == PASSED:
            log.info(line)
        elif outcome.severity == Severity.WARNING:
            log.warning(line)
        else:
            log.error(line)
        if outcome.sample:
            log.info("  failing rows (sample): %s", outcome.sample)
    return [o for o in outcomes if o.blocking]


class AqCheckOperator(_QualityTask, ResultsRecorder, BaseSQLOperator):
    """All checks of one step in one scan of its output; results to the warehouse.

    A BaseSQLOperator, so it takes common-sql's connection handling (``conn_id``,
    ``get_db_hook``) and keeps Airflow's ``check_results`` shape for lineage. Its facts (step,
    role, sensitive columns, results tables) are ``ResultsRecorder``'s.
    """

    template_fields = (*BaseSQLOperator.template_fields, *FACT_FIELDS)
    operator_extra_links = (QualityLink(),)  # the task instance's page in the quality UI

    def __init__(self, *, plan: QualityPlan, item: Any = None, **kwargs: Any) -> None:
        super().__init__(conn_id=plan.warehouse, **kwargs)
        self.plan = plan
        self.item, self.item_label = item, item_label(item)  # a `foreach:` step's item

    def execute(self, context: Any) -> Any:
        warehouse = Warehouse.of(self.get_db_hook())
        checks = self.plan.checks
        scanned = tuple(c for c in checks if c.kind != SCHEMA_CHANGE)  # read the data; schema_change: manifests
        found = {o.name: o for o in self.scan(warehouse, context, scanned)} if scanned else {}
        drift = tuple(c for c in checks if c.kind == SCHEMA_CHANGE)
        found.update({o.name: o for o in self.schema_changes(context, drift)} if drift else {})
        outcomes = [found[c.name] for c in checks]
        common = self.common_row(context)
        rows = [result_row(o, common) for o in outcomes]
        self.results(warehouse).replace(CHECKS_TABLE, common, rows, self.item_count(context))
        self.check_results = [self._lineage_result(o) for o in outcomes]
        blocking = _report(self.log, "check", outcomes)
        if blocking:
            listing = "\n".join(f"  {o.name}: {o.message}" for o in blocking)
            raise AirflowException(f"step `{self.plan.step}`: {len(blocking)} check(s) failed:\n{listing}")
        return {"checks": len(outcomes), "passed": sum(o.outcome == PASSED for o in outcomes)}

    def scan(self, warehouse: Warehouse, context: Any, checks: tuple[CheckPlan, ...]) -> list[Outcome]:
        """The checks that read the data: one fused scan where it lives."""
        try:
            as_of = None
            if any(c.kind == "freshness" for c in checks):
                as_of, why = freshness_reference(context, _now())
                self.log.info("freshness judged as of %s (%s)", as_of.isoformat(), why)
            return run_checks(self.dataset(warehouse, context), checks, set(self.plan.sensitive), as_of or _now())
        except MissingArtifact as error:
            return unreadable(checks, f"could not read the data: {error}")
        except Exception as error:
            if is_infrastructure_error(error):  # not a verdict on the data: fail (and retry), record nothing
                raise
            # the warehouse rejected the fused query (a missing column, a bad expression): every check errors
            return unreadable(checks, f"{type(error).__name__}: {error}")

    def schema_changes(self, context: Any, checks: tuple[CheckPlan, ...]) -> list[Outcome]:
        """`schema_change` checks: this run's committed output against the same step's (the same
        item's, for a `foreach:` step) last output of an earlier logical date, manifest to
        manifest: no data is read, whatever the warehouse. A store that cannot be listed raises
        (the task fails and retries, recording nothing)."""
        ref = self.plan.source.artifact
        if ref is None:  # a table step (refused when planned): it leaves no output to compare
            return unreadable(checks, f"step `{self.plan.step}` leaves no output in the artifact store")
        try:
            manifest = self.artifact(context, contents=False)[1]
        except MissingArtifact as error:
            return unreadable(checks, f"could not read the output: {error}")
        dag_run = context["dag_run"]
        search = find_earlier(artifacts_root(self.plan.artifacts), ref.dag_id, self.plan.step, context["run_id"],
                              run_date(context), dag_run.run_after or run_date(context),
                              context["ti"].map_index if ref.each else None)  # fmt: skip
        found = search.found
        self.log.info("schema_change: %s (%d manifest(s) read)",
                      f"comparing with run {found.run_id}" if found else "no earlier output", search.read)  # fmt: skip
        return [schema_change_outcome(spec, manifest, search) for spec in checks]

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
            severity="error" if outcome.severity == Severity.ERROR else "warn",
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


class AqMetricOperator(_QualityTask, ResultsRecorder):
    """All metrics of one step in one scan, with static or learned bounds; results to the warehouse."""

    operator_extra_links = (QualityLink(),)  # the task instance's page in the quality UI

    def __init__(self, *, plan: QualityPlan, item: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.item, self.item_label = item, item_label(item)  # a `foreach:` step's item

    def execute(self, context: Any) -> Any:
        warehouse = self.warehouse()
        store = self.results(warehouse)
        common = self.common_row(context)
        metrics = self.plan.metrics

        def history(spec: MetricPlan) -> list[float]:
            """The latest passed value of each earlier logical date (never this date or a later one)."""
            if not spec.history_needed:
                return []
            return store.metric_history(common["dag_id"], self.plan.step, spec.name, common["logical_date"],
                                        spec.history_needed, common["map_index"])  # fmt: skip

        try:
            outcomes = run_metrics(self.dataset(warehouse, context), metrics, history)
        except MissingArtifact as error:
            outcomes = unreadable(metrics, f"could not read the data: {error}")
        except Exception as error:
            if is_infrastructure_error(error):  # not a verdict on the data: fail (and retry), record nothing
                raise
            outcomes = unreadable(metrics, f"{type(error).__name__}: {error}")
        common.update(self.made_by(), created_at=utcnow())  # the output's record, read with its data
        rows = [result_row(o, common, METRICS_TABLE) for o in outcomes]
        store.replace(METRICS_TABLE, common, rows, self.item_count(context))
        blocking = _report(self.log, "metric", outcomes)
        if blocking:
            listing = "\n".join(f"  {o.name}: {o.message}" for o in blocking)
            raise AirflowException(f"step `{self.plan.step}`: {len(blocking)} metric(s) out of bounds:\n{listing}")
        # to XCom, which refuses NaN/inf (metric_outcome gives those no value; this keeps it so)
        return {o.name: o.value if o.value is None or math.isfinite(o.value) else str(o.value) for o in outcomes}


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
        rows = publish(self.warehouse(), files, plan.table, plan.mode, list(plan.keys), location.fs)
        self.log.info("published %s rows of step `%s` into %s (%s)", rows, plan.step, plan.table, plan.mode)
        return {"table": plan.table, "mode": plan.mode, "rows": rows}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def run_date(context: Any) -> datetime.datetime:
    """The run's date: its logical date, or when it has none (an asset-triggered run, some
    manual ones) the moment it was due to run."""
    return context.get("logical_date") or context["dag_run"].run_after


def _aware(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.timezone.utc)


def _catching_up(context: Any, end: datetime.datetime, now: datetime.datetime) -> bool:
    """Whether the schedule's next run after this one was already due: a catch-up run, or a
    manual run of a past date. Cron and interval schedules only; any other says no (live)."""
    dag = context.get("dag")
    timetable = getattr(dag, "timetable", None)
    expression, delta = getattr(timetable, "expression", None), getattr(timetable, "delta", None)
    if isinstance(expression, str):
        from croniter import croniter

        zone = getattr(timetable, "timezone", None) or datetime.timezone.utc
        if isinstance(zone, str):
            import pendulum

            zone = pendulum.timezone(zone)
        following = croniter(expression, end.astimezone(zone)).get_next(datetime.datetime)
    elif delta is not None:
        following = end + delta
    else:
        return False
    return _aware(following) <= now


def freshness_reference(context: Any, now: datetime.datetime) -> tuple[datetime.datetime, str]:
    """The moment a freshness check judges age from, and why.

    A live run is judged against the later of its data interval end and the clock: the data must
    be fresh now, and never older than the period the run is about. A backfill (Airflow's
    ``backfill`` run type) and a run that is catching up (the schedule's next run was already due:
    catchup, or a manual run of a past date, as ``aq-airflow run --date``) is judged as of its
    own data interval end, so last month's backfill is judged as of last month, not failed
    because a month passed since. Runs without a data interval use their date."""
    dag_run = context.get("dag_run")
    end = context.get("data_interval_end") or getattr(dag_run, "data_interval_end", None) or run_date(context)
    end = _aware(end)
    run_type = getattr(dag_run, "run_type", None)
    if getattr(run_type, "value", run_type) == "backfill":
        return end, "a backfill: as of its data interval end"
    try:
        behind = _catching_up(context, end, now)
    except Exception:  # a timetable we cannot step: judged as live
        behind = False
    if behind:
        return end, "a past date (a later scheduled run was already due): as of its data interval end"
    if end > now:
        return end, "a live run: its data interval end, which is later than now"
    return now, "a live run: now, the later of now and its data interval end"
