"""The wheel deployed into a real Airflow, driven through the REST API as users drive it.

Per executor (LocalExecutor, CeleryExecutor; see conftest.stack): the specs in ``specs/`` are
dropped into the dags folder next to the loader ``aq-airflow init`` wrote. ``deploy_quality``
runs four times at once right after the stack is up (a green run, a run whose error-severity
check fails, and two more green runs), then one task of the green run is cleared and re-run.
``deploy_alerts`` follows the table ``deploy_quality`` publishes (asset-triggered runs).
Results are read from the DuckDB warehouse file once the runs have ended.
"""

from __future__ import annotations

import statistics
import time

import duckdb
import pytest

from tests.deployment.conftest import FIGURES
from tests.deployment.stack import timestamp, wait_for

DAG = "deploy_quality"
BROKEN = "deploy_broken"
ALERTS = "deploy_alerts"  # scheduled after analytics.scored, which DAG publishes
# run_id: (logical date, conf)
RUNS = {
    "green": ("2026-03-01T00:00:00Z", {}),
    "gated": ("2026-03-02T00:00:00Z", {"duplicate": True}),
    "twin_a": ("2026-03-03T00:00:00Z", {}),
    "twin_b": ("2026-03-04T00:00:00Z", {}),
}
GREEN_TASKS = {
    "orders.run", "orders.checks", "scored.run", "scored.checks", "scored.metrics", "scored.publish", "summary.run",
}  # fmt: skip


@pytest.fixture(scope="module")
def dags(stack) -> dict[str, dict]:
    """The DAGs as the API shows them, once the DAG processor has parsed the loader."""
    visible = wait_for(
        "the aq DAGs in the API",
        lambda: stack.check_alive() or stack.dags_visible([DAG, BROKEN, ALERTS]),
        180,
        every=1,
        explain=lambda: f"import errors: {stack.import_errors()}\n{stack.tails()}",
    )
    seconds = time.monotonic() - stack.dag_processor_started
    FIGURES.setdefault(stack.executor, []).append(
        f"DAGs visible in the API {seconds:.1f}s after the dag-processor started"
    )
    return visible


@pytest.fixture(scope="module")
def runs(stack, dags) -> dict[str, dict]:
    """All runs triggered at once (they overlap), then awaited: {run_id: final dag run}."""
    stack.unpause(DAG)
    stack.unpause(ALERTS)
    for run_id, (logical_date, conf) in RUNS.items():
        triggered = stack.trigger(DAG, run_id, logical_date, conf)
        assert triggered["state"] in ("queued", "running"), triggered
    finished = {run_id: stack.wait_run(DAG, run_id, timeout=420) for run_id in RUNS}
    tasks = stack.task_instances(DAG, "green").values()
    durations = [ti["duration"] for ti in tasks if ti.get("duration") is not None]
    waits = [(timestamp(ti["start_date"]) - timestamp(ti["queued_when"])).total_seconds()
             for ti in tasks if ti.get("queued_when") and ti.get("start_date")]  # fmt: skip
    span = (max(timestamp(r["end_date"]) for r in finished.values())
            - min(timestamp(r["start_date"]) for r in finished.values())).total_seconds()  # fmt: skip
    FIGURES.setdefault(stack.executor, []).append(
        f"green run: {len(durations)} tasks, task duration median {statistics.median(durations):.1f}s "
        f"(max {max(durations):.1f}s), queued-to-start median {statistics.median(waits):.1f}s; "
        f"4 overlapping runs took {span:.0f}s"
    )
    return finished


def warehouse_rows(stack, sql: str, *params) -> list[tuple]:
    """Reads the warehouse file (only once the runs touching it have ended)."""
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        return conn.execute(sql, params).fetchall()


def overlap(a: dict, b: dict) -> bool:
    """Whether two runs or task instances (API records) ran at the same time."""
    start_a, end_a, start_b, end_b = (timestamp(r[k]) for r in (a, b) for k in ("start_date", "end_date"))
    return start_a < end_b and start_b < end_a


