"""What the quality pages show, in the real Airflow API app (tests/quality_ui_app.py): the
overview's counts, a pipeline's check strips and metric charts with their filters and pages, a
task instance's results with failing rows (sensitive columns dropped), markup from names,
messages and samples escaped in HTML and SVG, the CSP on every response, empty states, unknown
pipelines, and a warehouse that cannot be reached; then the charts and the serialized-DAG reader
on their own."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import duckdb

from aq_airflow.plan.model import FACT_FIELDS
from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.results.history import ResultsHistory
from aq_airflow.results.rows import Role
from aq_airflow.ui import pages
from aq_airflow.warehouse import Warehouse
from tests import quality_ui_app
from tests.quality_ui_app import (
    ANALYST,
    CODE_DIGEST,
    DATES,
    DOWN_PASSWORD,
    HANDMADE_TASK,
    OUTPUT_IMAGE,
    XSS_COLUMN,
    XSS_NAME,
    XSS_TEXT,
    overview,
    run_id,
)  # fmt: skip

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"
UI_SPECS = Path(__file__).resolve().parent / "ui" / "specs"

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
    assert sorted(rows) == [
        "ui_denied",
        "ui_down",
        "ui_empty",
        "ui_handmade",
        "ui_items",
        "ui_nofile",
        "ui_pipe",
    ]  # fmt: skip - not ui_plain
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


def test_the_pipeline_page_shows_endpoints_and_promotions_beside_their_gates(quality_app):
    """The endpoint as its latest attempt left it, and each attempt coloured as a check (promoted
    green, rolled back amber) beside the verdicts of the step's checks and metrics on its date,
    linked to that run's checks; a reason holding markup is escaped."""
    page = get(quality_app, "/aq-quality/dags/ui_pipe").text
    no_raw_markup(page)
    serving = page.split("<h2>Serving</h2>", 1)[1].split("<h2>Checks</h2>", 1)[0]
    (endpoint,) = re.findall(r'<table class="endpoints">.*?</table>', serving, re.S)
    assert "<strong>amounts</strong></td><td>v5555cccc6666</td><td>orders</td>" in endpoint
    assert '<span class="pill passed">promoted</span>' in endpoint
    rows = re.findall(r"<tr>\s*<td>(.*?)</tr>", serving.split('class="promotions"', 1)[1], re.S)
    assert len(rows) == 3
    newest, rolled_back, first = rows
    assert "v5555cccc6666" in newest and "was v1111aaaa2222" in newest and ">11.5<" in newest
    assert '<span class="pill passed">promoted</span>' in newest and "1 failed (warning)" in newest
    assert '<span class="pill warning">rolled_back</span>' in rolled_back
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in rolled_back  # the reason, escaped
    day6 = "/aq-quality/dags/ui_pipe/runs/scheduled__2026-03-06T00%3A00%3A00%2B00%3A00/tasks/orders.checks?map_index=-1"
    assert f'<a href="{day6}">orders</a>' in rolled_back  # to the checks that gated it
    # day 6: ids passed, the hostile check failed (warning), mean_amount passed
    assert re.findall(r'class="pill (\w+)" title="[^"]*">(\d+) ', rolled_back) == [("passed", "2"), ("warning", "1")]
    assert "2026-03-04 02:01" in first and ">8.2<" in first  # (8.25 to a tenth, half to even)
    document = get(quality_app, "/aq-quality/api/dags/ui_pipe/deployments").json()
    assert [e["serving"] for e in document["endpoints"]] == ["v5555cccc6666"] and document["recorded"]
    assert [(a["outcome"], a["verdict"]) for a in document["attempts"]] == [
        ("promoted", "passed"), ("rolled_back", "warning"), ("promoted", "passed")]  # fmt: skip
    assert {(g["name"], g["verdict"]) for g in document["attempts"][1]["gates"]} == {
        ("ids", "passed"), ("<script>alert(1)</script>", "warning")}  # fmt: skip
    assert [m["name"] for m in document["attempts"][1]["gate_metrics"]] == ["mean_amount"]
    task = get(quality_app, day6).text  # and from the checks to what they gated
    gated = task.split("<h2>Promotions these results gated</h2>", 1)[1].split("</table>", 1)[0]
    assert '<span class="pill warning">rolled_back</span>' in gated and "v3333bbbb4444" in gated
    no_raw_markup(task)
    assert get(quality_app, day6.replace("/aq-quality/", "/aq-quality/api/")).json()["deployments"][0]["outcome"] == (
        "rolled_back")  # fmt: skip
    day5 = day6.replace("2026-03-06", "2026-03-05")  # its error check failed: no attempt
    assert "Promotions these results gated" not in get(quality_app, day5).text
    assert "<h2>Serving</h2>" not in get(quality_app, "/aq-quality/dags/ui_pipe", step="totals").text
    window = get(quality_app, "/aq-quality/api/dags/ui_pipe/deployments", start="2026-03-05", end="2026-03-07").json()
    assert [a["version"] for a in window["attempts"]] == ["v3333bbbb4444"]  # attempts of the window's dates
    assert get(quality_app, "/aq-quality/api/dags/ui_items/deployments").json() == {
        "endpoints": [], "attempts": [], "recorded": False}  # fmt: skip


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


