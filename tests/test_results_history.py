"""The read model of the results tables (``aq_airflow.results.history``), on each warehouse that
holds them: DuckDB (a file), PostgreSQL (a real server) and Snowflake (fakesnow). Pages and
filters, a date's latest row winning over its older duplicates, learned bands parsed from the
rows, failing-row samples with a second guard on sensitive columns, the overview's counts, reads
that cannot write, and tables of earlier versions (without ``item_label`` and ``role``): read as
they are, migrated by the first write."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest
from sqlglot import exp

from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.results.history import (
    MAX_ROWS,
    MAX_SERIES,
    Bounds,
    ResultsHistory,
    Window,
    parse_sample,
    verdict,
)
from aq_airflow.results.migrations import table_columns
from aq_airflow.results.rows import COLUMNS, DEPLOYMENTS_TABLE
from aq_airflow.warehouse import Warehouse

DAY = datetime.timedelta(days=1)
FIRST = datetime.datetime(2026, 1, 1)
DATES = [FIRST + DAY * i for i in range(10)]


def _insert(store: ResultsStore, table: str, rows: list[dict], names: list[str] | None = None) -> None:
    """Rows as they are (no replace): older duplicates, as tables of earlier versions hold them."""
    names = names or [column for column, _ in COLUMNS[table]]
    marks = exp.Tuple(expressions=[exp.Var(this=store.placeholder) for _ in names])
    target = exp.Schema(this=store.statements.table(table), expressions=[store.statements.id(n) for n in names])
    insert = store.warehouse.render(exp.insert(exp.Values(expressions=[marks]), target))
    with store.warehouse.writing() as session:
        session.executemany(insert, [tuple(row.get(n) for n in names) for row in rows])


def check_row(dag_id, date, step, name, outcome="passed", severity="error", map_index=-1, **extra) -> dict:
    return {"dag_id": dag_id, "run_id": f"scheduled__{date:%Y-%m-%d}", "step": step, "name": name,
            "kind": extra.pop("kind", "not_null"), "role": extra.pop("role", "check"), "outcome": outcome,
            "severity": severity,
            "message": extra.pop("message", f"{name} {outcome}"), "map_index": map_index, "try_number": 1,
            "logical_date": date, "created_at": date + datetime.timedelta(hours=1), **extra}  # fmt: skip


def metric_row(dag_id, date, step, name, value, outcome="passed", expected=None, map_index=-1, **extra) -> dict:
    return {"dag_id": dag_id, "run_id": f"scheduled__{date:%Y-%m-%d}", "step": step, "name": name,
            "kind": "mean", "outcome": outcome, "severity": "warning", "message": f"{name} = {value}",
            "value": value, "expected": json.dumps(expected) if expected is not None else None,
            "map_index": map_index, "try_number": 1, "logical_date": date,
            "created_at": date + datetime.timedelta(hours=1), **extra}  # fmt: skip


def seed(store: ResultsStore, dag_id: str = "pipe") -> None:
    """10 dates: steps orders (2 checks, 2 metrics) and regions (mapped: 1 check per item 0, 1);
    on day 5 a failed check with a sample, and an older duplicate row of day 3 that lost."""
    store.ensure_tables()
    checks, metrics = [], []
    for i, date in enumerate(DATES):
        failed = i == 4
        sample = json.dumps([{"id": None, "email": "a@x.io", "amount": k} for k in range(30)]) if failed else None
        checks += [
            check_row(dag_id, date, "orders", "id_not_null", "failed" if failed else "passed",
                      failing_rows=30 if failed else 0, total_rows=100, sample=sample),
            check_row(dag_id, date, "orders", "fresh", "failed" if i == 7 else "passed", severity="warning",
                      kind="freshness"),
            check_row(dag_id, date, "regions", "enough", map_index=0, item_label="us"),
            check_row(dag_id, date, "regions", "enough", "error" if i == 9 else "passed", map_index=1,
                      item_label="eu"),
        ]  # fmt: skip
        history = {"window": 7, "max_zscore": 3, "min_history": 3, "values": min(i, 7)}
        if i >= 3:
            history.update(mean=10.0, stddev=0.5, zscore=0.1)
        value = 20.0 if i == 8 else 10.0 + i / 10
        metrics += [
            metric_row(dag_id, date, "orders", "mean_amount", value, "failed" if i == 8 else "passed",
                       {"bounds": {"min": 5, "max": 15}, "history": history}),
            metric_row(dag_id, date, "orders", "rows", 1000 + i, expected={"max_change": 0.1, "previous": 1000.0}),
        ]  # fmt: skip
    _insert(store, CHECKS_TABLE, checks)
    _insert(store, METRICS_TABLE, metrics)
    # an older row of day 3 (an earlier version's duplicate, an earlier try): the latest wins
    stale = check_row(dag_id, DATES[2], "orders", "id_not_null", "failed", run_id="old", failing_rows=9)
    stale["created_at"] = DATES[2]
    _insert(store, CHECKS_TABLE, [stale])
    _insert(store, METRICS_TABLE, [{**metric_row(dag_id, DATES[2], "orders", "rows", 1.0), "created_at": DATES[2]}])
    # a condition's verdict (`when:`): in the timeline, not in the overview's counts
    _insert(store, CHECKS_TABLE, [check_row(dag_id, DATES[-1], "publish", "when", "skipped", kind="when", role="when")])


def open_store(dialect, request, tmp_path):
    if dialect == "duckdb":
        import duckdb

        path = str(tmp_path / "wh.duckdb")
        yield ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(path)), "aq")
    elif dialect == "postgres":
        import psycopg2

        dsn = request.getfixturevalue("postgres_dsn")
        schema = f"aq_h_{uuid.uuid4().hex[:8]}"
        yield ResultsStore(Warehouse.for_dialect("postgres", lambda: psycopg2.connect(dsn)), schema)
        with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    else:
        import fakesnow
        import snowflake.connector

        with fakesnow.patch():
            connect = lambda: snowflake.connector.connect(database="db", schema="aq")  # noqa: E731
            yield ResultsStore(Warehouse.for_dialect("snowflake", connect), "aq")


@pytest.fixture(params=["duckdb", "postgres", "snowflake"])
def store(request, tmp_path):
    yield from open_store(request.param, request, tmp_path)


@pytest.fixture(params=["duckdb", "postgres"])
def read_only_store(request, tmp_path):
    """The warehouses with a read-only transaction (Snowflake has none: there the role is the limit)."""
    yield from open_store(request.param, request, tmp_path)


def test_check_series_keep_each_dates_latest_row_and_page_by_check(store):
    seed(store)
    history = ResultsHistory(store)
    page = history.check_series("pipe", limit=2)
    assert [s.key for s in page.items] == [("orders", -1, "fresh", "check"), ("orders", -1, "id_not_null", "check")]
    assert (page.total, page.has_more, page.has_previous) == (5, True, False)  # 4 checks and the condition
    strip = page.items[1]
    assert [c.logical_date for c in strip.cells] == DATES  # one cell a date, oldest first
    assert strip.cells[2].outcome == "passed" and strip.cells[2].run_id == "scheduled__2026-01-03"  # not `old`
    assert [c.verdict for c in strip.cells].count("failed") == 1 and strip.cells[4].failing_rows == 30
    assert [c.verdict for c in page.items[0].cells].count("warning") == 1  # a failed warning-severity check
    second = history.check_series("pipe", limit=2, offset=2)
    assert [s.key for s in second.items] == [("publish", -1, "when", "when"), ("regions", 0, "enough", "check")]
    assert second.items[0].role == "when" and second.items[0].cells[0].role == "when"
    assert second.has_previous and second.has_more
    last = history.check_series("pipe", limit=2, offset=4)
    assert [s.key for s in last.items] == [("regions", 1, "enough", "check")] and not last.has_more
    assert last.items[0].cells[-1].verdict == "error"
    assert history.check_series("pipe", limit=2, offset=10).items == []
    assert history.check_series("nobody").items == []


def test_series_filters_step_and_date_range_and_cap_points(store):
    seed(store)
    history = ResultsHistory(store)
    window = Window(step="orders", start=DATES[2], end=DATES[5])  # [start, end)
    page = history.check_series("pipe", window)
    assert [s.name for s in page.items] == ["fresh", "id_not_null"]
    assert all([c.logical_date for c in s.cells] == DATES[2:5] for s in page.items)
    newest = history.metric_series("pipe", Window(step="orders"), points=3)
    assert all([p.logical_date for p in s.points] == DATES[-3:] for s in newest.items)
    aware = Window(start=datetime.datetime(2026, 1, 9, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=2))))
    assert [c.logical_date for c in history.check_series("pipe", aware).items[0].cells] == DATES[-2:]


def test_metric_series_parse_static_bounds_learned_band_and_max_change(store):
    seed(store)
    page = ResultsHistory(store).metric_series("pipe")
    mean, rows = page.items
    assert (mean.key, rows.key, page.total) == (("orders", -1, "mean_amount"), ("orders", -1, "rows"), 2)
    learning, learned = mean.points[0].bounds, mean.points[5].bounds
    assert (learning.minimum, learning.maximum, learning.band) == (5.0, 15.0, None)  # still learning
    assert learned.band == pytest.approx((8.5, 11.5)) and learned.max_zscore == 3.0
    broken = [p for p in mean.points if p.broken]
    assert [p.logical_date for p in broken] == [DATES[8]] and broken[0].value == 20.0
    assert rows.points[2].value == 1002.0  # the date's latest row, not the older duplicate
    assert rows.points[0].bounds.band == pytest.approx((900.0, 1100.0))  # previous ± max_change


def test_check_timeline_pages_rows_newest_date_first(store):
    seed(store)
    history = ResultsHistory(store)
    first = history.check_timeline("pipe", limit=3)
    assert [(r.logical_date, r.step, r.map_index, r.name) for r in first.items] == [
        (DATES[9], "orders", -1, "fresh"), (DATES[9], "orders", -1, "id_not_null"),
        (DATES[9], "publish", -1, "when")]  # fmt: skip
    assert first.has_more and first.total is None
    everything = history.check_timeline("pipe", limit=MAX_ROWS)
    assert everything.total == 41 and not everything.has_more  # 4 checks x 10 dates and the condition
    assert history.check_timeline("pipe", limit=10**9).limit == MAX_ROWS  # bounded, whatever is asked
    window = Window(step="regions", start=DATES[9])
    assert [r.outcome for r in history.check_timeline("pipe", window).items] == ["passed", "error"]
    assert history.check_timeline("pipe", limit=5, offset=40).items[0].name == "enough"


def test_a_runs_results_with_samples_capped_and_sensitive_columns_dropped(store):
    seed(store)
    history = ResultsHistory(store)
    checks, metrics = history.run_results("pipe", DATES[4], ["orders"], sensitive={"orders": ["EMAIL"]})
    assert [c.result.name for c in checks] == ["fresh", "id_not_null"] and len(metrics) == 2
    failed = checks[1]
    assert failed.sample.columns == ["id", "amount"] and failed.sample.hidden == ["email"]
    assert len(failed.sample.rows) == 20 and failed.sample.truncated and checks[0].sample is None
    samples = history.failing_samples("pipe", DATES[4])
    assert [s.result.name for s in samples] == ["id_not_null"]
    assert samples[0].sample.columns == ["id", "email", "amount"]  # without a sensitive list, as written
    items, _ = history.run_results("pipe", DATES[9], ["regions"], map_index=1)
    assert [(c.result.map_index, c.result.outcome) for c in items] == [(1, "error")]
    assert history.run_results("pipe", DATES[0], []) == ([], [])
    assert history.run_results("pipe", DATES[0] + datetime.timedelta(minutes=1)) == ([], [])


def test_the_overview_counts_each_pipelines_latest_date(store):
    seed(store)
    seed_other = [check_row("other", DATES[3], "s", "a", "failed", "warning"),
                  check_row("other", DATES[3], "s", "b", "error"), check_row("other", DATES[2], "s", "c")]  # fmt: skip
    _insert(store, CHECKS_TABLE, seed_other)
    found = ResultsHistory(store).overview(["pipe", "other", "never_ran"])
    assert set(found) == {"pipe", "other"}
    pipe, other = found["pipe"], found["other"]
    # day 10: 3 checks passed, region 1 errored; 2 metrics passed; the condition is not counted
    assert (pipe.logical_date, pipe.passed, pipe.failed, pipe.warning, pipe.error) == (DATES[9], 5, 0, 0, 1)
    assert (other.logical_date, other.passed, other.warning, other.error, other.total) == (DATES[3], 0, 1, 1, 2)
    assert ResultsHistory(store).overview([]) == {}


def test_steps_and_the_cli_rows(store):
    seed(store)
    history = ResultsHistory(store)
    assert history.steps("pipe") == ["orders", "publish", "regions"]
    columns, rows = history.newest_rows(METRICS_TABLE, "pipe", step="orders", last=3)
    assert columns[-2:] == ["value", "message"] and len(rows) == 3
    columns, rows = history.newest_rows(CHECKS_TABLE, "pipe", run_id="old", last=5)
    assert rows[0][columns.index("outcome")] == "failed" and rows[0][columns.index("map_index")] == -1
    # a step's rows and its `when:` verdict's (role `when`, under the step's own name)
    columns, rows = history.newest_rows(CHECKS_TABLE, "pipe", step="publish")
    assert [(r[columns.index("step")], r[columns.index("role")], r[columns.index("outcome")]) for r in rows] == [
        ("publish", "when", "skipped")]  # fmt: skip
    columns, rows = history.newest_rows(CHECKS_TABLE, "pipe", step="regions", last=2)
    assert [(r[columns.index("map_index")], r[columns.index("item_label")]) for r in rows] == [(0, "us"), (1, "eu")]
    # a failed check's sample, parsed; the sensitive columns of its step dropped
    columns, rows = history.newest_rows(CHECKS_TABLE, "pipe", step="orders", last=100, sensitive={"orders": ["email"]})
    sample = next(r[columns.index("sample")] for r in rows if r[columns.index("outcome")] == "failed" and
                  r[columns.index("sample")] is not None)  # fmt: skip
    assert (sample.columns, sample.hidden) == (["id", "amount"], ["email"])
    assert len(sample.rows) == 20 and sample.truncated
    with pytest.raises(ValueError, match="not a results table"):
        history.newest_rows("dag_run", "pipe")


def test_reads_cannot_write(read_only_store):
    """The read model's queries run in a read-only transaction where the warehouse has one."""
    store = read_only_store
    seed(store)
    history = ResultsHistory(store)
    with pytest.raises(Exception, match=r"(?i)read.only"):
        history.fetch(exp.delete(store.statements.table(CHECKS_TABLE)))
    assert history.check_timeline("pipe", limit=1).items  # nothing was deleted, the connection is usable


