"""What Airflow's metadata DB says about an aq pipeline: the api-server parses no DAG files, so
the quality pages learn everything from the serialized DAG and the DAG runs.

- which DAGs are aq pipelines: the tag ``aq`` every compiled pipeline carries, and checks or
  metrics tasks in its serialized form;
- where its results are: the ``results_conn_id`` and ``results_schema`` template fields of its
  checks and metrics tasks (for a pipeline whose every such task is mapped, where Airflow keeps no
  operator attributes, the spec in the DAG's docs says);
- which columns its steps mark ``sensitive``: from the spec the DAG's docs carry (the YAML it was
  compiled from). The engine never writes those columns into a sample; the pages drop them again
  if a row holds them (rows written before a column was marked).

A pipeline's facts are cached per process by the serialized DAG's hash, so a page costs one
metadata query for them, and the spec is parsed once per version of the DAG.
"""

from __future__ import annotations

import datetime
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

QUALITY_OPERATORS = {"AqCheckOperator": "checks", "AqMetricOperator": "metrics"}
OPERATOR_MODULE = "aq_airflow.operators.quality"
AQ_TAG = "aq"
# the spec a compiled pipeline's docs carry (aq_airflow.plan.planner.spec_doc)
_SPEC_DOC = re.compile(
    r"From the aq-airflow spec `(?P<source>[^`\n]*)`:\n\n(?P<fence>`{3,})yaml\n(?P<text>.*?)\n(?P=fence)\n?$", re.DOTALL
)
_CACHE_SIZE = 2048


@dataclass(frozen=True)
class Pipeline:
    """An aq pipeline as its serialized DAG describes it."""

    dag_id: str
    conn_id: str | None
    schema: str | None
    description: str | None = None
    steps: tuple[str, ...] = ()  # steps with checks or metrics tasks, in the DAG's order
    tasks: dict[str, str] = field(default_factory=dict)  # quality task id -> "checks" | "metrics"
    task_ids: frozenset[str] = frozenset()
    sensitive: dict[str, tuple[str, ...]] = field(default_factory=dict)  # step -> columns (lower case)
    dag_hash: str | None = None


_cache: dict[str, Pipeline] = {}
_lock = threading.Lock()


def _operator(task: Any) -> dict[str, Any]:
    return task.get("__var", task) if isinstance(task, dict) else {}


def spec_of(doc_md: str | None) -> tuple[str, str] | None:
    """(source path, YAML text) of the spec a compiled pipeline's docs carry."""
    if not doc_md:
        return None
    found = _SPEC_DOC.search(doc_md)
    return (found.group("source"), found.group("text")) if found else None


def _spec_facts(doc_md: str | None) -> tuple[dict[str, tuple[str, ...]], str | None, str | None] | None:
    """(sensitive columns by step, warehouse connection, results schema) from the spec in the docs;
    None when the docs hold no spec that validates."""
    found = spec_of(doc_md)
    if found is None:
        return None
    from aq_airflow.pipeline_spec import SpecError, SpecFile, parse_spec

    try:
        pipeline = parse_spec(SpecFile(found[0] or "spec.aq.yaml", found[1]))
    except (SpecError, ValueError):
        return None
    sensitive = {
        name: tuple(str(c).lower() for c in step.sensitive) for name, step in pipeline.steps.items() if step.sensitive
    }
    return sensitive, pipeline.warehouse, pipeline.results_schema


def _text(value: Any) -> str | None:
    """A serialized field that should be a name: kept only when it is one (a hand-written DAG
    may hold anything there, and one odd pipeline must not break the overview of all)."""
    return value if isinstance(value, str) and value else None


def from_serialized(dag_id: str, data: dict[str, Any], dag_hash: str | None = None) -> Pipeline | None:
    """The pipeline a serialized DAG (``SerializedDagModel.data``) describes; None when the DAG
    is no aq pipeline (no checks or metrics tasks of ours, no ``aq`` tag)."""
    dag = data.get("dag", data) if isinstance(data, dict) else {}
    tasks = [_operator(task) for task in dag.get("tasks", [])]
    quality: dict[str, str] = {}
    steps: list[str] = []
    conn_id = schema = None
    located = False
    for task in tasks:
        kind = QUALITY_OPERATORS.get(task.get("task_type", ""))
        if kind is None or task.get("_task_module") != OPERATOR_MODULE:
            continue
        task_id = str(task.get("task_id"))
        quality[task_id] = kind
        step = task_id.rsplit(".", 1)[0]
        if step not in steps:
            steps.append(step)
        if not located and "results_conn_id" in task:  # a mapped task has no operator attributes
            conn_id, schema, located = _text(task.get("results_conn_id")), _text(task.get("results_schema")), True
    tags = dag.get("tags") or []
    if not quality and AQ_TAG not in tags:
        return None
    doc_md = dag.get("doc_md")
    facts = _spec_facts(doc_md)
    sensitive: dict[str, tuple[str, ...]] = {}
    if facts is not None:
        sensitive = facts[0]
        if not located:
            conn_id, schema = facts[1], facts[2]
    return Pipeline(
        dag_id=dag_id,
        conn_id=conn_id,
        schema=schema,
        description=dag.get("description"),
        steps=tuple(steps),
        tasks=quality,
        task_ids=frozenset(str(t.get("task_id")) for t in tasks),
        sensitive=sensitive,
        dag_hash=dag_hash,
    )


def pipeline(dag_id: str, session: Any) -> Pipeline | None:
    """The pipeline of ``dag_id`` (its latest serialized version); None when Airflow has no such
    DAG or it is no aq pipeline."""
    from airflow.models.serialized_dag import SerializedDagModel

    latest = SerializedDagModel.latest_item_select_object(dag_id)
    row = session.scalar(latest)
    if row is None:
        return None
    with _lock:
        cached = _cache.get(dag_id)
    if cached is not None and cached.dag_hash == row.dag_hash:
        return cached
    found = from_serialized(dag_id, row.data, row.dag_hash)
    if found is not None:
        with _lock:
            if len(_cache) >= _CACHE_SIZE:
                _cache.clear()
            _cache[dag_id] = found
    return found


def aq_dag_ids(session: Any, among: set[str] | None = None) -> list[str]:
    """The dag ids of the aq pipelines Airflow knows (not stale), sorted; only those in
    ``among`` when given (the user's readable DAGs)."""
    from airflow.models.dag import DagModel, DagTag

    query = (
        select(DagModel.dag_id)
        .join(DagTag, DagTag.dag_id == DagModel.dag_id)
        .where(DagTag.name == AQ_TAG, DagModel.is_stale.is_(False))
    )
    ids = sorted(set(session.scalars(query)))
    return ids if among is None else [dag_id for dag_id in ids if dag_id in among]


def run_date(dag_id: str, run_id: str, session: Any) -> datetime.datetime | None:
    """The date a run's results are keyed by (naive UTC): its logical date, or when it has none
    (an asset-triggered run) its run_after; None when Airflow has no such run."""
    from airflow.models.dagrun import DagRun

    found = session.execute(
        select(DagRun.logical_date, DagRun.run_after).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    ).first()
    if found is None:
        return None
    moment = found[0] or found[1]
    if moment is not None and moment.tzinfo is not None:  # naive UTC, as the results tables hold dates
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment


def clear_cache() -> None:
    with _lock:
        _cache.clear()
