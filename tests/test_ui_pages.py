"""What the quality pages show, in the real Airflow API app (tests/quality_ui_app.py): the
overview's counts, a pipeline's check strips and metric charts with their filters and pages, a
task instance's results with failing rows (sensitive columns dropped), markup from names,
messages and samples escaped in HTML and SVG, the CSP on every response, empty states, unknown
pipelines, and a warehouse that cannot be reached; then the charts and the serialized-DAG reader
on their own."""

from __future__ import annotations

import datetime
import re

from tests import quality_ui_app
from tests.quality_ui_app import ANALYST, DATES, DOWN_PASSWORD, XSS_COLUMN, XSS_NAME, XSS_TEXT, overview, run_id

quality_app = quality_ui_app.quality_app  # the fixture
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'"


def get(app, url: str, status: int = 200, **params):
    with app.client(ANALYST) as client:
        answer = client.get(url, params=params or None)
    assert answer.status_code == status, (url, answer.status_code, answer.text[:500])
    assert answer.headers["content-security-policy"] == CSP and answer.headers["x-content-type-options"] == "nosniff"
    assert "Traceback" not in answer.text
    if answer.headers["content-type"].startswith("text/html"):  # JSON holds names as they are (nosniff)
        assert "<script" not in answer.text.lower()
    return answer


def no_raw_markup(text: str) -> None:
    """Hostile strings only ever appear escaped: no tag of theirs, no attribute breaking out."""
    assert XSS_NAME not in text and XSS_TEXT not in text and XSS_COLUMN not in text
    assert "<img" not in text and "onerror=alert" not in text.replace("onerror=alert(", "")
    assert not re.search(r"<script", text, re.IGNORECASE)


def test_the_overview_counts_each_pipelines_latest_date(quality_app):
    get(quality_app, "/aq-quality/")  # its headers
    with quality_app.client(ANALYST) as client:
        rows, page = overview(client)
    assert sorted(rows) == ["ui_denied", "ui_down", "ui_empty", "ui_items", "ui_nofile", "ui_pipe"]  # not ui_plain
    pipe = rows["ui_pipe"]["summary"]  # 2026-03-10: ids passed, the hostile check failed (warning), the metric passed
    assert (pipe["logical_date"], pipe["passed"], pipe["failed_warning"], pipe["failed_error"]) == (
        "2026-03-10T00:00:00", 2, 1, 0)  # fmt: skip
    assert rows["ui_empty"] == {"dag_id": "ui_empty", "summary": None, "problem": None}  # no tables yet
    assert "Cannot reach the warehouse" in rows["ui_down"]["problem"] and DOWN_PASSWORD not in page
    assert 'href="/aq-quality/dags/ui_pipe"' in page and "2026-03-10" in page and "no results recorded yet" in page
    assert "ui_plain" not in page


def test_the_pipeline_page_draws_strips_and_charts(quality_app):
    page = get(quality_app, "/aq-quality/dags/ui_pipe").text
    no_raw_markup(page)
    assert "orders.&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the check's name, escaped
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="strip"') == 2
    assert 'class="cell failed"' in page and "2026-03-05: failed (error)" in page  # day 5's cell and its title
    assert "3 failing of 50 rows" in page
    assert "2026-03-01 to 2026-03-04: 4 dates passed" in page  # a run of passed dates is one cell
    assert page.count('class="chart"') == 20 and 'class="point broken"' in page  # page 1: 20 of 26 metrics
    assert "2026-03-09: 120 (failed)" in page  # the broken point's tooltip
    assert "<polygon" in page and 'stroke-dasharray="5 3"' in page  # the learned band, the static bounds
    day5 = "/aq-quality/dags/ui_pipe/runs/scheduled__2026-03-05T00%3A00%3A00%2B00%3A00/tasks/orders.checks?map_index=-1"
    day9 = (
        "/aq-quality/dags/ui_pipe/runs/scheduled__2026-03-09T00%3A00%3A00%2B00%3A00/tasks/orders.metrics?map_index=-1"
    )
    assert f'<a href="{day5}"><rect' in page and f'<a href="{day9}"><circle' in page  # to the failing rows
    assert "Failing rows" in get(quality_app, day5).text and "mean_amount = 120.0" in get(quality_app, day9).text
    assert 'href="/aq-quality/dags/ui_pipe?page=2"' in page and "← previous" not in page
    second = get(quality_app, "/aq-quality/dags/ui_pipe", page=2).text
    assert second.count('class="chart"') == 6 and "next →" not in second and 'ui_pipe?page=1"' in second
    assert get(quality_app, "/aq-quality/dags/ui_pipe", page=9).text.count("No checks or metrics recorded") == 1


