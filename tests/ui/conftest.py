"""The quality UI tested as a person would use it: a real ``airflow api-server`` with our plugin,
pipelines really run for several dates, real users logged in, headless Chromium on the pages.

One stack for the whole folder (``quality_stack``): the seeded warehouse (tests/ui/seed.py), the
specs of tests/ui/specs run for their dates, then the api-server. Browser tests drive Debian's
Chromium (``/usr/bin/chromium``, or ``$AQ_CHROMIUM``) through Playwright; without it they skip,
and under AQ_REQUIRE_SERVICES=1 (CI) they fail. Screenshots go to ``$AQ_SCREENSHOTS`` (default
tests/ui/screenshots/, ignored by git); the summary lists them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import missing_service
from tests.ui import seed
from tests.ui.stack import SPECS, QualityStack

# an allowed reader, and a reader denied the pipeline ui_orders (tests/ui/auth_manager.py)
ANALYST, OUTSIDER = "analyst", "outsider"
USERS = {ANALYST: "viewer", OUTSIDER: "viewer"}
DENIED = [(OUTSIDER, "ui_orders")]
RUNS = [("ui_orders", date, None) for date in seed.DATES] + [("ui_refunds", date, None) for date in seed.REFUND_DATES]
SCREENSHOTS = Path(os.environ.get("AQ_SCREENSHOTS") or Path(__file__).parent / "screenshots")
_SAVED: list[Path] = []
_TIMES: dict[str, float] = {}


def _note(line: str) -> None:
    sys.__stderr__.write(f"\n[ui] {line}\n")
    sys.__stderr__.flush()


@pytest.fixture(scope="session")
def quality_stack(tmp_path_factory, request) -> QualityStack:
    """The pipelines run for their dates (dag.test, real tasks writing the results tables), then
    ``airflow api-server`` over that metadata DB and warehouse; stopped after the last test."""
    started = time.monotonic()
    stack = QualityStack(tmp_path_factory.mktemp("ui-stack"), users=USERS, denied=DENIED)
    try:
        seed.seed(str(stack.warehouse))
        stack.prepare(SPECS.glob("*.aq.yaml"))
        _TIMES["airflow db migrate and set-up"] = time.monotonic() - started
        # the api-server boots (imports, plugins) while the pipelines run: it reads nothing of
        # theirs until the tests ask
        mark = time.monotonic()
        stack.start(wait=False)
        stack.history = stack.run_history(RUNS)
        _TIMES[f"{len(RUNS)} pipeline runs (dag.test), the api-server booting meanwhile"] = time.monotonic() - mark
        mark = time.monotonic()
        stack.wait_healthy()
        _TIMES["api-server healthy after the runs"] = time.monotonic() - mark
        yield stack
    finally:
        stack.stop()
        _TIMES["stack total (set-up, tests, teardown)"] = time.monotonic() - started


@pytest.fixture(scope="session")
def run_ids(quality_stack) -> dict[tuple[str, str], str]:
    """(dag_id, date) -> run_id of the recorded runs, read through the REST API."""
    found = {}
    with quality_stack.client(ANALYST) as client:
        for dag_id in {dag_id for dag_id, _, _ in RUNS}:
            runs = client.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}).json()["dag_runs"]
            for run in runs:
                found[(dag_id, run["logical_date"][:10])] = run["dag_run_id"]
    assert len(found) == len(RUNS), found
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing UI test carries the api-server's log tail."""
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "funcargs", {}).get("quality_stack")
    if report.failed and isinstance(stack, QualityStack):
        report.sections.append(("api-server log (tail)", stack.tails(40)))


def pytest_terminal_summary(terminalreporter):
    if _TIMES:
        terminalreporter.write_sep("-", "UI stack wall times")
        for what, seconds in _TIMES.items():
            terminalreporter.write_line(f"{what}: {seconds:.1f}s")
    if _SAVED:
        terminalreporter.write_sep("-", f"UI screenshots ({SCREENSHOTS})")
        for path in _SAVED:
            terminalreporter.write_line(str(path))


