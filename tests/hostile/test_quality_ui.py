"""The quality pages (the ``aq_quality`` plugin's FastAPI app) under attack and careless use, in
the real Airflow API app in this process (tests/quality_ui_app.py, shared with tests/test_ui_*).

Each test is named after the attack or the mistake and asserts what the server really answered:
the status, the security headers, and that no data of a DAG the caller may not read, no
credential and no internal detail is in the body. Tests that add state (a DAG run, result rows, a
connection's value) remove it again: the shared app's other tests count pipelines and rows.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import html.parser
import json
import time

import pytest

from tests import quality_ui_app
from tests.quality_ui_app import ANALYST, DATES, DOWN_PASSWORD, OUTSIDER, XSS_NAME, XSS_TEXT, overview, run_id

quality_app = quality_ui_app.quality_app  # the fixture (one instance a session)

SECRET = "quality-ui-test-secret-0123456789abcdef"  # the fixture's JWT key
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'"
RUN4 = run_id(DATES[4])
DENIED_ONLY_RUN = "manual__denied_only"  # a run of ui_denied only (no DAG the outsider reads has it)
DENIED_ROUTES = [
    "/aq-quality/dags/ui_denied",
    "/aq-quality/api/dags/ui_denied/checks",
    "/aq-quality/api/dags/ui_denied/metrics",
    f"/aq-quality/dags/ui_denied/runs/{DENIED_ONLY_RUN}/tasks/orders.checks",
    f"/aq-quality/api/dags/ui_denied/runs/{DENIED_ONLY_RUN}/tasks/orders.checks",
]
ROUTES = [
    "/aq-quality/",
    "/aq-quality/api/overview",
    "/aq-quality/dags/ui_pipe",
    "/aq-quality/api/dags/ui_pipe/checks",
    "/aq-quality/api/dags/ui_pipe/metrics",
    f"/aq-quality/dags/ui_pipe/runs/{RUN4}/tasks/orders.checks",
    f"/aq-quality/api/dags/ui_pipe/runs/{RUN4}/tasks/orders.checks",
    *DENIED_ROUTES,
]


def request(app, url: str, user: str | None = ANALYST, method: str = "GET", **kwargs):
    with app.client(user) as client:
        answer = client.request(method, url, follow_redirects=False, **kwargs)
    assert answer.headers.get("content-security-policy") == CSP, (url, answer.status_code)
    assert answer.headers.get("x-content-type-options") == "nosniff", (url, answer.status_code)
    assert "Traceback" not in answer.text and 'File "' not in answer.text, (url, answer.text[:300])
    return answer


def no_data_of_ui_denied(text: str) -> None:
    assert "secret" not in text  # the message of ui_denied's only row


@pytest.fixture
def denied_only_run(quality_app):
    """A DAG run of ui_denied whose run_id no other DAG has, removed after the test."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    moment = datetime.datetime(2026, 3, 1, 5, tzinfo=datetime.timezone.utc)
    with create_session() as session:
        session.add(DagRun(dag_id="ui_denied", run_id=DENIED_ONLY_RUN, logical_date=moment, run_after=moment,
                           run_type=DagRunType.MANUAL, state=DagRunState.SUCCESS,
                           data_interval=(moment, moment + datetime.timedelta(days=1))))  # fmt: skip
    try:
        yield DENIED_ONLY_RUN
    finally:
        with create_session() as session:
            session.query(DagRun).filter_by(dag_id="ui_denied", run_id=DENIED_ONLY_RUN).delete()


# --- auth ---------------------------------------------------------------------------------------


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _hs256(claims: dict, key: bytes) -> str:
    signed = _b64({"alg": "HS256", "typ": "JWT"}) + "." + _b64(claims)
    signature = base64.urlsafe_b64encode(hmac.new(key, signed.encode(), hashlib.sha256).digest()).rstrip(b"=")
    return f"{signed}.{signature.decode()}"


