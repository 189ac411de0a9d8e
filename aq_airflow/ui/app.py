"""The quality pages' FastAPI app, mounted by the api-server at ``/aq-quality`` (``plugin``).

Airflow does not authenticate a plugin's FastAPI app by itself: every route here depends on the
core API's own security dependencies. Pipeline routes use ``requires_access_dag("GET")`` (the
user's token or session cookie, then the auth manager's per-DAG decision on the ``dag_id`` in the
path); the overview needs an authenticated user and lists only the DAGs the auth manager says the
user may read. Anonymous: 401; a bad token: 401/403; a DAG the user may not read: 403.

Responses carry a strict Content-Security-Policy (no script may run: the pages have none, the
charts are SVG drawn on the server) and ``X-Content-Type-Options: nosniff``; an error is a short
page (or JSON under ``/api``) without a traceback, and without the warehouse's credentials.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import logging
import os
import threading
from collections import defaultdict
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from aq_airflow.results import ResultsStore
from aq_airflow.results.history import MAX_ROWS, MAX_SERIES, ResultsHistory, Window
from aq_airflow.ui import pages, pipelines
from aq_airflow.ui.pipelines import Pipeline
from aq_airflow.warehouse import FailureKind, Warehouse
from aq_airflow.warehouse.secrets import connection_secrets, error_line

log = logging.getLogger(__name__)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MAX_PAGE = 10_000

app = FastAPI(title="aq-airflow quality", docs_url=None, redoc_url=None, openapi_url=None)
DagReadable = Depends(requires_access_dag("GET"))
# a task's results (failing-row samples: data values) need what Airflow's own task-instance routes need
TaskInstanceReadable = Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))


class PageError(Exception):
    """A request the pages answer with a short message (and a status), never a traceback."""

    def __init__(self, status: int, title: str, message: str, detail: str | None = None, dag_id: str | None = None):
        super().__init__(message)
        self.status, self.title, self.message, self.detail, self.dag_id = status, title, message, detail, dag_id


def _base(request: Request) -> str:
    """Where the app is mounted (``/aq-quality``, under ``[api] base_url``'s path if any)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _is_api(request: Request) -> bool:
    return request.url.path[len(_base(request)) :].startswith("/api/")


def _answer(request: Request, error: PageError) -> Response:
    if _is_api(request):
        body = {"detail": error.message, "title": error.title}
        if error.detail:
            body["error"] = error.detail
        return JSONResponse(body, status_code=error.status)
    html = pages.render_message(error.title, error.message, _base(request), error.detail, error.dag_id)
    return HTMLResponse(html, status_code=error.status)


@app.middleware("http")
async def security_headers(request: Request, call_next) -> Response:
    try:
        response = await call_next(request)
    except Exception:  # never a traceback to the browser
        log.exception("the quality page %s failed", request.url.path)
        response = _answer(request, PageError(500, "Something went wrong", "The page could not be made; the "
                                              "api-server's log has the details."))  # fmt: skip
    response.headers.update(SECURITY_HEADERS)
    return response


@app.exception_handler(PageError)
async def _page_error(request: Request, error: PageError) -> Response:
    return _answer(request, error)


@app.exception_handler(HTTPException)
async def _http_error(request: Request, error: HTTPException) -> Response:
    titles = {401: "Not logged in", 403: "Not allowed", 404: "Not found"}
    message = {401: "Log in to Airflow to see data quality.", 403: "You may not read this pipeline."}.get(
        error.status_code, str(error.detail)
    )
    if _is_api(request):
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)
    page = PageError(error.status_code, titles.get(error.status_code, "Error"), message)
    response = _answer(request, page)
    if error.headers:
        response.headers.update(error.headers)
    return response


@app.exception_handler(RequestValidationError)
async def _bad_request(request: Request, error: RequestValidationError) -> Response:
    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in error.errors())
    return _answer(request, PageError(400, "Bad request", f"The request's parameters are not valid: {problems}"))


# --- helpers ------------------------------------------------------------------------------------


def _moment(value: str | None, name: str) -> datetime.datetime | None:
    """A date (YYYY-MM-DD) or ISO datetime from the query; naive values are UTC."""
    if value is None or not value.strip():
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        raise PageError(400, "Bad request", f"`{name}` is not a date (YYYY-MM-DD) or an ISO date and time") from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        except OverflowError:  # 9999-12-31T23:00-05:00 is past the calendar in UTC
            raise PageError(400, "Bad request", f"`{name}` is outside the calendar in UTC") from None
    return moment


