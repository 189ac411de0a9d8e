"""`schema_change` checks: a step output's columns against the same step's last committed output
of an earlier logical date.

Real DAG runs (dag.test through the `run_dag` fixture, the local runner, a DuckDB results
warehouse) at successive dates whose step adds, removes and retypes columns; the search for the
earlier output (``client.earlier``) over real store folders with manifests committed by the
store's own writer, provenance as ``artifacts.provenance`` records it; the comparison alone.
"""

from __future__ import annotations

import datetime
import json
import uuid

import duckdb
import pyarrow as pa
import pytest

from aq_airflow.artifacts.provenance import CodeVersion, GitState, Provenance
from aq_airflow.artifacts.store import Location, write_batches
from aq_airflow.cli.results import print_results, store_for
from aq_airflow.client.earlier import PROVENANCE, RUN_ID, find_earlier
from aq_airflow.client.runs import run_id_time
from aq_airflow.codegen.literals import py_literal
from aq_airflow.pipeline_spec import SpecFile
from aq_airflow.plan import compile_text
from aq_airflow.plan.model import CheckPlan, Severity
from aq_airflow.plan.store import plan_from_json, plan_to_json
from aq_airflow.quality.drift import FIRST_OUTPUT, diff, schema_change_outcome
from tests.helpers import issues_of

UTC = datetime.timezone.utc

# ---------------------------------------------------------------------------------------------
# real DAG runs


PIPELINE = """
pipeline: {name}
steps:
  customers:
    python: drift_steps:customers
    checks:
      - {{name: ids_present, not_null: id}}
      - {{name: same_columns, schema_change: {{}}}}
      - {{name: no_new_columns, schema_change: {{on: [added]}}, severity: warning}}
  downstream:
    python: drift_steps:count
    inputs: [customers]
"""

# the step's output per date: AQ_TEST_SHAPE names one
SHAPES = {
    "v1": "{'id': [1, 2], 'tenure': [3, 4], 'legacy': [0.5, 0.25]}",
    "v2": "{'id': [1, 2], 'tenure': ['3', '4'], 'churn_score': [0.1, 0.9]}",  # +churn_score -legacy ~tenure
    "v3": "{'id': [1, 2], 'tenure': ['3', '4']}",  # -churn_score
}


@pytest.fixture
def drift_steps(tmp_path, monkeypatch):
    shapes = ",\n".join(f"    {name!r}: {value}" for name, value in SHAPES.items())
    (tmp_path / "drift_steps.py").write_text(
        "import os\nimport pyarrow as pa\n\n"
        f"SHAPES = {{\n{shapes},\n}}\n\n"
        "def customers():\n    return pa.table(SHAPES[os.environ['AQ_TEST_SHAPE']])\n\n"
        "def count(customers):\n    return pa.table({'rows': [customers.num_rows]})\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{__import__('os').environ['PYTHONPATH']}")


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    path = tmp_path / "results.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    return path


def check_rows(path, dag_run) -> dict[str, tuple]:
    """This run's check rows by name: (kind, outcome, severity, message, details)."""
    with duckdb.connect(str(path), read_only=True) as conn:
        found = conn.execute(
            "SELECT name, kind, outcome, severity, message, details FROM aq_check_results WHERE run_id = ?",
            [dag_run.run_id],
        ).fetchall()
    return {name: (kind, outcome, severity, message, json.loads(details or "{}")) for name, kind, outcome,
            severity, message, details in found}  # fmt: skip