def hostile_tokens(real: str) -> dict[str, str]:
    import jwt

    claims = jwt.decode(real, options={"verify_signature": False})
    admin = {**claims, "sub": "admin", "role": "admin"}  # the outsider, promoted
    now = int(time.time())
    header, _, signature = real.split(".")
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(admin)}.",
        "alg None, signature kept": f"{_b64({'alg': 'None', 'typ': 'JWT'})}.{_b64(admin)}.{signature}",
        "payload swapped": f"{header}.{_b64(admin)}.{signature}",
        "HS256, empty key": _hs256(admin, b""),
        "HS256, the server's key": _hs256(admin, SECRET.encode()),  # an algorithm the server does not use
        "another key": jwt.encode(admin, "k" * 64, algorithm="HS512"),
        "expired": jwt.encode({**claims, "exp": now - 3600}, SECRET, algorithm="HS512"),
        "not yet valid": jwt.encode({**claims, "nbf": now + 3600}, SECRET, algorithm="HS512"),
        "another audience": jwt.encode({**claims, "aud": "not-airflow"}, SECRET, algorithm="HS512"),
        "garbage": "not.a.jwt",
    }


def test_forged_alg_none_expired_and_foreign_tokens_are_refused_on_every_route(quality_app, denied_only_run):
    tokens = hostile_tokens(quality_app.tokens[OUTSIDER])
    for name, token in tokens.items():
        for cookie in (False, True):
            for route in ROUTES:
                with quality_app.client(token=token, cookie=cookie) as client:
                    answer = client.get(route)
                assert answer.status_code in (401, 403), (name, cookie, route, answer.status_code)
                assert answer.headers["content-security-policy"] == CSP
                assert "orders" not in answer.text and "secret" not in answer.text, (name, route)


def test_anonymous_requests_get_no_data_on_any_route_or_method(quality_app, denied_only_run):
    for route in ROUTES:
        for method in ("GET", "HEAD", "POST", "OPTIONS", "DELETE"):
            answer = request(quality_app, route, user=None, method=method)
            assert answer.status_code in (401, 405), (method, route, answer.status_code)
            assert "orders" not in answer.text and "mean_amount" not in answer.text


def test_a_user_denied_a_dag_reads_none_of_it_however_the_request_is_spelled(quality_app, denied_only_run):
    for route in DENIED_ROUTES:
        answer = request(quality_app, route, OUTSIDER)
        assert answer.status_code == 403, (route, answer.status_code)
        no_data_of_ui_denied(answer.text)
        assert "not_null" not in answer.text and "orders" not in answer.text
    spelled = {
        "/aq-quality/dags/%75i_denied": 403,  # percent-encoded: the same DAG, the same answer
        "/aq-quality/api/dags/%75i_denied/checks": 403,
        "/aq-quality/dags/UI_DENIED": 404,  # DAG ids are case-sensitive: another (unknown) DAG
        "/aq-quality/dags/ui_denied%00": 404,
        "/aq-quality/dags/ui_denied%20": 404,
        "/aq-quality/dags/ui_denied~": 404,
        "/aq-quality/dags/ui_pipe/..%2fui_denied": 404,
        "/aq-quality/dags/ui_pipe/../ui_denied": 403,  # the client resolves the dot segment: ui_denied
        "/aq-quality/dags/ui_pipe%2f..%2fui_denied": 404,
        "/aq-quality//dags/ui_denied": 404,
        "/aq-quality/API/dags/ui_denied/checks": 404,
        # a run of the denied DAG through a DAG the user may read: runs are looked up per DAG
        f"/aq-quality/dags/ui_pipe/runs/{DENIED_ONLY_RUN}/tasks/orders.checks": 404,
        f"/aq-quality/api/dags/ui_pipe/runs/{DENIED_ONLY_RUN}/tasks/orders.checks": 404,
    }
    for route, status in spelled.items():
        answer = request(quality_app, route, OUTSIDER)
        assert answer.status_code == status, (route, answer.status_code)
        no_data_of_ui_denied(answer.text)
    for route in ("/aq-quality/dags/ui_denied/", "/aq-quality/api/dags/ui_denied/checks/"):
        answer = request(quality_app, route, OUTSIDER)  # a trailing slash: a redirect, no body
        assert answer.status_code == 307 and answer.text == ""
        assert answer.headers["location"].endswith(route.rstrip("/"))
    # the DAG id of the path decides, not one in the query
    page = request(quality_app, "/aq-quality/dags/ui_pipe?dag_id=ui_denied", OUTSIDER)
    assert page.status_code == 200 and "<h1>ui_pipe</h1>" in page.text
    no_data_of_ui_denied(page.text)
    data = request(quality_app, f"/aq-quality/api/dags/ui_pipe/runs/{run_id(DATES[0])}/tasks/orders.checks"
                                "?dag_id=ui_denied", OUTSIDER).json()  # fmt: skip
    assert data["dag_id"] == "ui_pipe" and "secret" not in json.dumps(data)
    with quality_app.client(OUTSIDER) as outsider:
        rows, pages = overview(outsider)
    assert "ui_pipe" in rows and "ui_denied" not in rows and "ui_denied" not in pages
    assert "ui_denied" not in request(quality_app, "/aq-quality/?dag_id=ui_denied", OUTSIDER).text


