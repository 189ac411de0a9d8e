"""The ``aq_quality`` Airflow plugin: the quality pages inside the Airflow UI.

Airflow imports plugins in every component (scheduler, workers at each task start, the
dag-processor, the api-server), so this module imports only Airflow's plugin base class: the
FastAPI app (FastAPI, Airflow's API security, Jinja) and the operators named by the extra link
are imported the first time Airflow reads ``fastapi_apps`` or ``operator_extra_links``, which only
the api-server (and ``airflow plugins``) do. Nothing here touches the network or a database.

Registered through the package's ``airflow.plugins`` entry point (setup.cfg). Not through the
provider info's ``plugins``: Airflow loads those only under ``[core] lazy_discover_providers =
False`` (its default is True), and both at once would load it twice.

URL contract (the UI substitutes ``{DAG_ID}``, ``{RUN_ID}``, ``{TASK_ID}`` and ``{MAP_INDEX}`` in
the hrefs of ``dag`` and ``task_instance`` views; a task instance that is not mapped leaves
``{MAP_INDEX}`` as it is, which the page reads as "not mapped"):

- ``/aq-quality/``: every pipeline the user may read (nav: "Data quality")
- ``/aq-quality/dags/{dag_id}``: one pipeline (the DAG's "Quality" tab)
- ``/aq-quality/dags/{dag_id}/runs/{run_id}/tasks/{task_id}?map_index=N``: one task instance
  (its "Quality" tab, and the "Quality" extra link of checks and metrics tasks)
- ``/aq-quality/api/overview``, ``/aq-quality/api/dags/{dag_id}/checks``,
  ``/aq-quality/api/dags/{dag_id}/metrics``: the same data as JSON
"""

from __future__ import annotations

import functools
from typing import Any

try:  # the Task SDK's (what a worker loads plugins with; Airflow's core accepts it by name)
    from airflow.sdk.plugins_manager import AirflowPlugin
except ImportError:  # pragma: no cover - an Airflow without it
    from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/aq-quality"

EXTERNAL_VIEWS = [
    {"name": "Data quality", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "aq-quality"},
    {"name": "Quality", "href": f"{URL_PREFIX}/dags/{{DAG_ID}}", "destination": "dag", "url_route": "aq-quality-dag"},
    {
        "name": "Quality",
        "href": f"{URL_PREFIX}/dags/{{DAG_ID}}/runs/{{RUN_ID}}/tasks/{{TASK_ID}}?map_index={{MAP_INDEX}}",
        "destination": "task_instance",
        "url_route": "aq-quality-ti",
    },
]


class _FastAPIApps:
    """``fastapi_apps``, built on first read (the api-server's), not when the plugin is imported."""

    def __get__(self, instance: Any, owner: Any) -> list[dict[str, Any]]:
        from aq_airflow.ui.app import app

        return [{"app": app, "url_prefix": URL_PREFIX, "name": "aq-airflow quality"}]


class _ExtraLinks:
    """``operator_extra_links``: the Quality link for the checks and metrics operators, so the
    api-server computes it for any of their task instances (earlier ones too: a finished task's
    XCom holds it only from this version on)."""

    def __get__(self, instance: Any, owner: Any) -> list[Any]:
        return [_quality_link()]


@functools.cache
def _quality_link() -> Any:
    from aq_airflow.operators.links import QualityLink
    from aq_airflow.operators.quality import AqCheckOperator, AqMetricOperator

    class PluginQualityLink(QualityLink):
        operators = [AqCheckOperator, AqMetricOperator]

    return PluginQualityLink()


class AqQualityPlugin(AirflowPlugin):
    """Checks and metrics inside the Airflow UI: a "Data quality" page, a "Quality" tab on each
    DAG and task instance, and a "Quality" extra link on checks and metrics tasks."""

    name = "aq_quality"
    fastapi_apps = _FastAPIApps()  # type: ignore[assignment]
    external_views = EXTERNAL_VIEWS
    operator_extra_links = _ExtraLinks()  # type: ignore[assignment]