def test_columns_added_removed_and_retyped_between_two_dates(run_dag, drift_steps, warehouse, monkeypatch, capsys):
    monkeypatch.setenv("AQ_TEST_SHAPE", "v1")
    _, first, states = run_dag("drift_dates", PIPELINE.format(name="drift_dates"), date="2026-03-01")
    assert set(states.values()) == {"success"}, states
    rows = check_rows(warehouse, first)
    assert rows["ids_present"][1] == "passed"  # the scanned checks run beside it, as before
    kind, outcome, severity, message, details = rows["same_columns"]
    assert (kind, outcome, severity) == ("schema_change", "passed", "error")
    assert message.startswith(FIRST_OUTPUT) and details["compared_with"] is None

    monkeypatch.setenv("AQ_TEST_SHAPE", "v2")
    _, second, states = run_dag("drift_dates", PIPELINE.format(name="drift_dates"), date="2026-03-02")
    assert states["customers.checks"] == "failed"  # an error-severity change blocks what reads the step
    assert states["downstream.run"] == "upstream_failed"
    rows = check_rows(warehouse, second)
    kind, outcome, severity, message, details = rows["same_columns"]
    assert (kind, outcome, severity) == ("schema_change", "failed", "error")
    assert message.startswith(
        "columns added: churn_score (double); removed: legacy (double); retyped: tenure int64 → string; "
        f"compared with run {first.run_id} ("
    ), message
    assert details["changes"] == {
        "added": [["churn_score", "double"]],
        "removed": [["legacy", "double"]],
        "retyped": [["tenure", "int64", "string"]],
    }
    assert details["compared_with"]["run_id"] == first.run_id
    warned = rows["no_new_columns"]  # on: [added]: fails at its own severity, a warning
    assert warned[1:3] == ("failed", "warning")
    assert warned[3].startswith("columns added: churn_score (double) (also removed: legacy (double); retyped: ")
    assert rows["ids_present"][1] == "passed"
    logged = capsys.readouterr()
    assert "check `same_columns` (schema_change): FAILED - columns added: churn_score" in logged.out + logged.err

    monkeypatch.setenv("AQ_TEST_SHAPE", "v3")  # a removal only: `on: [added]` lets it pass
    _, third, states = run_dag("drift_dates", PIPELINE.format(name="drift_dates"), date="2026-03-03")
    rows = check_rows(warehouse, third)
    assert rows["same_columns"][1] == "failed"
    removed = f"columns removed: churn_score (double); compared with run {second.run_id}"
    assert rows["same_columns"][3].startswith(removed)
    outcome, message = rows["no_new_columns"][1], rows["no_new_columns"][3]
    assert outcome == "passed" and message.startswith("columns removed: churn_score (double), not in `on` (added)")

    _, fourth, states = run_dag("drift_dates", PIPELINE.format(name="drift_dates"), date="2026-03-04")
    assert set(states.values()) == {"success"}, states  # unchanged: every check passes
    rows = check_rows(warehouse, fourth)
    assert rows["same_columns"][1:3] == ("passed", "error")
    assert rows["same_columns"][3].startswith(f"the same 2 columns and types; compared with run {third.run_id}")

    capsys.readouterr()  # `aq-airflow results` shows the rows like any check's
    assert print_results(store_for("aq_warehouse", None), "drift_dates", "customers", 20) == 0
    out = capsys.readouterr().out
    assert "same_columns" in out and "no_new_columns" in out and "churn_score" in out


MAPPED = """
pipeline: drift_items
steps:
  per_region:
    python: drift_steps:customers
    foreach: [eu, us]
    checks:
      - {name: same_columns, schema_change: {on: [added, removed]}}
"""


def test_each_item_of_a_foreach_step_is_compared_with_the_same_item(run_dag, drift_steps, warehouse, monkeypatch):
    monkeypatch.setenv("AQ_TEST_SHAPE", "v1")
    run_dag("drift_items", MAPPED, date="2026-03-01")
    monkeypatch.setenv("AQ_TEST_SHAPE", "v3")  # -legacy, ~tenure (retyped: not in `on`)
    _, dag_run, states = run_dag("drift_items", MAPPED, date="2026-03-02")
    assert states["per_region.checks"] == "failed"
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        found = conn.execute(
            "SELECT map_index, outcome, message FROM aq_check_results WHERE run_id = ? ORDER BY map_index",
            [dag_run.run_id],
        ).fetchall()
    assert [row[:2] for row in found] == [(0, "failed"), (1, "failed")]
    message = "columns removed: legacy (double) (also retyped: tenure int64 → string, not in `on`)"
    assert all(row[2].startswith(message) for row in found), found