# --- injection ----------------------------------------------------------------------------------

INJECTIONS = [
    "' OR 1=1--",
    "orders'; DROP TABLE aq.aq_check_results; --",
    'orders" OR "1"="1',
    "orders\x00",
    "\u202eorders",
    "orders; SELECT pg_sleep(10)",
    "x" * 4000,
]


def test_request_values_reach_the_warehouse_as_data_never_as_sql(quality_app):
    def total() -> int:
        return request(quality_app, "/aq-quality/api/dags/ui_pipe/checks", params={"limit": 500}).json()["total"]

    before = total()
    for value in INJECTIONS:
        for url in ("/aq-quality/dags/ui_pipe", "/aq-quality/api/dags/ui_pipe/checks",
                    "/aq-quality/api/dags/ui_pipe/metrics"):  # fmt: skip
            answer = request(quality_app, url, params={"step": value})
            assert answer.status_code == 200, (url, value[:40], answer.status_code)
            assert "No checks or metrics recorded" in answer.text or answer.json()["items"] == []
        for name in ("start", "end"):
            answer = request(quality_app, "/aq-quality/api/dags/ui_pipe/checks", params={name: value})
            assert answer.status_code == 400 and "is not a date" in answer.text
        for url in (f"/aq-quality/api/dags/ui_pipe/runs/{value}/tasks/orders.checks",
                    f"/aq-quality/api/dags/ui_pipe/runs/{RUN4}/tasks/{value}",
                    f"/aq-quality/api/dags/{value}/checks"):  # fmt: skip
            answer = request(quality_app, url.replace("\x00", "%00"))
            assert answer.status_code == 404, (url[:80], answer.status_code)
        answer = request(quality_app, f"/aq-quality/api/dags/ui_pipe/runs/{RUN4}/tasks/orders.checks",
                         params={"map_index": value})  # fmt: skip
        assert answer.status_code == 200  # not a number: every item, as for the UI's `{MAP_INDEX}`
    assert total() == before  # nothing was dropped


def test_paging_and_date_parameters_are_bounded(quality_app):
    bad = {
        "/aq-quality/api/dags/ui_pipe/checks": [{"limit": 501}, {"limit": 0}, {"limit": -1}, {"limit": "1e9"},
                                                {"offset": -1}, {"start": "2026-02-30"}, {"end": "2026-13-01"},
                                                {"start": "+275760-09-13"}, {"start": "yesterday"}],
        "/aq-quality/api/dags/ui_pipe/metrics": [{"limit": 51}, {"limit": 10**9}],
        "/aq-quality/dags/ui_pipe": [{"page": 0}, {"page": -1}, {"page": 10_001}, {"page": 10**20}, {"page": "abc"}],
        "/aq-quality/": [{"page": 0}, {"page": 10_001}],
        "/aq-quality/api/overview": [{"page": "abc"}, {"page": 10**20}],
    }  # fmt: skip
    for url, cases in bad.items():
        for params in cases:
            answer = request(quality_app, url, params=params)
            assert answer.status_code == 400, (url, params, answer.status_code)
            assert "Bad request" in answer.text
    for params in ({"start": "9999-12-31"}, {"end": "0001-01-01"}, {"start": "2026-03-09", "end": "2026-03-01"}):
        answer = request(quality_app, "/aq-quality/api/dags/ui_pipe/checks", params=params)
        assert answer.status_code == 200 and answer.json()["items"] == []


# --- markup from the data -------------------------------------------------------------------------

