"""The typed Plan on its own, without Airflow: what the planner decides, that a cached or
generated plan is the same plan, and which operator the registry picks."""

from __future__ import annotations

import datetime
import enum
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aq_airflow.codegen.literals import py_literal
from aq_airflow.operators.registry import operator_arguments, operator_name
from aq_airflow.pipeline_spec import SpecFile
from aq_airflow.plan import compile_spec, compile_text
from aq_airflow.plan.model import (
    PLAN_TYPES,
    ArtifactRef,
    CheckPlan,
    Command,
    InputRef,
    MetricPlan,
    QualityPlan,
    QualitySource,
    Runner,
    RunPlan,
    Seconds,
    Severity,
    SourceKind,
    StepKind,
    TaskRole,
)
from aq_airflow.plan.store import plan_from_json, plan_to_json
from tests.conftest import EXAMPLES, example_specs


@pytest.fixture(scope="module")
def churn():
    return compile_spec(EXAMPLES / "churn_scoring.aq.yaml")


def task(plan, task_id: str):
    return next(t for t in plan.tasks if t.task_id == task_id)


def test_a_pod_step_is_planned_with_its_resources_placement_and_artifacts(churn):
    train = task(churn, "train.run").body
    assert (train.kind, train.runner, train.command) == (StepKind.PYTHON, Runner.KUBERNETES, Command("churn.train:fit"))
    assert train.resources.limits == {"cpu": "1", "memory": "32Gi", "nvidia.com/gpu": "1"}
    assert train.resources.gpu == 1
    assert train.placement.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"}
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in (
        train.placement.tolerations
    )
    assert train.output == ArtifactRef("churn_scoring", "train") and train.artifacts == "s3://acme-ml/aq"
    assert train.output.path("r1") == "churn_scoring/r1/train"
    assert ArtifactRef("churn_scoring", "train", map_index=3).path("r1") == "churn_scoring/r1/train/3"
    scores = task(churn, "scores.run").body
    assert scores.inputs == (
        InputRef("model", ArtifactRef("churn_scoring", "train")),
        InputRef("rows", ArtifactRef("churn_scoring", "features")),
    )
    assert scores.inputs_as_list is False and scores.args == {"as_of": "{{ ds }}"}
    report = task(churn, "report.run").body
    assert report.command == Command(argv=("python", "-m", "churn.report")) and not report.command.runs_runtime
    settings = task(churn, "train.run").settings
    assert (settings.retries, settings.retry_delay, settings.execution_timeout) == (2, Seconds(300), Seconds(7200))


def test_checks_and_metrics_are_compiled_once_with_defaults_resolved(churn):
    checks = task(churn, "scores.checks").body
    assert isinstance(checks, QualityPlan) and checks.source == QualitySource(
        SourceKind.ARTIFACT, artifact=ArtifactRef("churn_scoring", "scores")
    )
    by_name = {c.name: c for c in checks.checks}
    assert by_name["prob_in_range"] == CheckPlan(
        "prob_in_range", "between", Severity.ERROR, columns=("churn_probability",), low=0, high=1
    )
    assert by_name["enough_rows"].low == "{{ params.min_rows }}"  # rendered by Airflow at run time
    assert by_name["ids_present"].column == "customer_id"  # the GX expectation's column, for lineage
    metrics = {m.name: m for m in task(churn, "scores.metrics").body.metrics}
    assert metrics["rows"].severity == Severity.WARNING  # a metric's default
    assert (metrics["rows"].history_window, metrics["rows"].max_zscore, metrics["rows"].history_needed) == (14, 3, 14)
    assert (metrics["mean_churn"].bounds_min, metrics["mean_churn"].bounds_max) == (0.02, 0.6)
    customers = task(churn, "customers.checks").body
    assert customers.source.kind == SourceKind.QUERY and customers.source.artifact is not None
    assert customers.image is None  # a sql step runs in the warehouse
    assert task(churn, "scores.checks").body.image == "ghcr.io/acme/churn:1.4.2"


