"""The quality UI over HTTP against the real api-server: who may read what, and what they read.

Anonymous requests get 401, a forged token is refused, a user denied a DAG gets 403 on its pages
and JSON and does not see it in the overview, an allowed user gets the runs' real results.
"""

from __future__ import annotations

import pytest

from tests.ui.conftest import ANALYST, OUTSIDER


def test_the_api_server_loads_our_plugin(quality_stack):
    """The plugin comes from the installed package (the provider's ``plugins``), with its
    FastAPI app at /aq-quality and the three external views of the contract."""
    with quality_stack.client(ANALYST) as client:
        plugins = client.get("/api/v2/plugins").json()["plugins"]
    ours = [p for p in plugins if any(app.get("url_prefix") == "/aq-quality" for app in p["fastapi_apps"])]
    assert len(ours) == 1, [p["name"] for p in plugins]
    views = {view["url_route"]: view for view in ours[0]["external_views"]}
    assert views["aq-quality"]["destination"] == "nav" and views["aq-quality"]["name"] == "Data quality"
    assert views["aq-quality-dag"]["destination"] == "dag" and views["aq-quality-dag"]["name"] == "Quality"
    assert views["aq-quality-ti"]["destination"] == "task_instance"
    assert "aq-airflow" in ours[0]["source"]


def test_the_pipelines_ran_for_their_dates(quality_stack, run_ids):
    """The history is real runs in the metadata DB: the dates failed by an error-severity check
    are failed runs, the others succeeded (warnings do not fail a run)."""
    with quality_stack.client(ANALYST) as client:
        runs = client.get("/api/v2/dags/ui_orders/dagRuns", params={"limit": 100}).json()["dag_runs"]
    states = {run["logical_date"][:10]: run["state"] for run in runs}
    assert states == {date: "failed" if date in ("2026-03-04", "2026-03-06") else "success" for date in states}
    assert sorted(states) == [f"2026-03-0{d}" for d in range(1, 9)]


def test_the_auth_manager_denies_one_dag_to_one_user(quality_stack):
    """tests/ui/auth_manager.py in the real server: Airflow's own API already hides ui_orders
    from the outsider, and anonymous requests are refused."""
    with quality_stack.client() as anonymous:
        assert anonymous.get("/api/v2/dags").status_code == 401
    with quality_stack.client(OUTSIDER) as outsider:
        assert [d["dag_id"] for d in outsider.get("/api/v2/dags").json()["dags"]] == ["ui_refunds"]
        assert outsider.get("/api/v2/dags/ui_orders").status_code == 403
        assert outsider.get("/api/v2/dags/ui_refunds").status_code == 200
    with quality_stack.client(ANALYST) as analyst:
        assert sorted(d["dag_id"] for d in analyst.get("/api/v2/dags").json()["dags"]) == ["ui_orders", "ui_refunds"]


@pytest.fixture(scope="module")
def bad_token(quality_stack) -> str:
    """A well-formed JWT for the analyst, signed with the wrong key."""
    import jwt

    real = jwt.decode(quality_stack.token(ANALYST), options={"verify_signature": False})
    return jwt.encode(real, "not-the-server-key", algorithm="HS512")