BREAKOUTS = [
    XSS_NAME,
    XSS_TEXT,
    "</title></rect><script>alert(4)</script>",
    "]]><svg onload=alert(5)>",
    'x" onmouseover="alert(6)" y="',
    "javascript:alert(7)",
    "</style><script>alert(8)</script>",
    "'; background:url(//evil.example/9); x:'",
    "<a href='javascript:alert(10)'>x</a>",
]
SVG_TAGS = {"svg", "rect", "text", "line", "path", "circle", "polygon", "title", "a", "g"}


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def inert(svg: str, base: str = "/aq-quality/dags/ui_pipe/runs/") -> None:
    """Only our SVG elements, no event handler or style attribute, every link inside the app."""
    parser = _Tags()
    parser.feed(svg)
    for tag, attrs in parser.tags:
        assert tag in SVG_TAGS, tag
        for name, value in attrs:
            assert not name.startswith("on") and name not in ("style", "src", "xlink:href"), (tag, name)
            if name == "href":
                assert value.startswith(base) and ":" not in value and "'" not in value and '"' not in value, value


def test_names_messages_and_run_ids_from_the_data_stay_inert_in_the_svg():
    from aq_airflow.plan.model import TaskRole
    from aq_airflow.results.history import Bounds, CheckResult, CheckSeries, MetricPoint, MetricSeries
    from aq_airflow.ui import charts, pages
    from aq_airflow.ui.pipelines import Pipeline, RecordingTask

    day = datetime.datetime(2026, 1, 1)
    for text in BREAKOUTS:
        tasks = {
            f"{text}.checks": RecordingTask(text, TaskRole.CHECKS),
            f"{text}.metrics": RecordingTask(text, TaskRole.METRICS),
        }
        pipeline = Pipeline("ui_pipe", None, None, tasks=tasks)
        cells = [CheckResult(day + datetime.timedelta(days=i), text, -1, text, text, text,
                             "failed" if i % 2 else "passed", 1, 2, text, text) for i in range(6)]  # fmt: skip
        series = CheckSeries(text, -1, text, text, cells)
        strip = charts.check_strip(series, [c.logical_date for c in cells],
                                   lambda c, p=pipeline: pages.check_link("/aq-quality", p, c))  # fmt: skip
        inert(strip)
        assert strip.count("<a href=") == 3
        points = [MetricPoint(day + datetime.timedelta(days=i), float(i), "failed" if i % 2 else text, text, text,
                              text, Bounds(minimum=0, maximum=3)) for i in range(6)]  # fmt: skip
        metric = MetricSeries(text, -1, text, text, points)
        chart = charts.metric_chart(
            metric,
            mark=points[2].logical_date,
            link=lambda p, s=metric, pipeline=pipeline: pages.metric_link("/aq-quality", pipeline, s, p),
        )
        inert(chart)
        if any(c in text for c in "<>\"'"):
            assert text not in strip and text not in chart


# --- errors ---------------------------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(quality_app, monkeypatch):
    """200, 307, 400, 401, 403, 404, 405, 500, 502, 503: each with the CSP and nosniff (``request``
    asserts both), none with a traceback."""
    from aq_airflow.results.history import ResultsHistory
    from aq_airflow.ui import pages

    statuses = {
        ("/aq-quality/", ANALYST, "GET"): 200,
        ("/aq-quality/dags/ui_pipe/", ANALYST, "GET"): 307,
        ("/aq-quality/dags/ui_pipe?page=0", ANALYST, "GET"): 400,
        ("/aq-quality/api/dags/ui_pipe/checks?limit=0", ANALYST, "GET"): 400,
        ("/aq-quality/dags/ui_pipe", None, "GET"): 401,
        ("/aq-quality/api/dags/ui_pipe/checks", None, "GET"): 401,
        ("/aq-quality/dags/ui_denied", OUTSIDER, "GET"): 403,
        ("/aq-quality/api/dags/ui_denied/checks", OUTSIDER, "GET"): 403,
        ("/aq-quality/dags/no_such_dag", ANALYST, "GET"): 404,
        ("/aq-quality/api/dags/ui_plain/metrics", ANALYST, "GET"): 404,
        ("/aq-quality/nowhere", ANALYST, "GET"): 404,
        ("/aq-quality/dags/ui_pipe", ANALYST, "POST"): 405,
        ("/aq-quality/api/overview", ANALYST, "PUT"): 405,
        ("/aq-quality/dags/ui_down", ANALYST, "GET"): 503,
        ("/aq-quality/api/dags/ui_down/checks", ANALYST, "GET"): 503,
    }
    for (url, user, method), status in statuses.items():
        answer = request(quality_app, url, user, method)
        assert answer.status_code == status, (url, user, method, answer.status_code)
        assert DOWN_PASSWORD not in answer.text

    def unreadable(*args, **kwargs):
        raise RuntimeError("the warehouse said no")

    monkeypatch.setattr(ResultsHistory, "check_timeline", unreadable)
    answer = request(quality_app, "/aq-quality/api/dags/ui_pipe/checks")
    assert answer.status_code == 502 and answer.json()["title"] == "Results unreadable"

    def broken(*args, **kwargs):
        raise KeyError("internal: /srv/airflow/secret.py line 1")

    monkeypatch.setattr(pages, "render_pipeline", broken)
    answer = request(quality_app, "/aq-quality/dags/ui_pipe")
    assert answer.status_code == 500 and "/srv/airflow" not in answer.text and "KeyError" not in answer.text