def test_the_pipeline_page_filters_by_step_and_dates(quality_app):
    page = get(quality_app, "/aq-quality/dags/ui_pipe", step="totals").text
    assert 'class="strip"' not in page and page.count('class="chart"') == 20 and "orders.mean_amount" not in page
    assert '<option value="totals" selected>' in page and 'ui_pipe?step=totals&amp;page=2"' in page
    window = get(quality_app, "/aq-quality/dags/ui_pipe", step="orders", start="2026-03-03", end="2026-03-06").text
    assert "3 dates" in window and "2026-03-03" in window and "2026-03-06" not in window.split("<main>")[1].split(
        "</form>")[1]  # fmt: skip
    assert 'value="2026-03-03"' in window  # the form keeps the filter
    bad = get(quality_app, "/aq-quality/dags/ui_pipe", 400, start="yesterday").text
    assert "`start` is not a date" in bad
    assert get(quality_app, "/aq-quality/dags/ui_pipe", 400, page=0).text.count("Bad request") >= 1
    assert "No checks or metrics recorded for these filters" in get(quality_app, "/aq-quality/dags/ui_pipe",
                                                                     start="2030-01-01").text  # fmt: skip


def test_a_task_instance_page_shows_its_results_and_failing_rows(quality_app):
    url = f"/aq-quality/dags/ui_pipe/runs/{run_id(DATES[4])}/tasks/orders.checks"
    page = get(quality_app, url, map_index="{MAP_INDEX}").text  # the UI's placeholder, not substituted
    no_raw_markup(page)
    assert "logical date 2026-03-05" in page and "3 of 50 rows fail" in page
    assert "hidden as sensitive: email" in page and "alice@example.com" not in page and "bob@example.com" not in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(3)&gt;" in page  # a column name from the data, escaped
    assert page.count("<td>NULL</td>") == 3
    assert "mean_amount" not in page  # a checks task: its checks only
    metrics = get(quality_app, url.replace("orders.checks", "orders.metrics"), map_index="-1").text
    assert "mean_amount = 50.4" in metrics and 'r="7"' in metrics  # its value, and this date ringed in the history
    assert "Recent history" in metrics and "&lt;script&gt;" not in metrics
    other = get(quality_app, url.replace("orders.checks", "totals.run")).text
    assert "This task records no checks or metrics" in other
    assert "No checks or metrics recorded" in get(quality_app, url, map_index="3").text  # no such item
    data = get(quality_app, url.replace("/dags/", "/api/dags/"), map_index="{MAP_INDEX}").json()
    assert data["logical_date"] == "2026-03-05T00:00:00" and data["map_index"] is None and data["recorded"]


def test_a_foreach_items_rows_are_named_by_their_item(quality_app):
    """A mapped step's rows name their item as `aq-airflow run` and `results` do: the step, then
    the map index and the item's label (``regions[1:eu]``), on the pipeline and task pages and
    in the JSON."""
    page = get(quality_app, "/aq-quality/dags/ui_items").text
    assert "regions[0:us].enough" in page and "regions[1:eu].enough" in page  # the check strips
    assert "regions[1:eu].rows" in page and 'aria-label="rows (regions[1:eu])"' in page  # a metric chart
    url = f"/aq-quality/dags/ui_items/runs/{run_id(DATES[0])}/tasks/regions.checks"
    task = get(quality_app, url, map_index="1").text
    assert "<h1>regions.checks[1:eu]</h1>" in task and "<td>regions[1:eu].enough</td>" in task
    assert "regions[0:us]" not in task  # the other item's rows are not this task instance's
    data = get(quality_app, url.replace("/dags/", "/api/dags/"), map_index="1").json()
    assert [(c["step"], c["map_index"], c["item_label"]) for c in data["checks"]] == [("regions", 1, "eu")]
    series = get(quality_app, "/aq-quality/api/dags/ui_items/metrics").json()["items"]
    assert [(s["map_index"], s["item_label"]) for s in series] == [(0, "us"), (1, "eu")]


def test_unknown_pipelines_runs_and_tasks_are_404_pages(quality_app):
    unknown = [
        "/aq-quality/dags/no_such_dag",
        "/aq-quality/dags/ui_plain",
        "/aq-quality/dags/ui_pipe/runs/no_such_run/tasks/orders.checks",
        f"/aq-quality/dags/ui_pipe/runs/{run_id(DATES[0])}/tasks/no_such_task",
        "/aq-quality/nowhere",
    ]
    for url in unknown:
        page = get(quality_app, url, 404).text
        assert "Not found" in page and "<!doctype html>" in page
    answer = get(quality_app, "/aq-quality/api/dags/ui_plain/checks", 404)
    assert answer.headers["content-type"].startswith("application/json") and "is no aq-airflow pipeline" in answer.text