def test_a_missing_table_is_nothing_recorded_yet(store):
    history = ResultsHistory(store)
    with pytest.raises(Exception) as caught:
        history.check_series("pipe")
    assert store.warehouse.failure_kind(caught.value) == "missing"


def test_bounds_and_samples_parse_what_rows_hold():
    assert Bounds.parse(None) == Bounds() and Bounds.parse("not json") == Bounds() and Bounds.parse("[1]") == Bounds()
    bounds = Bounds.parse('{"bounds": {"min": 1}, "history": {"mean": 5, "stddev": 2, "max_zscore": 2}, '
                          '"max_change": 0.5, "previous": 4}')  # fmt: skip
    assert (bounds.minimum, bounds.maximum) == (1.0, None)
    assert bounds.band == pytest.approx((2.0, 6.0))  # mean ± 2 sd = (1, 9), narrowed by previous ± 50% = (2, 6)
    assert Bounds.parse('{"history": {"mean": "NaN", "stddev": 1, "max_zscore": 3}}').band is None
    assert Bounds.parse('{"bounds": {"max": "x"}}').maximum is None
    assert parse_sample("[]") is None and parse_sample("{}") is None and parse_sample(None) is None
    sample = parse_sample('[{"a": 1, "B": 2}, {"c": 3}, 7]', sensitive=["b"])
    assert sample.columns == ["a", "c", "value"] and sample.hidden == ["B"]
    assert sample.rows == [[1, None, None], [None, 3, None], [None, None, 7]]
    assert [verdict(*pair) for pair in [("passed", "error"), ("failed", "warning"), ("failed", "error"),
            ("error", "warning"), ("skipped", None)]] == ["passed", "warning", "failed", "error", "other"]  # fmt: skip
    assert MAX_SERIES == 50


