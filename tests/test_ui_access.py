"""Who may read the quality pages, in the real Airflow API app (tests/quality_ui_app.py): the
plugin as Airflow loads it, every route behind the core API's own security dependencies
(anonymous 401, a forged or expired token refused, a DAG the auth manager denies 403 and absent
from the overview), the session cookie the Airflow UI sends, and the Quality extra link."""

from __future__ import annotations

import datetime
import subprocess
import sys

import pytest

from tests import quality_ui_app
from tests.quality_ui_app import ANALYST, DATES, OUTSIDER, overview, run_id

quality_app = quality_ui_app.quality_app  # the fixture

TASK = f"/aq-quality/dags/ui_pipe/runs/{run_id(DATES[4])}/tasks/orders.checks?map_index=-1"
ROUTES = [
    "/aq-quality/",
    "/aq-quality/dags/ui_pipe",
    TASK,
    "/aq-quality/api/overview",
    "/aq-quality/api/dags/ui_pipe/checks",
    "/aq-quality/api/dags/ui_pipe/metrics",
    f"/aq-quality/api/dags/ui_pipe/runs/{run_id(DATES[4])}/tasks/orders.checks",
    "/aq-quality/dags/no_such_dag",
]


def test_airflow_loads_the_plugin_from_the_installed_entry_point(quality_app):
    """The plugin and its views as Airflow's plugin manager and REST API list them."""
    from airflow import plugins_manager

    (plugin,) = [p for p in plugins_manager._get_plugins()[0] if p.name == "aq_quality"]
    assert str(plugin.source).startswith("aq-airflow==")  # the package's airflow.plugins entry point
    apps, _ = plugins_manager.get_fastapi_plugins()
    assert [a["url_prefix"] for a in apps if a["name"] == "aq-airflow quality"] == ["/aq-quality"]
    views = {v["url_route"]: v for v in plugins_manager._get_ui_plugins()[0] if v["url_route"].startswith("aq-")}
    assert views == {
        "aq-quality": {"name": "Data quality", "href": "/aq-quality/", "destination": "nav", "url_route": "aq-quality"},
        "aq-quality-dag": {"name": "Quality", "href": "/aq-quality/dags/{DAG_ID}", "destination": "dag",
                           "url_route": "aq-quality-dag"},
        "aq-quality-ti": {"name": "Quality", "destination": "task_instance", "url_route": "aq-quality-ti",
                          "href": "/aq-quality/dags/{DAG_ID}/runs/{RUN_ID}/tasks/{TASK_ID}?map_index={MAP_INDEX}"},
    }  # fmt: skip
    with quality_app.client(ANALYST) as client:
        listed = client.get("/api/v2/plugins").json()["plugins"]
    (ours,) = [p for p in listed if p["name"] == "aq_quality"]
    assert ours["fastapi_apps"][0]["url_prefix"] == "/aq-quality" and len(ours["external_views"]) == 3
    assert "aq-airflow" in ours["source"]


def test_importing_the_plugin_loads_no_app_and_opens_no_connection():
    """Every Airflow component imports plugins (a worker at each task start): the module imports
    no FastAPI app, no operator, and opens no socket; the app is built when Airflow reads
    ``fastapi_apps``."""
    probe = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise AssertionError('a connection at import')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse\n"
        "import aq_airflow.ui.plugin as plugin\n"
        "loaded = [m for m in ('fastapi', 'aq_airflow.ui.app', 'aq_airflow.operators.quality', 'duckdb', 'psycopg2',"
        " 'snowflake.connector') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert plugin.AqQualityPlugin.name == 'aq_quality'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_requests_are_refused(quality_app, route):
    with quality_app.client() as client:
        answer = client.get(route)
    assert answer.status_code == 401, (route, answer.text[:300])
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert "ui_pipe" not in answer.text.replace(route, "")  # no data, not even a name


def test_a_forged_an_expired_or_a_garbage_token_is_refused(quality_app):
    import jwt

    real = jwt.decode(quality_app.tokens[ANALYST], options={"verify_signature": False})
    forged = jwt.encode(real, "not-the-server-key-0123456789abcdef", algorithm="HS512")
    expired = jwt.encode({**real, "exp": int(datetime.datetime(2020, 1, 1).timestamp())},
                         "quality-ui-test-secret-0123456789abcdef", algorithm="HS512")  # fmt: skip
    for token, statuses in ((forged, {401, 403}), (expired, {401}), ("garbage", {401, 403})):
        for route in ("/aq-quality/dags/ui_pipe", "/aq-quality/api/dags/ui_pipe/checks", "/aq-quality/"):
            with quality_app.client(token=token) as client:
                answer = client.get(route)
            assert answer.status_code in statuses, (route, answer.status_code, answer.text[:200])
            assert "orders" not in answer.text


