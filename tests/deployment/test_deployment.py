"""The wheel deployed into a real Airflow, driven through the REST API as users drive it.

Per executor (LocalExecutor, CeleryExecutor; see conftest.stack): the specs in ``specs/`` are
dropped into the dags folder next to the loader ``aq-airflow init`` wrote. ``deploy_quality``
runs four times at once right after the stack is up (a green run, a run whose error-severity
check fails, and two more green runs), then one task of the green run is cleared and re-run.
``deploy_alerts`` follows the table ``deploy_quality`` publishes (asset-triggered runs).
Results are read from the DuckDB warehouse file once the runs have ended.

The control-flow examples run beside them (see conftest.deployable_examples): region_training
(`foreach:` one mapped task per region, a fan-in picking the best) and churn_champion (`when:`),
whose first run promotes its model and whose second, a week later with a lower AUC, is skipped.
"""

from __future__ import annotations

import statistics
import threading
import time

import duckdb
import httpx
import pytest

from tests.deployment.conftest import FIGURES
from tests.deployment.stack import TERMINAL, timestamp, wait_for

DAG = "deploy_quality"
BROKEN = "deploy_broken"
BROKEN_MINUTELY = "deploy_broken_minutely"  # invalid, scheduled every minute: its placeholder keeps firing
TEAM = "deploy_team_orders"  # specs/team/: in a subfolder, its step code (shop_team/) beside it
ALERTS = "deploy_alerts"  # scheduled after analytics.scored, which DAG publishes
# run_id: (logical date, conf)
RUNS = {
    "green": ("2026-03-01T00:00:00Z", {}),
    "gated": ("2026-03-02T00:00:00Z", {"duplicate": True}),
    "twin_a": ("2026-03-03T00:00:00Z", {}),
    "twin_b": ("2026-03-04T00:00:00Z", {}),
}
CHAMPION = "deploy_churn_champion"  # example_dags/churn_champion.aq.yaml
REGIONS = "deploy_region_training"  # example_dags/region_training.aq.yaml
# run_id: logical date. The challenger's model (a week later: fewer recent orders) has a lower AUC
EXAMPLE_RUNS = {
    (REGIONS, "regions"): "2026-03-02T00:00:00Z",
    (CHAMPION, "champion"): "2026-03-02T00:00:00Z",
    (CHAMPION, "challenger"): "2026-03-09T00:00:00Z",
}
# example_dags/churn_at_scale.aq.yaml (Spark features, a Ray Tune search, the best published): run
# under LocalExecutor (the topology for it; two Spark and Ray jobs at once would take the
# 2-core machine's minutes), loaded under both
SCALE = "deploy_churn_at_scale"
SCALE_RUN = ("scale", "2026-03-01T00:00:00Z")
REGION_ITEMS = ["apac", "eu", "us"]  # the regions step's rows, in order: map indexes 0, 1, 2
GREEN_TASKS = {
    "orders.run", "orders.checks", "scored.run", "scored.checks", "scored.metrics", "scored.publish", "summary.run",
}  # fmt: skip


@pytest.fixture(scope="module")
def dags(stack) -> dict[str, dict]:
    """The DAGs as the API shows them, once the DAG processor has parsed the loader."""
    visible = wait_for(
        "the aq DAGs in the API",
        lambda: (
            stack.check_alive()
            or stack.dags_visible([DAG, BROKEN, ALERTS, CHAMPION, REGIONS, BROKEN_MINUTELY, TEAM, SCALE])
        ),
        180,
        every=1,
        explain=lambda: f"import errors: {stack.import_errors()}\n{stack.tails()}",
    )
    seconds = time.monotonic() - stack.dag_processor_started
    FIGURES.setdefault(stack.executor, []).append(
        f"DAGs visible in the API {seconds:.1f}s after the dag-processor started"
    )
    return visible