@pytest.mark.parametrize(
    "connection",
    [
        {"conn_type": "postgres", "host": "127.0.0.1", "port": 9, "login": "aq", "password": "p@ss:w/rd %20#?&"},
        {"conn_type": "postgres", "host": "127.0.0.1", "port": 9, "login": "aq", "password": "S3cr3t-Pa55",
         "extra": {"sslmode": "bogus"}},
        "postgresql://aq:p%40ss%3Aw0rd-Enc@127.0.0.1:9/db?sslmode=disable",
    ],
    ids=["special characters", "a bad extra", "a URI, the password percent-encoded"],
)  # fmt: skip
def test_an_unreachable_warehouses_password_is_never_shown(quality_app, monkeypatch, connection):
    monkeypatch.setenv("AIRFLOW_CONN_UI_DOWN_WH", connection if isinstance(connection, str) else json.dumps(connection))
    secrets = ["p@ss:w/rd", "%20#?&", "S3cr3t-Pa55", "p%40ss%3Aw0rd-Enc", "p@ss:w0rd-Enc"]
    for url in ("/aq-quality/dags/ui_down", "/aq-quality/api/dags/ui_down/checks", "/aq-quality/",
                "/aq-quality/api/overview"):  # fmt: skip
        answer = request(quality_app, url)
        assert answer.status_code in (200, 502, 503), (url, answer.status_code)
        assert not [s for s in secrets if s in answer.text], (url, answer.text[-600:])


# --- found problems: these fail until the pages are fixed ------------------------------------------


class SilentWarehouse:
    """A TCP port that accepts connections and never answers: a hung database, a proxy whose
    backend is gone, a firewall that lets the handshake through."""

    def __init__(self):
        import socket
        import threading

        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.accepted: list = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                continue

    def close(self):
        """Ends every connection: a read still waiting gets an error and its request ends."""
        self.stopped.set()
        self.thread.join(5)
        for connection in self.accepted:
            connection.close()
        self.listener.close()


def test_a_warehouse_that_never_answers_does_not_hold_the_request(quality_app, monkeypatch):
    """Found: no connect or statement timeout. Each request to a pipeline whose warehouse
    accepts TCP and never answers waits forever, holding a worker thread and a metadata DB
    session; the overview waits for every reader of that pipeline. Against the real
    ``airflow api-server`` (tests/ui/stack.py, one worker) 45 such requests by a viewer made
    /api/v2/monitor/health, /auth/login and every other route time out until the warehouse
    went away (the SQLAlchemy pool, 5 + 10, runs out after 15)."""
    import threading

    silent = SilentWarehouse()
    monkeypatch.setenv("AIRFLOW_CONN_UI_DOWN_WH", json.dumps({"conn_type": "postgres", "host": "127.0.0.1",
                       "port": silent.port, "login": "aq", "password": DOWN_PASSWORD}))  # fmt: skip
    answers: dict = {}

    def ask(url):
        with quality_app.client(ANALYST) as client:
            answers[url] = client.get(url)

    urls = ["/aq-quality/dags/ui_down", "/aq-quality/api/overview"]
    threads = [threading.Thread(target=ask, args=(url,), daemon=True) for url in urls]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    waiting = [url for url, thread in zip(urls, threads, strict=True) if thread.is_alive()]
    silent.close()
    for thread in threads:
        thread.join(30)
    assert not waiting, f"still waiting for the warehouse after 20 s: {waiting}"
    assert answers["/aq-quality/dags/ui_down"].status_code in (503, 504)  # unreachable, or too slow


