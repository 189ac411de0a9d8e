"""`when:` conditions: params, this run's metrics and checks, the champion's recorded value; a
false condition skips the step and what needs it (Airflow's skipped state), nothing fails."""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest

from aq_airflow.cli.main import main as cli
from aq_airflow.devstack.loader_file import loader_files
from aq_airflow.pipeline_spec import SpecError, SpecFile
from aq_airflow.pipeline_spec.load import parse_spec
from aq_airflow.plan import compile_text
from aq_airflow.plan.model import ConditionPlan, TaskRole, WhenPlan

FLAG = """
pipeline: {name}
params: {{publish_enabled: true, region: eu}}
steps:
  source:
    python: cond_steps:numbers
  gated:
    python: cond_steps:double
    inputs: {{numbers: source}}
    when: {{param: publish_enabled}}
  needs_both:
    python: cond_steps:combine
    inputs: {{numbers: source, doubled: gated}}
  after_source:
    python: cond_steps:double
    inputs: {{numbers: source}}
  regional:
    python: cond_steps:double
    inputs: {{numbers: source}}
    when: {{param: region, equals: eu}}
"""

CHAMPION = """
pipeline: {name}
params: {{min_auc: 0.5}}
steps:
  evaluate:
    python: cond_steps:scores
    metrics:
      - {{name: auc, mean: score}}
    checks:
      - {{name: enough_rows, row_count: {{min: 2}}, severity: warning}}
  publish_model:
    python: cond_steps:double_scores
    inputs: {{scores: evaluate}}
    when:
      all:
        - {{metric: evaluate.auc, at_least: {{param: min_auc}}}}
        - {{metric: evaluate.auc, above: {{recorded: champion}}}}
        - {{check: evaluate.enough_rows}}
    publish: {{table: models.champion, mode: append}}
  report:
    python: cond_steps:double_scores
    inputs: {{scores: publish_model}}
"""


@pytest.fixture
def cond_steps(tmp_path, monkeypatch):
    (tmp_path / "cond_steps.py").write_text(
        "import os\nimport pyarrow as pa\nimport pyarrow.compute as pc\n\n"
        "def numbers():\n    return pa.table({'n': [1, 2, 3]})\n\n"
        "def double(numbers):\n    return numbers.set_column(0, 'n', pc.multiply(numbers.column('n'), 2))\n\n"
        "def combine(numbers, doubled):\n    return pa.table({'rows': [numbers.num_rows + doubled.num_rows]})\n\n"
        "def scores():\n"
        "    auc = float(os.environ['AQ_TEST_AUC'])\n"
        "    return pa.table({'score': [auc, auc], 'run': [os.environ['AQ_TEST_AUC']] * 2})\n\n"
        "def double_scores(scores):\n    return scores\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{__import__('os').environ.get('PYTHONPATH', '')}")


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    path = tmp_path / "results.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    return path


def rows(path, sql):
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


# ---- the plan ---------------------------------------------------------------------------------
def test_the_condition_is_a_task_before_the_run_reading_the_metric_tasks():
    plan = compile_text(SpecFile("c_plan.aq.yaml", CHAMPION.format(name="c_plan")))
    tasks = {t.task_id: t for t in plan.tasks}
    when = tasks["publish_model.when"]
    assert when.role == TaskRole.WHEN and isinstance(when.body, WhenPlan)
    assert set(when.upstream) == {"evaluate.metrics", "evaluate.checks"}
    assert tasks["publish_model.run"].upstream == ("publish_model.when",)
    assert when.body.reads_results
    metric, champion, check = when.body.condition.terms
    assert metric == ConditionPlan(kind="metric", step="evaluate", name="auc", op="at_least", value_param="min_auc")
    assert champion == ConditionPlan(kind="metric", step="evaluate", name="auc", op="above", champion=True)
    assert check == ConditionPlan(kind="check", step="evaluate", name="enough_rows", op="passed", value=True)


def test_a_condition_survives_the_plan_cache():
    from aq_airflow.plan.store import plan_from_json, plan_to_json

    plan = compile_text(SpecFile("c_cache.aq.yaml", CHAMPION.format(name="c_cache")))
    assert plan_from_json(plan_to_json(plan)) == plan