# ---------------------------------------------------------------------------------------------
# the spec and the plan


def test_planned_with_its_kinds_and_read_back_from_the_cache_and_generated_code():
    text = (
        "steps:\n  s:\n    sql: SELECT 1 AS x\n    checks:\n      - {name: all, schema_change: {}}\n"
        "      - {name: adds, schema_change: {on: [added]}, severity: warning}\n"
    )
    plan = compile_text(SpecFile("p.aq.yaml", text))
    checks = next(t for t in plan.tasks if t.task_id == "s.checks").body.checks
    assert [(c.kind, c.changes, c.severity) for c in checks] == [
        ("schema_change", ("added", "removed", "retyped"), Severity.ERROR),
        ("schema_change", ("added",), Severity.WARNING),
    ]
    back = plan_from_json(plan_to_json(plan))
    assert back == plan and py_literal(back) == py_literal(plan)


def test_refused_where_it_cannot_apply_at_its_line():
    table = "steps:\n  t:\n    table: shop.orders\n    checks:\n      - {name: d, schema_change: {on: [removed]}}\n"
    (issue,) = issues_of(table)
    assert (
        issue.startswith("pipe.aq.yaml:5:34:") and "`t` is a table step: it leaves no output in the artifact" in issue
    )
    rows = "steps:\n  s:\n    sql: SELECT 1 AS x\n    checks:\n      - {name: d, schema_change: {}, mostly: 0.5}\n"
    (issue,) = issues_of(rows)
    assert "`where` and `mostly` select rows; `schema_change` compares columns" in issue
    twice = (
        "steps:\n  s:\n    sql: SELECT 1 AS x\n    checks:\n      - {name: d, schema_change: {on: [added, added]}}\n"
    )
    (issue,) = issues_of(twice)
    assert "added is listed twice" in issue
    (issue,) = issues_of(rows.replace("{}, mostly: 0.5", "{on: [renamed]}"))
    assert "expected `added`, `removed` or `retyped`, not the text `renamed`" in issue


# ---------------------------------------------------------------------------------------------
# finding the earlier output: real store folders, manifests committed by the store's writer


def commit(root, run_id, *, columns, logical_date=None, code=None, step="customers", map_index=None):
    """A committed table output of ``step`` in run ``run_id`` of pipeline ``p``, its provenance
    recording ``logical_date`` and ``code`` (a digest) when given."""
    folder = Location.of(f"{root}/p/{run_id}/{step}" + ("" if map_index is None else f"/{map_index}"))
    table = pa.table({name: pa.array([], type=kind) for name, kind in columns.items()})
    attempt = folder.begin()
    fields = write_batches(folder, attempt, table.schema, iter(table.to_batches()))
    if logical_date or code:
        provenance = Provenance(
            code=CodeVersion(code, git=GitState("0123456789abcdef", False)) if code else None,
            run_id=run_id,
            logical_date=logical_date,
        )
        fields["provenance"] = provenance.to_json()
    return folder.commit(fields)


def search(root, logical_date, run_after=None, run_id="manual__2026-12-07T09:00:00+00:00", **kwargs):
    moment = datetime.datetime.fromisoformat(logical_date).replace(tzinfo=UTC)
    after = datetime.datetime.fromisoformat(run_after).replace(tzinfo=UTC) if run_after else moment
    return find_earlier(str(root), "p", "customers", run_id, moment, after, **kwargs)


INT = {"id": pa.int64()}


