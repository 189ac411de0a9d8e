"""Checks, metrics and publish inside real DAG runs (dag.test, local runner, DuckDB warehouse)."""

from __future__ import annotations

import datetime
import json

import duckdb
import pytest

from aq_airflow.cli.results import print_results, store_for
from aq_airflow.warehouse import Warehouse

PIPELINE = """
pipeline: {name}
steps:
  orders:
    python: quality_steps:orders
    sensitive: [email]
    checks:
      - {{name: ids_unique, unique: id, severity: {unique_severity}}}
      - {{name: amounts_positive, expression: "amount > 0", severity: warning}}
    metrics:
      - {{name: total, sum: amount, history: {{window: 5, max_zscore: 3}}, severity: {metric_severity}}}
    publish: {{table: analytics.orders, mode: merge, keys: [id]}}
  downstream:
    python: quality_steps:count
    inputs: [orders]
"""


@pytest.fixture
def quality_steps(tmp_path, monkeypatch):
    (tmp_path / "quality_steps.py").write_text(
        "import os\nimport pyarrow as pa\n\n"
        "def orders():\n"
        "    ids = [int(x) for x in os.environ.get('AQ_TEST_IDS', '1,2,3').split(',')]\n"
        "    return pa.table({'id': ids, 'amount': [float(i) * 10 - 15 for i in ids],\n"
        "                     'email': [f'user{i}@example.com' for i in ids]})\n\n"
        "def count(orders):\n    return pa.table({'rows': [orders.num_rows]})\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{__import__('os').environ['PYTHONPATH']}")


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    path = tmp_path / "results.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    return path


def rows(path, sql):
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def spec(name, unique_severity="error", metric_severity="warning"):
    return PIPELINE.format(name=name, unique_severity=unique_severity, metric_severity=metric_severity)


def test_passing_checks_publish_and_record_results(run_dag, quality_steps, warehouse):
    _, dag_run, states = run_dag("q_pass", spec("q_pass"))
    assert set(states.values()) == {"success"}, states
    # amounts -5, 5, 15: one row fails a warning check; the run stays green and the row says so
    results = rows(warehouse, "SELECT name, outcome, severity, failing_rows, sample FROM aq_check_results "
                              "WHERE dag_id = 'q_pass' ORDER BY name")  # fmt: skip
    assert [r[:4] for r in results] == [
        ("amounts_positive", "failed", "warning", 1),
        ("ids_unique", "passed", "error", 0),
    ]
    sample = json.loads(results[0][4])
    assert sample == [{"amount": -5.0}]  # the check's columns only; `email` is sensitive anyway
    assert rows(warehouse, "SELECT id FROM analytics.orders ORDER BY id") == [(1,), (2,), (3,)]
    (metric,) = rows(warehouse, "SELECT name, value, outcome FROM aq_metric_results WHERE dag_id = 'q_pass'")
    assert metric == ("total", 15.0, "passed")
    assert rows(warehouse, "SELECT run_id FROM aq_check_results WHERE dag_id = 'q_pass' LIMIT 1") == [(dag_run.run_id,)]


def test_failing_error_check_blocks_publish_and_downstream(run_dag, quality_steps, warehouse, monkeypatch, capsys):
    monkeypatch.setenv("AQ_TEST_IDS", "1,2,2,4")
    _, _, states = run_dag("q_fail", spec("q_fail"))
    assert states["orders.checks"] == "failed"
    assert states["orders.publish"] == "upstream_failed"
    assert states["downstream.run"] == "upstream_failed"
    assert states["orders.metrics"] == "success"  # metrics are warnings: they ran and recorded
    failed = rows(warehouse, "SELECT outcome, failing_rows, sample, message FROM aq_check_results "
                             "WHERE dag_id = 'q_fail' AND name = 'ids_unique'")  # fmt: skip
    assert failed[0][:2] == ("failed", 1)
    assert json.loads(failed[0][2]) == [{"id": 2, "duplicates": 2}]
    logged = capsys.readouterr()
    assert "check `ids_unique` (unique): FAILED - 1 of 4 rows are duplicates; expected at most 0" in (
        logged.out + logged.err
    )
    assert "check `amounts_positive` (expression): FAILED" in logged.out + logged.err
    assert "WARNING check" not in logged.out + logged.err  # the level says it once
    with pytest.raises(duckdb.CatalogException):  # nothing was published
        rows(warehouse, "SELECT * FROM analytics.orders")