def test_a_param_only_condition_needs_no_warehouse():
    plan = compile_text(SpecFile("c_flag.aq.yaml", FLAG.format(name="c_flag")))
    when = next(t for t in plan.tasks if t.task_id == "gated.when")
    assert when.upstream == ("source.run",) and not when.body.reads_results
    assert when.body.condition == ConditionPlan(kind="param", name="publish_enabled", op="truthy")


class _Store:
    """This run's results as the condition reads them: {(step, name): (value, outcome)}."""

    def __init__(self, results, champion=None):
        self.results, self._champion = results, champion

    def run_result(self, table, dag_id, run_id, step, name, logical_date, map_index=-1):
        return self.results.get((step, name))

    def champion(self, *args):
        return self._champion


def _judge(when: str, params: dict, store: _Store) -> tuple[bool, list[str]]:
    import datetime
    import types

    from aq_airflow.operators.condition import ConditionContext, evaluate
    from aq_airflow.pipeline_spec.conditions import Condition
    from aq_airflow.plan.conditions import compile_condition

    plan = WhenPlan("s", compile_condition(Condition.model_validate(when)), "wh", None, "h")
    ti = types.SimpleNamespace(dag_id="d", run_id="r", map_index=-1)
    context = {"ti": ti, "logical_date": datetime.datetime(2026, 3, 1)}
    lines: list[str] = []
    return evaluate(plan.condition, ConditionContext(plan, params, context, lambda: store), lines), lines


@pytest.mark.parametrize(
    ("when", "params", "results", "held"),
    [
        ({"any": [{"param": "a"}, {"param": "b", "equals": "eu"}]}, {"a": "false", "b": "eu"}, {}, True),
        ({"any": [{"param": "a"}, {"param": "b", "equals": "eu"}]}, {"a": 0, "b": "us"}, {}, False),
        ({"not": {"check": "x.c", "passed": False}}, {}, {("x", "c"): (None, "passed")}, True),
        ({"check": "x.c", "passed": False}, {}, {("x", "c"): (None, "failed")}, True),
        ({"check": "x.c"}, {}, {}, False),  # not recorded by this run
        ({"metric": "x.m", "below": {"param": "cap"}}, {"cap": 2}, {("x", "m"): (1.5, "passed")}, True),
        ({"metric": "x.m", "at_most": 1}, {}, {("x", "m"): (None, "error")}, False),  # no value
        ({"metric": "x.m", "above": {"recorded": "champion"}}, {}, {("x", "m"): (0.8, "passed")}, True),
    ],
)
def test_conditions_are_judged_from_params_and_results(when, params, results, held):
    assert _judge(when, params, _Store(results))[0] is held


def test_a_non_number_in_a_numeric_comparison_fails_rather_than_skips():
    from airflow.exceptions import AirflowException

    with pytest.raises(AirflowException, match="not a number"):
        _judge({"param": "p", "above": 1}, {"p": "lots"}, _Store({}))


# ---- validation -------------------------------------------------------------------------------
BAD = """pipeline: c_bad
params: {publish_enabled: true}
steps:
  evaluate:
    python: m:f
    metrics: [{name: auc, mean: score}]
  publish_model:
    python: m:g
    inputs: [evaluate]
    when:
      any:
        - {param: publish_enable}
        - {metric: evaluate.auk, above: 0.8}
        - {metric: evalute.auc, above: {recorded: champion}}
        - {check: evaluate.rows}
  self_ref:
    python: m:g
    metrics: [{name: auc, mean: score}]
    when: {metric: self_ref.auc, below: 1}
"""


def test_bad_references_are_errors_at_the_when_lines(tmp_path):
    spec = tmp_path / "c_bad.aq.yaml"
    spec.write_text(BAD)
    with pytest.raises(SpecError) as error:
        parse_spec(SpecFile.read(str(spec)))
    lines = [str(issue) for issue in error.value.issues]
    assert lines == [
        f"{spec}:12:19: `publish_enable` is not a param of this pipeline; did you mean `publish_enabled`?",
        f"{spec}:13:20: step `evaluate` has no metric `auk`; did you mean `evaluate.auc`?",
        f"{spec}:14:20: `evalute` is not a step of this pipeline; did you mean `evaluate`?",
        f"{spec}:15:19: step `evaluate` has no check `rows`; it has no checks",
        f"{spec}:19:20: step `self_ref`'s `when:` cannot read its own metrics: they run after it",
    ]