def test_the_greatest_earlier_logical_date_wins_whatever_order_the_runs_ran_in(tmp_path):
    # run ids carry when each run ran (dag.test and manual runs: now), provenance the date it is for
    commit(tmp_path, "manual__2026-12-07T08:00:00+00:00", columns=INT, logical_date="2026-03-02T00:00:00+00:00")
    commit(tmp_path, "manual__2026-12-07T08:05:00+00:00", columns=INT, logical_date="2026-03-01T00:00:00+00:00")
    commit(tmp_path, "manual__2026-12-07T08:10:00+00:00", columns=INT, logical_date="2026-03-05T00:00:00+00:00")
    found = search(tmp_path, "2026-03-03", run_after="2026-12-07T09:00:00").found
    assert (found.run_id, found.dated_by) == ("manual__2026-12-07T08:00:00+00:00", PROVENANCE)
    assert found.date == datetime.datetime(2026, 3, 2, tzinfo=UTC)
    assert search(tmp_path, "2026-03-02", run_after="2026-12-07T09:00:00").found.run_id.endswith("08:05:00+00:00")
    first = search(tmp_path, "2026-03-01", run_after="2026-12-07T09:00:00")  # strictly earlier: none
    assert first.found is None and not first.bounded


def test_this_run_and_runs_without_the_step_committed_are_passed_over(tmp_path):
    commit(tmp_path, "scheduled__2026-03-01T00:00:00+00:00", columns=INT, logical_date="2026-03-01T00:00:00+00:00")
    this = "scheduled__2026-03-02T00:00:00+00:00"
    commit(tmp_path, this, columns=INT, logical_date="2026-03-02T00:00:00+00:00")
    (tmp_path / "p" / "scheduled__2026-03-01T12:00:00+00:00" / "customers").mkdir(parents=True)  # failed: no manifest
    commit(tmp_path, "scheduled__2026-03-01T18:00:00+00:00", columns=INT, step="other")  # another step only
    found = search(tmp_path, "2026-03-03", run_id=this).found
    assert found.run_id == "scheduled__2026-03-01T00:00:00+00:00"


def test_outputs_without_provenance_are_dated_by_their_run_id_against_this_runs_run_after(tmp_path):
    """Interval schedules: a run's id carries its run_after, the end of its interval (= the next
    run's logical date); compared with this run's run_after, the previous interval is earlier."""
    commit(tmp_path, "scheduled__2026-03-02T00:00:00+00:00", columns=INT)  # the run for 03-01
    commit(tmp_path, "scheduled__2026-03-03T00:00:00+00:00", columns=INT)  # the run for 03-02 (this one)
    commit(tmp_path, "my-own-run-id", columns=INT)  # neither provenance nor a dated id: cannot be placed
    result = search(tmp_path, "2026-03-02", run_after="2026-03-03", run_id="scheduled__2026-03-03T00:00:00+00:00")
    assert (result.found.run_id, result.found.dated_by) == ("scheduled__2026-03-02T00:00:00+00:00", RUN_ID)


def test_a_run_id_of_its_own_is_placed_by_its_provenance(tmp_path):
    commit(tmp_path, "scheduled__2026-03-01T00:00:00+00:00", columns=INT, logical_date="2026-03-01T00:00:00+00:00")
    commit(tmp_path, "rerun-by-api", columns=INT, logical_date="2026-03-02T00:00:00+00:00")
    assert search(tmp_path, "2026-03-04").found.run_id == "rerun-by-api"


def test_a_schedule_reads_one_or_two_manifests_however_long_its_history(tmp_path):
    start = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    for day in range(40):
        date = (start + datetime.timedelta(days=day)).isoformat()
        commit(tmp_path, f"scheduled__{date}", columns=INT, logical_date=date)
    result = search(tmp_path, "2026-02-10", run_id="scheduled__2026-02-10T00:00:00+00:00")
    assert result.found.run_id == "scheduled__2026-02-09T00:00:00+00:00"
    assert result.read == 1  # the next run's id time is at or before the date found: the search stops


