"""``aq-airflow run --from STEP`` / ``--steps a,b``: a new run that reuses the latest successful
run's committed outputs upstream. One sequence of real runs (module scope): a whole run, a
``--from``, a failed run, then a ``--steps`` that must skip the failed run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aq_airflow.cli.resume import select
from aq_airflow.client import Store
from aq_airflow.plan import compile_text
from tests.helpers import spec_file
from tests.test_client import aq_run, calls, make_spec

pytestmark = pytest.mark.slow  # its module fixture runs the pipeline with aq-airflow run several times


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    spec = make_spec(folder, "resume_demo")
    work = folder / "work"
    results, seen = {}, 0
    for name, args in (
        ("whole", ()),
        ("from_model", ("--from", "model")),
        ("failed", ("--param", 'regions=["eu", "fail"]')),
        ("steps_together", ("--steps", "together")),
    ):
        result = aq_run(spec, work, *args)
        log = calls(spec)
        results[name] = (result, log[seen:])
        seen = len(log)
    pipeline = Store(work / "artifacts").pipeline("resume_demo")
    return spec, work, results, dict(_by_order(pipeline, results))


def _by_order(pipeline, results):
    """The runs oldest first, named after the command that made each."""
    return zip(results, reversed(pipeline.runs()), strict=True)


def _ok(result) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_from_reruns_the_step_and_downstream_reusing_what_is_upstream(runs):
    _, _, results, by_name = runs
    _ok(results["whole"][0])
    result, ran = results["from_model"]
    _ok(result)
    whole, resumed = by_name["whole"], by_name["from_model"]
    assert results["whole"][1] == ["double", "fit", "per_region", "per_region", "per_region", "together"]
    assert ran == ["fit", "per_region", "per_region", "per_region", "together"]  # double did not run again
    day = whole.record["logical_date"][:10]
    assert (
        f"resuming from run {whole.run_id} (logical date {day}): reusing numbers, doubled; "
        "running model, per_region, together"
    ) in result.stdout
    lines = result.stdout.splitlines()
    for task in ("numbers.run", "doubled.run", "doubled.checks"):
        assert any(line.split()[:2] == [task, "reused"] and f"from run {whole.run_id}" in line for line in lines)
    assert resumed.run_id != whole.run_id and resumed.state == "success"
    assert resumed.record["resumed_from"] == whole.run_id
    assert (resumed.record["reused"], resumed.record["ran"]) == (
        ["numbers", "doubled"],
        ["model", "per_region", "together"],
    )
    for step in ("numbers", "doubled"):  # copied into the new run's folder, committed by their manifest
        manifest = resumed.step(step).manifest
        assert manifest["reused_from"]["run_id"] == whole.run_id
        assert manifest["uri"] == f"{resumed.uri}/{step}"
        assert resumed.step(step).read().equals(whole.step(step).read())
        assert all((Path(resumed.uri) / step / name).is_file() for name in manifest["files"])
    for step in ("model", "together"):  # recomputed in the new run
        assert "reused_from" not in resumed.step(step).manifest
        assert resumed.step(step).manifest["uri"] == f"{resumed.uri}/{step}"
    assert resumed.step("together").read().equals(whole.step("together").read())


def test_steps_runs_exactly_those_and_never_resumes_from_a_failed_run(runs):
    _, _, results, by_name = runs
    failed, _ = results["failed"]
    assert failed.returncode == 1 and by_name["failed"].state == "failed"
    result, ran = results["steps_together"]
    _ok(result)
    assert ran == ["together"]
    source = by_name["from_model"]  # the latest successful run; the failed one came after it
    day = source.record["logical_date"][:10]
    assert (
        f"resuming from run {source.run_id} (logical date {day}): reusing numbers, doubled, model, per_region; "
        "running together"
    ) in result.stdout
    run = by_name["steps_together"]
    assert run.record["resumed_from"] == source.run_id
    mapped = run.steps["per_region"]
    assert (mapped.items, mapped.committed_items) == (3, 3)  # the items list and every item copied
    assert run.step("per_region").item(2).manifest["reused_from"]["run_id"] == source.run_id
    assert run.step("together").read().column("item").to_pylist() == ["eu", "us", "apac"]
    assert "reused_from" not in run.step("together").manifest


def test_a_missing_upstream_output_is_exit_2_naming_it(runs, tmp_path):
    """An item uncommitted in every successful run (one run without it falls back to an earlier
    run that holds it): the latest successful run is named, with the missing path."""
    spec, work, _, by_name = runs
    shutil.copytree(work / "artifacts", tmp_path / "artifacts")
    latest = by_name["steps_together"].run_id
    for run in by_name.values():
        (tmp_path / "artifacts" / "resume_demo" / run.run_id / "per_region" / "1" / "_manifest.json").unlink(
            missing_ok=True
        )
    missing = tmp_path / "artifacts" / "resume_demo" / latest / "per_region" / "1"
    before = calls(spec)
    result = aq_run(spec, tmp_path, "--steps", "together")
    assert result.returncode == 2
    assert f"step `per_region` is upstream of what --from/--steps runs, but run {latest}" in result.stderr
    assert str(missing) in result.stderr
    assert calls(spec) == before  # nothing ran


def test_only_a_run_recorded_as_successful_is_resumed_from(runs, tmp_path):
    spec, work, _, by_name = runs
    failed = by_name["failed"].run_id
    shutil.copytree(work / "artifacts" / "resume_demo" / failed, tmp_path / "artifacts" / "resume_demo" / failed)
    result = aq_run(spec, tmp_path, "--from", "together")
    assert result.returncode == 2
    assert "no successful earlier run of `resume_demo`" in result.stderr and f"{failed} (failed)" in result.stderr


def test_from_an_unknown_step_says_which_it_meant(runs, tmp_path):
    spec, *_ = runs
    result = aq_run(spec, tmp_path, "--from", "modle")
    assert result.returncode == 2
    assert "--from modle: pipeline `resume_demo` has no step `modle`; did you mean `model`?" in result.stderr
    assert aq_run(spec, tmp_path, "--from", "model", "--steps", "model").returncode == 2  # one or the other


SELECT_SPEC = """
pipeline: sel
steps:
  a:
    sql: SELECT 1 AS n
    metrics: [{name: rows, count: "*"}]
    publish: {table: out.a}
  b:
    sql: SELECT 2 AS n
    when: {metric: a.rows, above: 0}
  c:
    sql: SELECT 3 AS n
  d:
    sql: SELECT 4 AS n
    depends_on: [b]