def test_a_user_denied_a_dag_gets_403_on_its_pages_and_does_not_see_it(quality_app):
    denied = [
        "/aq-quality/dags/ui_denied",
        "/aq-quality/api/dags/ui_denied/checks",
        "/aq-quality/api/dags/ui_denied/metrics",
        f"/aq-quality/dags/ui_denied/runs/{run_id(DATES[0])}/tasks/orders.checks",
        f"/aq-quality/api/dags/ui_denied/runs/{run_id(DATES[0])}/tasks/orders.checks",
    ]
    with quality_app.client(OUTSIDER) as outsider:
        for route in denied:
            answer = outsider.get(route)
            assert answer.status_code == 403, (route, answer.text[:200])
            assert "secret" not in answer.text  # the denied pipeline's row message
        assert "You may not read this pipeline" in outsider.get(denied[0]).text
        rows, pages = overview(outsider)
        assert "ui_pipe" in rows and "ui_denied" not in rows and "ui_denied" not in pages
        assert outsider.get("/aq-quality/dags/ui_pipe").status_code == 200  # the others stay readable
    with quality_app.client(ANALYST) as analyst:
        assert analyst.get(denied[0]).status_code == 200
        rows, _ = overview(analyst)
        assert rows["ui_denied"]["summary"]["passed"] == 1


def test_the_airflow_uis_session_cookie_is_a_login(quality_app):
    """In the Airflow UI the pages load in an iframe: the request carries the `_token` cookie,
    no Authorization header."""
    with quality_app.client(ANALYST, cookie=True) as client:
        assert client.get("/aq-quality/dags/ui_pipe").status_code == 200
        assert client.get(TASK).status_code == 200
    with quality_app.client(OUTSIDER, cookie=True) as client:
        assert client.get("/aq-quality/dags/ui_denied").status_code == 403


def test_an_allowed_user_reads_the_data(quality_app):
    with quality_app.client(ANALYST) as client:
        checks = client.get("/aq-quality/api/dags/ui_pipe/checks", params={"step": "orders", "limit": 500}).json()
        task = client.get(f"/aq-quality/api/dags/ui_pipe/runs/{run_id(DATES[4])}/tasks/orders.checks").json()
    assert checks["recorded"] and checks["total"] == 20  # 2 checks x 10 dates
    assert {(c["name"], c["outcome"]) for c in checks["items"] if c["logical_date"].startswith("2026-03-05")} == {
        ("ids", "failed"), ("<script>alert(1)</script>", "failed")}  # fmt: skip
    failed = next(c for c in task["checks"] if c["name"] == "ids")
    assert failed["sample"]["columns"] == ["id", "amount"] and failed["sample"]["hidden_columns"] == ["email"]


def test_the_quality_extra_link_of_checks_and_metrics_tasks(quality_app):
    """The serialized checks and metrics tasks carry the link; the api-server computes it from the
    task instance's key (the plugin's registration), earlier task instances included."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.utils.session import create_session

    from aq_airflow.operators.links import QualityLink, task_instance_path

    with create_session() as session:
        dag = SerializedDagModel.get_dag("ui_pipe", session=session)
    checks, metrics, other = dag.get_task("orders.checks"), dag.get_task("orders.metrics"), dag.get_task("totals.run")
    assert checks.extra_links == ["Quality"] and metrics.extra_links == ["Quality"] and other.extra_links == []

    class Instance:
        key = TaskInstanceKey("ui_pipe", "orders.checks", run_id(DATES[4]), 1, -1)

    link = checks.get_extra_links(Instance(), "Quality")
    run = "scheduled__2026-03-05T00%3A00%3A00%2B00%3A00"
    assert link == f"/aq-quality/dags/ui_pipe/runs/{run}/tasks/orders.checks?map_index=-1"
    with quality_app.client(ANALYST) as client:
        assert client.get(link).status_code == 200  # the link leads to the page
    assert task_instance_path("a b", "r/1", "t", 3).endswith("/dags/a%20b/runs/r%2F1/tasks/t?map_index=3")
    assert QualityLink().xcom_key == "_link_QualityLink"  # what a finished task's worker stores