def test_the_search_is_bounded_and_says_so(tmp_path):
    """A run of an old date among more later runs than the limit: the later runs are read (their
    dates are not earlier) until the limit, and the result says the search stopped there."""
    start = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    for day in range(6):
        date = (start + datetime.timedelta(days=day)).isoformat()
        commit(tmp_path, f"scheduled__{date}", columns=INT, logical_date=date)
    result = search(tmp_path, "2026-01-02", run_id="backfill__2026-01-02T00:00:00+00:00", limit=3)
    assert result.found is None and result.bounded and result.read == 3
    outcome = schema_change_outcome(spec(), {"kind": "table", "schema": [["id", "int64"]]}, result)
    assert outcome.outcome == "passed" and "among the 3 newest runs' outputs (the search's limit)" in outcome.message
    assert search(tmp_path, "2026-01-02", run_id="backfill__2026-01-02T00:00:00+00:00").found.run_id == (
        "scheduled__2026-01-01T00:00:00+00:00"
    )


def test_a_foreach_item_is_compared_with_the_same_item(tmp_path):
    run = "scheduled__2026-03-01T00:00:00+00:00"
    commit(tmp_path, run, columns=INT, logical_date="2026-03-01T00:00:00+00:00", map_index=0)
    commit(tmp_path, run, columns={"id": pa.string()}, logical_date="2026-03-01T00:00:00+00:00", map_index=1)
    found = search(tmp_path, "2026-03-02", map_index=1).found
    assert found.manifest["schema"] == [["id", "string"]]
    assert search(tmp_path, "2026-03-02", map_index=2).found is None


def test_on_each_object_store(object_store):
    """One listing of the pipeline's folder and a manifest read per run, on S3, GCS and Azure."""
    scheme, make_bucket = object_store
    make_bucket("drift")
    root = f"{scheme}://drift/aq"
    assert search(root, "2026-03-02").found is None  # no pipeline folder yet: the first output
    commit(root, "scheduled__2026-03-01T00:00:00+00:00", columns=INT, logical_date="2026-03-01T00:00:00+00:00")
    commit(root, "scheduled__2026-03-02T00:00:00+00:00", columns={"id": pa.string()}, logical_date="2026-03-02")
    result = search(root, "2026-03-02T12:00:00")
    assert result.found.run_id == "scheduled__2026-03-02T00:00:00+00:00" and result.read == 1
    assert result.found.manifest["schema"] == [["id", "string"]]


def test_run_id_time():
    assert run_id_time("scheduled__2026-01-01T00:00:00+00:00") == datetime.datetime(2026, 1, 1, tzinfo=UTC)
    assert run_id_time("manual__2026-01-01T06:30:00.123456+00:00_a1B2c3D4") == datetime.datetime(
        2026, 1, 1, 6, 30, 0, 123456, tzinfo=UTC
    )
    assert run_id_time("my-run") is None and run_id_time("scheduled__2026-13-01T00:00:00") is None


# ---------------------------------------------------------------------------------------------
# the comparison


def spec(*changes: str, severity: str = "error") -> CheckPlan:
    return CheckPlan("drift", "schema_change", Severity(severity), changes=changes or ("added", "removed", "retyped"))


def test_diff_orders_and_kinds():
    changed = diff([("a", "int64"), ("b", "string"), ("c", "double")], [("c", "float"), ("a", "int64"), ("d", "bool")])
    assert changed.added == (("d", "bool"),)
    assert changed.removed == (("b", "string"),)
    assert changed.retyped == (("c", "double", "float"),)
    assert changed.kinds() == ("added", "removed", "retyped")
    assert diff([("A", "int64")], [("a", "int64")]).kinds() == ("added", "removed")  # names are exact
    assert diff([("a", "int64"), ("b", "int64")], [("b", "int64"), ("a", "int64")]).kinds() == ()  # order is no change


