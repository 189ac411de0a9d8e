"""`foreach:` steps: one Airflow mapped task per item, per-item checks, map -> map chains and
fan-in, on the local runner (dag.test), in compiled files and on pods."""

from __future__ import annotations

import json
import os
import textwrap

import duckdb
import pyarrow.parquet as pq
import pytest

from aq_airflow.artifacts.store import MANIFEST
from aq_airflow.codegen import render_dag
from aq_airflow.live_dags import build_dag
from aq_airflow.operators.registry import operator_arguments, operator_expansion
from aq_airflow.plan import compile_text
from tests import test_kubernetes
from tests.helpers import issues_of, spec_file

FUNCTIONS = """
import json
import os

import pyarrow as pa


def per_region(item, ds):
    rows = {"eu": 2, "us": 3, "apac": 1}.get(item, 1)
    return pa.table({"region": [item] * rows, "n": list(range(rows)), "ds": [ds] * rows})


def double(per_region, item):
    assert set(per_region.column("region").to_pylist()) == {item}, (item, per_region)
    return per_region.append_column("n2", pa.array([n * 2 for n in per_region.column("n").to_pylist()]))


def together(double):
    return double


def as_list(double: list):
    return {"count": len(double), "rows": [t.num_rows for t in double]}


def square(item):
    return item["x"] ** 2


def total(square):
    return sum(square)
"""

SPEC = """
pipeline: {name}
params: {{regions: [eu, us], min_rows: 2}}
steps:
  per_region:
    python: fe_funcs:per_region
    foreach: {{param: regions}}
    max_parallel: 2
    checks:
      - {{name: has_two_rows, row_count: {{min: "{{{{ params.min_rows }}}}"}}}}  # rendered per item too
    metrics:
      - {{name: rows, count: "*"}}
  double:
    python: fe_funcs:double
    inputs: [per_region]
    foreach: {{step: per_region}}
  together:
    python: fe_funcs:together
    inputs: [double]
  listed:
    python: fe_funcs:as_list
    inputs: [double]
  echo:
    command: 'printf "%s|%s" "$AQ_ITEM" "$AQ_MAP_INDEX" > "$AQ_OUTPUT/item.txt"'
    foreach: [a, {{x: 1}}, 3]
"""


@pytest.fixture
def fe_funcs(tmp_path, monkeypatch):
    (tmp_path / "fe_funcs.py").write_text(FUNCTIONS)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ['PYTHONPATH']}")
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    path = tmp_path / "results.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    return path


def folder(tmp_path, dag_run, dag_id, step):
    return tmp_path / "artifacts" / dag_id / dag_run.run_id / step


def table_of(path):
    manifest = json.loads((path / MANIFEST).read_text())
    return pq.read_table(str(path / manifest["files"][0]))


def tis(dag_run):
    from airflow.utils.session import create_session

    with create_session() as session:
        return {(ti.task_id, ti.map_index): ti for ti in dag_run.get_task_instances(session=session)}


def plan_of(text, name="pipe"):
    return compile_text(spec_file(text, f"{name}.aq.yaml"))


# ---- end to end on the local runner ---------------------------------------------------------


def test_foreach_param_runs_per_item_with_checks_chain_and_fan_in(run_dag, fe_funcs, warehouse, tmp_path):
    _, dag_run, _ = run_dag("fe_e2e", SPEC.format(name="fe_e2e"), conf={"regions": ["eu", "us", "apac"]})
    instances = tis(dag_run)
    assert dag_run.state == "failed"  # apac has one row: its error check fails, blocking the fan-in
    runs = {i: ti for (task, i), ti in instances.items() if task == "per_region.run"}
    assert sorted(runs) == [0, 1, 2] and {ti.state for ti in runs.values()} == {"success"}
    assert [runs[i].rendered_map_index for i in range(3)] == ["eu", "us", "apac"]  # labels in the grid
    checks = {i: ti.state for (task, i), ti in instances.items() if task == "per_region.checks"}
    assert checks == {0: "success", 1: "success", 2: "failed"}
    assert instances["together.run", -1].state == "upstream_failed"
    # each item's output under its map index; the item list beside them
    base = folder(tmp_path, dag_run, "fe_e2e", "per_region")
    assert json.loads((base / "_items.json").read_text()) == {"count": 3, "items": ["eu", "us", "apac"]}
    assert table_of(base / "1").column("region").to_pylist() == ["us"] * 3
    # per-item result rows carry the map index and the item's label (the grid's)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        checks_rows = conn.execute(
            "SELECT map_index, item_label, outcome FROM aq_check_results WHERE dag_id = 'fe_e2e' ORDER BY map_index"
        ).fetchall()
        metric_rows = conn.execute(
            "SELECT map_index, item_label, value FROM aq_metric_results WHERE dag_id = 'fe_e2e' ORDER BY map_index"
        ).fetchall()
    assert checks_rows == [(0, "eu", "passed"), (1, "us", "passed"), (2, "apac", "failed")]
    assert metric_rows == [(0, "eu", 2.0), (1, "us", 3.0), (2, "apac", 1.0)]
    # the same date again with fewer items: the date holds this run's items only (apac's rows go)
    _, again, _ = run_dag("fe_e2e", SPEC.format(name="fe_e2e"), conf={"regions": ["eu", "us"]})
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for table in ("aq_check_results", "aq_metric_results"):
            rows = conn.execute(
                f"SELECT map_index, item_label, run_id FROM {table} WHERE dag_id = 'fe_e2e' ORDER BY map_index"
            ).fetchall()
            assert rows == [(0, "eu", again.run_id), (1, "us", again.run_id)], (table, rows)


