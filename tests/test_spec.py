"""The spec layer: valid specs parse, and every mistake gets one file:line:col line with a fix."""

from __future__ import annotations

import json

import pytest

from aq_airflow.pipeline_spec import SpecFile, json_schema, parse_spec
from tests.conftest import EXAMPLES, example_specs
from tests.helpers import issues_of

GOOD = """
pipeline: p
schedule: "@daily"
steps:
  a:
    sql: SELECT 1 AS x
  b:
    python: pkg.mod:fn
    inputs: [a]
"""


@pytest.mark.parametrize("path", example_specs(), ids=lambda p: p.name)
def test_examples_are_valid(path):
    pipeline = parse_spec(SpecFile.read(path))
    assert pipeline.steps


def test_minimal_spec_parses_with_defaults():
    assert issues_of(GOOD) == []
    pipeline = parse_spec(SpecFile("p.aq.yaml", GOOD))
    assert pipeline.cluster == "local"
    assert pipeline.warehouse == "aq_warehouse"
    assert pipeline.steps["b"].input_map == {"a": "a"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "steps:\n  a:\n    python: m:f\n    input: [x]\n",
            "pipe.aq.yaml:4:5: unknown key `input`; did you mean `inputs`?",
        ),
        (
            "steps:\n  a:\n    python: m:f\n    inputs: [b]\n  c:\n    sql: SELECT 1\n",
            "pipe.aq.yaml:4:14: `b` is not a step of this pipeline; steps are: a, c",
        ),
        (
            "steps:\n  a:\n    python: m:f\n    inputs: [trian]\n  train:\n    sql: SELECT 1\n",
            "pipe.aq.yaml:4:14: `trian` is not a step of this pipeline; did you mean `train`?",
        ),
        (
            'schedule: "61 * * * *"\nsteps:\n  a:\n    sql: SELECT 1\n',
            'pipe.aq.yaml:1:11: schedule: `61 * * * *` is not a cron expression: five fields "minute hour day month '
            'weekday", like "0 6 * * *"',
        ),
        (
            "steps:\n  a:\n    python: m:f\n    timeout: 5 minutes\n",
            "pipe.aq.yaml:4:14: steps.a.timeout: `5 minutes` is not a duration: write a whole number and a unit, "
            "like 30s, 5m, 2h or 1d",
        ),
        (
            "steps:\n  a:\n    python: m:f\n    resources: {memory: 2GB}\n",
            "pipe.aq.yaml:4:25: steps.a.resources.memory: `2GB` is not a memory quantity: write a number and a "
            "unit, like `512Mi` or `8Gi`",
        ),
        (
            "steps:\n  a:\n    python: m:f\n    resources: {cpu: -1}\n",
            "pipe.aq.yaml:4:22: steps.a.resources.cpu: `-1` is not a CPU quantity: write cores (`2`, `0.5`) or "
            "millicores (`500m`)",
        ),
        (
            "steps:\n  a:\n    python: m:f\n    sql: SELECT 1\n",
            "pipe.aq.yaml:3:5: steps.a: a step needs exactly one of sql, python, command, table, operator, spark, ray; "
            "found `sql` and `python`",
        ),
        (
            "steps:\n  a:\n    python: m:f\n    env: {DB_PASSWORD: hunter2}\n",
            "pipe.aq.yaml:4:10: steps.a.env: `DB_PASSWORD` looks like a credential: reference a Kubernetes Secret "
            "instead, `DB_PASSWORD: {secret: my-secret, key: db_password}`",
        ),
        (
            "steps:\n  a:\n    python: m:f\n  a:\n    sql: x\n",
            "pipe.aq.yaml:4:3: YAML syntax: duplicate key `a`: remove one of them",
        ),
        ("steps: [a, b\n", "pipe.aq.yaml:2:1: YAML syntax: did not find expected ',' or ']'"),
        ("- a\n- b\n", "pipe.aq.yaml:1:1: a spec is a mapping with at least `steps:`"),
        ("pipeline: p\n", "pipe.aq.yaml:1:1: missing required key `steps`"),
        (
            "steps:\n  a:\n    python: m:f\n    resources: {gpu_type: a100-80gb}\n",
            "pipe.aq.yaml:4:16: steps.a.resources: `gpu_type` is set but `gpu` is not: add `gpu: 1` (or more)",
        ),
        (
            "steps:\n  a:\n    sql: SELECT 1\n    publish: {table: t, mode: merge}\n",
            "pipe.aq.yaml:4:14: steps.a.publish: `mode: merge` needs `keys`: the columns that identify a row",
        ),
        (
            "steps:\n  a:\n    sql: SELECT 1\n    publish: {table: 'x; drop table y'}\n",
            "pipe.aq.yaml:4:22: steps.a.publish.table: `x; drop table y` is not allowed here; expected `table`, "
            "`schema.table` or `db.schema.table`",
        ),
        (
            "steps:\n  a:\n    sql: SELECT 1\n    checks: [{name: c, not_null: x, severity: fatal}]\n",
            "pipe.aq.yaml:4:47: steps.a.checks.0.severity: expected `error` or `warning`, not the text `fatal`",
        ),
        (
            "steps:\n  a-b:\n    sql: SELECT 1\n",
            "pipe.aq.yaml:2:3: `a-b` is not a valid name here; expected a name: letters, digits and underscores, "
            "not starting with a digit",
        ),
        (
            "cluster: gke-prod\nsteps:\n  a:\n    sql: SELECT 1\n",
            "pipe.aq.yaml:1:10: no cluster profile `gke-prod`; known profiles: aks, eks, eks-auto, gke, local, nvidia",
        ),
    ],
)
def test_each_mistake_is_one_located_line(text, expected):
    assert issues_of(text) == [expected]


