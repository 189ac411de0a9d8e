"""The quality UI over HTTP against the real api-server: who may read what, and what they read.

Anonymous requests get 401, a forged token is refused, a user denied a DAG gets 403 on its pages
and JSON and does not see it in the overview, an allowed user gets the runs' real results.
"""

from __future__ import annotations

import pytest

from tests.ui import seed
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


def test_the_runs_show_their_real_start_and_duration(quality_stack):
    """aq_airflow.devstack.history runs each date in turn (``aq_airflow.devstack.dagrun.dag_test``): a run
    starts after it was asked for (``run_after``, the wall clock when dag.test() was called), not at
    its logical date (Airflow's dag.test() alone records that: runs lasting months in the UI), so
    the runs, one after another, do not overlap, and each holds its task instances' times."""
    from datetime import datetime

    def when(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    with quality_stack.client(ANALYST) as client:
        runs = client.get("/api/v2/dags/ui_orders/dagRuns", params={"limit": 100}).json()["dag_runs"]
        tis = {
            run["dag_run_id"]: client.get(f"/api/v2/dags/ui_orders/dagRuns/{run['dag_run_id']}/taskInstances",
                                          params={"limit": 100}).json()["task_instances"]
            for run in runs
        }  # fmt: skip
    runs.sort(key=lambda run: run["logical_date"])
    assert len(runs) == len(seed.DATES)
    previous_end = None
    for run in runs:
        start, end = when(run["start_date"]), when(run["end_date"])
        assert when(run["run_after"]) <= start <= end, run
        assert run["duration"] == pytest.approx((end - start).total_seconds(), abs=0.01), run
        assert previous_end is None or previous_end <= start, run  # one run after another
        previous_end = end
        ran = [ti for ti in tis[run["dag_run_id"]] if ti["start_date"]]
        assert ran, run
        assert start <= min(when(ti["start_date"]) for ti in ran), run
        assert max(when(ti["end_date"]) for ti in ran) <= end, run


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
    return jwt.encode(real, "not-the-server-key-" * 4, algorithm="HS512")  # 64+ bytes, as HS512 wants


# --- the plugin's routes: who may read them --------------------------------------------------------


def orders_paths(run_ids) -> list[str]:
    run = run_ids[("ui_orders", "2026-03-04")]
    return [
        "/aq-quality/dags/ui_orders",
        "/aq-quality/dags/ui_orders?step=orders&start=2026-03-02&end=2026-03-05",
        "/aq-quality/api/dags/ui_orders/checks",
        "/aq-quality/api/dags/ui_orders/metrics",
        f"/aq-quality/dags/ui_orders/runs/{run}/tasks/orders.checks?map_index=-1",
        f"/aq-quality/api/dags/ui_orders/runs/{run}/tasks/orders.checks?map_index=-1",
    ]


OVERVIEW_PATHS = ["/aq-quality/", "/aq-quality/api/overview"]


def test_anonymous_requests_get_401_everywhere(quality_stack, run_ids):
    with quality_stack.client() as anonymous:
        for path in [*OVERVIEW_PATHS, *orders_paths(run_ids)]:
            response = anonymous.get(path)
            assert response.status_code == 401, (path, response.status_code, response.text[:300])
            assert "mean_amount" not in response.text and "amount_in_range" not in response.text


def test_a_forged_token_is_refused(quality_stack, run_ids, bad_token):
    with quality_stack.client(token=bad_token) as forged:
        for path in [*OVERVIEW_PATHS, *orders_paths(run_ids)]:
            response = forged.get(path)
            assert response.status_code in (401, 403), (path, response.status_code, response.text[:300])
            assert "mean_amount" not in response.text


def test_a_user_denied_the_dag_gets_403_and_does_not_see_it(quality_stack, run_ids):
    with quality_stack.client(OUTSIDER) as outsider:
        for path in orders_paths(run_ids):
            response = outsider.get(path)
            assert response.status_code == 403, (path, response.status_code, response.text[:300])
            assert "mean_amount" not in response.text and "amount_in_range" not in response.text
        overview = outsider.get("/aq-quality/api/overview").json()
        assert [item["dag_id"] for item in overview["items"]] == ["ui_refunds"]
        assert overview["total"] == 1
        page = outsider.get("/aq-quality/")
        assert page.status_code == 200 and "ui_refunds" in page.text and "ui_orders" not in page.text
        # the pipeline they may read, they read
        assert outsider.get("/aq-quality/dags/ui_refunds").status_code == 200
        metrics = outsider.get("/aq-quality/api/dags/ui_refunds/metrics").json()["items"]
    totals = {}
    for _, day, amount in seed.refund_rows():
        totals[day] = totals.get(day, 0) + amount
    assert [(m["name"], [p["value"] for p in m["points"]]) for m in metrics] == [
        ("refund_total", list(totals.values()))
    ]


def test_the_session_cookie_of_airflows_ui_is_enough(quality_stack):
    """The pages are opened inside Airflow's UI (an iframe), which sends no Authorization header:
    the ``_token`` cookie the login page set is what authenticates them."""
    import httpx

    cookies = {"_token": quality_stack.token(ANALYST)}
    with httpx.Client(base_url=quality_stack.url, cookies=cookies) as browser_like:
        assert browser_like.get("/aq-quality/dags/ui_orders").status_code == 200
        assert browser_like.get("/aq-quality/api/overview").status_code == 200


# --- what an allowed user reads: the runs' own results -----------------------------------------------


def _by_date(rows, key="logical_date") -> dict[str, dict]:
    return {row[key][:10]: row for row in rows}


def expected_means() -> dict[str, float]:
    """mean(amount) of each day's orders, from the seeded rows (not from the results tables)."""
    from statistics import mean

    days: dict[str, list[float]] = {}
    for _, day, _, _, amount, _ in seed.order_rows():
        days.setdefault(day.isoformat(), []).append(amount)
    return {day: mean(amounts) for day, amounts in days.items()}


def test_the_overview_counts_the_latest_date(quality_stack):
    with quality_stack.client(ANALYST) as analyst:
        overview = analyst.get("/aq-quality/api/overview").json()
    items = {item["dag_id"]: item for item in overview["items"]}
    assert sorted(items) == ["ui_orders", "ui_refunds"]
    orders = items["ui_orders"]["summary"]
    # 2026-03-08: five checks passed, mean_amount passed, order_count out of its learned band (a warning)
    assert orders["logical_date"].startswith("2026-03-08")
    assert (orders["passed"], orders["failed_warning"], orders["failed_error"], orders["error"]) == (6, 1, 0, 0)
    assert items["ui_refunds"]["summary"]["passed"] == 2


def test_check_verdicts_are_the_runs_verdicts(quality_stack):
    with quality_stack.client(ANALYST) as analyst:
        body = analyst.get("/aq-quality/api/dags/ui_orders/checks", params={"limit": 500}).json()
    rows = body["items"]
    assert len(rows) == 5 * 8 and not body["has_more"]
    verdicts = {(r["name"], r["logical_date"][:10]): (r["verdict"], r["failing_rows"]) for r in rows}
    failing = {key: value for key, value in verdicts.items() if value[0] != "passed"}
    assert failing == {
        ("amount_in_range", "2026-03-04"): ("failed", 1),
        ("ids_not_null", "2026-03-06"): ("failed", 2),
        ("known_status", "2026-03-02"): ("warning", 1),
        ("known_status", "2026-03-06"): ("warning", 1),
        ("plain_customers", "2026-03-04"): ("warning", 1),
        ("plain_customers", "2026-03-06"): ("warning", 1),
    }
    names = {"ids_not_null", "amount_in_range", "known_status", "enough_orders", "plain_customers"}
    assert {name for name, _ in verdicts} == names
    # newest first, and each row names the run that wrote it
    assert [r["logical_date"][:10] for r in rows] == sorted((r["logical_date"][:10] for r in rows), reverse=True)
    assert all(r["run_id"].startswith("manual__") for r in rows)


def test_filters_narrow_the_checks(quality_stack):
    with quality_stack.client(ANALYST) as analyst:
        rows = analyst.get(
            "/aq-quality/api/dags/ui_orders/checks", params={"start": "2026-03-04", "end": "2026-03-06", "limit": 500}
        ).json()["items"]
        assert sorted({r["logical_date"][:10] for r in rows}) == ["2026-03-04", "2026-03-05"]
        assert analyst.get("/aq-quality/api/dags/ui_orders/checks", params={"step": "nowhere"}).json()["items"] == []
        assert analyst.get("/aq-quality/api/dags/ui_orders/checks", params={"start": "yesterday"}).status_code == 400


def test_metric_values_bounds_and_learned_band(quality_stack):
    from statistics import mean, stdev

    with quality_stack.client(ANALYST) as analyst:
        series = {s["name"]: s for s in analyst.get("/aq-quality/api/dags/ui_orders/metrics").json()["items"]}
    assert sorted(series) == ["mean_amount", "order_count"]

    means = _by_date(series["mean_amount"]["points"])
    for day, value in expected_means().items():
        assert means[day]["value"] == pytest.approx(value)
        assert (means[day]["bounds"]["min"], means[day]["bounds"]["max"]) == (10, 200)
        assert means[day]["outcome"] == ("failed" if day == "2026-03-04" else "passed")
    assert means["2026-03-04"]["value"] > 200

    counts = _by_date(series["order_count"]["points"])
    assert [counts[day]["value"] for day in seed.DATES] == seed.COUNTS
    assert [day for day in seed.DATES if counts[day]["outcome"] != "passed"] == ["2026-03-08"]
    for index, day in enumerate(seed.DATES):
        band = counts[day]["bounds"]["band"]
        if index < 3:  # min_history: 3
            assert band is None, (day, band)
            continue
        earlier = seed.COUNTS[:index]  # every earlier date passed
        low, high = mean(earlier) - 3 * stdev(earlier), mean(earlier) + 3 * stdev(earlier)
        assert band == pytest.approx([low, high]), day
    assert counts["2026-03-08"]["value"] > counts["2026-03-08"]["bounds"]["band"][1]


def test_a_task_instance_shows_its_failing_rows_without_sensitive_columns(quality_stack, run_ids):
    run = run_ids[("ui_orders", "2026-03-04")]
    with quality_stack.client(ANALYST) as analyst:
        response = analyst.get(
            f"/aq-quality/api/dags/ui_orders/runs/{run}/tasks/orders.checks", params={"map_index": -1}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        page = analyst.get(f"/aq-quality/dags/ui_orders/runs/{run}/tasks/orders.checks", params={"map_index": -1})
    assert body["logical_date"].startswith("2026-03-04") and body["run_id"] == run
    checks = {c["name"]: c for c in body["checks"]}
    assert sorted(checks) == ["amount_in_range", "enough_orders", "ids_not_null", "known_status", "plain_customers"]
    failed = checks["amount_in_range"]
    assert (failed["verdict"], failed["failing_rows"], failed["total_rows"]) == ("failed", 1, 41)
    assert failed["sample"]["columns"] == ["amount"] and failed["sample"]["rows"] == [[seed.BIG_AMOUNT]]
    warned = checks["plain_customers"]
    assert (warned["verdict"], warned["failing_rows"]) == ("warning", 1)
    # the expression reads customer and email; email is sensitive, so the sample has customer only
    assert warned["sample"]["columns"] == ["customer"] and warned["sample"]["rows"] == [[seed.IMG_CUSTOMER]]
    assert checks["ids_not_null"]["sample"] is None and checks["ids_not_null"]["verdict"] == "passed"
    assert "@example.com" not in response.text and "@example.com" not in page.text
    # the page shows the same row, as text: the markup in the data is escaped, never markup
    assert page.status_code == 200 and "9999" in page.text
    assert seed.IMG_CUSTOMER not in page.text and "&lt;img src=x onerror=alert(" in page.text


def test_pages_are_html_that_runs_no_script(quality_stack, run_ids):
    """Every page of an allowed user: HTML with a CSP that allows no script, and the script in
    the data, the check's description and the pipeline's description only ever as text."""
    with quality_stack.client(ANALYST) as analyst:
        for path in [*OVERVIEW_PATHS[:1], *[p for p in orders_paths(run_ids) if "/api/" not in p]]:
            response = analyst.get(path)
            assert response.status_code == 200, (path, response.text[:300])
            assert response.headers["content-type"].startswith("text/html")
            policy = response.headers["content-security-policy"]
            assert "default-src 'none'" in policy and "script-src" not in policy
            text = response.text
            for raw in ("<script>alert", seed.IMG_CUSTOMER, seed.SCRIPT_CUSTOMER, "onerror=alert('img')>"):
                assert raw not in text, (path, raw)
            assert "<script" not in text.lower()