class ChallengerTrigger(threading.Thread):
    """Triggers the challenger's run once the champion's `promote.when` has recorded its verdict
    (the challenger is judged against it), while the test waits for the other runs."""

    def __init__(self, stack, timeout: float = 420):
        super().__init__(name="challenger-trigger", daemon=True)
        self.stack, self.timeout = stack, timeout
        self.error: BaseException | None = None

    def run(self) -> None:
        stack = self.stack  # a client of its own: the test's client is busy in the test's thread
        client = httpx.Client(base_url=stack.url, headers=dict(stack.client.headers), timeout=30)
        try:
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                path = f"/api/v2/dags/{CHAMPION}/dagRuns/champion"
                run = client.get(path).raise_for_status().json()
                tis = client.get(f"{path}/taskInstances", params={"limit": 100}).raise_for_status().json()
                verdict = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}.get("promote.when")
                if verdict in ("success", "skipped", "failed", "upstream_failed") or run["state"] in TERMINAL:
                    body = {"dag_run_id": "challenger", "logical_date": EXAMPLE_RUNS[CHAMPION, "challenger"]}
                    client.post(f"/api/v2/dags/{CHAMPION}/dagRuns", json=body).raise_for_status()
                    return
                time.sleep(2)
            raise TimeoutError(f"the champion's promote.when did not finish in {self.timeout:.0f}s")
        except BaseException as error:  # reported by example_runs
            self.error = error
        finally:
            client.close()


@pytest.fixture(scope="module")
def examples_started(stack, dags):
    """The examples' first runs, triggered before deploy_quality's so that they all overlap;
    the challenger follows the champion's verdict. Yields (start time, the challenger's trigger)."""
    started = time.monotonic()
    for dag_id in (CHAMPION, REGIONS):
        stack.unpause(dag_id)
    for (dag_id, run_id), logical_date in EXAMPLE_RUNS.items():
        if run_id != "challenger":
            assert stack.trigger(dag_id, run_id, logical_date)["state"] in ("queued", "running")
    if stack.executor == "LocalExecutor":
        stack.unpause(SCALE)
        assert stack.trigger(SCALE, *SCALE_RUN)["state"] in ("queued", "running")
    challenger = ChallengerTrigger(stack)
    challenger.start()
    yield started, challenger
    challenger.join(timeout=60)


@pytest.fixture(scope="module")
def started_early(stack, dags):
    """Before the long runs: the broken scheduled spec unpaused (the scheduler creates its runs
    at the next minute) and the subfolder spec's run triggered; their tests await them."""
    stack.unpause(BROKEN_MINUTELY)
    stack.unpause(TEAM)
    assert stack.trigger(TEAM, "team", "2026-03-01T00:00:00Z")["state"] in ("queued", "running")


@pytest.fixture(scope="module")
def runs(stack, dags, examples_started, started_early) -> dict[str, dict]:
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


@pytest.fixture(scope="module")
def example_runs(stack, examples_started, runs) -> dict[tuple[str, str], dict]:
    """The examples' runs, awaited: {(dag_id, run_id): final dag run}."""
    started, challenger = examples_started
    finished = {(dag_id, run_id): stack.wait_run(dag_id, run_id, timeout=420) for dag_id, run_id in EXAMPLE_RUNS
                if run_id != "challenger"}  # fmt: skip
    challenger.join(timeout=480)
    assert not challenger.is_alive() and challenger.error is None, f"the challenger's trigger: {challenger.error!r}"
    finished[CHAMPION, "challenger"] = stack.wait_run(CHAMPION, "challenger", timeout=420)
    seconds = time.monotonic() - started
    spans = {run_id: (timestamp(r["end_date"]) - timestamp(r["start_date"])).total_seconds()
             for (_, run_id), r in finished.items() if r.get("start_date") and r.get("end_date")}  # fmt: skip
    each = ", ".join(f"{run_id} {span:.0f}s" for run_id, span in spans.items())
    FIGURES.setdefault(stack.executor, []).append(f"example runs: {each}; all done {seconds:.0f}s after the first")
    return finished


