"""The Plan: a pipeline as plain data (tasks, edges, operator arguments).

Both backends read only this: ``build`` turns it into live DAG objects at parse time and
``codegen`` renders it as Python source. Values that are not JSON-like are wrapped in the small
marker types below, which each backend materializes in its own way.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Seconds:
    """A duration; a ``timedelta`` in the DAG."""

    value: int


@dataclass(frozen=True)
class AssetRef:
    """An Airflow Asset named after a warehouse table (publish outlets, ``schedule: {after}``)."""

    name: str

    @property
    def uri(self) -> str:
        return f"aq://warehouse/{self.name}"


@dataclass(frozen=True)
class CallbackRef:
    """A ``module:callable`` the DAG calls on failure; imported when called, never at parse time."""

    path: str


@dataclass(frozen=True)
class TaskPlan:
    """One Airflow task. ``operator`` names a class in ``aq_airflow.operators``."""

    task_id: str
    group: str | None
    operator: str
    kwargs: dict[str, Any]
    upstream: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupPlan:
    group_id: str
    tooltip: str


@dataclass(frozen=True)
class DagPlan:
    """Everything needed to build one DAG, and nothing that needs Airflow to describe it."""

    dag_id: str
    source: str
    spec_sha256: str
    description: str | None
    doc_md: str | None
    schedule: str | None
    schedule_assets: tuple[AssetRef, ...]
    start_date: datetime.datetime | None
    end_date: datetime.datetime | None
    catchup: bool
    tags: tuple[str, ...]
    params: dict[str, Any]
    max_active_runs: int | None
    dagrun_timeout: Seconds | None
    default_args: dict[str, Any]
    on_failure: CallbackRef | None
    groups: tuple[GroupPlan, ...] = ()
    tasks: tuple[TaskPlan, ...] = field(default=())
    artifacts: str | None = None  # the store root the spec names (None: the worker's local folder)
    artifacts_ttl: Seconds | None = None  # how long run outputs are kept (`aq-airflow gc`)

    def dag_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``DAG(...)``, in a fixed order, leaving out what is unset so the
        DAG gets Airflow's own defaults there."""
        arguments: dict[str, Any] = {
            "dag_id": self.dag_id,
            "description": self.description,
            "schedule": list(self.schedule_assets) if self.schedule_assets else self.schedule,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "catchup": self.catchup,
            "tags": list(self.tags),
            "params": self.params,
            "max_active_runs": self.max_active_runs,
            "dagrun_timeout": self.dagrun_timeout,
            "default_args": self.default_args,
            "on_failure_callback": self.on_failure,
            "doc_md": self.doc_md,
        }
        keep = {"dag_id", "schedule", "catchup"}
        return {k: v for k, v in arguments.items() if k in keep or v not in (None, {}, [])}