"""


def test_selection_reruns_the_reused_quality_a_condition_reads():
    """A condition reads this run's results only: the metrics it reads run again over the
    reused output; the reused step's run and publish do not."""
    plan = compile_text(spec_file(SELECT_SPEC, "sel.aq.yaml"))
    run_steps, reused, tasks = select(plan, "b", None)
    assert (run_steps, reused) == (["b", "d"], ["a"])  # c is neither upstream nor downstream
    assert "a.metrics" in tasks and not tasks & {"a.run", "a.publish", "c.run"}
    assert {"b.when", "b.run", "d.run"} <= tasks
    assert select(plan, None, "d, c")[:2] == (["c", "d"], ["a", "b"])
    assert json.dumps(sorted(select(plan, None, "c")[2])) == '["c.run"]'


BRANCHES = """
steps:
  a: {python: m:a}
  b: {python: m:b, inputs: [a]}
  c: {python: m:c, inputs: [b]}
  d: {python: m:d, inputs: [a]}
"""


def _committed_run(root: Path, run_id: str, steps: list[str]) -> None:
    """A run folder as `aq-airflow run` leaves it: each step's table committed by its manifest,
    and the run record."""
    import pyarrow as pa

    from aq_airflow.artifacts.store import Location, write_batches
    from aq_airflow.client.runs import write_record

    table = pa.table({"x": [1]})
    for step in steps:
        location = Location.of(f"{root}/branches/{run_id}/{step}")
        location.commit({**write_batches(location, location.begin(), table.schema, [table]), "step": step})
    record = {"state": "success", "logical_date": "2026-03-01T00:00:00+00:00"}
    write_record(str(root), "branches", run_id, record)


def test_a_resumed_run_that_holds_one_branch_does_not_hide_the_run_holding_another(tmp_path):
    """`--from d` leaves a run holding only a and d; `--steps c` after it needs a and b: the
    latest successful run that holds them is the source (found by manifest), not the latest run."""
    from aq_airflow.cli.resume import prepare

    plan = compile_text(spec_file(BRANCHES, "branches.aq.yaml"))
    _committed_run(tmp_path, "manual__2026-03-01T00:00:01+00:00", ["a", "b", "c", "d"])
    _committed_run(tmp_path, "manual__2026-03-01T00:00:02+00:00", ["a", "d"])  # resumed --from d
    resume = prepare(plan, str(tmp_path), None, "c", "2026-03-01")
    assert resume.source.run_id == "manual__2026-03-01T00:00:01+00:00"
    assert resume.reused == ("a", "b")
    assert prepare(plan, str(tmp_path), "d", None, "2026-03-01").source.run_id.endswith("02+00:00")
