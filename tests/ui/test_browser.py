"""The quality UI in headless Chromium, logged in through Airflow's own login page.

Every page is watched (tests/ui/conftest.py ``Watch``): no console error, no uncaught script
error, no dialog (the seeded data holds ``<script>alert(...)`` and ``<img onerror=alert(...)>``;
a dialog means data ran as script), no request outside the api-server's origin. Full-page
screenshots are saved for people to look at (the summary lists them).
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.ui import seed
from tests.ui.conftest import ANALYST, OUTSIDER, browser_session

# Airflow's own pages load their translations and the plugins' menu after the first paint; with
# the suite's other workers starting Airflow processes beside this one that takes longer than
# Playwright's default 5 s, as the page's other waits already allow (conftest: 30 s)
expect.set_options(timeout=30_000)


def quality_frame(page, path: str):
    """The frame of Airflow's external view (an iframe in the React UI) showing the plugin's
    page ``path`` (its src ends so), once loaded."""
    iframe = page.locator(f"iframe[src*='{path}']")
    iframe.wait_for()
    frame = iframe.element_handle().content_frame()
    frame.wait_for_load_state("load")
    return frame


def settle(page) -> None:
    """A moment for Airflow's UI to finish drawing around the view before a screenshot (its grid
    polls, so "network idle" may never come; the assertions do not depend on this)."""
    page.wait_for_load_state("load")
    page.wait_for_timeout(1000)


def assert_clean(session) -> None:
    problems = session.watch.problems()
    assert not problems, problems


def assert_metric_charts(view) -> None:
    """The two metric charts of ui_orders: static bounds drawn on mean_amount, the learned band
    on order_count, and the dates that did not pass marked."""
    mean_chart = view.locator("svg.chart", has=view.locator("title", has_text="maximum bound")).first
    assert "mean_amount" in mean_chart.get_attribute("aria-label")
    assert mean_chart.locator("title", has_text="minimum bound").count() == 1
    assert mean_chart.locator("circle.broken").count() == 1  # 2026-03-04, above 200
    assert "2026-03-04" in mean_chart.locator("circle.broken title").text_content()
    count_chart = view.locator("svg.chart", has=view.locator("title", has_text="learned band")).first
    assert "order_count" in count_chart.get_attribute("aria-label")
    assert count_chart.locator("circle.broken").count() == 1  # 2026-03-08, 90 orders
    assert "2026-03-08" in count_chart.locator("circle.broken title").text_content()
    expect(count_chart).to_be_visible()
    expect(mean_chart).to_be_visible()


def test_a_person_logs_in_through_airflows_page(browser, quality_stack):
    """Opening the DAG sends a person to Airflow's login page; signing in there lands on the DAG."""
    with browser_session(browser, quality_stack, ANALYST, "/dags/ui_orders") as session:
        assert session.page.url == f"{session.url}/dags/ui_orders"
        expect(session.page.get_by_role("link", name="Quality", exact=True)).to_be_visible()
        assert_clean(session)


def test_the_quality_tab_of_a_dag_in_airflows_ui(analyst_session):
    """Airflow's DAG page, its "Quality" tab (the plugin's external view, an iframe inside the
    React UI): check timelines with the failing dates, metric charts with bounds and the band."""
    page = analyst_session.page
    page.goto(f"{analyst_session.url}/dags/ui_orders")
    page.get_by_role("link", name="Quality", exact=True).click()
    page.wait_for_url("**/dags/ui_orders/plugin/aq-quality-dag")
    view = quality_frame(page, "/aq-quality/dags/ui_orders")
    expect(view.get_by_role("heading", name="ui_orders")).to_be_visible()
    for name in ("amount_in_range", "enough_orders", "ids_not_null", "known_status", "plain_customers"):
        expect(view.get_by_text(f"orders.{name}", exact=True)).to_be_visible()
    # the strips: a red cell for each error-severity failure, amber for the warnings
    assert view.locator("svg.strip rect.cell.failed").count() == 2
    assert view.locator("svg.strip rect.cell.warning").count() == 4
    assert_metric_charts(view)
    # the pipeline's description holds a <script>: shown as text, never run
    expect(view.get_by_text("<script>alert('pipeline description')</script>")).to_be_visible()
    settle(page)
    analyst_session.shot("01-airflow-dag-quality-tab", height=1250)
    assert_clean(analyst_session)


def test_the_data_quality_page_from_airflows_navigation(analyst_session):
    """The nav entry "Data quality": every readable pipeline with its latest date's verdicts;
    a pipeline's name leads to its page (inside the same view)."""
    page = analyst_session.page
    page.goto(f"{analyst_session.url}/")
    page.get_by_role("link", name="Data quality").click()
    page.wait_for_url("**/plugin/aq-quality")
    view = quality_frame(page, "/aq-quality/")
    table = view.get_by_role("table")
    expect(table.get_by_role("link", name="ui_orders")).to_be_visible()
    rows = {row.get_by_role("link").inner_text(): row.inner_text() for row in table.locator("tbody tr").all()}
    assert sorted(rows) == ["ui_orders", "ui_refunds"]
    assert "2026-03-08" in rows["ui_orders"] and "warnings" in rows["ui_orders"]
    assert "all passed" in rows["ui_refunds"]
    settle(page)
    analyst_session.shot("02-airflow-nav-data-quality")
    table.get_by_role("link", name="ui_orders").click()
    view = page.frame_locator("iframe[src*='/aq-quality/']")  # the same frame, navigated by the link
    expect(view.get_by_role("heading", name="ui_orders")).to_be_visible()
    assert_metric_charts(view)
    assert_clean(analyst_session)