def test_learned_bounds_fire_after_a_seeded_history(run_dag, quality_steps, warehouse, monkeypatch):
    from aq_airflow.results import METRICS_TABLE, ResultsStore

    store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(warehouse))))
    store.ensure_tables()
    for run, value in enumerate([15.0, 16.0, 14.0, 15.5, 15.0]):
        key = {"dag_id": "q_hist", "run_id": f"old{run}", "step": "orders", "map_index": -1,
               "logical_date": datetime.datetime(2026, 2, 20 + run)}  # fmt: skip
        store.replace(METRICS_TABLE, key, [{**key, "name": "total", "kind": "sum", "value": value, "outcome": "passed",
                                            "severity": "error"}])  # fmt: skip
    monkeypatch.setenv("AQ_TEST_IDS", "1,2,3,40")  # total jumps from ~15 to 400
    _, _, states = run_dag("q_hist", spec("q_hist", metric_severity="error"))
    assert states["orders.metrics"] == "failed" and states["orders.publish"] == "upstream_failed"
    ((value, outcome, message),) = rows(
        warehouse,
        "SELECT value, outcome, message FROM aq_metric_results WHERE dag_id = 'q_hist' AND run_id NOT LIKE 'old%'",
    )
    assert (value, outcome) == (400.0, "failed") and "standard deviations" in message


def test_rerun_of_the_same_run_replaces_rows(run_dag, quality_steps, warehouse, capsys):
    from airflow.utils.session import create_session

    dag, dag_run, _ = run_dag("q_rerun", spec("q_rerun"))
    checks = dag.get_task("orders.checks")
    with create_session() as session:
        ti = next(t for t in dag_run.get_task_instances(session=session) if t.task_id == "orders.checks")
    context = {
        "ti": ti,
        "run_id": dag_run.run_id,
        "logical_date": dag_run.logical_date,
        "dag_run": dag_run,
        "data_interval_end": None,
        "params": {},
    }
    checks.render_template_fields(context)
    checks.execute(context)  # the same task again, as a retry or a cleared task would
    count = rows(
        warehouse, "SELECT name, count(*) FROM aq_check_results WHERE dag_id = 'q_rerun' GROUP BY 1 ORDER BY 1"
    )
    assert count == [("amounts_positive", 1), ("ids_unique", 1)]


def test_results_cli_prints_the_history(run_dag, quality_steps, warehouse, capsys):
    run_dag("q_cli", spec("q_cli"))
    capsys.readouterr()
    assert print_results(store_for("aq_warehouse", None), "q_cli", "orders", 10) == 0
    out = capsys.readouterr().out
    assert "checks (aq_check_results), newest first" in out and "ids_unique" in out and "total" in out


def test_published_table_is_an_asset_event_for_the_next_pipeline(run_dag, quality_steps, warehouse):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    _, dag_run, states = run_dag("q_asset", spec("q_asset"))
    assert states["orders.publish"] == "success"
    follower = (
        "pipeline: q_follower\nschedule: {after: [analytics.orders]}\nsteps:\n  t:\n    table: analytics.orders\n"
    )
    follower += "    checks: [{name: some, row_count: {min: 1}}]\n"
    dag, _, follower_states = run_dag("q_follower", follower)
    assert follower_states == {"t.checks": "success"}
    (asset,) = dag.timetable.asset_condition.objects
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset.name)
        ).all()
    assert [e.source_run_id for e in events if e.source_dag_id == "q_asset"] == [dag_run.run_id]


def test_check_results_become_openlineage_assertion_facets(run_dag, quality_steps, warehouse, monkeypatch):
    from airflow.providers.openlineage.extractors.manager import ExtractorManager
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    monkeypatch.setenv("AQ_TEST_IDS", "1,2,2,4")
    dag, dag_run, _ = run_dag("q_lineage", spec("q_lineage"))
    task = dag.get_task("orders.checks")
    with create_session() as session:
        ti = next(t for t in dag_run.get_task_instances(session=session) if t.task_id == "orders.checks")
    context = {"ti": ti, "run_id": dag_run.run_id, "logical_date": dag_run.logical_date, "dag_run": dag_run,
               "data_interval_end": None, "params": {}}  # fmt: skip
    task.render_template_fields(context)
    with pytest.raises(Exception, match="1 check\\(s\\) failed"):
        task.execute(context)
    lineage = ExtractorManager().extract_metadata(dag_run, task, TaskInstanceState.FAILED, ti)
    (dataset,) = lineage.inputs
    facet = dataset.facets["dataQualityAssertions"]
    assert {(a.assertion, a.success, a.column) for a in facet.assertions} == {
        ("unique", False, "id"),
        ("expression", False, None),
    }