def test_a_pages_reads_share_one_connection_and_can_leave_passed_messages_out(store):
    seed(store)
    opened = []
    connect = store.warehouse.connect
    store.warehouse.connect = lambda wait=None: opened.append(wait) or connect(wait)
    history = ResultsHistory(store)
    with history.reading():
        history.steps("pipe")
        page = history.check_series("pipe", messages=False)
        metrics = history.metric_series("pipe", messages=False)
    assert len(opened) == 1 and opened[0] == history.wait  # a file-backed DuckDB's lock: waited for briefly
    cells = page.items[1].cells
    assert cells[0].message is None and cells[4].message == "id_not_null failed"  # only what did not pass
    assert metrics.items[0].points[8].message == "mean_amount = 20.0" and metrics.items[0].points[0].message is None
    history.steps("pipe")  # outside the block: a connection of its own
    assert len(opened) == 2
    ResultsHistory(store).check_timeline("pipe")  # a new reader looks the table's columns up: same connection
    assert len(opened) == 3


def _tables_of_earlier_versions(store: ResultsStore) -> list[str]:
    """The results tables as versions before ``item_label`` made them; their column names."""
    warehouse = store.warehouse
    with warehouse.writing(begin=False) as session:
        session.execute(exp.Create(this=warehouse.table(store.schema), kind="SCHEMA", exists=True))
        for table, columns in COLUMNS.items():
            defs = [exp.ColumnDef(this=exp.to_identifier(c), kind=warehouse.portable_type(k)) for c, k in columns
                    if c not in ("item_label", "role")]  # fmt: skip
            session.execute(exp.Create(this=exp.Schema(this=store.statements.table(table), expressions=defs),
                                       kind="TABLE"))  # fmt: skip
    return [c for c, _ in COLUMNS[CHECKS_TABLE] if c not in ("item_label", "role")]