def found(tmp_path, columns, code=None, logical_date="2026-03-01T00:00:00+00:00"):
    commit(tmp_path, "scheduled__2026-03-01T00:00:00+00:00", columns=columns, logical_date=logical_date, code=code)
    return search(tmp_path, "2026-03-02")


def manifest(columns: dict, code: str | None = None) -> dict:
    record = Provenance(code=CodeVersion(code) if code else None, logical_date="2026-03-02T00:00:00+00:00")
    return {"kind": "table", "schema": [[n, t] for n, t in columns.items()], "provenance": record.to_json()}


def test_the_message_names_the_columns_the_run_and_the_code(tmp_path):
    earlier = found(tmp_path, {"id": pa.int64(), "tenure": pa.int64()}, code="sha256:" + "a" * 64)
    now = manifest({"id": "int64", "tenure": "string", "churn_score": "double"}, code="sha256:" + "b" * 64)
    outcome = schema_change_outcome(spec(), now, earlier)
    assert outcome.outcome == "failed" and outcome.severity == "error" and outcome.kind == "schema_change"
    assert outcome.message == (
        "columns added: churn_score (double); retyped: tenure int64 → string; compared with run "
        "scheduled__2026-03-01T00:00:00+00:00 (logical date 2026-03-01T00:00:00+00:00); code "
        "sha256:aaaaaaaaaaaa (git 0123456789) → sha256:bbbbbbbbbbbb"
    )
    assert outcome.details["code"] == {"before": "sha256:aaaaaaaaaaaa (git 0123456789)", "now": "sha256:bbbbbbbbbbbb"}
    assert outcome.expected == {"id": "int64", "tenure": "int64"}
    assert outcome.observed == {"id": "int64", "tenure": "string", "churn_score": "double"}


def test_only_the_kinds_in_on_fail(tmp_path):
    earlier = found(tmp_path, {"id": pa.int64(), "legacy": pa.float64()})
    removed = manifest({"id": "int64"})
    assert schema_change_outcome(spec("added", "retyped"), removed, earlier).outcome == "passed"
    ignored = schema_change_outcome(spec("added", "retyped"), removed, earlier).message
    assert ignored.startswith("columns removed: legacy (double), not in `on` (added, retyped); compared with")
    assert schema_change_outcome(spec("removed", severity="warning"), removed, earlier).outcome == "failed"
    same = schema_change_outcome(spec(), manifest({"legacy": "double", "id": "int64"}), earlier)
    assert same.outcome == "passed" and same.message.startswith("the same 2 columns and types; compared with run")


def test_first_output_passes_with_a_note(tmp_path):
    outcome = schema_change_outcome(spec(), manifest({"id": "int64"}), search(tmp_path, "2026-03-02"))
    assert outcome.outcome == "passed"
    assert outcome.message == f"{FIRST_OUTPUT}: this is the step's first committed output of an earlier logical date"


def test_an_output_that_is_not_a_table_is_an_error_and_an_earlier_one_is_said(tmp_path):
    error = schema_change_outcome(spec(), {"kind": "object", "files": ["value.pkl"]}, search(tmp_path, "2026-03-02"))
    assert error.outcome == "error" and "is a object, which has no columns" in error.message
    folder = Location.of(f"{tmp_path}/p/scheduled__2026-03-01T00:00:00+00:00/customers")
    folder.begin()
    folder.commit({"kind": "none", "files": []})
    became = schema_change_outcome(spec(), manifest({"id": "int64"}), search(tmp_path, "2026-03-02"))
    assert became.outcome == "failed"
    assert "columns added: id (int64)" in became.message and "its output was a none, not a table" in became.message


def test_manifests_of_older_releases_without_provenance_are_compared(tmp_path):
    commit(tmp_path, "scheduled__2026-03-01T00:00:00+00:00", columns=INT)
    outcome = schema_change_outcome(spec(), {"kind": "table", "schema": [["id", "int32"]]},
                                    search(tmp_path, "2026-03-01", run_after="2026-03-02"))  # fmt: skip
    assert outcome.outcome == "failed"
    assert outcome.message == (
        "columns retyped: id int64 → int32; compared with run scheduled__2026-03-01T00:00:00+00:00 "
        "(run id time 2026-03-01T00:00:00+00:00, no provenance)"
    )