def test_task_instance_results_need_the_task_instance_permission(quality_app, monkeypatch):
    """Found: the task-instance routes depend on ``requires_access_dag("GET")`` alone. A user whom
    the auth manager lets read a DAG but not its task instances, logs or XComs (FAB and Keycloak
    can say so; here the outsider on every DAG) still reads each task's results and the failing
    rows it recorded, which Airflow's own API refuses them."""
    from urllib.parse import quote

    manager = quality_ui_app.DenyingAuthManager
    original = manager.is_authorized_dag

    def dag_level_only(self, *, method, user, access_entity=None, details=None):
        if user.get_name() == OUTSIDER and access_entity is not None:
            return False
        return original(self, method=method, user=user, access_entity=access_entity, details=details)

    monkeypatch.setattr(manager, "is_authorized_dag", dag_level_only)
    run = quote(RUN4, safe="")
    with quality_app.client(OUTSIDER) as client:
        for entity in ("", "/logs/1"):  # Airflow's own API: the task instance and its logs refused
            assert (
                client.get(f"/api/v2/dags/ui_pipe/dagRuns/{run}/taskInstances/orders.checks{entity}").status_code == 403
            )
    assert request(quality_app, "/aq-quality/dags/ui_pipe", OUTSIDER).status_code == 200  # the DAG stays readable
    for url in (f"/aq-quality/dags/ui_pipe/runs/{run}/tasks/orders.checks",
                f"/aq-quality/api/dags/ui_pipe/runs/{run}/tasks/orders.checks"):  # fmt: skip
        answer = request(quality_app, url, OUTSIDER)
        assert answer.status_code == 403, (url, answer.status_code, answer.text[:200])


@pytest.fixture
def huge_metric(quality_app):
    """Metric `zz_huge` of ui_pipe's step orders: the largest double on one date, 0 on the next
    (a `max` over a column holding DBL_MAX as "no limit"); removed after the test."""
    import duckdb

    from aq_airflow.results import METRICS_TABLE, ResultsStore
    from aq_airflow.warehouse import Warehouse

    path = str(quality_app.warehouse)
    store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(path)), "aq")
    rows = [{"dag_id": "ui_pipe", "run_id": run_id(date), "step": "orders", "map_index": -1, "try_number": 1,
             "logical_date": date, "created_at": date, "name": "zz_huge", "kind": "max", "severity": "warning",
             "value": value, "outcome": "passed"}
            for date, value in ((DATES[3], 1.7976931348623157e308), (DATES[4], 0.0))]  # fmt: skip
    quality_ui_app.insert(store, METRICS_TABLE, rows)
    try:
        yield
    finally:
        with duckdb.connect(path) as connection:
            connection.execute("DELETE FROM aq.aq_metric_results WHERE name = 'zz_huge'")


def test_a_metric_near_the_largest_double_does_not_break_the_pages(quality_app, huge_metric):
    """Found: the chart's axis overflows (charts._ticks: ``math.log10(inf)``, the span of
    [0, 1.8e308] padded by 8 % is infinite): the whole pipeline page and the task instance page
    are a 500; one value does it. A span that underflows (0 and 5e-324) is a ValueError."""
    from aq_airflow.results.history import Bounds, MetricPoint, MetricSeries
    from aq_airflow.ui import charts

    broken = []
    for url in ("/aq-quality/dags/ui_pipe", f"/aq-quality/dags/ui_pipe/runs/{RUN4}/tasks/orders.metrics"):
        answer = request(quality_app, url)
        if answer.status_code != 200:
            broken.append((url, answer.status_code))
    day = datetime.datetime(2026, 1, 1)
    for values in ([1.7976931348623157e308, 0.0], [1e308, -1e308], [0.0, 5e-324]):
        points = [MetricPoint(day + datetime.timedelta(days=i), v, "passed", None, None, None, Bounds())
                  for i, v in enumerate(values)]  # fmt: skip
        try:
            charts.metric_chart(MetricSeries("s", -1, "m", None, points))
        except Exception as error:  # each value that breaks the chart is listed
            broken.append((values, repr(error)))
    assert not broken, broken


