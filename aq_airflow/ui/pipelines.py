"""What Airflow's metadata DB says about an aq pipeline: the api-server parses no DAG files, so
the quality pages learn everything from the serialized DAG and the DAG runs.

- which DAGs are aq pipelines: the tag ``aq`` every compiled pipeline carries, and tasks that
  record results in its serialized form;
- what each such task is, where its results are and which columns its step marks ``sensitive``:
  the facts its operator carries (``plan.model.FACT_FIELDS``: ``aq_step``, ``aq_role``,
  ``sensitive_columns``, ``results_conn_id``, ``results_schema``), a template field of an
  unmapped task, a ``partial()`` argument of a mapped one (``operators.facts``). Nothing is read
  from task ids, the DAG's docs or the spec. The engine never writes sensitive columns into a
  sample; the pages drop them again if a row holds them (rows written before a column was marked).

A pipeline's facts are cached per process by the serialized DAG's hash, so a page costs one
metadata query for them.
"""

from __future__ import annotations

import datetime
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from aq_airflow.plan.model import FACT_FIELDS, TaskRole

log = logging.getLogger(__name__)

AQ_TAG = "aq"
ROLES = (TaskRole.CHECKS, TaskRole.METRICS, TaskRole.WHEN)  # the roles of tasks that record results
_CACHE_SIZE = 2048


@dataclass(frozen=True)
class RecordingTask:
    """A task that records results, as its facts say: its step and role (checks, metrics, when)."""

    step: str
    role: str


@dataclass(frozen=True)
class Pipeline:
    """An aq pipeline as its serialized DAG describes it."""

    dag_id: str
    conn_id: str | None
    schema: str | None
    description: str | None = None
    steps: tuple[str, ...] = ()  # steps with checks or metrics tasks, in the DAG's order
    tasks: dict[str, RecordingTask] = field(default_factory=dict)  # task id -> what it records
    task_ids: frozenset[str] = frozenset()
    sensitive: dict[str, tuple[str, ...]] = field(default_factory=dict)  # step -> columns (lower case)
    # steps whose sensitive columns the serialized DAG does not list readably (Airflow truncates a
    # long template field to text): their failing-row samples are not shown at all
    withheld: frozenset[str] = frozenset()
    dag_hash: str | None = None
    artifacts: str | None = None  # the store the spec names for step outputs (None: $AQ_ARTIFACTS here)

    def task_of(self, step: str, role: str) -> str | None:
        """The id of the task that records ``role`` (checks, metrics, when) of ``step``, as the
        tasks' facts say; None when the DAG has none (a step renamed or removed since)."""
        return next((task_id for task_id, task in self.tasks.items() if task.step == step and task.role == role), None)


_cache: dict[str, Pipeline] = {}
_lock = threading.Lock()


def _operator(task: Any) -> dict[str, Any]:
    return task.get("__var", task) if isinstance(task, dict) else {}


def facts_of(task: dict[str, Any]) -> dict[str, Any]:
    """The facts a serialized task carries (``FACT_FIELDS``): its attributes, or for a mapped
    task its ``partial()`` arguments; a field that is absent is left out."""
    partial = task.get("partial_kwargs")
    if not isinstance(partial, dict):
        partial = {}
    return {
        name: task[name] if name in task else partial[name] for name in FACT_FIELDS if name in task or name in partial
    }


def _text(value: Any) -> str | None:
    """A serialized field that should be a name: kept only when it is one (a hand-written DAG
    may hold anything there, and one odd pipeline must not break the overview of all)."""
    return value if isinstance(value, str) and value else None


def _columns(value: Any) -> tuple[str, ...] | None:
    """Serialized sensitive columns (lower case); None when they are not a list of names."""
    if value is None:
        return ()
    if isinstance(value, dict) and value.get("__type") == "tuple":  # a tuple, as Airflow encodes one
        value = value.get("__var")
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        return None
    return tuple(c.lower() for c in value)


def from_serialized(dag_id: str, data: dict[str, Any], dag_hash: str | None = None) -> Pipeline | None:
    """The pipeline a serialized DAG (``SerializedDagModel.data``) describes; None when the DAG
    is no aq pipeline (no task that records results, no ``aq`` tag)."""
    dag = data.get("dag", data) if isinstance(data, dict) else {}
    tasks = [_operator(task) for task in dag.get("tasks", [])]
    recording: dict[str, RecordingTask] = {}
    steps: list[str] = []
    sensitive: dict[str, tuple[str, ...]] = {}
    withheld: set[str] = set()
    conn_id = schema = artifacts = None
    for task in tasks:
        facts = facts_of(task)
        step, role = _text(facts.get("aq_step")), _text(facts.get("aq_role"))
        if step is None or role not in ROLES:
            continue
        recording[str(task.get("task_id"))] = RecordingTask(step, role)
        if role != TaskRole.WHEN and step not in steps:
            steps.append(step)
        columns = _columns(facts.get("sensitive_columns"))
        if columns is None:
            log.warning("quality pages: `%s` task %s lists no readable sensitive columns; its step's failing rows "
                        "are not shown", dag_id, task.get("task_id"))  # fmt: skip
            withheld.add(step)
        elif columns:
            sensitive[step] = tuple(dict.fromkeys((*sensitive.get(step, ()), *columns)))
        artifacts = artifacts or _text(facts.get("artifacts_root"))
        if conn_id is None and _text(facts.get("results_conn_id")):
            conn_id, schema = _text(facts.get("results_conn_id")), _text(facts.get("results_schema"))
    tags = dag.get("tags") or []
    if not recording and AQ_TAG not in tags:
        return None
    return Pipeline(
        dag_id=dag_id,
        conn_id=conn_id,
        schema=schema,
        description=dag.get("description"),
        steps=tuple(steps),
        tasks=recording,
        task_ids=frozenset(str(t.get("task_id")) for t in tasks),
        sensitive=sensitive,
        withheld=frozenset(withheld),
        dag_hash=dag_hash,
        artifacts=artifacts,
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
