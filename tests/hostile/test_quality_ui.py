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
from tests.quality_ui_app import ANALYST, DATES, DOWN_PASSWORD, OUTSIDER, XSS_NAME, XSS_TEXT, run_id

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
    overview = request(quality_app, "/aq-quality/api/overview", OUTSIDER).json()
    assert "ui_denied" not in {row["dag_id"] for row in overview["items"]}
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
    from aq_airflow.results.history import Bounds, CheckResult, CheckSeries, MetricPoint, MetricSeries
    from aq_airflow.ui import charts, pages

    day = datetime.datetime(2026, 1, 1)
    for text in BREAKOUTS:
        cells = [CheckResult(day + datetime.timedelta(days=i), text, -1, text, text, text,
                             "failed" if i % 2 else "passed", 1, 2, text, text) for i in range(6)]  # fmt: skip
        series = CheckSeries(text, -1, text, text, cells)
        strip = charts.check_strip(series, [c.logical_date for c in cells],
                                   lambda c: pages.check_link("/aq-quality", "ui_pipe", c))  # fmt: skip
        inert(strip)
        assert strip.count("<a href=") == 3
        points = [MetricPoint(day + datetime.timedelta(days=i), float(i), "failed" if i % 2 else text, text, text,
                              text, Bounds(minimum=0, maximum=3)) for i in range(6)]  # fmt: skip
        metric = MetricSeries(text, -1, text, text, points)
        chart = charts.metric_chart(
            metric,
            mark=points[2].logical_date,
            link=lambda p, s=metric: pages.metric_link("/aq-quality", "ui_pipe", s, p),
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
