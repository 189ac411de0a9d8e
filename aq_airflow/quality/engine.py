"""Runs a step's checks or metrics: the fused aggregate query over the data where it lives (the
warehouse for `table` and `sql` steps, DuckDB over the Parquet output otherwise), samples of
failing rows, and the checks evaluated beside the scan.

Every query runs in one :class:`ReadSession` (a read-only transaction where the warehouse has
one). A fused query the warehouse rejects is run again check by check, so one bad check errors
alone; infrastructure errors (the adapter's ``is_infrastructure_error``) propagate, to fail the
task without recording anything."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from aq_airflow.artifacts.store import Location, open_dataset
from aq_airflow.plan.model import CheckPlan, MetricPlan, QualitySource, SourceKind
from aq_airflow.quality import extra
from aq_airflow.quality.evaluate import ERROR, FAILED, Outcome, base_fields, check_outcome, metric_outcome
from aq_airflow.quality.sql import query_relation
from aq_airflow.quality.suite import Compiled, Suite
from aq_airflow.warehouse import DuckDB, ReadSession, Warehouse
from aq_airflow.warehouse.duckdb import parquet_relation

log = logging.getLogger(__name__)

ARTIFACT_VIEW = "aq_artifact"  # the name an object-store output is registered under in DuckDB


@dataclass
class Dataset:
    """What a suite scans: a relation and the warehouse (adapter) that can read it."""

    relation: Any
    warehouse: Warehouse
    columns: list[tuple[str, str]] | None = None  # (name, type) when known without a query

    @property
    def dialect(self) -> str | None:
        return self.warehouse.dialect

    @classmethod
    def artifact(cls, location: Location, manifest: dict, step: str) -> Dataset:
        """A step's committed Parquet output, scanned by an in-memory DuckDB: by path on a local
        disk, and as a pyarrow dataset on its own filesystem otherwise (S3, GCS, Azure), so no
        DuckDB extension has to be downloaded at run time. ``manifest`` is one
        :meth:`Location.read_output` returned: its files already held to it (digests, rows,
        schema), since DuckDB reads whatever the paths hold. Raw `sql:` checks name the data by
        the step's name: a view of that name on each connection."""
        columns = [tuple(c) for c in manifest["schema"]]
        if location.is_local:
            relation = parquet_relation([location.join(f) for f in manifest["files"]])
            return cls(relation, DuckDB.in_memory(readable=[location.path], views={step: relation}), columns)
        relation = exp.to_table(ARTIFACT_VIEW)
        warehouse = DuckDB.in_memory({ARTIFACT_VIEW: open_dataset(location, manifest)}, views={step: relation})
        return cls(relation, warehouse, columns)

    @classmethod
    def warehouse_data(cls, source: QualitySource, warehouse: Warehouse) -> Dataset:
        """A warehouse table, or a sql step's query as a subquery (pushdown)."""
        if source.kind == SourceKind.TABLE:
            return cls(warehouse.table(source.table), warehouse)
        return cls(query_relation(source.query, warehouse.dialect), warehouse)


def _one(reader: ReadSession, sql: str) -> dict[str, Any]:
    """The single row of an aggregate query, by lower-cased column name."""
    names, rows = reader.fetch(sql)
    return {name.lower(): value for name, value in zip(names, rows[0], strict=True)}


def failed_query(spec: CheckPlan | MetricPlan, error: BaseException) -> Outcome:
    """The error outcome of a check or metric whose own query the warehouse rejected."""
    return Outcome(**base_fields(spec), outcome=ERROR, message=f"{type(error).__name__}: {error}")


def _verdict(reader: ReadSession, error: BaseException) -> None:
    """Re-raise an infrastructure error (a lost connection, a lock, a timeout): it is no verdict
    on the data, so the task fails (and retries) and records nothing."""
    if reader.warehouse.is_infrastructure_error(error):
        raise error


def _fused(
    reader: ReadSession, suite: Suite, compiled: list[Compiled], add: Callable[[Suite, Any], Compiled]
) -> list[tuple[Compiled, dict[str, Any] | Outcome]]:
    """Each item's values from the one fused scan. When the warehouse rejects that query (a
    literal its column cannot take, a missing column), each item runs alone, one query each, so
    only the items the warehouse rejects get an error outcome, each with its own message, and
    the others their real outcome; the fast path stays one scan when nothing fails."""
    query = suite.query()
    if query is None:
        return [(item, {}) for item in compiled]
    try:
        values = _one(reader, query)
        return [(item, values) for item in compiled]
    except Exception as error:
        _verdict(reader, error)
        log.info("the fused query failed (%s: %s); running each check or metric alone", type(error).__name__, error)
    isolated: list[tuple[Compiled, dict[str, Any] | Outcome]] = []
    for item in compiled:
        if item.error or not item.measures:
            isolated.append((item, {}))
            continue
        alone = Suite(suite.relation, suite.dialect)
        single = add(alone, item.spec)
        try:
            isolated.append((single, _one(reader, alone.query())))
        except Exception as error:
            _verdict(reader, error)
            isolated.append((single, failed_query(item.spec, error)))
    return isolated


