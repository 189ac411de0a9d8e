"""The quality UI in headless Chromium, logged in through Airflow's own login page.

Every page is watched (tests/ui/conftest.py ``Watch``): no console error, no uncaught script
error, no dialog (the seeded data holds ``<script>alert(...)`` and ``<img onerror=alert(...)>``;
a dialog means data ran as script), no request outside the api-server's origin. Full-page
screenshots are saved for people to look at.
"""

from __future__ import annotations

from tests.ui.conftest import OUTSIDER, browser_session


def test_login_through_airflows_page_reaches_the_dag(analyst_session):
    """A person opens the DAG, is sent to the login page, signs in, and lands on the DAG."""
    page = analyst_session.page
    page.goto(f"{analyst_session.url}/dags/ui_orders")
    page.get_by_text("ui_orders").first.wait_for()
    page.wait_for_load_state("networkidle")
    analyst_session.shot("01-airflow-dag-page")
    assert not analyst_session.watch.problems()


def test_the_outsider_does_not_see_the_denied_dag(browser, quality_stack):
    with browser_session(browser, quality_stack, OUTSIDER, "/dags") as session:
        session.page.get_by_text("ui_refunds").first.wait_for()
        session.page.wait_for_load_state("networkidle")
        assert session.page.get_by_text("ui_orders").count() == 0
        session.shot("02-outsider-dag-list")
        assert not session.watch.problems()