def test_a_task_instance_shows_its_step_outputs_provenance(quality_app):
    """A checks task's page shows what made its step's output (its item's): the code package's
    digest and git state, the image (its name escaped), the inputs with their manifests' digests,
    the try, rows and schema; an item committed before provenance says it is not recorded; a step
    that leaves nothing in the store (a `table:` step) says so."""
    url = f"/aq-quality/dags/ui_items/runs/{run_id(DATES[0])}/tasks/regions.checks"
    page = get(quality_app, url, map_index="0").text
    no_raw_markup(page)
    section = page.split("<h2>Output provenance</h2>")[1]
    assert "regions[0:us]" in section and "regions[1:eu]" not in section  # this task instance's item only
    assert f'<code title="{CODE_DIGEST}">{"ab" * 6}</code> · git <code title="{"c0ffee" * 6}abcd">c0ffeec0ffee</code>' \
           " (dirty: files differ from the commit)" in section  # fmt: skip
    assert "ghcr.io/acme/&#34;&gt;&lt;img src=x onerror=alert(2)&gt;:1.0 @ " in section and "9f" * 6 in section
    assert f'orders ← orders <code title="sha256:{"12" * 32}">{"12" * 6}</code>' in section
    assert "<td>2 · 2026-03-01T00:05:00+00:00 → 2026-03-01T00:06:00+00:00</td>" in section
    assert "table · 3 rows · " in section and "<code>region</code> string, <code>amount</code> double" in section
    old = get(quality_app, url, map_index="1").text.split("<h2>Output provenance</h2>")[1]
    assert "not recorded (an output written before aq-airflow recorded provenance)" in old and "table · 3 rows" in old
    data = get(quality_app, url.replace("/dags/", "/api/dags/"), map_index="0").json()
    (output,) = data["outputs"]
    assert output["provenance"]["image"]["name"] == OUTPUT_IMAGE and output["provenance"]["try_number"] == 2
    assert output["schema"] == [["region", "string"], ["amount", "double"]] and data["outputs_note"] is None
    day1 = f"/aq-quality/dags/ui_pipe/runs/{run_id(DATES[0])}/tasks/orders.checks"
    table = get(quality_app, day1, map_index="-1").text.split("<h2>Output provenance</h2>")[1]
    assert "Step `orders` left no output in the artifact store" in table


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


def serialized(dag) -> dict:
    """``dag`` as the dag-processor stores it: Airflow's own serializer, then JSON."""
    from airflow.serialization.serialized_objects import DagSerialization

    return json.loads(json.dumps(DagSerialization.to_dict(dag)))


def serialized_spec(path: Path) -> dict:
    from aq_airflow.live_dags.dag import build_dag
    from aq_airflow.plan.compile import compile_spec

    return serialized(build_dag(compile_spec(path)))


def serialized_task(data: dict, task_id: str) -> dict:
    return next(t["__var"] for t in data["dag"]["tasks"] if t["__var"]["task_id"] == task_id)


