"""Monitoring that a re-run, a retry or a backfill cannot fool.

Each test is named after the trick it defeats. The real operators run inside real DAG runs
(``dag.test()``, local runner) against each warehouse that holds the results: DuckDB, a real
PostgreSQL, and Snowflake (the real SnowflakeHook over fakesnow). Rows are counted and outcomes
read back from the results tables themselves.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from types import SimpleNamespace

import pytest

from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.warehouse import Warehouse

SNOWFLAKE_CONN = {"conn_type": "snowflake", "login": "aq", "password": "test", "schema": "mon",
                  "extra": {"account": "aq-test", "database": "mon_db", "warehouse": "wh"}}  # fmt: skip

STEPS = '''
import datetime, json, os
import pyarrow as pa

def measured(ds):
    """One row whose `x` is the value the test planned for this date."""
    values = json.loads(open(os.environ["AQ_MON_VALUES"]).read())
    return pa.table({"x": [float(values[ds])], "id": [1]})

def stamped(ds):
    """Rows whose newest `updated_at` is the moment the test planned for this date."""
    stamps = json.loads(open(os.environ["AQ_MON_STAMPS"]).read())
    newest = datetime.datetime.fromisoformat(stamps[ds])
    at = [newest - datetime.timedelta(days=3), newest]
    return pa.table({"updated_at": pa.array(at, pa.timestamp("us", tz="UTC")), "id": [1, 2]})
'''

BACKENDS = ["duckdb", "postgres", "snowflake"]
NEGATIVE = re.compile(r"-\d+(\.\d+)? h")  # "-6520.0 h old"


class Results:
    """The warehouse the results go to, for one test: its connection, its schema, its rows."""

    def __init__(self, name: str, schema: str):
        self.name = name
        self.schema = schema

    def warehouse(self) -> Warehouse:
        return Warehouse.from_conn_id("aq_warehouse")

    def store(self) -> ResultsStore:
        store = ResultsStore(self.warehouse(), self.schema)
        store.ensure_tables()
        return store

    def rows(self, table: str, columns: str, where: str = "1 = 1", order: str = "1") -> list[tuple]:
        sql = f"SELECT {columns} FROM {self.schema}.{table} WHERE {where} ORDER BY {order}"
        with self.warehouse().reading() as session:
            return session.rows(sql)

    def count(self, table: str, dag_id: str) -> int:
        return self.rows(table, "count(*)", f"dag_id = '{dag_id}'")[0][0]

    def insert(self, table: str, rows: list[dict]) -> None:
        """Rows written as an earlier version wrote them: keyed by run id, so a date's earlier
        sets were never deleted."""
        store = self.store()
        with store.warehouse.writing() as session:
            for row in rows:
                marks = ", ".join([store.placeholder] * len(row))
                sql = f"INSERT INTO {self.schema}.{table} ({', '.join(row)}) VALUES ({marks})"
                session.execute(sql, tuple(row.values()))

    def seed(self, dag_id: str, step: str, name: str, values: dict[str, tuple[float, str]]) -> None:
        """Metric rows as earlier runs would have left them: {date: (value, outcome)}."""
        store = self.store()
        for day, (value, outcome) in values.items():
            when = datetime.datetime.fromisoformat(day)
            key = {"dag_id": dag_id, "run_id": f"seeded__{day}", "step": step, "map_index": -1, "logical_date": when}
            row = {**key, "name": name, "kind": "sum", "value": value, "outcome": outcome, "severity": "error",
                   "created_at": when + datetime.timedelta(hours=1), "try_number": 1}  # fmt: skip
            store.replace(METRICS_TABLE, key, [row])


@pytest.fixture(params=BACKENDS)
def results(request, monkeypatch, tmp_path):
    """Each warehouse, with a results schema of the test's own."""
    schema = f"aq_mon_{uuid.uuid4().hex[:8]}"
    if request.param == "duckdb":
        monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb",
                                                                     "host": str(tmp_path / "wh.duckdb")}))  # fmt: skip
        yield Results("duckdb", schema)
    elif request.param == "postgres":
        import psycopg2

        dsn = request.getfixturevalue("postgres_dsn")
        monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", dsn.replace("postgresql://", "postgres://"))
        try:
            yield Results("postgres", schema)
        finally:
            with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    else:
        import fakesnow

        monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps(SNOWFLAKE_CONN))
        with fakesnow.patch():
            yield Results("snowflake", schema)