# ---------------------------------------------------------------------------------------------
# any warehouse: the comparison is the manifests', only the row is the warehouse's

ON_WAREHOUSE = """
pipeline: {name}
warehouse: {conn}
results_schema: {schema}
steps:
  totals:
    sql: SELECT region, count(*) AS customers{extra} FROM {schema}.customers GROUP BY region
    checks:
      - {{name: same_columns, schema_change: {{}}, severity: warning}}
"""
ROWS = [(1, "eu", 9.5), (2, "eu", 19.0), (3, "us", 39.0)]


def two_dates(run_dag, name: str, conn: str, schema: str) -> tuple:
    """A sql step run on two dates, the second selecting one column more; both runs' ids."""
    ids = []
    for date, extra in (("2026-03-01", ""), ("2026-03-02", ", sum(fee) AS fees")):
        text = ON_WAREHOUSE.format(name=name, conn=conn, schema=schema, extra=extra)
        _, dag_run, states = run_dag(name, text, date=date)
        assert set(states.values()) == {"success"}, states  # a warning: the task stays green
        ids.append(dag_run.run_id)
    return tuple(ids)


def assert_recorded(found: list[tuple], first: str, second: str) -> None:
    by_run = {run_id: (outcome, message) for run_id, outcome, message in found}
    assert by_run[first][0] == "passed" and by_run[first][1].startswith(FIRST_OUTPUT)
    outcome, message = by_run[second]
    assert outcome == "failed", message
    assert message.lower().startswith("columns added: fees (") and f"compared with run {first}" in message


def test_on_postgresql(run_dag, postgres_dsn, tmp_path, monkeypatch):
    import psycopg2

    schema = f"aq_drift_{uuid.uuid4().hex[:8]}"
    with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
        cursor.execute(f"CREATE TABLE {schema}.customers (id int, region text, fee numeric(8,2))")
        cursor.executemany(f"INSERT INTO {schema}.customers VALUES (%s, %s, %s)", ROWS)
    monkeypatch.setenv("AIRFLOW_CONN_PG_WAREHOUSE", postgres_dsn.replace("postgresql://", "postgres://"))
    try:
        first, second = two_dates(run_dag, "drift_pg", "pg_warehouse", schema)
        with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
            table = f"{schema}.aq_check_results"
            cursor.execute(f"SELECT run_id, outcome, message FROM {table} WHERE kind = 'schema_change'")
            assert_recorded(cursor.fetchall(), first, second)
    finally:
        with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")


def test_on_snowflake_through_the_real_hook(run_dag, tmp_path, monkeypatch):
    import fakesnow
    import snowflake.connector

    conn = {"conn_type": "snowflake", "login": "aq", "password": "test", "schema": "raw",
            "extra": {"account": "aq-test", "database": "analytics_db", "warehouse": "wh"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_SNOW_WAREHOUSE", json.dumps(conn))
    with fakesnow.patch():
        with snowflake.connector.connect(database="analytics_db", schema="raw") as sf:
            sf.cursor().execute("CREATE TABLE raw.customers (id int, region varchar, fee number(8,2))")
            sf.cursor().executemany("INSERT INTO raw.customers VALUES (%s, %s, %s)", ROWS)
        first, second = two_dates(run_dag, "drift_snow", "snow_warehouse", "raw")
        with snowflake.connector.connect(database="analytics_db", schema="raw") as sf:
            found = (
                sf.cursor()
                .execute("SELECT run_id, outcome, message FROM raw.aq_check_results WHERE kind = 'schema_change'")
                .fetchall()
            )
    assert_recorded(found, first, second)