def test_the_serialized_dag_carries_each_recording_tasks_facts():
    """A DAG built from an example spec and serialized by Airflow keeps its checks, metrics and
    `when:` tasks' facts: an unmapped task's as attributes (template fields), a mapped one's as its
    ``partial()`` arguments; Airflow reads them back; the pages read the pipeline from them."""
    from airflow.serialization.serialized_objects import DagSerialization

    from aq_airflow.ui.pipelines import RecordingTask, from_serialized

    data = serialized_spec(EXAMPLES / "region_training.aq.yaml")
    unmapped, mapped = serialized_task(data, "regions.checks"), serialized_task(data, "evaluate.metrics")
    assert (unmapped["aq_step"], unmapped["aq_role"], unmapped["results_conn_id"]) == ("regions", "checks",
                                                                                        "aq_warehouse")  # fmt: skip
    assert mapped["_is_mapped"] and "aq_step" not in mapped
    assert (mapped["partial_kwargs"]["aq_step"], mapped["partial_kwargs"]["aq_role"]) == ("evaluate", "metrics")
    back = DagSerialization.from_dict(data)  # as the scheduler and the api-server load it
    assert (back.get_task("regions.checks").aq_step, back.get_task("best.metrics").aq_role) == ("regions", "metrics")
    found = from_serialized("region_training", data)
    assert found.tasks == {"regions.checks": RecordingTask("regions", "checks"),
                           "evaluate.metrics": RecordingTask("evaluate", "metrics"),
                           "best.checks": RecordingTask("best", "checks"),
                           "best.metrics": RecordingTask("best", "metrics")}  # fmt: skip
    assert (found.conn_id, found.schema, found.steps) == ("aq_warehouse", None, ("regions", "evaluate", "best"))
    assert "best.publish" in found.task_ids and "best.publish" not in found.tasks  # it records no results
    assert unmapped["artifacts_root"] == mapped["partial_kwargs"]["artifacts_root"] == "s3://acme-ml/aq"
    assert found.artifacts == "s3://acme-ml/aq"  # the store the spec names: where its outputs' manifests are

    champion_dag = serialized_spec(EXAMPLES / "churn_champion.aq.yaml")
    champion = from_serialized("churn_champion", champion_dag)
    assert "artifacts_root" not in serialized_task(champion_dag, "promote.when")  # a condition writes no output
    assert champion.tasks["promote.when"] == RecordingTask("promote", "when") and "promote" not in champion.steps
    assert pages.task_scope(champion, "promote.when") == (["promote"], (CHECKS_TABLE,), Role.WHEN)
    assert champion.task_of("promote", "when") == "promote.when" and champion.task_of("promote", "checks") is None


def test_sensitive_columns_come_from_the_facts_never_the_docs():
    """The spec in the DAG's docs (which names `sensitive: [email]`) is not read: without it the
    facts still say; with it and without the facts nothing does. A list Airflow truncated to text
    (a template field past ``max_templated_field_length``) withholds the step's samples."""
    from aq_airflow.ui.pipelines import from_serialized

    data = serialized_spec(UI_SPECS / "ui_orders.aq.yaml")
    assert "sensitive: [email]" in data["dag"]["doc_md"]
    assert from_serialized("ui_orders", data).sensitive == {"orders": ("email",)}
    data["dag"]["doc_md"] = "No spec here."
    assert from_serialized("ui_orders", data).sensitive == {"orders": ("email",)}
    checks = serialized_task(data, "orders.checks")
    checks["sensitive_columns"] = "['email', 'ssn', ... (truncated)"
    found = from_serialized("ui_orders", data)
    assert found.withheld == {"orders"} and found.sensitive == {}
    data = serialized_spec(UI_SPECS / "ui_orders.aq.yaml")
    for task in data["dag"]["tasks"]:
        for name in FACT_FIELDS:
            task["__var"].pop(name, None)
    bare = from_serialized("ui_orders", data)  # an aq pipeline by its tag, with nothing to show
    assert (bare.sensitive, bare.tasks, bare.conn_id) == ({}, {}, None)
    assert from_serialized("x", {"dag": {"tasks": [], "tags": ["other"]}}) is None