@pytest.fixture
def steps(run_dag, tmp_path, monkeypatch):
    """The step module, and functions planning each date's value (or newest timestamp)."""
    folder = tmp_path / "mon_steps"
    folder.mkdir()
    (folder / "mon_steps.py").write_text(STEPS)
    monkeypatch.setenv("PYTHONPATH", f"{folder}:{__import__('os').environ['PYTHONPATH']}")
    values, stamps = tmp_path / "values.json", tmp_path / "stamps.json"
    monkeypatch.setenv("AQ_MON_VALUES", str(values))
    monkeypatch.setenv("AQ_MON_STAMPS", str(stamps))
    planned: dict[str, dict] = {"values": {}, "stamps": {}}

    def plan(kind: str, day: str, value) -> None:
        planned[kind][day] = value
        path = values if kind == "values" else stamps
        path.write_text(json.dumps(planned[kind], default=str))

    return plan


def metric_spec(name: str, schema: str, bound: str, schedule: str = "null") -> str:
    return f"""
pipeline: {name}
schedule: {schedule}
results_schema: {schema}
steps:
  level:
    python: mon_steps:measured
    checks:
      - {{name: one_row, row_count: {{min: 1, max: 1}}}}
      - {{name: id_unique, unique: id}}
    metrics:
      - {{name: level, sum: x, {bound}, severity: error}}
"""


def freshness_spec(name: str, schema: str, schedule: str = "null") -> str:
    return f"""
pipeline: {name}
schedule: {schedule}
start_date: 2026-01-01
results_schema: {schema}
steps:
  feed:
    python: mon_steps:stamped
    checks:
      - {{name: feed_fresh, freshness: {{column: updated_at, max_age: 1d}}}}
"""


def days(first: str, count: int) -> list[str]:
    start = datetime.date.fromisoformat(first)
    return [(start + datetime.timedelta(days=i)).isoformat() for i in range(count)]


def metric_row(results: Results, dag_id: str, day: str) -> tuple:
    """(value, outcome, message, expected, run_id) of the date's `level` row; exactly one."""
    found = results.rows(METRICS_TABLE, "value, outcome, message, expected, run_id",
                         f"dag_id = '{dag_id}' AND name = 'level' AND logical_date = '{day} 00:00:00'")  # fmt: skip
    assert len(found) == 1, found
    value, outcome, message, expected, run_id = found[0]
    return value, outcome, message, json.loads(expected), run_id


# --- the key: a date keeps one set of rows ---------------------------------------------------