def test_an_offset_past_a_64_bit_integer_is_a_bad_request(quality_app):
    """Found: ``offset`` has no upper bound; past 2**63-1 the warehouse refuses the query and the
    client gets a 502 blaming the warehouse, with the driver's error (DuckDB:
    ``ConversionException: ... INT128 ... INT64``)."""
    for url in ("/aq-quality/api/dags/ui_pipe/checks", "/aq-quality/api/dags/ui_pipe/metrics"):
        answer = request(quality_app, url, params={"offset": 2**64})
        assert answer.status_code == 400, (url, answer.status_code, answer.text[:300])
        assert "Conversion" not in answer.text and "INT64" not in answer.text


def test_the_total_past_the_last_page_is_not_the_offset(quality_app):
    """Found: past the last page ``total`` is the requested offset (checks: 20 rows, offset=25
    says total 25; metrics: 26 series, offset=1000 says total 1000)."""
    checks = request(quality_app, "/aq-quality/api/dags/ui_pipe/checks", params={"offset": 25}).json()
    metrics = request(quality_app, "/aq-quality/api/dags/ui_pipe/metrics", params={"offset": 1000}).json()
    assert checks["items"] == [] and checks["total"] in (None, 20), checks
    assert metrics["items"] == [] and metrics["total"] in (None, 26), metrics


def test_a_date_at_the_calendar_edge_with_a_zone_is_a_bad_request(quality_app):
    """Found: ``end=9999-12-31T23:00:00-05:00`` (or ``start=0001-01-01T00:00:00+01:00``) parses,
    then its conversion to UTC overflows (OverflowError): a 500 instead of a 400."""
    for params in ({"end": "9999-12-31T23:00:00-05:00"}, {"start": "0001-01-01T00:00:00+01:00"}):
        for url in ("/aq-quality/dags/ui_pipe", "/aq-quality/api/dags/ui_pipe/checks",
                    "/aq-quality/api/dags/ui_pipe/metrics"):  # fmt: skip
            answer = request(quality_app, url, params=params)
            assert answer.status_code == 400, (url, params, answer.status_code)


def test_credentials_typed_into_the_host_field_are_masked(quality_app, monkeypatch):
    """Found: a connection whose credentials were typed into the host (``user:password@host``, no
    password field) is shown to every reader of the pipeline: the driver's first line names the
    host it could not resolve, on the pipeline page and in the overview."""
    monkeypatch.setenv("AIRFLOW_CONN_UI_DOWN_WH", json.dumps({"conn_type": "postgres", "port": 9, "login": "aq",
                       "host": "aq:HostPw-S3cret@127.0.0.1"}))  # fmt: skip
    for url in ("/aq-quality/dags/ui_down", "/aq-quality/api/dags/ui_down/checks", "/aq-quality/"):
        answer = request(quality_app, url)
        assert "HostPw-S3cret" not in answer.text, (url, answer.text[-500:])


def test_one_pipeline_with_an_odd_results_connection_does_not_break_the_overview(quality_app, monkeypatch):
    """Found: a serialized checks task whose ``results_conn_id`` is not text (a list: a
    hand-written DAG using AqCheckOperator, a template field given a list) makes the overview a
    500 for everyone who may read that DAG (``groups[(conn_id, schema)]``: unhashable); the
    pipeline's own page says it cannot make the connection (503), as it should."""
    from aq_airflow.ui import pipelines

    serialized = {"dag": {"tags": ["aq"], "tasks": [{"__var": {
        "task_id": "orders.checks", "task_type": "AqCheckOperator", "_task_module": "aq_airflow.operators.quality",
        "aq_step": "orders", "aq_role": "checks", "results_conn_id": ["ui_empty_wh"],
        "results_schema": "aq"}}]}}  # fmt: skip
    odd = pipelines.from_serialized("ui_empty", serialized)
    assert odd.conn_id is None  # not a name: left out (its page says it names no results connection)
    assert odd.tasks["orders.checks"].step == "orders"  # the task itself is still known by its facts
    real = pipelines.pipeline

    def pipeline(dag_id, session):
        return odd if dag_id == "ui_empty" else real(dag_id, session)

    monkeypatch.setattr(pipelines, "pipeline", pipeline)
    assert request(quality_app, "/aq-quality/dags/ui_empty").status_code == 503
    for url in ("/aq-quality/", "/aq-quality/api/overview"):
        answer = request(quality_app, url)
        assert answer.status_code == 200, (url, answer.status_code)
