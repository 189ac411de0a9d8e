"""The scale-out example end to end on the laptop path, as a user runs it: `aq-airflow run
example_dags/churn_at_scale.aq.yaml` over the demo warehouse's 5,000,000 order events (the same
seed `make demo` makes). The Spark features step runs in PySpark's local mode, the Ray Tune search
on a local Ray, and the best configuration is published; the checks and metrics of both land in
the warehouse (`aq-airflow run` runs the DAG with Airflow's `dag.test()`)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import duckdb
import pytest

from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow

DAG = "churn_at_scale"


def test_churn_at_scale_runs_spark_then_ray_tune_then_publishes_the_best_configuration(tmp_path):
    work = tmp_path / "work"
    module_spec = importlib.util.spec_from_file_location("seed_warehouse", EXAMPLES / "seed_warehouse.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    module.seed(str(work / "warehouse.duckdb"))  # the demo's seed: 5,000 customers, 5,000,000 order events
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as conn:
        (events,) = conn.execute("SELECT count(*) FROM raw.order_events").fetchone()
    assert events >= 5_000_000
    command = [sys.executable, "-m", "aq_airflow.cli", "run", str(EXAMPLES / "churn_at_scale.aq.yaml"),
               "--date", "2026-03-01", "--workdir", str(work)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env={**os.environ})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert f"{DAG}: success" in result.stdout
    lines = result.stdout.splitlines()
    tasks = ["order_events.run", "features.run", "features.checks", "features.metrics", "search.run", "search.checks",
             "search.metrics", "best_config.run", "best_config.checks", "best_config.publish"]  # fmt: skip
    for task in tasks:
        assert any(line.split()[:2] == [task, "success"] for line in lines), (task, result.stdout[-4000:])
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as conn:
        metrics = dict(
            conn.execute(
                "SELECT step || '.' || name, value FROM aq_metric_results WHERE dag_id = ? AND outcome = 'passed'",
                [DAG],
            ).fetchall()
        )
        checks = conn.execute(
            "SELECT step || '.' || name, outcome FROM aq_check_results WHERE dag_id = ? ORDER BY 1", [DAG]
        ).fetchall()
        (customers,) = conn.execute("SELECT count(DISTINCT customer_id) FROM raw.order_events").fetchone()
        published = conn.execute("SELECT * FROM analytics.churn_best_config").fetch_df()
    # Spark's features: one row per customer who ordered in the window, checked unique
    assert 1000 <= metrics["features.customers"] <= customers
    assert metrics["features.mean_orders"] > 0
    # the search's trials, one row each, recorded as metrics
    assert metrics["search.trials"] == 8
    assert 0.5 <= metrics["search.best_auc"] <= 1 and metrics["search.mean_auc"] <= metrics["search.best_auc"]
    assert checks == [
        ("best_config.one_config", "passed"),
        ("features.one_row_per_customer", "passed"),
        ("features.spend_not_negative", "passed"),
        ("search.every_trial_scored", "passed"),
    ]
    # the best configuration is the trial with the best AUC, published once for this date
    assert len(published) == 1
    assert published["auc"][0] == metrics["search.best_auc"]
    assert str(published["as_of"][0])[:10] == "2026-03-01"