def test_rerunning_a_date_replaces_its_rows_instead_of_duplicating(run_dag, steps, results):
    name = f"mon_rerun_{results.name}"
    spec = metric_spec(name, results.schema, "bounds: {min: 0}")
    for day in ("2026-03-01", "2026-03-02"):
        steps("values", day, 5.0)
    # a table made by an earlier version, keyed by run id: two runs of 2026-03-01 left two sets
    for legacy in ("manual__old1", "manual__old2"):
        key = {"dag_id": name, "run_id": legacy, "step": "level", "map_index": -1,
               "logical_date": datetime.datetime(2026, 3, 1)}  # fmt: skip
        results.insert(CHECKS_TABLE, [{**key, "name": n, "kind": "unique", "outcome": "failed"}
                                      for n in ("one_row", "id_unique")])  # fmt: skip
        results.insert(METRICS_TABLE, [{**key, "name": "level", "kind": "sum", "outcome": "failed", "value": 9.0}])
    assert (results.count(CHECKS_TABLE, name), results.count(METRICS_TABLE, name)) == (4, 2)

    _, first, states = run_dag(name, spec, date="2026-03-01")
    assert set(states.values()) == {"success"}, states
    # the run replaced the date's rows, old duplicates included: 2 checks and 1 metric
    assert (results.count(CHECKS_TABLE, name), results.count(METRICS_TABLE, name)) == (2, 1)

    _, second, _ = run_dag(name, spec, date="2026-03-01")  # a re-run of the date: a new run id
    assert second.run_id != first.run_id
    assert (results.count(CHECKS_TABLE, name), results.count(METRICS_TABLE, name)) == (2, 1)
    assert results.rows(CHECKS_TABLE, "DISTINCT run_id, try_number", f"dag_id = '{name}'") == [(second.run_id, 1)]
    assert metric_row(results, name, "2026-03-01")[:2] == (5.0, "passed")

    run_dag(name, spec, date="2026-03-02")  # another date adds its own set
    assert (results.count(CHECKS_TABLE, name), results.count(METRICS_TABLE, name)) == (4, 2)


def test_a_retry_of_the_same_task_replaces_its_rows_and_records_its_try(run_dag, steps, results):
    from airflow.utils.session import create_session

    name = f"mon_retry_{results.name}"
    steps("values", "2026-03-01", 5.0)
    dag, dag_run, _ = run_dag(name, metric_spec(name, results.schema, "bounds: {min: 0}"), date="2026-03-01")
    task = dag.get_task("level.metrics")
    with create_session() as session:
        ti = next(t for t in dag_run.get_task_instances(session=session) if t.task_id == "level.metrics")
    retry = SimpleNamespace(dag_id=ti.dag_id, run_id=ti.run_id, map_index=ti.map_index, try_number=2)
    context = {"ti": retry, "run_id": dag_run.run_id, "logical_date": dag_run.logical_date, "dag_run": dag_run,
               "data_interval_end": dag_run.data_interval_end, "params": {}}  # fmt: skip
    task.render_template_fields(context)
    task.execute(context)
    assert results.rows(METRICS_TABLE, "name, try_number, run_id", f"dag_id = '{name}'") == [
        ("level", 2, dag_run.run_id)
    ]


# --- what a learned bound learns from ----------------------------------------------------------


def test_rerunning_a_drifted_day_does_not_teach_the_bound_its_own_drift(run_dag, steps, results):
    name = f"mon_drift_{results.name}"
    history = dict(zip(days("2026-02-20", 8), [5.0, 5.2, 4.9, 5.1, 4.8, 5.0, 5.3, 4.9], strict=True))
    results.seed(name, "level", "level", {day: (value, "passed") for day, value in history.items()})
    spec = metric_spec(name, results.schema, "history: {window: 14, max_zscore: 3}")
    steps("values", "2026-03-01", 49.7)

    _, _, states = run_dag(name, spec, date="2026-03-01")
    assert states["level.metrics"] == "failed"
    value, outcome, message, expected, _ = metric_row(results, name, "2026-03-01")
    assert (value, outcome) == (49.7, "failed") and "standard deviations from the mean 5.025" in message
    assert expected["history"]["values"] == 8

    _, _, states = run_dag(name, spec, date="2026-03-01")  # re-run the drifted day: still an alarm
    assert states["level.metrics"] == "failed"
    value, outcome, message, expected, _ = metric_row(results, name, "2026-03-01")
    assert (value, outcome) == (49.7, "failed"), message
    assert expected["history"]["mean"] == pytest.approx(5.025)  # learned from the 8 earlier dates only

    # nor does the next day learn the drift: the failed 49.7 is not history
    steps("values", "2026-03-02", 49.5)
    run_dag(name, spec, date="2026-03-02")
    value, outcome, message, expected, _ = metric_row(results, name, "2026-03-02")
    assert outcome == "failed" and expected["history"]["values"] == 8, message