# --- the browser -----------------------------------------------------------------------------------


def chromium_path() -> str | None:
    configured = os.environ.get("AQ_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's, no download) through Playwright. Module-scoped: Playwright's
    sync API keeps an event loop running in the main thread until it stops, and a later test file
    on the same pytest-xdist worker that calls ``asyncio.run`` (the KubernetesPodOperator does)
    would fail with "cannot be called from a running event loop"."""
    executable = chromium_path()
    if executable is None:
        missing_service("Chromium is not installed (apt-get install chromium, or AQ_CHROMIUM=/path/to/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        missing_service(f"playwright is not installed ({error}): make install")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class Watch:
    """What a page did that a page of ours must never do: console errors, uncaught script
    errors, dialogs (an ``alert()`` from data that ran), requests outside the api-server."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def clear(self) -> None:
        for found in (self.console_errors, self.page_errors, self.dialogs, self.foreign_requests):
            found.clear()

    def problems(self) -> dict[str, list[str]]:
        found = {
            "console errors": self.console_errors,
            "script errors": self.page_errors,
            "dialogs": self.dialogs,
            "requests outside the api-server": self.foreign_requests,
        }
        return {what: items for what, items in found.items() if items}

    def on_request(self, request) -> None:
        url = request.url
        # blob: URLs are the page's own objects (Airflow's UI makes some); data: never leaves
        if not (url.startswith((self.origin + "/", "blob:" + self.origin + "/", "data:")) or url == self.origin):
            self.foreign_requests.append(url)

    def on_dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@dataclass
class Session:
    """A logged-in browser tab of one user, and what it has seen."""

    page: object
    watch: Watch
    url: str

    def shot(self, name: str, height: int | None = None) -> Path:
        """A full-page screenshot, saved and listed in the summary. ``height``: a taller window
        for the shot, for a page in Airflow's UI whose external view (an iframe, as tall as the
        window) would be cut off."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        size = self.page.viewport_size
        if height:
            self.page.set_viewport_size({"width": size["width"], "height": height})
            self.page.wait_for_timeout(300)  # the UI lays the iframe out again
        self.page.screenshot(path=str(path), full_page=True)
        if height:
            self.page.set_viewport_size(size)
        _SAVED.append(path)
        return path


def log_in(page, url: str, user: str, password: str, next_path: str = "/") -> None:
    """Airflow's login page, filled in and submitted as a person would."""
    page.goto(f"{url}{next_path}")
    page.wait_for_url("**/auth/login**")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda address: "/auth/login" not in address, timeout=30_000)


@contextlib.contextmanager
def browser_session(browser, stack: QualityStack, user: str, next_path: str = "/", state: dict | None = None):
    """A watched tab of ``user``: logged in through Airflow's login page, or with the cookies of
    an earlier such login (``state``, Playwright's storage state)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, storage_state=state)
    watch = Watch(stack.url)
    context.on("request", watch.on_request)
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and watch.console_errors.append(message.text))
    page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
    page.on("dialog", watch.on_dialog)
    page.set_default_timeout(30_000)
    try:
        if state is None:
            log_in(page, stack.url, user, stack.passwords[user], next_path)
            page.wait_for_load_state("load")
            watch.clear()  # the login page's own 401 probe (before anyone logged in) is Airflow's
        yield Session(page, watch, stack.url)
    finally:
        context.close()


@pytest.fixture(scope="module")
def analyst_state(browser, quality_stack) -> dict:
    """The analyst's cookies after one login through Airflow's login page (the first browser test
    checks that login itself); later tabs start from them rather than log in again."""
    with browser_session(browser, quality_stack, ANALYST) as session:
        assert session.page.context.cookies()[0]["name"] == "_token"
        return session.page.context.storage_state()


@pytest.fixture
def analyst_session(browser, quality_stack, analyst_state):
    with browser_session(browser, quality_stack, ANALYST, state=analyst_state) as session:
        yield session