def warehouse_rows(stack, sql: str, *params, path=None, timeout: float = 60) -> list[tuple]:
    """Reads a warehouse file (default: deploy_quality's) once the runs writing to it have
    ended. Runs started by a publish (deploy_alerts) may still hold the file's lock for a moment:
    a lock conflict is retried."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with duckdb.connect(str(path or stack.warehouse), read_only=True) as conn:
                return conn.execute(sql, params).fetchall()
        except duckdb.IOException as error:
            if "lock" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def mapped_instances(stack, dag_id: str, run_id: str) -> dict[tuple[str, int], dict]:
    """Every task instance of a run, mapped ones included: {(task_id, map_index): record}."""
    listing = stack.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    return {(ti["task_id"], ti["map_index"]): ti for ti in listing["task_instances"]}


def overlap(a: dict, b: dict) -> bool:
    """Whether two runs or task instances (API records) ran at the same time."""
    start_a, end_a, start_b, end_b = (timestamp(r[k]) for r in (a, b) for k in ("start_date", "end_date"))
    return start_a < end_b and start_b < end_a


def logged(log: str, level: str, text: str) -> bool:
    """Whether a line of the task log at ``level`` carries ``text``."""
    return any(line.lower().startswith(level) and text in line for line in log.splitlines())


def test_dags_load_without_import_errors(stack, dags):
    # the broken specs' own files may carry theirs (test_a_broken_spec_is_an_import_error_of_its_own_file)
    assert [e for e in stack.import_errors() if not e["filename"].endswith(".aq.yaml")] == []
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


def test_region_training_maps_one_task_per_region_and_the_fan_in_picks_the_best(stack, example_runs):
    run = example_runs[REGIONS, "regions"]
    assert run["state"] == "success", stack.explain_run(REGIONS, "regions")
    instances = mapped_instances(stack, REGIONS, "regions")
    for task_id in ("train.run", "evaluate.run", "evaluate.metrics"):
        mapped = sorted((index, ti) for (task, index), ti in instances.items() if task == task_id)
        assert [index for index, _ in mapped] == [0, 1, 2], (task_id, sorted(instances))
        assert [ti["state"] for _, ti in mapped] == ["success"] * 3, (task_id, mapped)
        assert [ti["rendered_map_index"] for _, ti in mapped] == REGION_ITEMS  # labelled by region in the grid
    unmapped = {task: ti["state"] for (task, index), ti in instances.items() if index == -1}
    assert set(unmapped.values()) == {"success"}, unmapped
    assert {"regions.run", "features.run", "best.run", "best.checks", "best.metrics", "best.publish"} <= set(unmapped)
    path = stack.examples_warehouse
    per_item = warehouse_rows(
        stack, "SELECT map_index, value, outcome FROM aq_metric_results "
        "WHERE dag_id = ? AND step = 'evaluate' AND name = 'auc' ORDER BY map_index", REGIONS, path=path,
    )  # fmt: skip
    assert [(index, outcome) for index, _, outcome in per_item] == [(0, "passed"), (1, "passed"), (2, "passed")]
    auc = {REGION_ITEMS[index]: value for index, value, _ in per_item}
    board = warehouse_rows(stack, "SELECT region, is_best, auc, map_index, version FROM ml.region_models ORDER BY rank",
                           path=path)  # fmt: skip
    winner = max(auc, key=auc.get)
    assert board[0][:3] == (winner, True, auc[winner]), (board, auc)
    assert [region for region, *_ in board] == sorted(auc, key=auc.get, reverse=True)
    assert [is_best for _, is_best, *_ in board] == [True, False, False]
    assert all(REGION_ITEMS[index] == region and version == "2026-03-02" for region, _, _, index, version in board)
    best = warehouse_rows(stack, "SELECT value, outcome FROM aq_metric_results WHERE dag_id = ? AND name = 'best_auc'",
                          REGIONS, path=path)  # fmt: skip
    assert best == [(auc[winner], "passed")]


def test_champion_is_promoted_and_a_weaker_challenger_is_skipped(stack, example_runs):
    for run_id in ("champion", "challenger"):
        assert example_runs[CHAMPION, run_id]["state"] == "success", stack.explain_run(CHAMPION, run_id)
    gated = {"promote.when", "promote.run", "promote.publish"}
    champion = stack.states(CHAMPION, "champion")
    assert set(champion.values()) == {"success"}, champion
    challenger = stack.states(CHAMPION, "challenger")
    assert {task: challenger[task] for task in gated} == dict.fromkeys(gated, "skipped"), challenger
    assert {state for task, state in challenger.items() if task not in gated} == {"success"}, challenger
    # the verdicts, recorded with the results; only the champion was published
    path = stack.examples_warehouse
    verdicts = warehouse_rows(
        stack, "SELECT run_id, outcome FROM aq_check_results WHERE dag_id = ? AND step = 'promote' AND role = 'when' "
        "ORDER BY run_id", CHAMPION, path=path,
    )  # fmt: skip
    assert verdicts == [("challenger", "skipped"), ("champion", "passed")]
    auc = dict(warehouse_rows(stack, "SELECT run_id, value FROM aq_metric_results WHERE dag_id = ? AND name = 'auc'",
                              CHAMPION, path=path))  # fmt: skip
    assert auc["challenger"] <= auc["champion"], auc
    assert warehouse_rows(stack, "SELECT version, auc FROM ml.churn_champions", path=path) == [
        ("2026-03-02", auc["champion"])
    ]
    tis = stack.task_instances(CHAMPION, "challenger")
    log = stack.task_log(CHAMPION, "challenger", "promote.when", tis["promote.when"]["try_number"])
    assert "(recorded 2026-03-02)" in log and "does not hold" in log, log[-3000:]


def test_a_broken_spec_is_an_import_error_of_its_own_file(stack, dags):
    """Shown where import-error alerting and `airflow dags list-import-errors` look, without
    hiding the DAGs of its loader shard. Airflow's bundle refresh deletes errors of files that
    are not Python (every 5 s here) and the shard's next parse (every 30 s) writes it again: polled."""

    def error_of_the_spec():
        stack.check_alive()
        return [e for e in stack.import_errors() if e["filename"] == f"{BROKEN_MINUTELY}.aq.yaml"]

    (error,) = wait_for("the broken spec's import error", error_of_the_spec, 180, every=0.5,
                        explain=lambda: f"{stack.import_errors()}\n{stack.tails()}")  # fmt: skip
    assert f"{BROKEN_MINUTELY}.aq.yaml:11:5: unknown key `retires`; did you mean `retries`?" in error["stack_trace"]
    for dag_id in (BROKEN_MINUTELY, DAG, TEAM):  # no DAG of the shards is marked stale by it
        shown = stack.api("GET", f"/dags/{dag_id}")
        assert not shown["is_stale"] and not shown["has_import_errors"], shown