def test_the_pipeline_page_directly_with_filters(analyst_session):
    """The plugin's page on its own (a bookmark, the extra link): the filter form narrows the
    page to a step and a range of logical dates, by a plain GET (no script)."""
    page = analyst_session.page
    page.goto(f"{analyst_session.url}/aq-quality/dags/ui_orders")
    expect(page.get_by_role("heading", name="ui_orders")).to_be_visible()
    assert_metric_charts(page)
    analyst_session.shot("03-plugin-pipeline-page")
    page.get_by_label("Step").select_option("orders")
    page.get_by_label("From (logical date)").fill("2026-03-03")
    page.get_by_label("Before").fill("2026-03-07")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"step=orders&start=2026-03-03&end=2026-03-07"))
    # four dates, 03-03 .. 03-06: the strips hold the two failures and two of the warnings
    expect(page.locator(".axis-dates")).to_contain_text("4 dates")
    assert page.locator("svg.strip rect.cell.failed").count() == 2
    assert page.locator("svg.strip rect.cell.warning").count() == 3
    analyst_session.shot("04-plugin-pipeline-filtered")
    assert_clean(analyst_session)


def test_a_task_instance_shows_failing_rows(analyst_session, run_ids):
    """The task instance's "Quality" tab in Airflow's UI: the run's verdicts with the failing
    rows, the markup in the data as text; the "Quality" extra link leads to the same page."""
    run = run_ids[("ui_orders", "2026-03-04")]
    page = analyst_session.page
    page.goto(f"{analyst_session.url}/dags/ui_orders/runs/{run}/tasks/orders.checks")
    page.get_by_role("link", name="Quality", exact=True).click()
    view = quality_frame(page, "/tasks/orders.checks")
    expect(view.get_by_role("heading", name="orders.checks")).to_be_visible()
    expect(view.get_by_text("logical date 2026-03-04")).to_be_visible()
    expect(view.get_by_role("cell", name="9999.0", exact=True)).to_be_visible()
    expect(view.get_by_role("cell", name=seed.IMG_CUSTOMER, exact=True)).to_be_visible()  # the <img onerror>, as text
    assert view.locator("img").count() == 0  # and not as an element
    assert "@example.com" not in view.content()  # the sensitive column is never shown
    settle(page)
    analyst_session.shot("05-airflow-task-instance-quality-tab", height=1150)

    # the extra link, under the task instance's Details
    page.get_by_role("link", name="Details", exact=True).click()
    link = page.locator("a[href*='/aq-quality/dags/ui_orders/runs/']").first
    link.wait_for()
    href = link.get_attribute("href")
    assert "/tasks/orders.checks?map_index=-1" in href
    page.goto(f"{analyst_session.url}{href}" if href.startswith("/") else href)
    expect(page.get_by_role("heading", name="orders.checks")).to_be_visible()
    expect(page.get_by_role("cell", name=seed.IMG_CUSTOMER, exact=True)).to_be_visible()
    analyst_session.shot("06-plugin-task-instance-page")
    assert_clean(analyst_session)


def test_script_in_the_data_never_runs(analyst_session, run_ids):
    """2026-03-06's failing rows hold ``<script>alert(...)</script>``: on the task page it is a
    cell's text; no dialog opened on any page so far (the watch), and no script element exists."""
    run = run_ids[("ui_orders", "2026-03-06")]
    page = analyst_session.page
    page.goto(f"{analyst_session.url}/aq-quality/dags/ui_orders/runs/{run}/tasks/orders.checks?map_index=-1")
    expect(page.get_by_role("cell", name=seed.SCRIPT_CUSTOMER, exact=True)).to_be_visible()
    assert page.locator("script").count() == 0
    assert page.evaluate("document.scripts.length") == 0
    analyst_session.shot("07-plugin-task-instance-script-as-text")
    assert_clean(analyst_session)


def test_the_outsider_neither_sees_nor_opens_the_denied_dag(browser, quality_stack):
    with browser_session(browser, quality_stack, OUTSIDER, "/dags") as session:
        page = session.page
        expect(page.get_by_text("1 Dag", exact=True)).to_be_visible()  # the list, loaded: ui_refunds alone
        expect(page.get_by_role("link", name="ui_refunds")).to_be_visible()
        assert page.get_by_text("ui_orders").count() == 0
        session.shot("08-outsider-dag-list")
        page.goto(f"{session.url}/aq-quality/")
        expect(page.get_by_role("link", name="ui_refunds")).to_be_visible()
        assert page.get_by_text("ui_orders").count() == 0
        response = page.goto(f"{session.url}/aq-quality/dags/ui_orders")
        assert response.status == 403
        expect(page.get_by_text("You may not read this pipeline")).to_be_visible()
        assert page.get_by_text("mean_amount").count() == 0
        session.shot("09-outsider-denied-pipeline")
        # the 403 itself is the only console error: the browser reports the failed load
        assert all("403" in line for line in session.watch.console_errors), session.watch.console_errors
        session.watch.console_errors.clear()
        assert_clean(session)