def _window(step: str | None, start: str | None, end: str | None) -> Window:
    return Window(step=step or None, start=_moment(start, "start"), end=_moment(end, "end"))


def _map_index(value: str | None) -> int | None:
    """The ``map_index`` query value: a number, or None for "not mapped" (missing, empty, or the
    UI's ``{MAP_INDEX}`` left unsubstituted for a task instance that is not mapped)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _pipeline(dag_id: str, session: Any) -> Pipeline:
    found = pipelines.pipeline(dag_id, session)
    if found is None:
        raise PageError(404, "Not found", f"`{dag_id}` is no aq-airflow pipeline here (a DAG compiled from a "
                        "*.aq.yaml spec): there are no checks or metrics to show.")  # fmt: skip
    return found


class Results:
    """A pipeline's results tables, reached through the connection its tasks name."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.secrets: list[str] = []
        conn_id = pipeline.conn_id
        if not conn_id:
            raise PageError(503, "Results unavailable", "The pipeline's serialized DAG names no results connection.",
                            dag_id=pipeline.dag_id)  # fmt: skip
        from airflow.sdk import BaseHook

        try:
            conn = BaseHook.get_connection(conn_id)
            self.secrets = connection_secrets(conn)
            missing_file = conn.conn_type == "duckdb" and conn.host not in (None, "", ":memory:")
            if missing_file and not os.path.exists(conn.host):  # connecting would create it
                raise PageError(200, "No results yet", f"No results recorded yet: the DuckDB file of connection "
                                f"`{conn_id}` does not exist.", dag_id=pipeline.dag_id)  # fmt: skip
            warehouse = Warehouse.from_connection(conn)
        except PageError:
            raise
        except Exception as error:
            raise PageError(503, "Results unavailable",
                            f"Airflow cannot make the warehouse connection `{conn_id}` here.",
                            error_line(error, self.secrets), pipeline.dag_id) from None  # fmt: skip
        self.history = ResultsHistory(ResultsStore(warehouse, pipeline.schema))

    def failed(self, error: BaseException) -> PageError:
        """What a failed read means: nothing recorded yet (200), or the warehouse unreachable
        (503) or refusing the read (502), with the driver's first line, secrets masked."""
        kind = self.history.warehouse.failure_kind(error)
        where = f"connection `{self.pipeline.conn_id}`" + (
            f", schema `{self.pipeline.schema}`" if self.pipeline.schema else ""
        )
        if kind == FailureKind.MISSING:
            return PageError(200, "No results yet", f"No results recorded yet: the results tables are not in the "
                             f"warehouse ({where}). They are made when a checks or metrics task first runs.",
                             dag_id=self.pipeline.dag_id)  # fmt: skip
        log.warning("quality pages: reading %s failed: %s", where, error_line(error, self.secrets))
        if kind == FailureKind.UNREACHABLE:
            return PageError(503, "Warehouse unreachable", f"Cannot reach the warehouse ({where}).",
                             error_line(error, self.secrets), self.pipeline.dag_id)  # fmt: skip
        return PageError(502, "Results unreadable", f"The warehouse ({where}) refused to read the results tables.",
                         error_line(error, self.secrets), self.pipeline.dag_id)  # fmt: skip

    def read(self, what, *args, **kwargs):
        """``what(history, ...)`` on a reader thread, waited for at most READ_TIMEOUT seconds,
        with at most READS_PER_WAREHOUSE at once per connection: a warehouse that never answers
        costs its readers a 504 or 503, never the api-server's threads or metadata sessions."""
        gate = _gate(self.pipeline.conn_id)
        if not gate.acquire(blocking=False):
            raise PageError(503, "Warehouse busy", f"{READS_PER_WAREHOUSE} reads of connection "
                            f"`{self.pipeline.conn_id}` are still waiting for the warehouse; try again later.",
                            dag_id=self.pipeline.dag_id)  # fmt: skip
        try:
            future = _READERS.submit(what, self.history, *args, **kwargs)
        except BaseException:
            gate.release()
            raise
        future.add_done_callback(lambda _: gate.release())
        try:
            return future.result(timeout=READ_TIMEOUT)
        except concurrent.futures.TimeoutError:
            message = f"The warehouse (connection `{self.pipeline.conn_id}`) did not answer within {READ_TIMEOUT} s."
            raise PageError(504, "Warehouse too slow", message, dag_id=self.pipeline.dag_id) from None
        except PageError:
            raise
        except Exception as error:
            raise self.failed(error) from None