def test_map_to_map_chain_and_fan_in_table_with_item_column(run_dag, fe_funcs, warehouse, tmp_path):
    _, dag_run, states = run_dag("fe_fanin", SPEC.format(name="fe_fanin"))
    assert dag_run.state == "success", states
    instances = tis(dag_run)
    assert {i for (task, i) in instances if task == "double.run"} == {0, 1}
    assert [instances["double.run", i].rendered_map_index for i in (0, 1)] == ["eu", "us"]
    # the fan-in: one table, items in order, with an `item` column first
    together = table_of(folder(tmp_path, dag_run, "fe_fanin", "together"))
    assert together.column_names[0] == "item"
    assert together.column("item").to_pylist() == ["eu", "eu", "us", "us", "us"]
    assert together.column("n2").to_pylist() == [0, 2, 0, 2, 4]
    # annotated `list`: the list of the items' outputs
    listed = folder(tmp_path, dag_run, "fe_fanin", "listed")
    manifest = json.loads((listed / MANIFEST).read_text())
    import pickle

    value = pickle.loads((listed / manifest["files"][0]).read_bytes())
    assert value == {"count": 2, "rows": [2, 3]}


def test_command_step_gets_the_item_as_json(run_dag, fe_funcs, warehouse, tmp_path):
    _, dag_run, states = run_dag("fe_cmd", SPEC.format(name="fe_cmd"))
    assert dag_run.state == "success", states
    base = folder(tmp_path, dag_run, "fe_cmd", "echo")
    texts = [(base / str(i) / "item.txt").read_text() for i in range(3)]
    assert texts == ['"a"|0', '{"x": 1}|1', "3|2"]
    labels = [tis(dag_run)["echo.run", i].rendered_map_index for i in range(3)]
    assert labels == ["a", '{"x":1}', "3"]


def test_foreach_over_a_step_output_list_and_rows(run_dag, fe_funcs, warehouse, tmp_path):
    (tmp_path / "fe_more.py").write_text(
        "import pyarrow as pa\n\n"
        "def points():\n    return pa.table({'x': [1, 2, 3], 'k': ['a', 'b', 'a']})\n\n"
        "def keys(item):\n    return item\n\n"
    )
    text = """
    pipeline: fe_rows
    steps:
      points:
        python: fe_more:points
      square:
        python: fe_funcs:square
        foreach: {step: points}
        depends_on: [points]
      total:
        python: fe_funcs:total
        inputs: [square]
      keys:
        python: fe_more:keys
        foreach: {step: points, column: k}
        depends_on: [points]
    """
    _, dag_run, states = run_dag("fe_rows", textwrap.dedent(text))
    assert dag_run.state == "success", states
    import pickle

    def value(step):
        path = folder(tmp_path, dag_run, "fe_rows", step)
        manifest = json.loads((path / MANIFEST).read_text())
        return pickle.loads((path / manifest["files"][0]).read_bytes())

    assert value("total") == 14
    keys = folder(tmp_path, dag_run, "fe_rows", "keys")
    assert json.loads((keys / "_items.json").read_text()) == {"count": 2, "items": ["a", "b"]}


# ---- the plan, compiled files, Airflow mapping -------------------------------------------------