def logged(log: str, level: str, text: str) -> bool:
    """Whether a line of the task log at ``level`` carries ``text``."""
    return any(line.lower().startswith(level) and text in line for line in log.splitlines())


def test_dags_load_without_import_errors(stack, dags):
    assert stack.import_errors() == []
    assert dags[DAG]["is_paused"] is True  # new DAGs arrive paused; the runs fixture unpauses
    assert {t["name"] for t in dags[DAG]["tags"]} >= {"deploy-test"}
    assert "aq:invalid" not in {t["name"] for t in dags[DAG]["tags"]}


def test_invalid_spec_is_a_tagged_dag_and_the_others_still_load(stack, dags):
    broken = stack.api("GET", f"/dags/{BROKEN}")
    assert "aq:invalid" in {t["name"] for t in broken["tags"]}
    assert "deploy_broken.aq.yaml:12:14" in (broken["description"] or ""), broken["description"]
    assert "`nowhere` is not a step of this pipeline" in broken["description"]
    assert not dags[DAG]["is_stale"]


def test_green_run(stack, runs):
    run = runs["green"]
    assert run["state"] == "success", stack.explain_run(DAG, "green")
    states = stack.states(DAG, "green")
    assert set(states) == GREEN_TASKS
    assert set(states.values()) == {"success"}, states


def test_warnings_leave_their_tasks_green(stack, runs):
    """`amounts_small` (a warning check) and `total` (a warning metric) fail in every run; the
    tasks that hold them succeed and say so in their logs."""
    assert runs["green"]["state"] == "success", stack.explain_run(DAG, "green")
    tis = stack.task_instances(DAG, "green")
    checks = stack.task_log(DAG, "green", "scored.checks", tis["scored.checks"]["try_number"])
    assert logged(checks, "warning", "check `amounts_small` (expression): FAILED"), checks[-3000:]
    assert logged(checks, "info", "check `ids_unique` (unique): PASSED"), checks[-3000:]
    metrics = stack.task_log(DAG, "green", "scored.metrics", tis["scored.metrics"]["try_number"])
    assert logged(metrics, "warning", "metric `total` (sum): FAILED"), metrics[-3000:]
    assert logged(metrics, "info", "metric `rows` (count): PASSED"), metrics[-3000:]
    assert tis["scored.checks"]["state"] == tis["scored.metrics"]["state"] == "success"


def test_failing_error_check_blocks_publish_and_downstream(stack, runs):
    assert runs["gated"]["state"] == "failed"
    states = stack.states(DAG, "gated")
    assert states["scored.checks"] == "failed", stack.explain_run(DAG, "gated")
    assert states["scored.publish"] == "upstream_failed"
    assert states["summary.run"] == "upstream_failed"
    assert states["scored.metrics"] == "success"  # warnings and passing error metrics do not block
    assert states["orders.run"] == states["orders.checks"] == states["scored.run"] == "success"
    tis = stack.task_instances(DAG, "gated")
    log = stack.task_log(DAG, "gated", "scored.checks", tis["scored.checks"]["try_number"])
    assert logged(log, "error", "check `ids_unique` (unique): FAILED - 1 of 21 rows are duplicates"), log[-3000:]


def test_concurrent_runs_of_one_dag_succeed(stack, runs):
    a, b = runs["twin_a"], runs["twin_b"]
    assert a["state"] == "success", stack.explain_run(DAG, "twin_a")
    assert b["state"] == "success", stack.explain_run(DAG, "twin_b")
    assert overlap(a, b), "the runs did not overlap"
    # the DuckDB file lock case: a step's checks and metrics tasks, both writing results to the
    # warehouse file, ran at the same time (in some run; four runs overlap here)
    pairs = {}
    for run_id in RUNS:
        tis = stack.task_instances(DAG, run_id)
        pairs[run_id] = overlap(tis["scored.checks"], tis["scored.metrics"])
    assert any(pairs.values()), f"checks and metrics never ran at the same time: {pairs}"


