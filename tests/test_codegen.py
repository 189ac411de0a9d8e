"""Generated DAG files: same DAG as the loader, byte-identical on every run, and inert."""

from __future__ import annotations

import ast
import enum
import shutil
import string

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aq_airflow.cli.main import main as cli
from aq_airflow.codegen import render_dag
from aq_airflow.pipeline_spec import SpecFile
from aq_airflow.pipeline_spec.secrets import secret_kind
from aq_airflow.plan import compile_spec, compile_text
from aq_airflow.plan.model import PLAN_TYPES
from tests.conftest import EXAMPLES, example_specs


def serialized(dag) -> dict:
    data = DagSerialization.to_dict(dag)
    for key in ("fileloc", "relative_fileloc"):
        data["dag"].pop(key, None)
    return data


def operator_plan(task):
    """The plan an operator was given; a mapped (`foreach:`) task keeps it among its partial arguments.
    An `operator:` step's task has no plan: its class (the serialized DAG holds its arguments)."""
    if hasattr(task, "partial_kwargs"):
        return task.partial_kwargs.get("plan")
    return (
        task.plan
        if type(task).__module__.startswith("aq_airflow.")
        else f"{type(task).__module__}.{type(task).__name__}"
    )


@pytest.fixture(scope="module")
def both_bags(tmp_path_factory):
    live = tmp_path_factory.mktemp("live")
    shutil.copytree(EXAMPLES, live, dirs_exist_ok=True)
    compiled = tmp_path_factory.mktemp("compiled")
    assert cli(["compile", str(EXAMPLES), "--out", str(compiled)]) == 0
    return DagBag(dag_folder=str(live)), DagBag(dag_folder=str(compiled))


def test_compiled_files_load_without_errors(both_bags):
    _, compiled = both_bags
    assert compiled.import_errors == {}
    assert set(compiled.dags) == {p.name.removesuffix(".aq.yaml") for p in example_specs()}


@pytest.mark.parametrize("path", example_specs(), ids=lambda p: p.name)
def test_compiled_dag_equals_live_dag(both_bags, path):
    live, compiled = both_bags
    dag_id = path.name.removesuffix(".aq.yaml")
    assert serialized(compiled.dags[dag_id]) == serialized(live.dags[dag_id])
    # the typed plan each operator was given (what it runs from; serialization sees only some of it)
    plans = {
        dag: {t.task_id: operator_plan(t) for t in bag.dags[dag_id].tasks}
        for dag, bag in (("live", live), ("compiled", compiled))
    }
    assert plans["compiled"] == plans["live"] and all(plans["live"].values())


@pytest.mark.parametrize("path", example_specs(), ids=lambda p: p.name)
def test_output_is_byte_identical_on_every_run(path, tmp_path):
    first = render_dag(compile_spec(path))
    copy = tmp_path / path.name  # another folder, another time: same bytes
    copy.write_text(path.read_text())
    shutil.copy(EXAMPLES / "aq-profiles.yaml", tmp_path / "aq-profiles.yaml")
    assert render_dag(compile_spec(copy)) == first
    compile(first, path.name, "exec")


LOCAL_SERVE = """
pipeline: serve_local
cluster: local
steps:
  features:
    sql: SELECT 1 AS tenure, 2.5 AS spend
  train:
    python: churn.train:fit
    inputs: [features]
    serve:
      endpoint: churn-local
      format: lightgbm
      canary: 25
      replicas: {min: 0, max: 2}
      sample: features
      columns: [tenure, spend]
      smoke_rows: 3
"""


def test_a_local_serve_task_compiles_to_the_live_dag(tmp_path):
    """The example specs serve on Kubernetes (AqInferenceServiceOperator); a local profile's serve
    task (AqLocalServeOperator, every `serve:` field set) is generated as the loader builds it."""
    live, compiled = tmp_path / "live", tmp_path / "compiled"
    live.mkdir()
    shutil.copytree(EXAMPLES / "churn", live / "churn")
    (live / "serve_local.aq.yaml").write_text(LOCAL_SERVE.lstrip())
    shutil.copy(EXAMPLES / "aq_dags_0.py", live / "aq_dags_0.py")
    assert cli(["compile", str(live / "serve_local.aq.yaml"), "--out", str(compiled)]) == 0
    bags = DagBag(dag_folder=str(live)), DagBag(dag_folder=str(compiled))
    assert [bag.import_errors for bag in bags] == [{}, {}]
    dags = [bag.dags["serve_local"] for bag in bags]
    assert serialized(dags[1]) == serialized(dags[0])
    task = dags[1].get_task("train.serve")
    assert type(task).__name__ == "AqLocalServeOperator" and task.plan == dags[0].get_task("train.serve").plan
    assert (task.plan.endpoint, task.plan.canary, task.plan.columns, task.plan.smoke_rows) == (
        "churn-local", 25, ("tenure", "spend"), 3)  # fmt: skip
    # one promotion of the endpoint at a time (catchup, backfill, cleared runs queue), in both DAGs
    assert [d.get_task("train.serve").max_active_tis_per_dag for d in dags] == [1, 1]
    assert dags[1].get_task("train.run").max_active_tis_per_dag is None