def test_mapped_tasks_expand_over_the_items_task_with_labels_and_max_parallel():
    plan = plan_of(SPEC.format(name="fe_plan"), "fe_plan")
    tasks = {t.task_id: t for t in plan.tasks}
    run = tasks["per_region.run"]
    assert operator_expansion(run) == {"item": "per_region.items"}
    arguments = operator_arguments(run)
    assert arguments["map_index_template"] == "{{ task.item_label }}"
    assert arguments["max_active_tis_per_dagrun"] == 2
    assert operator_expansion(tasks["per_region.checks"]) == {"item": "per_region.items"}
    assert operator_expansion(tasks["together.run"]) == {}
    assert tasks["together.run"].body.inputs[0].gather
    assert not tasks["double.run"].body.inputs[0].gather  # map -> map: per item
    dag = build_dag(plan)
    mapped = dag.get_task("per_region.run")
    assert type(mapped).__name__ == "MappedOperator"
    assert mapped.partial_kwargs["max_active_tis_per_dagrun"] == 2
    assert dag.get_task("per_region.items").task_id in mapped.upstream_task_ids


def test_compiled_foreach_file_is_the_live_dag(tmp_path):
    from tests.test_codegen import serialized

    text = SPEC.format(name="fe_codegen")
    plan = plan_of(text, "fe_codegen")
    source = render_dag(plan)
    namespace: dict = {}
    exec(compile(source, "fe_codegen.py", "exec"), namespace)  # our own generated file
    compiled, live = namespace["dag"], build_dag(plan)
    assert serialized(compiled) == serialized(live)
    plans = [{t.task_id: t.partial_kwargs.get("plan", getattr(t, "plan", None)) if hasattr(t, "partial_kwargs")
              else t.plan for t in d.tasks} for d in (compiled, live)]  # fmt: skip
    assert plans[0] == plans[1] and all(plans[1].values())