def test_durations_and_changes_are_resolved_in_the_plan():
    text = """
steps:
  t:
    table: raw.orders
    checks: [{name: fresh, freshness: {column: created_at, max_age: 1d}}]
    metrics: [{name: n, count: "*", max_change: 20%}]
"""
    plan = compile_text(SpecFile("p.aq.yaml", text))
    (fresh,) = task(plan, "t.checks").body.checks
    assert (fresh.max_age, fresh.max_age_text, fresh.column) == (86400, "1d", "created_at")
    (metric,) = task(plan, "t.metrics").body.metrics
    assert (metric.max_change, metric.history_needed) == (0.2, 1)
    assert task(plan, "t.checks").body.source == QualitySource(SourceKind.TABLE, table="raw.orders")
    assert [t.task_id for t in plan.tasks] == ["t.checks", "t.metrics"]  # nothing to export


def test_a_published_table_step_is_exported_first():
    text = "steps:\n  t:\n    table: raw.orders\n    publish: {table: mart.orders, mode: replace}\n"
    plan = compile_text(SpecFile("p.aq.yaml", text))
    assert [t.task_id for t in plan.tasks] == ["t.run", "t.publish"]
    publish = task(plan, "t.publish")
    assert publish.body.source.artifact == ArtifactRef("p", "t") and publish.upstream == ("t.run",)


@pytest.mark.parametrize(
    ("spec", "operator"),
    [
        ("steps:\n  a:\n    sql: SELECT 1\n", "AqSqlStepOperator"),
        ("steps:\n  a:\n    python: m:f\n", "AqLocalStepOperator"),
        ("steps:\n  a:\n    command: echo hi\n", "AqLocalStepOperator"),
        (
            "artifacts: s3://b/x\ncluster: eks\ndefaults: {image: i}\nsteps:\n  a:\n    python: m:f\n",
            "AqPodStepOperator",
        ),
        (
            "artifacts: s3://b/x\ncluster: aks\ndefaults: {image: i}\nsteps:\n  a:\n    command: [x]\n",
            "AqPodStepOperator",
        ),
    ],
)
def test_the_registry_picks_the_operator_by_step_kind_and_runner(spec, operator):
    plan = compile_text(SpecFile("p.aq.yaml", spec))
    run = task(plan, "a.run")
    assert operator_name(run) == operator
    assert operator_arguments(run)["plan"] is run.body


def test_quality_and_publish_tasks_take_the_step_settings():
    text = "steps:\n  a:\n    sql: SELECT 1 AS x\n    retries: 4\n    pool: wh\n    checks: [{name: c, not_null: x}]\n"
    text += "    publish: {table: s.t}\n"
    plan = compile_text(SpecFile("p.aq.yaml", text))
    for task_id, operator in (("a.checks", "AqCheckOperator"), ("a.publish", "AqPublishOperator")):
        planned = task(plan, task_id)
        assert operator_name(planned) == operator
        arguments = operator_arguments(planned)
        assert (arguments["retries"], arguments["pool"]) == (4, "wh")
    assert [o.name for o in operator_arguments(task(plan, "a.publish"))["outlets"]] == ["s.t"]
    assert task(plan, "a.checks").role == TaskRole.CHECKS


@pytest.mark.parametrize("path", example_specs(), ids=lambda p: p.name)
def test_a_cached_plan_reads_back_equal(path):
    plan = compile_spec(path)
    back = plan_from_json(plan_to_json(plan))
    assert back == plan
    assert py_literal(back) == py_literal(plan)  # the same types too (a StrEnum equals its string)


# ---- any plan value survives the JSON cache and codegen unchanged ------------------------------