# Warehouse reads run here, bounded per connection, so that stuck ones cannot take every thread
READ_TIMEOUT = 15  # seconds a page waits for the warehouse
READS_PER_WAREHOUSE = 4
_READERS = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="aq-quality-read")
_GATES: dict[str | None, threading.BoundedSemaphore] = {}
_GATES_LOCK = threading.Lock()


def _gate(conn_id: str | None) -> threading.BoundedSemaphore:
    with _GATES_LOCK:
        return _GATES.setdefault(conn_id, threading.BoundedSemaphore(READS_PER_WAREHOUSE))


def _query(**values: str | None) -> dict[str, str | None]:
    return {k: v for k, v in values.items() if v}


Page = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]  # a warehouse's OFFSET takes a 32-bit count everywhere


# --- the overview -------------------------------------------------------------------------------


def _overview(user: Any, session: Any, page: int) -> tuple[list[pages.OverviewRow], bool, int]:
    readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    ids = pipelines.aq_dag_ids(session, among=set(readable))
    size = pages.OVERVIEW_PER_PAGE
    shown = ids[(page - 1) * size : page * size]
    rows = {dag_id: pages.OverviewRow(dag_id) for dag_id in shown}
    groups: dict[tuple, list[Pipeline]] = defaultdict(list)
    for dag_id in shown:
        found = pipelines.pipeline(dag_id, session)
        if found is None:
            rows[dag_id].problem = "not found in the serialized DAGs"
            continue
        groups[(found.conn_id, found.schema)].append(found)
    session.close()  # the metadata DB is done with; no pooled connection waits on the warehouse
    for members in groups.values():  # one query per warehouse (and schema)
        try:
            results = Results(members[0])
            summaries = results.read(ResultsHistory.overview, [p.dag_id for p in members])
        except PageError as error:
            for member in members:
                rows[member.dag_id].problem = (
                    None if error.status == 200 else f"{error.message} {error.detail or ''}".strip()
                )
            continue
        for member in members:
            rows[member.dag_id].summary = summaries.get(member.dag_id)
    return list(rows.values()), page * size < len(ids), len(ids)


@app.get("/", response_class=HTMLResponse)
def overview(request: Request, user: GetUserDep, session: SessionDep, page: Page = 1) -> HTMLResponse:
    rows, more, total = _overview(user, session, page)
    return HTMLResponse(pages.render_overview(rows, _base(request), page, more, total))


@app.get("/api/overview")
def overview_json(user: GetUserDep, session: SessionDep, page: Page = 1) -> dict[str, Any]:
    rows, more, total = _overview(user, session, page)
    items = [{"dag_id": r.dag_id, "summary": r.summary.as_dict() if r.summary else None, "problem": r.problem}
             for r in rows]  # fmt: skip
    return {"items": items, "page": page, "per_page": pages.OVERVIEW_PER_PAGE, "total": total, "has_more": more}


# --- a pipeline ---------------------------------------------------------------------------------


@app.get("/dags/{dag_id}", response_class=HTMLResponse, dependencies=[DagReadable])
def pipeline_page(
    request: Request, dag_id: str, session: SessionDep, step: str | None = None, start: str | None = None,
    end: str | None = None, page: Page = 1,
) -> Response:  # fmt: skip
    found = _pipeline(dag_id, session)
    session.close()  # the metadata DB is done with; no pooled connection waits on the warehouse
    window = _window(step, start, end)
    results = Results(found)
    try:
        view = results.read(pages.load_pipeline, found, window, page)
    except PageError as error:
        if error.status != 200:
            raise
        return HTMLResponse(pages.render_message(error.title, error.message, _base(request), dag_id=dag_id))
    return HTMLResponse(pages.render_pipeline(view, _base(request), _query(step=step, start=start, end=end)))


def _history_json(dag_id: str, session: Any, filters: tuple, read: Any, item_json: Any, limit: int, offset: int):
    """One page of a pipeline's history as JSON (``read`` a ``ResultsHistory`` method over the
    window of ``filters`` (step, start, end), each item through ``item_json``); a pipeline with
    nothing recorded is an empty page, not an error."""
    found = _pipeline(dag_id, session)
    session.close()  # the metadata DB is done with; no pooled connection waits on the warehouse
    window = _window(*filters)
    try:
        page = Results(found).read(read, dag_id, window, limit, offset)
    except PageError as error:
        if error.status != 200:
            raise
        return JSONResponse({"items": [], "offset": offset, "limit": limit, "total": 0, "has_more": False,
                             "recorded": False})  # fmt: skip
    return JSONResponse({**pages.page_json(page, map(item_json, page.items)), "recorded": True})


