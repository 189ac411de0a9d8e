"""The "Quality" extra link of the checks and metrics tasks: the task instance's page of the
quality UI (``aq_airflow.ui``), where its results and failing-row samples are.

The link is computed from the task instance's key alone (no database, no network): by the worker
when the task finishes (Airflow keeps it as the task's XCom ``_link_QualityLink``), and by the
api-server for any task instance, earlier ones included, through the plugin's registration.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

#: where the plugin mounts its FastAPI app (``aq_airflow.ui.plugin``)
URL_PREFIX = "/aq-quality"


def _base_path() -> str:
    """The path of ``[api] base_url`` (Airflow behind a prefix, e.g. ``/airflow``), or ``""``."""
    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # a worker without Airflow's configuration: links are relative to the host
        return ""
    return urlsplit(base).path.rstrip("/")


def task_instance_path(dag_id: str, run_id: str, task_id: str, map_index: int | None = -1) -> str:
    """The quality page of one task instance, as a path on the api-server."""
    parts = "/".join(quote(str(part), safe="") for part in ("dags", dag_id, "runs", run_id, "tasks", task_id))
    index = -1 if map_index is None else int(map_index)
    return f"{_base_path()}{URL_PREFIX}/{parts}?map_index={index}"


class QualityLink(BaseOperatorLink):
    """The "Quality" link: the task instance's checks and metrics, with failing rows, in the quality UI."""

    name = "Quality"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return task_instance_path(ti_key.dag_id, ti_key.run_id, ti_key.task_id, getattr(ti_key, "map_index", -1))