# ---- adversarial spec text stays data -------------------------------------------------------

PLAN_ENUMS = {name for name, cls in PLAN_TYPES.items() if issubclass(cls, enum.Enum)}
ALLOWED_CALLS = {
    "DAG", "TaskGroup", "datetime", "timedelta", "Asset", "ImportedCallback", "float",
    "AqSqlStepOperator", "AqLocalStepOperator", "AqPodStepOperator",
    "AqCheckOperator", "AqMetricOperator", "AqPublishOperator", "AqItemsOperator", "AqConditionOperator",
    "AqLocalServeOperator", "AqInferenceServiceOperator",
    "BashOperator",  # the spec's `operator:` step: the class it names, imported by its validated path
    *(set(PLAN_TYPES) - PLAN_ENUMS),
}  # fmt: skip
ALLOWED_IMPORTS = {"datetime", "airflow.sdk", "aq_airflow.operators", "aq_airflow.plan.model"}
ALLOWED_IMPORTS.add("airflow.providers.standard.operators.bash")  # the `operator:` step's class

EVIL = [
    '"); import os; os.system("x") #',
    "'''\nimport os\n'''",
    '\\"; __import__("os").system("id"); "',
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "\x00\u2028\r\n}}{%",
]


def assert_inert(source: str) -> None:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name), ast.dump(node.func)
            assert node.func.id in ALLOWED_CALLS, node.func.id
        if isinstance(node, ast.Import):
            raise AssertionError(f"unexpected import {ast.dump(node)}")
        if isinstance(node, ast.ImportFrom):
            assert node.module in ALLOWED_IMPORTS, node.module
        if isinstance(node, ast.Attribute):  # only a member of a plan enum: `StepKind.PYTHON`
            assert isinstance(node.value, ast.Name) and node.value.id in PLAN_ENUMS, ast.dump(node)
            assert node.attr in PLAN_TYPES[node.value.id].__members__, node.attr
        assert not isinstance(node, ast.Lambda | ast.FunctionDef | ast.ClassDef)


def yaml_escape(char: str) -> str:
    """One character inside a YAML double-quoted string."""
    if " " <= char <= "~" and char not in '"\\':
        return char
    return f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}"


def spec_with(value: str) -> str:
    quoted = "".join(yaml_escape(c) for c in value)
    text = f'''
pipeline: evil
description: "{quoted}"
owner: "{quoted}"
tags: ["{quoted}"]
params: {{p: "{quoted}"}}
steps:
  a:
    sql: "{quoted}"
    checks: [{{name: c, expression: "{quoted}", where: "{quoted}", description: "{quoted}"}}]
    metrics: [{{name: m, expression: "{quoted}"}}]
  b:
    command: "{quoted}"
    inputs: [a]
    env: {{X: "{quoted}"}}
    args: {{y: "{quoted}"}}
  c:
    operator: airflow.providers.standard.operators.bash.BashOperator
    args: {{bash_command: "{quoted}", env: {{X: "{quoted}"}}, doc_md: "{quoted}"}}
    depends_on: [b]
'''
    return text


@pytest.mark.parametrize("value", EVIL)
def test_hostile_strings_come_out_as_literals(value):
    plan = compile_text(SpecFile("evil.aq.yaml", spec_with(value)))
    source = render_dag(plan)
    assert_inert(source)
    assert plan.description == value  # carried through unchanged, as data
    assert next(t.body.args for t in plan.tasks if t.group == "c")["bash_command"] == value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(string.punctuation)))
def test_any_string_in_every_field_stays_inert(value):
    # refused before codegen: blank text, pasted credentials, tags over 100 characters
    assume(value.strip() and secret_kind(value) is None and len(value) <= 100)
    source = render_dag(compile_text(SpecFile("evil.aq.yaml", spec_with(value))))
    assert_inert(source)