def test_results_rows_for_every_run(stack, runs):
    checks = warehouse_rows(
        stack,
        "SELECT run_id, step, name, outcome, severity FROM aq_check_results WHERE dag_id = ? ORDER BY ALL",
        DAG,
    )
    by_run = {}
    for run_id, step, name, outcome, severity in checks:
        by_run.setdefault(run_id, {})[(step, name)] = (outcome, severity)
    for run_id in ("green", "twin_a", "twin_b"):
        assert by_run[run_id] == {
            ("orders", "ids_present"): ("passed", "error"),
            ("scored", "ids_unique"): ("passed", "error"),
            ("scored", "amounts_small"): ("failed", "warning"),
        }, run_id
    assert by_run["gated"][("scored", "ids_unique")] == ("failed", "error")
    metrics = warehouse_rows(
        stack, "SELECT run_id, name, value, outcome, severity FROM aq_metric_results WHERE dag_id = ? ORDER BY ALL", DAG
    )
    green = {name: rest for run_id, name, *rest in metrics if run_id == "green"}
    total = sum(round(5 + i * 2.5, 2) for i in range(1, 21))
    assert green == {"rows": [20.0, "passed", "error"], "total": [pytest.approx(total), "failed", "warning"]}
    assert {run_id for run_id, *_ in metrics} == set(RUNS)
    # published once per green run's merge: one row per id
    assert warehouse_rows(stack, "SELECT count(*), count(DISTINCT id) FROM analytics.scored") == [(20, 20)]


def test_cleared_task_reruns_and_replaces_its_results(stack, runs):
    assert runs["green"]["state"] == "success", stack.explain_run(DAG, "green")
    query = (
        "SELECT name, outcome, try_number FROM aq_check_results "
        "WHERE dag_id = ? AND run_id = 'green' AND step = 'scored' ORDER BY name"
    )
    before = warehouse_rows(stack, query, DAG)
    first_try = stack.task_instances(DAG, "green")["scored.checks"]["try_number"]
    cleared = stack.api(
        "POST",
        f"/dags/{DAG}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": "green", "task_ids": ["scored.checks"], "only_failed": False},
    )
    assert [ti["task_id"] for ti in cleared["task_instances"]] == ["scored.checks"]

    def rerun_done():
        stack.check_alive()
        ti = stack.task_instances(DAG, "green")["scored.checks"]
        return ti if ti["try_number"] > first_try and ti["state"] in ("success", "failed") else None

    ti = wait_for("the cleared task to run again", rerun_done, 240, every=2,
                  explain=lambda: stack.explain_run(DAG, "green"))  # fmt: skip
    assert ti["state"] == "success", stack.explain_run(DAG, "green")
    stack.wait_run(DAG, "green", timeout=120)
    time.sleep(0.5)
    after = warehouse_rows(stack, query, DAG)
    assert len(after) == len(before) == 2
    assert [row[:2] for row in after] == [row[:2] for row in before]
    assert {row[2] for row in after} == {ti["try_number"]}, (before, after)
    assert ti["try_number"] > first_try
    log = stack.task_log(DAG, "green", "scored.checks", ti["try_number"])
    assert logged(log, "info", "check `ids_unique` (unique): PASSED"), log[-3000:]


def test_a_published_table_triggers_the_spec_that_follows_it(stack, runs):
    """Publishing analytics.scored (an Airflow Asset) starts deploy_alerts; Airflow 3 gives
    asset-triggered runs no logical date, and the steps must run all the same."""
    assert runs["green"]["state"] == "success", stack.explain_run(DAG, "green")

    def alert_runs_finished():
        stack.check_alive()
        listing = stack.api("GET", f"/dags/{ALERTS}/dagRuns", params={"limit": 50})["dag_runs"]
        return listing if listing and all(r["state"] in ("success", "failed") for r in listing) else None

    alert_runs = wait_for("the asset-triggered runs of deploy_alerts", alert_runs_finished, 240, every=2,
                          explain=lambda: stack.tails())  # fmt: skip
    assert {r["run_type"] for r in alert_runs} == {"asset_triggered"}
    failed = [r["dag_run_id"] for r in alert_runs if r["state"] != "success"]
    assert not failed, stack.explain_run(ALERTS, failed[0]) if failed else ""