def test_a_condition_cannot_read_a_mapped_steps_metrics(tmp_path):
    text = (
        "steps:\n  per_region:\n    python: m:f\n    foreach: [eu, us]\n"
        "    metrics: [{name: auc, mean: score}]\n"
        "  promote:\n    python: m:g\n    depends_on: [per_region]\n"
        "    when: {metric: per_region.auc, above: 0.5}\n"
    )
    with pytest.raises(SpecError) as error:
        parse_spec(SpecFile("c_mapped.aq.yaml", text))
    (issue,) = error.value.issues
    assert (issue.line, issue.col) == (9, 20)
    assert "step `per_region` runs per item (`foreach:`)" in issue.message


def test_a_mapped_step_can_have_a_condition():
    text = "params: {go: true}\nsteps:\n  each:\n    python: m:f\n    foreach: [eu, us]\n    when: {param: go}\n"
    tasks = {t.task_id: t for t in compile_text(SpecFile("c_map.aq.yaml", text)).tasks}
    assert tasks["each.when"].expand is None and tasks["each.items"].upstream == ("each.when",)


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{param: a, metric: b.c}", "exactly one of param, metric, check, all, any, not"),
        ("{metric: b.c}", "needs one of equals, above, below, at_least, at_most"),
        ("{param: a, above: 1, below: 2}", "compares once"),
        ("{check: b.c, above: 1}", "takes `passed: true|false`"),
        ("{param: a, above: {recorded: champion}}", "use it with `metric:`"),
        ("{all: []}", "at least 1 item"),
        ("{python: 'os.system(1)'}", "unknown key `python`"),
    ],
)
def test_malformed_conditions_are_refused(when, message):
    text = f"params: {{a: 1}}\nsteps:\n  b:\n    python: m:f\n    when: {when}\n"
    with pytest.raises(SpecError) as error:
        parse_spec(SpecFile("c_shape.aq.yaml", text))
    assert message in str(error.value), str(error.value)


# ---- runs -------------------------------------------------------------------------------------
def test_a_param_flag_runs_or_skips_the_step_and_what_needs_it(run_dag, cond_steps):
    _, dag_run, states = run_dag("c_flag", FLAG.format(name="c_flag"))
    assert set(states.values()) == {"success"}, states
    _, dag_run, states = run_dag("c_flag", FLAG.format(name="c_flag"), date="2026-03-02",
                                 conf={"publish_enabled": False, "region": "us"})  # fmt: skip
    assert states["gated.when"] == "skipped" and states["gated.run"] == "skipped"
    # needs the skipped output (and unskipped `source`): skipped, not failed
    assert states["needs_both.run"] == "skipped"
    assert states["regional.when"] == "skipped" and states["regional.run"] == "skipped"
    assert states["source.run"] == states["after_source.run"] == "success"
    assert "failed" not in states.values() and "upstream_failed" not in states.values()
    assert dag_run.state == "success"


@pytest.mark.slow
def test_a_metric_threshold_and_the_champion_decide_what_is_published(run_dag, cond_steps, warehouse, monkeypatch,
                                                                        capsys):  # fmt: skip
    spec = CHAMPION.format(name="c_champ")

    def day(date, auc):
        monkeypatch.setenv("AQ_TEST_AUC", str(auc))
        _, dag_run, states = run_dag("c_champ", spec, date=date)
        assert "failed" not in states.values() and dag_run.state == "success", states
        return states["publish_model.run"]

    assert day("2026-03-01", 0.70) == "success"  # no champion yet: the first model becomes it
    assert day("2026-03-02", 0.65) == "skipped"  # below the champion's 0.70
    assert day("2026-03-03", 0.40) == "skipped"  # below min_auc
    assert day("2026-03-04", 0.75) == "success"  # beats 0.70: the new champion
    assert day("2026-03-05", 0.72) == "skipped"  # the champion is now 0.75
    published = rows(warehouse, "SELECT DISTINCT run FROM models.champion ORDER BY run")
    assert published == [("0.7",), ("0.75",)]
    verdicts = rows(warehouse, "SELECT CAST(logical_date AS DATE)::VARCHAR, outcome, item_label FROM aq_check_results "
                               "WHERE dag_id = 'c_champ' AND step = 'publish_model' AND role = 'when' "
                               "ORDER BY 1")  # fmt: skip
    assert [v[1] for v in verdicts] == ["passed", "skipped", "skipped", "passed", "skipped"]
    assert {v[2] for v in verdicts} == {None}  # a condition task is never mapped
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "metric evaluate.auc = 0.72 > champion 0.75 (recorded 2026-03-04): does not hold" in text
    assert "no champion recorded before this date: holds" in text