def test_a_local_foreach_dag_builds_without_the_kubernetes_and_warehouse_modules(tmp_path):
    """Each item is a task process that parses its DAG file: on the local runner that parse
    imports neither the KubernetesPodOperator (and the Kubernetes clients) nor sqlglot and the
    warehouse adapters nor pyarrow (bench/foreach.py: 1.3 s, then 0.3 s more CPU, of every
    item's task process)."""
    import subprocess
    import sys

    spec = tmp_path / "fe_light.aq.yaml"
    spec.write_text("cluster: local\nsteps:\n  per:\n    python: fe_funcs:square\n    foreach: [{x: 1}, {x: 2}]\n")
    code = (
        "import sys\n"
        "from aq_airflow.live_dags import build_dag\n"
        "from aq_airflow.plan import compile_spec\n"
        f"dag = build_dag(compile_spec({str(spec)!r}))\n"
        "assert {type(t).__name__ for t in dag.tasks} == {'AqItemsOperator', 'MappedOperator'}, dag.tasks\n"
        "heavy = ('kubernetes', 'kubernetes_asyncio', 'airflow.providers.cncf.kubernetes.operators.pod', 'sqlglot',\n"
        "         'aq_airflow.warehouse', 'aq_airflow.runners.kubernetes', 'pyarrow')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_local_manifest_is_read_by_path_as_the_store_reads_it(tmp_path):
    from aq_airflow.artifacts.manifest import read_local_manifest
    from aq_airflow.artifacts.store import Location, MissingArtifact

    folder = Location.of(str(tmp_path / "out"))
    folder.begin()
    folder.commit({"kind": "none", "files": [], "step": "per"})
    assert read_local_manifest(str(tmp_path / "out"), "per") == folder.read_manifest("per")
    missing = Location.of(str(tmp_path / "nothing"))
    with pytest.raises(MissingArtifact) as by_store:
        missing.read_manifest("per")
    with pytest.raises(MissingArtifact) as by_path:
        read_local_manifest(str(tmp_path / "nothing"), "per")
    assert str(by_path.value).split(" (")[0] == str(by_store.value).split(" (")[0]
    assert "no output of step `per`" in str(by_path.value)


# ---- validate: located errors -----------------------------------------------------------------

BASE = """
pipeline: pipe
params: {{regions: [eu], one: eu}}
steps:
  a:
    python: m:f
    foreach: [1, 2]
  b:
    python: m:g
{extra}
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    foreach: {param: nope}", "pipe.aq.yaml:9:14: `nope` is not a param of this pipeline"),
        ("    foreach: {param: one}", "pipe.aq.yaml:9:14: param `one` is a str, not a list"),
        ("    foreach: {step: zz}\n    depends_on: [a]", "pipe.aq.yaml:9:14: `zz` is not another step"),
        ("    foreach: {step: a, column: c}\n    depends_on: [a]", "pipe.aq.yaml:9:14: `a` runs per item: a foreach"),
        (
            "    foreach: [x, y]\n    inputs: [a]",
            "pipe.aq.yaml:9:5: input `a` comes from `a`, which runs per item over",
        ),
        ('    foreach: "eu"', "pipe.aq.yaml:9:14:"),
        ("    foreach: []", "pipe.aq.yaml:9:14:"),
        ("    max_parallel: 2", "pipe.aq.yaml:9:19: `max_parallel` limits a `foreach:` step's items"),
        ("    foreach: [1]\n    publish: {table: t}", "pipe.aq.yaml:10:5: `b` runs per item: publish from a step"),
    ],
)
def test_foreach_mistakes_are_located(extra, expected):
    issues = issues_of(BASE.format(extra=extra))
    assert len(issues) == 1, issues
    where, _, message = expected.partition(": ")
    line = where.rsplit(":", 1)[0]  # the line of `foreach:` (the column: the key or the value it is about)
    assert issues[0].startswith(line + ":") and message in issues[0], issues


def test_foreach_over_a_step_implies_the_dependency():
    """`foreach: {step: x}` runs after `x` without `depends_on: [x]`: `x` is upstream of the items
    task (after the step's `when:`), and a loop through it is a cycle."""
    text = "params: {go: true}\nsteps:\n  x:\n    python: m:f\n  a:\n    python: m:g\n    foreach: {step: x}\n"
    tasks = {t.task_id: t.upstream for t in plan_of(text + "    when: {param: go}\n").tasks}
    assert tasks["a.items"] == ("a.when", "x.run") and tasks["a.run"] == ("a.items",)
    assert tasks["a.when"] == ()
    assert {t.task_id: t.upstream for t in plan_of(text).tasks}["a.items"] == ("x.run",)
    (issue,) = issues_of(text.replace("    python: m:f\n", "    python: m:f\n    inputs: [a]\n", 1))
    assert issue.startswith("pipe.aq.yaml:") and "steps form a cycle:" in issue
    assert issue.split("cycle: ")[1] in ("x -> a -> x", "a -> x -> a")


def test_lists_past_max_map_length_are_refused_before_run_time():
    items = ", ".join(str(i) for i in range(1025))
    (issue,) = issues_of(BASE.format(extra=f"    foreach: [{items}]"))
    assert issue.startswith("pipe.aq.yaml:9:14:"), issue
    assert "1025 items: Airflow maps at most 1024 per task (`[core] max_map_length`)" in issue  # why, not pydantic's
    (issue,) = issues_of(BASE.format(extra="    foreach: {param: big}").replace("one: eu", f"big: [{items}]"))
    assert "1025 items: Airflow maps at most 1024 per task (`[core] max_map_length`)" in issue


def test_a_sql_step_cannot_be_mapped():
    (issue,) = issues_of("steps:\n  a:\n    sql: SELECT 1\n    foreach: [1]\n")
    assert issue.startswith("pipe.aq.yaml:4:14: ")
    assert "`foreach` runs a python or command step per item; a `sql` step cannot" in issue


# ---- pods: the real KubernetesPodOperator against the loopback API server ----------------------

cluster = test_kubernetes.cluster  # the loopback API server and kubelet (a module fixture)

POD_SPEC = """
pipeline: {name}
artifacts: {artifacts}
cluster: eks
code: k8s_code
defaults:
  image: ghcr.io/acme/steps:1
  env:
    API_TOKEN: {{secret: api, key: token}}
steps:
  numbers:
    python: k8s_steps:numbers
  doubled:
    python: k8s_steps:double
    inputs: [numbers]
    foreach: [eu, us]
    max_parallel: 1
    resources: {{gpu: 1, gpu_type: a10g, memory: 4Gi}}
    args: {{factor: 3}}
"""


def test_a_mapped_gpu_step_runs_one_pod_per_item_with_its_placement(run_dag, cluster, tmp_path):
    import kubernetes_validate

    text = POD_SPEC.format(name="fe_k8s", artifacts=tmp_path / "artifacts")
    _, dag_run, states = run_dag("fe_k8s", text, local=False)
    assert dag_run.state == "success", (states, cluster.requests)
    base = folder(tmp_path, dag_run, "fe_k8s", "doubled")
    for index in (0, 1):
        assert table_of(base / str(index)).column("n").to_pylist() == [v * 3 for v in range(100)]
    created = [p for p in cluster.created if p["metadata"]["labels"]["dag_id"] == "fe_k8s"]
    pods = [p for p in created if p["metadata"]["labels"]["aq-airflow/step"] == "doubled"]
    assert len(pods) == 2
    for pod in pods:
        kubernetes_validate.validate(pod, kubernetes_validate.utils.latest_version(), strict=True)
        spec_ = pod["spec"]
        assert spec_["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec_["containers"][0]["resources"]["limits"]["memory"] == "4Gi"
        assert spec_["nodeSelector"] == {"karpenter.k8s.aws/instance-gpu-name": "a10g"}
        assert spec_["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    envs = sorted(({e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]} for p in pods),
                  key=lambda env: env["AQ_MAP_INDEX"])  # fmt: skip
    assert [(env["AQ_ITEM"], env["AQ_MAP_INDEX"]) for env in envs] == [('"eu"', "0"), ('"us"', "1")]
    assert [env["AQ_OUTPUT"].rsplit("/", 2)[-2:] for env in envs] == [["doubled", "0"], ["doubled", "1"]]
    assert len({env["AQ_CODE_DIGEST"] for env in envs}) == 1  # every item runs the run's one package
    labels = [tis(dag_run)["doubled.run", i].rendered_map_index for i in (0, 1)]
    assert labels == ["eu", "us"]


@pytest.mark.parametrize("item", ["{{ ds }}", {"q": "{% if x %}"}, "a {% endraw %} b", "plain"])
def test_a_pod_gets_its_item_as_written_whatever_it_holds(item):
    import jinja2

    from aq_airflow.runners import kubernetes

    plan = plan_of(POD_SPEC.format(name="fe_raw", artifacts="s3://b/a"), "fe_raw")
    run = next(t.body for t in plan.tasks if t.task_id == "doubled.run")
    env = {e.name: e.value for e in kubernetes.pod_arguments(run, item)["env_vars"] if e.value is not None}
    rendered = jinja2.Environment().from_string(env["AQ_ITEM"]).render(ds="2026-01-01")
    assert json.loads(rendered) == item
    assert env["AQ_MAP_INDEX"] == "{{ ti.map_index }}" and env["AQ_OUTPUT"].endswith("/doubled/{{ ti.map_index }}")


@pytest.mark.slow
def test_aq_airflow_run_shows_each_item(tmp_path):
    from tests.test_cli import run

    (tmp_path / "fe_cli.py").write_text(
        "import pyarrow as pa\n\n"
        "def per_region(item):\n    return pa.table({'region': [item], 'n': [len(item)]})\n\n"
        "def together(per_region):\n    return per_region\n"
    )
    text = """
    pipeline: fe_cli
    params: {regions: [eu, us]}
    steps:
      per_region:
        python: fe_cli:per_region
        foreach: {param: regions}
        checks: [{name: one_row, row_count: {min: 1, max: 1}}]
      together:
        python: fe_cli:together
        inputs: [per_region]
    """
    spec = tmp_path / "fe_cli.aq.yaml"
    spec.write_text(textwrap.dedent(text))
    result = run("run", str(spec), "--workdir", str(tmp_path / "work"), "--param", 'regions=["eu", "apac"]')
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    # one name per item everywhere: the task (or step), its map index and its item's label
    for name in ("per_region.run[0:eu]", "per_region.run[1:apac]", "per_region.checks[1:apac]"):
        assert any(line.startswith(name + " ") and "success" in line for line in lines), result.stdout  # summary
        assert any(line.endswith(f"] start   {name}") for line in lines), result.stdout  # progress
        assert any(f"] ok      {name} (" in line for line in lines), result.stdout
    assert any(" per_region[1:apac] " in line and " one_row " in line for line in lines), result.stdout  # results
    assert any(line.startswith("together.run ") and "table: 2 rows" in line for line in lines), result.stdout


def test_an_empty_list_skips_the_items_and_what_reads_them(run_dag, fe_funcs, warehouse, tmp_path):
    _, _, states = run_dag("fe_empty", SPEC.format(name="fe_empty"), conf={"regions": []})
    assert states["per_region.items"] == "success"
    assert states["per_region.run"] == "skipped" and states["together.run"] == "skipped", states
    assert states["echo.run"] == "success"  # other steps run as usual


def test_a_run_time_list_past_max_map_length_fails_the_items_task(run_dag, fe_funcs, warehouse, capsys):
    regions = [f"r{i}" for i in range(1025)]
    _, _, states = run_dag("fe_long", SPEC.format(name="fe_long"), conf={"regions": regions})
    assert states["per_region.items"] == "failed", states
    assert states["per_region.run"] == "upstream_failed"
    logged = capsys.readouterr()
    assert "1025 items, more than Airflow maps per task ([core] max_map_length = 1024)" in logged.out + logged.err


def test_fan_in_follows_the_annotation(tmp_path):
    import pandas as pd
    import pyarrow as pa

    from aq_airflow.artifacts.items import gather, write_items
    from aq_airflow.artifacts.store import Location
    from aq_airflow.artifacts.values import write_output

    def produce(step, items, outputs):
        folder = Location.of(str(tmp_path / step))
        write_items(folder, items)
        for index, value in enumerate(outputs):
            location = Location.of(str(tmp_path / step / str(index)))
            attempt = location.begin()
            location.commit({**write_output(location, attempt, value), "step": step})
        return folder

    tables = produce("t", [{"k": 1}, {"k": 2}], [pa.table({"v": [1, 2]}), pa.table({"v": [3]})])
    arrow = gather(tables, "t", pa.Table)
    assert arrow.column_names == ["item", "v"]
    assert arrow.column("item").to_pylist() == ['{"k": 1}', '{"k": 1}', '{"k": 2}']
    frame = gather(tables, "t", pd.DataFrame)
    assert isinstance(frame, pd.DataFrame) and frame["v"].tolist() == [1, 2, 3]
    listed = gather(tables, "t", list[pa.Table])
    assert [t.num_rows for t in listed] == [2, 1]
    numbers = produce("n", [1, 2.5], [pa.table({"v": [1]}), pa.table({"v": [2]})])
    assert gather(numbers, "n", None).column("item").to_pylist() == [1.0, 2.5]
    objects = produce("o", ["a", "b"], [{"model": 1}, None])
    assert gather(objects, "o", None) == [{"model": 1}, None]


def test_a_generated_foreach_file_stays_inert_whatever_the_items():
    import ast

    from tests.test_codegen import ALLOWED_CALLS, EVIL, PLAN_ENUMS, yaml_escape

    allowed = ALLOWED_CALLS | {"AqItemsOperator"}

    items = ", ".join('"' + "".join(yaml_escape(c) for c in value) + '"' for value in EVIL)
    text = f"steps:\n  a:\n    python: m:f\n    foreach: [{items}]\n  b:\n    python: m:g\n    inputs: [a]\n"
    source = render_dag(plan_of(text))
    variables = {t.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assign) for t in node.targets}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value  # only Operator.partial(...).expand(item=<items task>.output)
            if node.func.attr == "partial":
                assert isinstance(owner, ast.Name) and owner.id in allowed, ast.dump(node)
            else:
                assert node.func.attr == "expand" and isinstance(owner, ast.Call), ast.dump(node)
                assert owner.func.attr == "partial" and not node.args, ast.dump(node)
                (keyword,) = node.keywords
                assert keyword.arg == "item" and keyword.value.attr == "output"
                assert keyword.value.value.id in variables
        elif isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name) and node.func.id in allowed, ast.dump(node.func)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert node.value.id in PLAN_ENUMS or node.value.id in variables or node.attr == "partial"
        assert not isinstance(node, ast.Import | ast.Lambda | ast.FunctionDef | ast.ClassDef)
    namespace: dict = {}
    exec(compile(source, "evil.py", "exec"), namespace)  # builds, and says the items as written
    assert namespace["dag"].get_task("a.items").plan.foreach.items == tuple(EVIL)


def test_a_foreach_plan_survives_the_plan_cache():
    from aq_airflow.plan.store import plan_from_json, plan_to_json

    text = SPEC.format(name="fe_cache").replace("foreach: [a, {x: 1}, 3]", "foreach: [a, {x: [1, 2]}, [3]]")
    plan = plan_of(text, "fe_cache")
    assert plan_from_json(plan_to_json(plan)) == plan
