"""Runs a step's checks or metrics: the fused aggregate query over the data where it lives (the
warehouse for `table` and `sql` steps, DuckDB over the Parquet output otherwise), samples of
failing rows, and the checks evaluated beside the scan."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from aq_airflow.plan.model import CheckPlan, MetricPlan, QualitySource, SourceKind
from aq_airflow.quality import extra
from aq_airflow.quality.evaluate import ERROR, FAILED, Outcome, base_fields, check_outcome, metric_outcome
from aq_airflow.quality.sql import query_relation
from aq_airflow.quality.suite import Compiled, Suite, row_values
from aq_airflow.runtime.artifacts import Location, open_dataset
from aq_airflow.warehouse import DuckDB, Warehouse
from aq_airflow.warehouse.duckdb import parquet_relation

ARTIFACT_VIEW = "aq_artifact"  # the name an object-store output is registered under in DuckDB


@dataclass
class Dataset:
    """What a suite scans: a relation and the warehouse (adapter) that can read it."""

    relation: Any
    warehouse: Warehouse
    columns: list[tuple[str, str]] | None = None  # (name, type) when known without a query
    views: dict[str, Any] = field(default_factory=dict)  # names the raw `sql:` checks may use

    @property
    def dialect(self) -> str | None:
        return self.warehouse.dialect

    @classmethod
    def artifact(cls, location: Location, manifest: dict, step: str) -> Dataset:
        """A step's committed Parquet output, scanned by an in-memory DuckDB: by path on a local
        disk, and as a pyarrow dataset on its own filesystem otherwise (S3, GCS, Azure), so no
        DuckDB extension has to be downloaded at run time."""
        columns = [tuple(c) for c in manifest["schema"]]
        if location.is_local:
            relation = parquet_relation([location.join(f) for f in manifest["files"]])
            return cls(relation, DuckDB.in_memory(), columns, {step: relation})
        relation = exp.to_table(ARTIFACT_VIEW)
        warehouse = DuckDB.in_memory({ARTIFACT_VIEW: open_dataset(location, manifest)})
        return cls(relation, warehouse, columns, {step: relation})

    @classmethod
    def warehouse_data(cls, source: QualitySource, warehouse: Warehouse) -> Dataset:
        """A warehouse table, or a sql step's query as a subquery (pushdown)."""
        if source.kind == SourceKind.TABLE:
            return cls(warehouse.table(source.table), warehouse)
        return cls(query_relation(source.query, warehouse.dialect), warehouse)


def _fetch_one(cursor: Any, sql: str) -> dict[str, Any]:
    cursor.execute(sql)
    return row_values(cursor, cursor.fetchone())


def _samples(cursor: Any, suite: Suite, compiled: Compiled, sensitive: set[str]) -> list[dict] | None:
    query = suite.sample_query(compiled, sensitive)
    if query is None:
        return None
    cursor.execute(query)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _dataframe(cursor: Any, dataset: Dataset):
    import pandas as pd

    cursor.execute(exp.select("*").from_(exp.alias_(dataset.relation, "aq_source")).sql(dialect=dataset.dialect))
    return pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])


def _columns(cursor: Any, dataset: Dataset) -> list[tuple[str, str]]:
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
    cursor.execute(query.sql(dialect=dataset.dialect))
    return [(str(name), str(kind)) for name, kind in cursor.fetchall()]


def run_checks(
    dataset: Dataset, checks: tuple[CheckPlan, ...], sensitive: set[str], now: datetime.datetime
) -> list[Outcome]:
    """Every check of a step, in spec order; aggregates in one scan."""
    suite = Suite(dataset.relation, dataset.dialect)
    compiled = [suite.add_check(spec) for spec in checks]
    with dataset.warehouse.session() as cursor:
        for name, relation in dataset.views.items():
            view = exp.Create(this=exp.to_identifier(name, quoted=True), kind="VIEW", replace=True,
                              expression=exp.select("*").from_(relation))  # fmt: skip
            cursor.execute(view.sql(dialect=dataset.dialect))
        values = _fetch_one(cursor, suite.query()) if suite.query() else {}
        outcomes: dict[str, Outcome] = {}
        expectations = []
        for item in compiled:
            spec = item.spec
            if spec.kind == "schema":
                outcomes[spec.name] = extra.schema_outcome(spec, _columns(cursor, dataset))
            elif spec.kind == "sql":
                outcomes[spec.name] = extra.sql_outcome(spec, cursor)
            elif spec.kind == "expect":
                expectations.append(spec)
            else:
                outcome = check_outcome(item, values, now)
                if outcome.outcome == FAILED:
                    outcome.sample = _samples(cursor, suite, item, sensitive)
                outcomes[spec.name] = outcome
        if expectations:
            for outcome in extra.gx_outcomes(expectations, _dataframe(cursor, dataset), sensitive):
                outcomes[outcome.name] = outcome
    return [outcomes[spec.name] for spec in checks]


def run_metrics(
    dataset: Dataset, metrics: tuple[MetricPlan, ...], history: Callable[[MetricPlan], list[float]]
) -> list[Outcome]:
    """Every metric of a step in one scan, then each against its bounds and history."""
    suite = Suite(dataset.relation, dataset.dialect)
    compiled = [suite.add_metric(spec) for spec in metrics]
    with dataset.warehouse.session() as cursor:
        values = _fetch_one(cursor, suite.query()) if suite.query() else {}
    return [metric_outcome(item, values, history(item.spec) if not item.error else []) for item in compiled]


def unreadable(specs: tuple[CheckPlan | MetricPlan, ...], message: str) -> list[Outcome]:
    """Every check (or metric) as an error, when the data could not be read or the warehouse
    rejected the query; each keeps its own kind and severity."""
    return [Outcome(**base_fields(s), outcome=ERROR, message=message) for s in specs]