def test_a_skipped_publish_skips_the_step_that_reads_it(run_dag, cond_steps, warehouse, monkeypatch):
    monkeypatch.setenv("AQ_TEST_AUC", "0.1")
    _, dag_run, states = run_dag("c_low", CHAMPION.format(name="c_low"))
    assert states["publish_model.when"] == "skipped"
    assert states["publish_model.run"] == states["publish_model.publish"] == states["report.run"] == "skipped"
    assert states["evaluate.metrics"] == states["evaluate.checks"] == "success"
    assert dag_run.state == "success"


@pytest.mark.slow
def test_aq_airflow_run_shows_the_skip_and_succeeds(cond_steps, tmp_path):
    """The same behaviour through `aq-airflow run`: a false flag skips, the run exits 0."""
    import subprocess
    import sys

    spec = tmp_path / "c_cli.aq.yaml"
    spec.write_text(FLAG.format(name="c_cli"))
    work = tmp_path / "work"
    command = [sys.executable, "-m", "aq_airflow.cli", "run", str(spec), "--workdir", str(work)]
    result = subprocess.run([*command, "--param", "publish_enabled=false"], capture_output=True, text=True,
                            timeout=300, env={**__import__("os").environ})  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "c_cli: success" in out
    assert "skipped gated.when" in out
    for task in ("gated.when", "gated.run", "needs_both.run"):
        assert any(line.split()[:2] == [task, "skipped"] for line in out.splitlines()), out
    assert any(line.split()[:2] == ["after_source.run", "success"] for line in out.splitlines()), out


def test_the_champion_challenger_example_promotes_the_first_model_then_judges(run_dag, duckdb_warehouse, capsys):
    from tests.conftest import EXAMPLES

    text = (EXAMPLES / "churn_champion.aq.yaml").read_text().replace("pipeline: churn_champion", "pipeline: c_example")
    _, dag_run, states = run_dag("c_example", text, date="2026-03-02")
    assert set(states.values()) == {"success"}, states
    assert rows(duckdb_warehouse, "SELECT version FROM ml.churn_champions") == [("2026-03-02",)]
    (auc,) = rows(duckdb_warehouse, "SELECT auc FROM ml.churn_champions")[0]
    assert 0.5 < auc <= 1
    _, dag_run, states = run_dag("c_example", text, date="2026-03-09", conf={"min_auc": 1.0})
    assert states["promote.when"] == states["promote.run"] == states["promote.publish"] == "skipped"
    assert dag_run.state == "success" and "failed" not in states.values()
    assert rows(duckdb_warehouse, "SELECT count(*) FROM ml.churn_champions") == [(1,)]
    logged = capsys.readouterr()
    assert "(recorded 2026-03-02)" in logged.out + logged.err


# ---- compiled files == live DAGs --------------------------------------------------------------
def test_compiled_conditions_equal_the_live_dag(tmp_path):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    live = tmp_path / "live"
    live.mkdir()
    for name, source in loader_files(1).items():
        (live / name).write_text(source)
    for name, text in (("c_champ", CHAMPION), ("c_flag", FLAG)):
        (live / f"{name}.aq.yaml").write_text(text.format(name=name))
    compiled = tmp_path / "compiled"
    assert cli(["compile", str(live), "--out", str(compiled)]) == 0
    source = (compiled / "c_champ.py").read_text()
    assert "AqConditionOperator(" in source and "ConditionPlan(" in source
    bags = DagBag(dag_folder=str(live)), DagBag(dag_folder=str(compiled))
    for dag_id in ("c_champ", "c_flag"):
        dags = [bag.dags[dag_id] for bag in bags]
        data = [DagSerialization.to_dict(d) for d in dags]
        for d in data:
            for key in ("fileloc", "relative_fileloc"):
                d["dag"].pop(key, None)
        assert data[0] == data[1]
        plans = [{t.task_id: t.plan for t in d.tasks} for d in dags]
        assert plans[0] == plans[1]
    shutil.rmtree(compiled)