def test_cycle_is_reported_with_its_path():
    text = "steps:\n" + "".join(f"  {s}:\n    python: m:f\n    inputs: [{i}]\n" for s, i in ("ac", "ba", "cb"))
    (issue,) = issues_of(text)
    assert issue.startswith("pipe.aq.yaml:")
    assert "steps form a cycle:" in issue
    cycle = issue.split("cycle: ")[1].split(" -> ")
    assert cycle[0] == cycle[-1] and sorted(set(cycle)) == ["a", "b", "c"]


def test_several_mistakes_are_all_reported_in_file_order():
    text = "steps:\n  a:\n    python: m:f\n    retries: many\n  b:\n    python: m:f\n    timeout: soon\n"
    issues = issues_of(text)
    assert [i.split(": ")[0] for i in issues] == ["pipe.aq.yaml:4:14", "pipe.aq.yaml:7:14"]


def test_kubernetes_profile_needs_image_and_shared_artifacts():
    text = "cluster: gke\nsteps:\n  a:\n    python: m:f\n"
    assert issues_of(text) == [
        "pipe.aq.yaml:1:10: profile `gke` runs steps in pods, which need a shared artifact store: set `artifacts:` "
        "to an s3://, gs:// or abfs:// URI",
        "pipe.aq.yaml:4:5: step `a` has no image: set `image:` on it or under `defaults:`",
    ]


def test_unknown_gpu_type_names_the_profile_choices():
    text = (
        "cluster: gke\nartifacts: gs://b/p\nsteps:\n  a:\n    python: m:f\n    image: i\n"
        "    resources: {gpu: 1, gpu_type: a10g}\n"
    )
    (issue,) = issues_of(text)
    assert issue.startswith("pipe.aq.yaml:7:35: profile `gke` has no GPU type `a10g`; it knows: a100-40gb")


def test_json_schema_is_generated_from_the_models_and_published(tmp_path):
    schema = json_schema()
    assert schema["title"] == "aq-airflow pipeline spec"
    assert "steps" in schema["required"]
    step = schema["$defs"]["Step"]["properties"]
    assert {"sql", "python", "command", "table", "inputs", "checks", "metrics", "publish"} <= set(step)
    assert schema["$defs"]["Check"]["properties"]["schema"]  # the alias, as users write it
    published = json.loads((EXAMPLES / "aq-airflow.schema.json").read_text())
    assert published == json.loads(json.dumps(schema)), "run `aq-airflow init example_dags` to refresh it"


@pytest.mark.parametrize("path", example_specs(), ids=lambda p: p.name)
def test_examples_point_editors_at_the_schema(path):
    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=aq-airflow.schema.json"


def test_inputs_differing_only_in_case_are_rejected():
    from tests.helpers import issues_of

    text = """
        steps:
          a: {sql: SELECT 1}
          b: {python: m:f, inputs: {myModel: a, mymodel: a}}
    """
    (issue,) = issues_of(text)
    assert "inputs `myModel`, `mymodel` differ only in case" in issue and issue.startswith("pipe.aq.yaml:3:")