@app.get("/api/dags/{dag_id}/checks", dependencies=[DagReadable])
def checks_json(
    dag_id: str, session: SessionDep, step: str | None = None, start: str | None = None, end: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 100, offset: Offset = 0,
) -> Response:  # fmt: skip
    """The checks' verdicts, latest row per (logical_date, step, map_index, name, role), newest first."""
    filters = (step, start, end)
    return _history_json(dag_id, session, filters, ResultsHistory.check_timeline, pages.check_json, limit, offset)


@app.get("/api/dags/{dag_id}/metrics", dependencies=[DagReadable])
def metrics_json(
    dag_id: str, session: SessionDep, step: str | None = None, start: str | None = None, end: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SERIES)] = 20, offset: Offset = 0,
) -> Response:  # fmt: skip
    """The metrics as series (each step's metric, per map index: its points with parsed bounds);
    ``limit`` and ``offset`` count series."""
    filters = (step, start, end)
    return _history_json(dag_id, session, filters, ResultsHistory.metric_series, pages.series_json, limit, offset)


@app.get("/api/dags/{dag_id}/deployments", dependencies=[DagReadable])
def deployments_json(
    dag_id: str, session: SessionDep, step: str | None = None, start: str | None = None, end: str | None = None
) -> Response:
    """The pipeline's endpoints (each one's latest promotion attempt) and its newest attempts,
    each with the verdicts of the checks and metrics that gated it."""
    found = _pipeline(dag_id, session)
    session.close()  # the metadata DB is done with; no pooled connection waits on the warehouse
    window = _window(step, start, end)
    try:
        endpoints, promotions = Results(found).read(pages.load_promotions, found, window)
    except PageError as error:
        if error.status != 200:
            raise
        return JSONResponse({"endpoints": [], "attempts": [], "recorded": False})
    return JSONResponse({**pages.promotions_json(endpoints, promotions), "recorded": bool(endpoints)})


# --- a task instance ------------------------------------------------------------------------------


def _task(dag_id: str, run_id: str, task_id: str, map_index: str | None, session: Any) -> pages.TaskPage | PageError:
    found = _pipeline(dag_id, session)
    if task_id not in found.task_ids:
        raise PageError(404, "Not found", f"The pipeline `{dag_id}` has no task `{task_id}`.", dag_id=dag_id)
    date = pipelines.run_date(dag_id, run_id, session)
    if date is None:
        raise PageError(404, "Not found", f"The pipeline `{dag_id}` has no run `{run_id}`.", dag_id=dag_id)
    session.close()  # the metadata DB is done with; no pooled connection waits on the warehouse
    index = _map_index(map_index)
    _, tables, _ = pages.task_scope(found, task_id)
    if not tables:
        return pages.TaskPage(found, run_id, task_id, date, index, [], (), [], [], [])
    try:
        return Results(found).read(pages.load_task, found, run_id, task_id, date, index)
    except PageError as error:
        if error.status != 200:
            raise
        return error


@app.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", response_class=HTMLResponse,
         dependencies=[TaskInstanceReadable])  # fmt: skip
def task_page(
    request: Request, dag_id: str, run_id: str, task_id: str, session: SessionDep, map_index: str | None = None
) -> Response:
    view = _task(dag_id, run_id, task_id, map_index, session)
    if isinstance(view, PageError):
        return HTMLResponse(pages.render_message(view.title, view.message, _base(request), dag_id=dag_id))
    view.outputs, view.outputs_note = pages.load_outputs(view.pipeline, run_id, task_id, view.map_index)
    return HTMLResponse(pages.render_task(view, _base(request)))


@app.get("/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", dependencies=[TaskInstanceReadable])
def task_json(dag_id: str, run_id: str, task_id: str, session: SessionDep, map_index: str | None = None) -> Response:
    view = _task(dag_id, run_id, task_id, map_index, session)
    if isinstance(view, PageError):
        return JSONResponse({"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "checks": [], "metrics": [],
                             "recorded": False})  # fmt: skip
    view.outputs, view.outputs_note = pages.load_outputs(view.pipeline, run_id, task_id, view.map_index)
    return JSONResponse({**pages.task_json(view), "recorded": True})