def _columns_of(store: ResultsStore, table: str) -> set[str]:
    with store.warehouse.reading() as session:
        return table_columns(session, store.statements, table)


def test_tables_of_earlier_versions_are_read_as_they_are_and_migrated_by_the_first_write(store):
    """A table without ``item_label`` (an earlier version's) reads with the label NULL (the item
    named by its map index alone), readers never alter it; the first write adds the column
    (additive, idempotent: once, however many writes), and old and new rows read together."""
    names = _tables_of_earlier_versions(store)
    old = [check_row("pipe", DATES[0], "regions", "enough", map_index=i) for i in range(2)]
    _insert(store, CHECKS_TABLE, old, names)
    _insert(store, METRICS_TABLE, [metric_row("pipe", DATES[0], "regions", "rows", 5.0, map_index=1)],
            [c for c, _ in COLUMNS[METRICS_TABLE] if c != "item_label"])  # fmt: skip
    _insert(store, CHECKS_TABLE, [check_row("pipe", DATES[0], "regions.when", "when", "skipped", kind="when")], names)
    history = ResultsHistory(store)
    with history.reading():
        strips = history.check_series("pipe").items
        charts = history.metric_series("pipe").items
        timeline = history.check_timeline("pipe").items
        checks, metrics = history.run_results("pipe", DATES[0])
        columns, rows = history.newest_rows(CHECKS_TABLE, "pipe", step="regions")
    assert [(s.step_label, s.item_label, s.role) for s in strips] == [
        ("regions[0]", None, "check"), ("regions[1]", None, "check"), ("regions.when", None, "when")]  # fmt: skip
    assert [s.step_label for s in charts] == ["regions[1]"] and [(r.step_label, r.role) for r in timeline] == [
        ("regions[0]", "check"), ("regions[1]", "check"), ("regions.when", "when")]  # fmt: skip
    assert [c.result.step_label for c in checks] == ["regions[0]", "regions[1]", "regions.when"]
    assert metrics[0].item_label is None
    assert [(r[columns.index("item_label")], r[columns.index("role")]) for r in rows] == [(None, "check")] * 2
    assert ResultsHistory(store).overview(["pipe"])["pipe"].total == 3  # the verdict is not counted
    assert not {"item_label", "role"} & _columns_of(store, CHECKS_TABLE)  # reading migrated nothing

    store.ensure_tables()  # what every checks, metrics and `when:` task does before it writes
    store.ensure_tables()  # idempotent
    assert {"item_label", "role"} <= _columns_of(store, CHECKS_TABLE)
    assert {"item_label"} <= _columns_of(store, METRICS_TABLE)
    key = {"dag_id": "pipe", "run_id": "new", "step": "regions", "map_index": 1, "logical_date": DATES[1]}
    store.replace(CHECKS_TABLE, key, [{**key, "name": "enough", "kind": "row_count", "outcome": "passed",
                                       "item_label": "eu", "created_at": DATES[1]}])  # fmt: skip
    strips = history.check_series("pipe").items  # the same reader: it had not remembered the old columns
    assert [(s.step_label, s.name, [c.item_label for c in s.cells]) for s in strips] == [
        ("regions", "when", [None]), ("regions[0]", "enough", [None]),
        ("regions[1:eu]", "enough", [None, "eu"])]  # fmt: skip
    columns, rows = history.newest_rows(CHECKS_TABLE, "pipe", step="regions")
    index, label, role = (columns.index(c) for c in ("map_index", "item_label", "role"))
    assert [(r[index], r[label], r[role]) for r in rows] == [
        (1, "eu", "check"), (-1, None, "when"), (0, None, "check"), (1, None, "check")]  # fmt: skip