def test_a_backfill_never_learns_from_later_dates(run_dag, steps, results):
    name = f"mon_backfill_{results.name}"
    early = dict(zip(days("2026-01-01", 7), [5.0, 5.2, 4.9, 5.1, 4.8, 5.0, 5.3], strict=True))
    late = dict(zip(days("2026-02-01", 10), [100.0, 101.0, 99.0, 100.5, 98.0, 102.0, 100.0, 99.5, 101.5, 100.0],
                    strict=True))  # fmt: skip
    results.seed(name, "level", "level", {d: (v, "passed") for d, v in {**early, **late}.items()})
    spec = metric_spec(name, results.schema, "history: {window: 14, max_zscore: 3}")

    steps("values", "2026-01-08", 5.05)  # ordinary for January, 30 sd below February
    _, _, states = run_dag(name, spec, date="2026-01-08")
    assert states["level.metrics"] == "success"
    _, outcome, message, expected, _ = metric_row(results, name, "2026-01-08")
    assert outcome == "passed", message
    assert expected["history"]["values"] == 7 and expected["history"]["mean"] == pytest.approx(5.043, abs=1e-3)

    steps("values", "2026-01-09", 100.0)  # February's level, backfilled into January: an alarm
    _, _, states = run_dag(name, spec, date="2026-01-09")
    assert states["level.metrics"] == "failed"
    assert metric_row(results, name, "2026-01-09")[1] == "failed"

    steps("values", "2025-12-31", 100.0)  # before anything: nothing earlier to learn from
    _, _, states = run_dag(name, spec, date="2025-12-31")
    _, outcome, message, _, _ = metric_row(results, name, "2025-12-31")
    assert (outcome, states["level.metrics"]) == ("passed", "success")
    assert "learning: 0 of 7 values" in message


def test_the_window_counts_dates_not_rows_and_a_dates_latest_verdict_wins(steps, results, run_dag):
    name = f"mon_window_{results.name}"
    store = results.store()
    # an earlier version's table: 2026-03-01..03 each written by 3 runs (the last one wins); on
    # 03-03 the last run failed, so the date teaches nothing even though earlier runs passed
    for day in days("2026-03-01", 3):
        for n, outcome in enumerate(["passed", "passed", "failed" if day == "2026-03-03" else "passed"]):
            when = datetime.datetime.fromisoformat(day)
            row = {"dag_id": name, "run_id": f"old{n}", "step": "level", "map_index": -1, "logical_date": when,
                   "name": "level", "kind": "sum", "value": 5.0 + n, "outcome": outcome,
                   "created_at": when + datetime.timedelta(hours=n)}  # fmt: skip
            results.insert(METRICS_TABLE, [row])
    assert store.metric_history(name, "level", "level", datetime.datetime(2026, 3, 4), 14) == [7.0, 7.0]
    steps("values", "2026-03-04", 7.0)
    run_dag(name, metric_spec(name, results.schema, "history: {window: 14, max_zscore: 3}"), date="2026-03-04")
    _, outcome, message, expected, _ = metric_row(results, name, "2026-03-04")
    assert outcome == "passed" and "learning: 2 of 7 values" in message and expected["history"]["values"] == 2


def test_max_change_compares_with_the_latest_earlier_dates_passed_value(run_dag, steps, results):
    name = f"mon_change_{results.name}"
    results.seed(name, "level", "level", {"2026-03-01": (100.0, "passed"), "2026-03-02": (200.0, "failed"),
                                          "2026-03-05": (50.0, "passed")})  # fmt: skip
    spec = metric_spec(name, results.schema, "max_change: 20%")
    steps("values", "2026-03-03", 110.0)  # 10% from 03-01's 100; 45% from the failed 200; 120% from 03-05's 50
    _, _, states = run_dag(name, spec, date="2026-03-03")
    _, outcome, message, expected, _ = metric_row(results, name, "2026-03-03")
    assert (outcome, states["level.metrics"], expected["previous"]) == ("passed", "success", 100.0), message
    steps("values", "2026-03-04", 150.0)  # 36% from 03-03's 110 (passed, so now the latest)
    _, _, states = run_dag(name, spec, date="2026-03-04")
    _, outcome, message, expected, _ = metric_row(results, name, "2026-03-04")
    assert (outcome, expected["previous"]) == ("failed", 110.0) and "changed 36.4% from 110" in message