def test_no_results_yet_is_an_empty_state(quality_app):
    page = get(quality_app, "/aq-quality/dags/ui_empty").text
    assert "No results recorded yet" in page and "connection `ui_empty_wh`" in page
    nofile = get(quality_app, "/aq-quality/dags/ui_nofile").text
    assert "the DuckDB file of connection `ui_nofile_wh` does not exist" in nofile
    assert not (quality_app.warehouse.parent / "nowhere.duckdb").exists()  # a read never creates the file
    assert get(quality_app, "/aq-quality/api/dags/ui_empty/metrics").json() == {
        "items": [], "offset": 0, "limit": 20, "total": 0, "has_more": False, "recorded": False}  # fmt: skip


def test_an_unreachable_warehouse_is_a_short_error_without_secrets(quality_app):
    page = get(quality_app, "/aq-quality/dags/ui_down", 503).text
    assert "Cannot reach the warehouse (connection `ui_down_wh`)" in page and "OperationalError" in page
    assert DOWN_PASSWORD not in page
    answer = get(quality_app, "/aq-quality/api/dags/ui_down/checks", 503).json()
    assert answer["title"] == "Warehouse unreachable" and DOWN_PASSWORD not in str(answer)


def test_an_unexpected_failure_is_a_500_page_without_a_traceback(quality_app, monkeypatch):
    from aq_airflow.ui import pages

    def broken(*args, **kwargs):
        raise RuntimeError("a bug with a secret: hunter2")

    monkeypatch.setattr(pages, "render_pipeline", broken)
    page = get(quality_app, "/aq-quality/dags/ui_pipe", 500).text
    assert "Something went wrong" in page and "hunter2" not in page and "RuntimeError" not in page


def test_charts_escape_what_they_draw():
    from aq_airflow.results.history import Bounds, CheckResult, CheckSeries, MetricPoint, MetricSeries
    from aq_airflow.ui import charts

    day = datetime.datetime(2026, 1, 1)
    bounds = Bounds(minimum=0, mean=1, stddev=1, max_zscore=2)
    points = [MetricPoint(day + datetime.timedelta(days=i), float(i), "failed" if i == 2 else "passed", "warning",
                          XSS_TEXT, "r", bounds) for i in range(4)]  # fmt: skip
    svg = charts.metric_chart(MetricSeries(XSS_NAME, -1, XSS_NAME, "mean", points))
    no_raw_markup(svg)
    assert svg.count("<circle") == 4 and svg.count('class="point broken"') == 1 and "<polygon" in svg
    assert charts.metric_chart(MetricSeries("s", -1, "m", None, [])).endswith("no values</text></svg>")
    long = MetricSeries("s", 0, "m", None, [MetricPoint(day + datetime.timedelta(days=i), 1.0, "passed", None, None,
                                                         None, Bounds()) for i in range(365)])  # fmt: skip
    assert charts.metric_chart(long).count("<circle") == 1  # a year of passed points: the line and the latest
    cells = [CheckResult(day + datetime.timedelta(days=i), "s", -1, XSS_NAME, "k", "error",
                         "failed" if i in (3, 4) else "passed", 1, 2, XSS_TEXT, "r") for i in range(10)]  # fmt: skip
    strip = charts.check_strip(CheckSeries("s", -1, XSS_NAME, "k", cells), [c.logical_date for c in cells])
    no_raw_markup(strip)
    assert strip.count("<rect") == 1 + 2 + 2  # the background, two passed runs, two failed dates


def test_the_serialized_dag_reader():
    from aq_airflow.ui.pipelines import from_serialized, spec_of

    assert from_serialized("x", {"dag": {"tasks": [], "tags": ["other"]}}) is None
    doc = "Docs\n\nFrom the aq-airflow spec `a.aq.yaml`:\n\n````yaml\nsteps: {}\n```\nstill yaml\n````\n"
    assert spec_of(doc) == ("a.aq.yaml", "steps: {}\n```\nstill yaml")
    mapped = {"dag": {"tags": ["aq"], "doc_md": "From the aq-airflow spec `p.aq.yaml`:\n\n```yaml\n"
                      "pipeline: p\nwarehouse: wh\nresults_schema: rs\nsteps:\n  s:\n    table: t\n"
                      "    sensitive: [Email]\n    checks: [{name: c, not_null: id}]\n```\n",
                      "tasks": [{"__var": {"task_id": "s.checks", "task_type": "AqCheckOperator", "_is_mapped": True,
                                           "_task_module": "aq_airflow.operators.quality"}}]}}  # fmt: skip
    found = from_serialized("p", mapped)
    assert (found.conn_id, found.schema, found.steps, found.sensitive) == ("wh", "rs", ("s",), {"s": ("email",)})