def test_a_broken_spec_keeps_its_schedule_and_each_scheduled_run_fails_with_the_error(stack, runs):
    details = stack.api("GET", f"/dags/{BROKEN_MINUTELY}/details")
    assert "aq:invalid" in {t["name"] for t in details["tags"]}
    assert details["timetable_summary"] == "* * * * *" and details["catchup"] is False, details

    def failed_scheduled_run():
        stack.check_alive()
        listing = stack.api("GET", f"/dags/{BROKEN_MINUTELY}/dagRuns", params={"limit": 50})["dag_runs"]
        return [r for r in listing if r["run_type"] == "scheduled" and r["state"] == "failed"]

    run = wait_for("a scheduled run of the broken spec to fail", failed_scheduled_run, 240, every=2,
                   explain=stack.tails)[0]  # fmt: skip
    ti = stack.task_instances(BROKEN_MINUTELY, run["dag_run_id"])["invalid_spec"]
    assert ti["state"] == "failed"
    log = stack.task_log(BROKEN_MINUTELY, run["dag_run_id"], "invalid_spec", ti["try_number"])
    assert f"{BROKEN_MINUTELY}.aq.yaml:11:5: unknown key `retires`; did you mean `retries`?" in log, log[-3000:]


def test_a_spec_in_a_subfolder_runs_its_step_code_from_beside_it(stack, runs):
    run = stack.wait_run(TEAM, "team", timeout=300)
    assert run["state"] == "success", stack.explain_run(TEAM, "team")
    assert stack.states(TEAM, "team") == {"orders.run": "success", "totals.run": "success", "totals.checks": "success"}