# --- when a learned bound starts ---------------------------------------------------------------


def test_no_learned_alarm_before_the_minimum_history(run_dag, steps, results):
    name = f"mon_minimum_{results.name}"
    spec = metric_spec(name, results.schema, "history: {window: 14, max_zscore: 3}")
    # three ordinary days, then a day 4 whose z against them is 4.85: noise at n=3, not drift
    for day, value in zip(days("2026-03-01", 4), [5.0, 5.1, 4.9, 5.485], strict=True):
        steps("values", day, value)
        _, _, states = run_dag(name, spec, date=day)
        assert states["level.metrics"] == "success", day
    value, outcome, message, expected, _ = metric_row(results, name, "2026-03-04")
    assert outcome == "passed" and message == "level = 5.485 (learning: 3 of 7 values)"
    assert expected["history"] == {"window": 14, "max_zscore": 3.0, "min_history": 7, "values": 3}

    # with its 7 values learned, the bound is on: a 5 sd day alarms
    for day, value in zip(days("2026-03-05", 3), [5.05, 4.95, 5.0], strict=True):
        steps("values", day, value)
        run_dag(name, spec, date=day)
    steps("values", "2026-03-08", 6.0)
    _, _, states = run_dag(name, spec, date="2026-03-08")
    value, outcome, message, expected, _ = metric_row(results, name, "2026-03-08")
    assert (outcome, states["level.metrics"], expected["history"]["values"]) == ("failed", "failed", 7), message


def test_min_history_is_configurable_and_bounded_by_the_window():
    from aq_airflow.pipeline_spec.models import Metric
    from aq_airflow.plan.planner import compile_metric

    def plan(history):
        return compile_metric(Metric.model_validate({"name": "m", "count": "*", "history": history}))

    assert plan({"window": 14, "max_zscore": 3}).min_history == 7
    assert plan({"window": 5, "max_zscore": 3}).min_history == 5  # never more than the window holds
    assert plan({"window": 14, "max_zscore": 3, "min_history": 3}).min_history == 3
    with pytest.raises(ValueError, match="cannot exceed `window`"):
        plan({"window": 5, "max_zscore": 3, "min_history": 6})


def test_explicit_min_history_3_alarms_on_day_4(steps, results, run_dag):
    name = f"mon_min3_{results.name}"
    results.seed(name, "level", "level", {"2026-03-01": (5.0, "passed"), "2026-03-02": (5.1, "passed"),
                                          "2026-03-03": (4.9, "passed")})  # fmt: skip
    steps("values", "2026-03-04", 5.485)
    spec = metric_spec(name, results.schema, "history: {window: 14, max_zscore: 3, min_history: 3}")
    _, _, states = run_dag(name, spec, date="2026-03-04")
    _, outcome, message, _, _ = metric_row(results, name, "2026-03-04")
    assert (outcome, states["level.metrics"]) == ("failed", "failed") and "4.85 standard deviations" in message


# --- freshness --------------------------------------------------------------------------------


def _freshness(results: Results, dag_id: str) -> tuple[str, str, dict]:
    ((outcome, message, details),) = results.rows(CHECKS_TABLE, "outcome, message, details",
                                                  f"dag_id = '{dag_id}' AND name = 'feed_fresh'")  # fmt: skip
    return outcome, message, json.loads(details)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def test_data_newer_than_the_logical_date_is_fresh_not_negative_hours_old(run_dag, steps, results):
    """A live run of a past date (no schedule: nothing later was due) is judged as of now: fresh
    data is a few hours old, never "-6520 h old"."""
    name = f"mon_fresh_{results.name}"
    steps("stamps", "2026-01-01", (_utcnow() - datetime.timedelta(hours=2)).isoformat())
    _, _, states = run_dag(name, freshness_spec(name, results.schema), date="2026-01-01")
    assert states["feed.checks"] == "success"
    outcome, message, details = _freshness(results, name)
    assert outcome == "passed" and not NEGATIVE.search(message), message
    assert 1.9 * 3600 < details["age_seconds"] < 2.5 * 3600, message
    assert "2.0 h old as of" in message or "2.1 h old as of" in message, message