_text = st.text(max_size=20)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), _text)
_ref = st.builds(ArtifactRef, _text, _text, st.one_of(st.none(), st.integers(0, 5000)))
_check = st.builds(
    CheckPlan,
    name=_text,
    kind=st.sampled_from(["not_null", "between", "row_count", "sql", "expect"]),
    severity=st.sampled_from(Severity),
    columns=st.tuples(_text) | st.tuples(),
    low=_scalar,
    high=_scalar,
    values=st.lists(_scalar, max_size=3).map(tuple),
    max_age=st.none() | st.integers(0, 10**9),
    kwargs=st.dictionaries(_text, _scalar | st.lists(_scalar, max_size=3), max_size=3),
    where=st.none() | _text,
    mostly=st.none() | st.floats(0.01, 1),
)
_metric = st.builds(
    MetricPlan,
    name=_text,
    kind=st.sampled_from(["count", "mean", "quantile"]),
    severity=st.sampled_from(Severity),
    q=st.none() | st.floats(0.01, 0.99),
    max_change=st.none() | st.floats(0, 10),
)
_quality = st.builds(
    QualityPlan,
    step=_text,
    warehouse=_text,
    source=st.builds(QualitySource, st.sampled_from(SourceKind), artifact=st.none() | _ref),
    artifacts=st.none() | _text,
    results_schema=st.none() | _text,
    spec_hash=_text,
    checks=st.lists(_check, max_size=3).map(tuple),
    metrics=st.lists(_metric, max_size=3).map(tuple),
)
_run = st.builds(
    RunPlan,
    step=_text,
    kind=st.sampled_from(StepKind),
    output=_ref,
    artifacts=st.none() | _text,
    command=st.builds(Command, st.none() | _text, st.lists(_text, max_size=3).map(tuple)),
    inputs=st.lists(st.builds(InputRef, _text, _ref), max_size=3).map(tuple),
    args=st.dictionaries(_text, _scalar, max_size=3),
    env=st.dictionaries(_text, _text, max_size=3),
)
_NAMESPACE = {
    **{name: cls for name, cls in PLAN_TYPES.items()},
    "datetime": datetime.datetime,
    "timedelta": datetime.timedelta,
    "timezone": datetime.timezone,
}


@settings(max_examples=150, deadline=None)
@given(st.one_of(_quality, _run))
def test_any_plan_value_reads_back_equal_from_the_cache_and_from_generated_code(value):
    from aq_airflow.plan.model import TaskPlan, TaskSettings

    planned = TaskPlan("s.t", "s", TaskRole.RUN, value, TaskSettings(retries=1, retry_delay=Seconds(5)))
    back = plan_from_json(plan_to_json(planned))
    assert back == planned and py_literal(back) == py_literal(planned)
    assert eval(py_literal(value), dict(_NAMESPACE)) == value


def test_plan_enums_are_written_as_members():
    assert py_literal(StepKind.PYTHON) == "StepKind.PYTHON"
    assert all(issubclass(PLAN_TYPES[name], enum.Enum) for name in ("StepKind", "Runner", "Severity", "SourceKind"))


def test_spec_plan_registry_and_codegen_import_no_airflow():
    code = (
        "import sys\n"
        "import aq_airflow.plan.planner, aq_airflow.plan.store, aq_airflow.operators.registry, aq_airflow.codegen\n"
        "from aq_airflow.plan import compile_spec\n"
        "from aq_airflow.codegen import render_dag\n"
        f"render_dag(compile_spec({str(EXAMPLES / 'churn_scoring.aq.yaml')!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_rendering_reaches_the_query_and_every_templated_field(churn):
    """Airflow renders a sql step's query and the check fields that may hold templates."""
    customers = task(churn, "customers.checks").body
    rendered = customers.rendered(lambda v: v.replace("{{ ds }}", "2026-03-01") if isinstance(v, str) else v)
    assert rendered.source.query == "SELECT * FROM raw.customers WHERE signup_date < '2026-03-01'"
    scores = task(churn, "scores.checks").body
    rows = {c.name: c for c in scores.rendered(lambda v: "1000" if v == "{{ params.min_rows }}" else v).checks}
    assert rows["enough_rows"].low == "1000"
    assert {c.name: c.low for c in scores.checks}["enough_rows"] == "{{ params.min_rows }}"  # planned one unchanged