def deployment_row(date, endpoint, version, outcome, previous=None, try_number=1, dag_id="pipe", **extra) -> dict:
    return {"dag_id": dag_id, "run_id": f"scheduled__{date:%Y-%m-%d}", "step": "train", "endpoint": endpoint,
            "version": version, "previous_version": previous, "format": "sklearn", "target": "local",
            "outcome": outcome, "reason": extra.pop("reason", None), "smoke_rows": 5,
            "smoke_latency_ms": extra.pop("latency", 12.5), "map_index": -1, "try_number": try_number,
            "logical_date": date, "created_at": date + datetime.timedelta(hours=2, minutes=try_number),
            **extra}  # fmt: skip


def test_promotion_attempts_newest_first_and_each_endpoints_latest(store):
    """Every try is a row; an endpoint's latest attempt says what it serves since: the new
    version when promoted or unchanged, the previous one when rolled back or failed."""
    store.ensure_tables()
    _insert(store, DEPLOYMENTS_TABLE, [
        deployment_row(DATES[0], "churn", "v1", "promoted"),
        deployment_row(DATES[1], "churn", "v1", "unchanged", previous="v1"),
        deployment_row(DATES[2], "churn", "v2", "failed", previous="v1", reason="ConnectionError: refused"),
        deployment_row(DATES[2], "churn", "v2", "rolled_back", previous="v1", try_number=2,
                       reason="the response has 3 outputs for 5 rows"),
        deployment_row(DATES[3], "upsell", "u1", "promoted", latency=None),
        deployment_row(DATES[3], "churn", "v9", "promoted", dag_id="other"),
    ])  # fmt: skip
    history = ResultsHistory(store)
    attempts = history.deployments("pipe")
    assert [(d.endpoint, d.version, d.outcome, d.try_number) for d in attempts] == [
        ("upsell", "u1", "promoted", 1), ("churn", "v2", "rolled_back", 2), ("churn", "v2", "failed", 1),
        ("churn", "v1", "unchanged", 1), ("churn", "v1", "promoted", 1)]  # fmt: skip
    latest = attempts[1]
    assert latest.reason == "the response has 3 outputs for 5 rows" and latest.smoke_latency_ms == 12.5
    assert latest.logical_date == DATES[2] and latest.run_id == f"scheduled__{DATES[2]:%Y-%m-%d}"
    assert (latest.verdict, latest.serving) == ("warning", "v1")
    assert [(d.verdict, d.serving) for d in attempts[2:]] == [("failed", "v1"), ("passed", "v1"), ("passed", "v1")]
    assert attempts[0].smoke_latency_ms is None and attempts[0].as_dict()["verdict"] == "passed"

    assert [d.version for d in history.deployments("pipe", endpoint="churn", last=2)] == ["v2", "v2"]
    assert [d.outcome for d in history.deployments("pipe", run_id=f"scheduled__{DATES[1]:%Y-%m-%d}")] == ["unchanged"]
    endpoints = history.endpoints("pipe")
    assert [(e.endpoint, e.outcome, e.serving) for e in endpoints] == [
        ("churn", "rolled_back", "v1"), ("upsell", "promoted", "u1")]  # fmt: skip
    assert [(e.endpoint, e.serving) for e in history.endpoints("other")] == [("churn", "v9")]
    assert history.endpoints("nobody") == [] and history.deployments("nobody") == []