def test_a_task_is_attributed_by_its_facts_never_its_id():
    """Steps whose names hold dots, or look like another step's task (`x.checks`), in task groups
    that make the id say otherwise, mapped or not: each task is its facts' step and role."""
    from airflow.sdk import DAG, TaskGroup

    from aq_airflow.operators import AqCheckOperator, AqConditionOperator, AqMetricOperator
    from aq_airflow.plan.model import (
        CheckPlan,
        ConditionPlan,
        MetricPlan,
        QualityPlan,
        QualitySource,
        Severity,
        SourceKind,
        WhenPlan,
    )  # fmt: skip
    from aq_airflow.ui.pipelines import RecordingTask, from_serialized

    def quality(step: str) -> QualityPlan:
        return QualityPlan(step=step, warehouse="wh", source=QualitySource(SourceKind.TABLE, table="t"),
                           artifacts=None, results_schema="rs", spec_hash="h",
                           checks=(CheckPlan("c", "not_null", Severity.ERROR, ("id",)),),
                           metrics=(MetricPlan("m", "count", Severity.WARNING, "*"),))  # fmt: skip

    facts = {"results_conn_id": "wh", "results_schema": "rs"}
    with DAG("dotted", schedule=None) as dag:
        with TaskGroup("x"):  # task `x.checks` of step `x.checks`, not of step `x`
            AqCheckOperator(task_id="checks", plan=quality("x.checks"), aq_step="x.checks", aq_role="checks",
                            sensitive_columns=["SSN"], **facts)  # fmt: skip
        with TaskGroup("m"):  # a mapped task `m.metrics` of step `a.b`
            AqMetricOperator.partial(task_id="metrics", plan=quality("a.b"), aq_step="a.b", aq_role="metrics",
                                     **facts).expand(item=[1, 2])  # fmt: skip
        when = WhenPlan("a.b", ConditionPlan("param", name="go", op="truthy"), "wh", "rs", "h")
        AqConditionOperator(task_id="gate", plan=when, aq_step="a.b", aq_role="when", **facts)
    found = from_serialized("dotted", serialized(dag))
    assert found.tasks == {"x.checks": RecordingTask("x.checks", "checks"),
                           "m.metrics": RecordingTask("a.b", "metrics"),
                           "gate": RecordingTask("a.b", "when")}  # fmt: skip
    assert (found.steps, found.sensitive, found.conn_id, found.schema) == (("x.checks", "a.b"), {"x.checks": ("ssn",)},
                                                                           "wh", "rs")  # fmt: skip
    assert pages.task_scope(found, "x.checks") == (["x.checks"], (CHECKS_TABLE,), Role.CHECK)
    assert pages.task_scope(found, "m.metrics") == (["a.b"], (METRICS_TABLE,), Role.CHECK)
    assert pages.task_scope(found, "gate") == (["a.b"], (CHECKS_TABLE,), Role.WHEN)
    assert pages.task_scope(found, "x") == ([], (), Role.CHECK)
    # links go to the task the facts name, never to one built from the step's name
    assert (found.task_of("a.b", "when"), found.task_of("a.b", "metrics"), found.task_of("x", "checks")) == (
        "gate",
        "m.metrics",
        None,
    )


def test_a_hand_written_pipelines_samples_are_masked_by_its_facts(quality_app):
    """ui_handmade: no spec in its docs, its checks task `intake.orders.checks` (step `orders` by
    its facts, `intake.orders` by its id). Its failing rows drop the column its facts mark
    sensitive; a pipeline whose sensitive columns are unreadable shows no sample at all."""
    assert data_of("ui_handmade")["dag"]["doc_md"] == "Written by hand: no spec in these docs."
    url = f"/aq-quality/dags/ui_handmade/runs/{run_id(DATES[0])}/tasks/{HANDMADE_TASK}"
    page = get(quality_app, url, map_index="-1").text
    assert "1 of 9 rows fail" in page and "hidden as sensitive: email" in page and "carol@example.com" not in page
    assert "<td>7</td>" in page  # the sample's other columns are shown
    data = get(quality_app, url.replace("/dags/", "/api/dags/"), map_index="-1").json()
    assert data["checks"][0]["sample"]["hidden_columns"] == ["email"] and data["steps"] == ["orders"]

    from aq_airflow.ui.pipelines import from_serialized

    task = next(t["__var"] for t in data_of("ui_handmade")["dag"]["tasks"])
    task["sensitive_columns"] = "['email', ... (truncated)"
    withheld = from_serialized("ui_handmade", {"dag": {"tasks": [{"__var": task}], "tags": ["aq"]}})
    store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(quality_app.warehouse))), "aq")
    view = pages.load_task(ResultsHistory(store), withheld, run_id(DATES[0]), HANDMADE_TASK, DATES[0], -1)
    assert [(c.result.name, c.result.outcome, c.sample) for c in view.checks] == [("ids", "failed", None)]


def data_of(dag_id: str) -> dict:
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.scalar(SerializedDagModel.latest_item_select_object(dag_id)).data