def test_step_code_edited_in_the_dags_folder_reaches_the_next_run_and_each_run_records_its_own(stack, runs):
    """The team's step code edited in the dags folder between two triggered runs, as a git-sync
    would: the second run runs the new code (no image, no spec changed), each run pinned its own
    code package, and each run's outputs and check rows record their code digest."""
    import json

    from aq_airflow.artifacts.code_package import read_pin
    from aq_airflow.artifacts.provenance import Provenance

    assert stack.wait_run(TEAM, "team", timeout=300)["state"] == "success", stack.explain_run(TEAM, "team")
    module = stack.dags / "team" / "shop_team" / "totals.py"
    module.write_text(module.read_text().replace('"total": [', '"release": ["v2"], "total": ['))
    assert stack.trigger(TEAM, "team_v2", "2026-03-02T00:00:00Z")["state"] in ("queued", "running")
    run = stack.wait_run(TEAM, "team_v2", timeout=300)
    assert run["state"] == "success", stack.explain_run(TEAM, "team_v2")
    store = stack.home / "aq-artifacts" / TEAM
    pins = {run_id: read_pin(str(store / run_id)) for run_id in ("team", "team_v2")}
    assert all(pins.values()) and pins["team"].digest != pins["team_v2"].digest, pins
    for run_id, pin in pins.items():
        manifest = json.loads((store / run_id / "totals" / "_manifest.json").read_text())
        made = Provenance.of(manifest)
        assert made.code.digest == pin.digest and made.run_id == run_id, (run_id, made)
        assert [column for column, _ in manifest["schema"]] == (
            ["rows", "total"] if run_id == "team" else ["rows", "release", "total"]
        ), run_id
    rows = dict(warehouse_rows(
        stack, "SELECT run_id, code_digest FROM aq_check_results WHERE dag_id = ? AND step = 'totals'", TEAM
    ))  # fmt: skip
    assert rows == {run_id: pin.digest for run_id, pin in pins.items()}


def test_the_scale_out_example_runs_spark_and_ray_steps_on_the_workers(stack, dags, example_runs):
    """churn_at_scale under LocalExecutor: the spark step in PySpark's local mode and the Ray Tune
    search on a local Ray, each a task process of the scheduler's executor, from the wheel's venv;
    their checks and metrics in the examples' warehouse, the best configuration published. Under
    CeleryExecutor the DAG is loaded (no import error; it is not run there)."""
    assert SCALE in dags and not [e for e in stack.import_errors() if SCALE in str(e)]
    if stack.executor != "LocalExecutor":
        return
    run = stack.wait_run(SCALE, SCALE_RUN[0], timeout=600)
    assert run["state"] == "success", stack.explain_run(SCALE, SCALE_RUN[0])
    states = {task: ti["state"] for task, ti in stack.task_instances(SCALE, SCALE_RUN[0]).items()}
    assert set(states.values()) == {"success"}, states
    assert {"features.run", "features.checks", "search.run", "search.metrics", "best_config.publish"} <= set(states)
    path = stack.examples_warehouse
    metrics = dict(
        warehouse_rows(
            stack, "SELECT step || '.' || name, value FROM aq_metric_results WHERE dag_id = ? AND outcome = 'passed'",
            SCALE, path=path,
        )
    )  # fmt: skip
    assert metrics["search.trials"] == 8 and 0.5 <= metrics["search.best_auc"] <= 1, metrics
    assert metrics["features.customers"] >= 1000, metrics
    best = warehouse_rows(stack, "SELECT auc FROM analytics.churn_best_config", path=path)
    assert best == [(metrics["search.best_auc"],)]