def test_stale_data_cannot_hide_behind_an_old_logical_date(run_dag, steps, results):
    """Three-day-old data, run for a date months earlier: as of the logical date it would be
    "-2000 h old" and pass; as of now it is 72 h old and fails."""
    name = f"mon_stale_{results.name}"
    steps("stamps", "2026-01-01", (_utcnow() - datetime.timedelta(days=3)).isoformat())
    _, _, states = run_dag(name, freshness_spec(name, results.schema), date="2026-01-01")
    assert states["feed.checks"] == "failed"
    outcome, message, _ = _freshness(results, name)
    assert outcome == "failed" and "72.0 h old as of" in message, message


def test_a_catch_up_run_is_judged_as_of_its_own_date(run_dag, steps, results):
    """A scheduled pipeline run for a past date (its next run was long due) is a catch-up: judged
    as of its data interval end. Data from after it is fresh (0 h, both timestamps shown); data
    that was already stale then fails."""
    name = f"mon_catchup_{results.name}"
    spec = freshness_spec(name, results.schema, schedule='"@daily"')
    steps("stamps", "2026-01-10", _utcnow().isoformat())  # newer than the date: months "ahead"
    _, _, states = run_dag(name, spec, date="2026-01-10")
    assert states["feed.checks"] == "success"
    outcome, message, details = _freshness(results, name)
    assert outcome == "passed" and details["age_seconds"] == 0 and details["ahead_seconds"] > 1000 * 3600
    assert details["reference"] == "2026-01-10T00:00:00+00:00"
    assert "after the reference 2026-01-10T00:00:00+00:00" in message and "0 h old (fresh)" in message
    assert not NEGATIVE.search(message)

    steps("stamps", "2026-01-20", "2026-01-17T00:00:00+00:00")  # three days old on its own date
    _, _, states = run_dag(name, spec, date="2026-01-20")
    assert states["feed.checks"] == "failed"
    ((outcome, message),) = results.rows(CHECKS_TABLE, "outcome, message",
                                         f"dag_id = '{name}' AND logical_date = '2026-01-20 00:00:00'")  # fmt: skip
    assert outcome == "failed" and "72.0 h old as of 2026-01-20T00:00:00+00:00" in message


def test_a_backfill_run_is_judged_as_of_its_data_interval_end(run_dag, steps, results):
    """Airflow's own backfill run type (dag.test makes manual runs, so the checks task is run
    again with the run's type set to backfill): last month's run is judged as of last month."""
    from airflow.utils.session import create_session

    name = f"mon_bf_{results.name}"
    steps("stamps", "2026-01-10", "2026-01-09T12:00:00+00:00")  # fresh then, ten months stale now
    dag, dag_run, states = run_dag(name, freshness_spec(name, results.schema), date="2026-01-10")
    assert states["feed.checks"] == "failed"  # a live run (no schedule): as of now, it is stale
    assert _freshness(results, name)[0] == "failed"
    task = dag.get_task("feed.checks")
    with create_session() as session:
        ti = next(t for t in dag_run.get_task_instances(session=session) if t.task_id == "feed.checks")
    backfill = SimpleNamespace(run_type="backfill", logical_date=dag_run.logical_date, run_after=_utcnow(),
                               data_interval_end=dag_run.logical_date)  # fmt: skip
    context = {"ti": ti, "run_id": dag_run.run_id, "logical_date": dag_run.logical_date, "dag_run": backfill,
               "data_interval_end": dag_run.logical_date, "params": {}, "dag": dag}  # fmt: skip
    task.render_template_fields(context)
    task.execute(context)
    outcome, message, _ = _freshness(results, name)  # replaced, not added
    assert outcome == "passed" and "12.0 h old as of 2026-01-10T00:00:00+00:00" in message, message