def _samples(reader: ReadSession, suite: Suite, compiled: Compiled, sensitive: set[str]) -> list[dict] | None:
    query = suite.sample_query(compiled, sensitive)
    if query is None:
        return None
    try:
        names, rows = reader.fetch(query)
    except Exception as error:  # the verdict stands without its sample
        _verdict(reader, error)
        log.warning("no failing-row sample for `%s`: %s: %s", compiled.spec.name, type(error).__name__, error)
        return None
    return [dict(zip(names, row, strict=True)) for row in rows]


def _dataframe(reader: ReadSession, dataset: Dataset):
    import pandas as pd

    names, rows = reader.fetch(
        exp.select("*").from_(exp.alias_(dataset.relation, "aq_source")).sql(dialect=dataset.dialect)
    )
    return pd.DataFrame(rows, columns=names)


def _columns(reader: ReadSession, dataset: Dataset) -> list[tuple[str, str]]:
    """Column names and type names: known for Parquet outputs, from information_schema for tables."""
    if dataset.columns is not None:
        return dataset.columns
    relation = dataset.relation
    if not isinstance(relation, exp.Table):
        raise ValueError("`schema` checks on a query need the step's output schema")
    conditions = [exp.func("LOWER", exp.column("table_name")).eq(exp.Literal.string(relation.name.lower()))]
    if relation.db:
        conditions.append(exp.func("LOWER", exp.column("table_schema")).eq(exp.Literal.string(relation.db.lower())))
    query = (
        exp.select("column_name", "data_type")
        .from_(exp.to_table("information_schema.columns"))
        .where(exp.and_(*conditions))
        .order_by("ordinal_position")
    )
    _, rows = reader.fetch(query.sql(dialect=dataset.dialect))
    return [(str(name), str(kind)) for name, kind in rows]


def _schema_outcome(reader: ReadSession, dataset: Dataset, spec: CheckPlan) -> Outcome:
    try:
        return extra.schema_outcome(spec, _columns(reader, dataset))
    except Exception as error:
        _verdict(reader, error)
        return failed_query(spec, error)


def run_checks(
    dataset: Dataset, checks: tuple[CheckPlan, ...], sensitive: set[str], now: datetime.datetime
) -> list[Outcome]:
    """Every check of a step, in spec order; aggregates in one scan, in a read-only transaction."""
    suite = Suite(dataset.relation, dataset.dialect)
    compiled = [suite.add_check(spec) for spec in checks]
    outcomes: dict[str, Outcome] = {}
    with dataset.warehouse.reading() as reader:
        expectations = []
        for item, values in _fused(reader, suite, compiled, Suite.add_check):
            spec = item.spec
            if spec.kind == "schema":
                outcomes[spec.name] = _schema_outcome(reader, dataset, spec)
            elif spec.kind == "sql":
                outcomes[spec.name] = extra.sql_outcome(spec, reader)
            elif spec.kind == "expect":
                expectations.append(spec)
            elif isinstance(values, Outcome):
                outcomes[spec.name] = values
            else:
                outcome = check_outcome(item, values, now)
                if outcome.outcome == FAILED:
                    outcome.sample = _samples(reader, suite, item, sensitive)
                outcomes[spec.name] = outcome
        if expectations:
            try:
                frame = _dataframe(reader, dataset)
            except Exception as error:
                _verdict(reader, error)
                for spec in expectations:
                    outcomes[spec.name] = failed_query(spec, error)
            else:
                for outcome in extra.gx_outcomes(expectations, frame, sensitive):
                    outcomes[outcome.name] = outcome
    return [outcomes[spec.name] for spec in checks]


def run_metrics(
    dataset: Dataset, metrics: tuple[MetricPlan, ...], history: Callable[[MetricPlan], list[float]]
) -> list[Outcome]:
    """Every metric of a step in one scan (in a read-only transaction), then each against its
    bounds and history."""
    suite = Suite(dataset.relation, dataset.dialect)
    compiled = [suite.add_metric(spec) for spec in metrics]
    with dataset.warehouse.reading() as reader:
        fused = _fused(reader, suite, compiled, Suite.add_metric)
    return [
        values if isinstance(values, Outcome)
        else metric_outcome(item, values, history(item.spec) if not item.error else [])
        for item, values in fused
    ]  # fmt: skip


def unreadable(specs: tuple[CheckPlan | MetricPlan, ...], message: str) -> list[Outcome]:
    """Every check (or metric) as an error, when the data could not be read or the warehouse
    rejected the query; each keeps its own kind and severity."""
    return [Outcome(**base_fields(s), outcome=ERROR, message=message) for s in specs]