def test_a_warehouse_without_the_deployments_table_has_no_deployments(store):
    """Tables of a release before `serve:` (checks and metrics only): no deployments, nothing
    created by the read, and the page's other reads in the same session still answer."""
    seed(store)
    with store.warehouse.writing(begin=False) as session:
        session.execute(f"DROP TABLE {store.warehouse.quote_table(f'{store.schema}.{DEPLOYMENTS_TABLE}')}")
    history = ResultsHistory(store)
    with history.reading():
        assert history.deployments("pipe") == [] and history.endpoints("pipe") == []
        assert history.check_timeline("pipe", limit=1).items  # the session goes on after the missing table
    with store.warehouse.reading() as session, pytest.raises(Exception) as caught:
        table_columns(session, store.statements, DEPLOYMENTS_TABLE)
    assert store.warehouse.failure_kind(caught.value) == "missing"  # the reader did not create it


def test_the_results_of_several_dates_and_steps_in_one_read(store):
    """A page's promotion attempts each read their step's results on their date: one query per
    table for every (date, step) pair, each verdict its date's latest row."""
    seed(store)
    history = ResultsHistory(store)
    pairs = [(DATES[4], "orders"), (DATES[9], "regions")]
    checks, metrics = history.run_results("pipe", None, dated_steps=pairs, sample_rows=0)
    assert sorted((c.result.logical_date, c.result.step, c.result.name, c.result.outcome) for c in checks) == [
        (DATES[4], "orders", "fresh", "passed"), (DATES[4], "orders", "id_not_null", "failed"),
        (DATES[9], "regions", "enough", "error"), (DATES[9], "regions", "enough", "passed")]  # fmt: skip
    assert sorted((m.point.logical_date, m.name) for m in metrics) == [(DATES[4], "mean_amount"), (DATES[4], "rows")]
    assert history.run_results("pipe", None, dated_steps=[]) == ([], [])