@pytest.mark.parametrize("ahead_hours", [0.5, 6520.0])
def test_negative_ages_are_never_shown_and_never_pass_by_accident(ahead_hours):
    from aq_airflow.plan.model import CheckPlan, Severity
    from aq_airflow.quality.evaluate import check_outcome
    from aq_airflow.quality.suite import Compiled

    spec = CheckPlan(name="f", kind="freshness", severity=Severity.ERROR, columns=("at",), max_age=3600,
                     max_age_text="1h")  # fmt: skip
    reference = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    newest = reference + datetime.timedelta(hours=ahead_hours)
    out = check_outcome(Compiled(spec, {"latest": "m0"}), {"m0": newest.replace(tzinfo=None)}, reference)
    assert out.outcome == "passed" and out.details["age_seconds"] == 0
    assert f"{ahead_hours:.1f} h after the reference" in out.message and not NEGATIVE.search(out.message)


def test_freshness_reference_rules():
    from airflow.sdk import DAG

    from aq_airflow.operators.quality import freshness_reference

    now = datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.timezone.utc)
    past = datetime.datetime(2026, 1, 10, tzinfo=datetime.timezone.utc)

    def context(run_type, end, schedule=None):
        run = SimpleNamespace(run_type=run_type, logical_date=end, run_after=end, data_interval_end=end)
        return {"dag_run": run, "logical_date": end, "data_interval_end": end,
                "dag": DAG("d", schedule=schedule, start_date=past)}  # fmt: skip

    assert freshness_reference(context("backfill", past), now)[0] == past
    assert freshness_reference(context("manual", past), now)[0] == now  # unscheduled: live
    assert freshness_reference(context("scheduled", past, "@daily"), now)[0] == past  # catching up
    on_time = datetime.datetime(2026, 11, 27, 0, tzinfo=datetime.timezone.utc)
    assert freshness_reference(context("scheduled", on_time, "@daily"), now)[0] == now  # live: now is later
    later = now + datetime.timedelta(hours=3)
    assert freshness_reference(context("manual", later), now)[0] == later  # the later of the two


# --- a value that is not a number ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_a_nan_or_infinite_metric_fails_its_bounds_and_xcom_stays_json(run_dag, steps, tmp_path, monkeypatch, kind):
    """NaN compares false with every bound (it passed them all) and broke the XCom push with
    "Out of range float values are not JSON compliant"."""
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb",
                                                                 "host": str(tmp_path / "wh.duckdb")}))  # fmt: skip
    results = Results("duckdb", f"aq_mon_{uuid.uuid4().hex[:8]}")
    planned = float(kind)
    steps("values", "2026-03-01", planned)
    name = f"mon_{kind}"
    _, _, states = run_dag(name, metric_spec(name, results.schema, "bounds: {min: 0, max: 1}"), date="2026-03-01")
    assert states["level.metrics"] == "failed", states  # severity error: the bad value blocks
    value, outcome, message, expected, _ = metric_row(results, name, "2026-03-01")
    assert (value, outcome) == (None, "failed")
    assert "not a number" in message and expected == {"bounds": {"min": 0, "max": 1}}

    # a warning: the task stays green, so its return value went through XCom
    warning = metric_spec(name, results.schema, "bounds: {min: 0, max: 1}")
    warning = warning.replace("severity: error", "severity: warning")
    steps("values", "2026-03-02", planned)
    _, dag_run, states = run_dag(name, warning, date="2026-03-02")
    assert states["level.metrics"] == "success", states
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = next(t for t in dag_run.get_task_instances(session=session) if t.task_id == "level.metrics")
        assert ti.xcom_pull(task_ids="level.metrics", session=session) == {"level": None}
    assert metric_row(results, name, "2026-03-02")[1] == "failed"
