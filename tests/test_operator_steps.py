"""`operator:` steps: any Airflow operator or sensor class as a step, in order (`depends_on`,
`when:`) but outside the data contract; checked against its class at validate time, built by
both backends alike, run by `dag.test()` and `aq-airflow run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from airflow.dag_processing.dagbag import DagBag

from aq_airflow.codegen import render_dag
from aq_airflow.live_dags import INVALID_TAG, build_dag
from aq_airflow.operators.registry import AQ_OPERATORS, operator_arguments, operator_import
from aq_airflow.pipeline_spec.deep import deep_issues
from aq_airflow.plan import compile_text
from aq_airflow.plan.model import OperatorPlan, TaskRole
from aq_airflow.plan.store import plan_from_json, plan_to_json
from tests.helpers import issues_of, shard_import_errors, spec_file, write

BASH = "airflow.providers.standard.operators.bash.BashOperator"
FILE_SENSOR = "airflow.providers.standard.sensors.filesystem.FileSensor"


def plan_of(text: str, name: str = "pipe"):
    return compile_text(spec_file(text, f"{name}.aq.yaml"))


def task(plan, task_id):
    return next(t for t in plan.tasks if t.task_id == task_id)


def deep(text: str, tmp_path) -> list[str]:
    """What `aq-airflow validate` adds to a spec that plans: the operator classes imported and checked."""
    from aq_airflow.pipeline_spec import SpecFile

    path = write(tmp_path, "pipe.aq.yaml", text)
    return [str(i).removeprefix(f"{tmp_path}/") for i in deep_issues(SpecFile.read(path))]


# ---- the spec: what an operator step may not say, located ---------------------------------------

BASE = f"""
steps:
  rows:
    sql: SELECT 1 AS x
  hello:
    operator: {BASH}
    args: {{bash_command: echo hi}}
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    inputs: [rows]\n", "pipe.aq.yaml:7:5: an `operator` step reads no step outputs (its operator gets only "
         "`args`): to run it after other steps, list them under `depends_on`"),
        ("    foreach: [a, b]\n", "pipe.aq.yaml:7:5: an `operator` step runs once: `foreach:` runs a python or "
         "command step per item"),
        ("    checks: [{name: c, not_null: x}]\n", "pipe.aq.yaml:7:5: an `operator` step has no output: `checks`, "
         "`metrics`, `publish` and `sensitive` apply to the data a step writes; to check what the operator "
         "produced, read it with a `table:` or `sql:` step that lists this step under `depends_on`"),
        ("    metrics: [{name: n, count: '*'}]\n", "pipe.aq.yaml:7:5: an `operator` step has no output"),
        ("    publish: {table: s.t}\n", "pipe.aq.yaml:7:5: an `operator` step has no output"),
        ("    sensitive: [x]\n", "pipe.aq.yaml:7:5: an `operator` step has no output"),
        ("    image: python:3.12\n", "pipe.aq.yaml:7:5: an `operator` step runs its operator in the Airflow worker, "
         "not as a step process: `image`, `resources` and `env` do not apply; pass the operator's own settings "
         "under `args`"),
        ("    resources: {cpu: 2}\n", "pipe.aq.yaml:7:5: an `operator` step runs its operator in the Airflow worker"),
        ("    env: {A: b}\n", "pipe.aq.yaml:7:5: an `operator` step runs its operator in the Airflow worker"),
        ("  reader:\n    python: m:f\n    inputs: [hello]\n",
         "pipe.aq.yaml:9:14: `hello` is an `operator` step and has no output: to run after it, list it under "
         "`depends_on` instead"),
        ("  reader:\n    python: m:f\n    inputs: {h: hello}\n",
         "pipe.aq.yaml:9:17: `hello` is an `operator` step and has no output"),
        ("  per:\n    python: m:f\n    depends_on: [hello]\n    foreach: {step: hello}\n",
         "pipe.aq.yaml:10:21: `hello` is an `operator` step and has no output to run over"),
    ],
)  # fmt: skip
def test_what_an_operator_step_may_not_say_is_located(extra, expected):
    issues = issues_of(BASE + extra)
    assert len(issues) == 1 and issues[0].startswith(expected), issues


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("task_id: x", "6:35: `task_id` is set by aq-airflow, not in `args`: the task id is the step's name"),
        ("dag: x", "6:35: `dag` is set by aq-airflow, not in `args`"),
        ("task_group: x", "6:35: `task_group` is set by aq-airflow, not in `args`"),
        ("retries: 3", "6:35: `retries` is set by aq-airflow, not in `args`: set the step's `retries:`"),
        ("retry_delay: 5", "6:35: `retry_delay` is set by aq-airflow, not in `args`: set the step's `retry_delay:`"),
        ("execution_timeout: 5", "6:35: `execution_timeout` is set by aq-airflow, not in `args`: set the step's "
         "`timeout:`"),
        ("pool: p", "6:35: `pool` is set by aq-airflow, not in `args`: set the step's `pool:`"),
        ("from: x", "6:35: `from` is a Python keyword: no operator takes it as a keyword argument"),
    ],
)  # fmt: skip
def test_what_the_builder_sets_is_refused_in_args(argument, expected):
    text = BASE.replace("{bash_command: echo hi}", f"{{bash_command: echo hi, {argument}}}")
    issues = issues_of(text)
    assert len(issues) == 1 and issues[0].startswith(f"pipe.aq.yaml:{expected}"), issues


@pytest.mark.parametrize("path", ["BashOperator", "airflow.providers.standard:BashOperator", "a..B", "os.system()"])
def test_the_class_is_a_dotted_path(path):
    (issue,) = issues_of(BASE.replace(BASH, f"'{path}'"))
    assert issue.startswith("pipe.aq.yaml:5:15: ") and "`package.module.Class`" in issue, issue


def test_credentials_in_operator_args_are_refused():
    text = BASE.replace(
        "{bash_command: echo hi}", "{bash_command: echo hi, env: {AUTH: 'Bearer abcdefghijklmnopqrstuvwxyz0123'}}"
    )
    (issue,) = issues_of(text)
    assert issue.startswith("pipe.aq.yaml:6:47: steps.hello.args.env.AUTH: this looks like a credential (a bearer "), (
        issue
    )


# ---- validate: the class imported, its arguments checked ------------------------------------------


def test_a_valid_operator_and_sensor_pass_validate(tmp_path):
    text = f"""
    steps:
      hello:
        operator: {BASH}
        args: {{bash_command: "echo {{{{ ds }}}}", env: {{A: b}}, retry_exponential_backoff: 2, doc_md: hi}}
      wait:
        operator: {FILE_SENSOR}
        # the class's own, its sensor base's and BaseOperator's arguments
        args: {{filepath: /tmp/x, poke_interval: 5, mode: reschedule, priority_weight: 3}}
    """
    assert issues_of(text) == []
    assert deep(textwrap.dedent(text), tmp_path) == []


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (f"operator: {BASH}\n    args: {{bash_comand: echo}}",
         ["pipe.aq.yaml:2:3: `BashOperator` needs `bash_command`: add it under `args:`",
          "pipe.aq.yaml:4:12: `BashOperator` takes no argument `bash_comand`; did you mean `bash_command`?"]),
        # a sensor: its own arguments, its base sensor's, BaseOperator's, walked through the MRO
        (f"operator: {FILE_SENSOR}\n    args: {{filepath: x, poke_intervall: 5, priority_wieght: 2}}",
         ["pipe.aq.yaml:4:25: `FileSensor` takes no argument `poke_intervall`; did you mean `poke_interval`?",
          "pipe.aq.yaml:4:44: `FileSensor` takes no argument `priority_wieght`; did you mean `priority_weight`?"]),
        (f"operator: {FILE_SENSOR}\n    args: {{mode: reschedule}}",
         ["pipe.aq.yaml:2:3: `FileSensor` needs `filepath`: add it under `args:`"]),
        (f"operator: {BASH}\n    args: {{bash_command: x, colour: red}}",
         ["pipe.aq.yaml:4:29: `BashOperator` takes no argument `colour`; check its documentation for its arguments"]),
        ("operator: airflow.providers.http.sensors.http.HttpSensor\n    args: {endpoint: health}",
         ["pipe.aq.yaml:3:15: cannot import the operator class `airflow.providers.http.sensors.http.HttpSensor`: "
          "no module named `airflow.providers.http`; install its provider, `pip install "
          "apache-airflow-providers-http`, wherever Airflow parses and runs this pipeline (the dag-processor and "
          "the workers)"]),
        ("operator: no_such_package.sensors.Wait",
         ["pipe.aq.yaml:3:15: cannot import the operator class `no_such_package.sensors.Wait`: no module named "
          "`no_such_package`; install the package that provides it (or fix the path) wherever Airflow parses and "
          "runs this pipeline (the dag-processor and the workers)"]),
        ("operator: airflow.providers.standard.sensors.filesystem.FileSenser",
         ["pipe.aq.yaml:3:15: module `airflow.providers.standard.sensors.filesystem` has no `FileSenser`; did you "
          "mean `airflow.providers.standard.sensors.filesystem.FileSensor`?"]),
        ("operator: json.JSONDecoder",
         ["pipe.aq.yaml:3:15: `json.JSONDecoder` is class `JSONDecoder`, not an Airflow operator or sensor (a "
          "subclass of airflow.sdk.BaseOperator): name an operator or sensor class"]),
        ("operator: os.sep", ["pipe.aq.yaml:3:15: `os.sep` is a str, not an Airflow operator or sensor"]),
    ],
)  # fmt: skip
def test_validate_checks_the_class_and_its_arguments(step, expected, tmp_path):
    text = f"steps:\n  a:\n    {step}\n"
    assert issues_of(text) == []  # the loader does not import the class
    found = deep(text, tmp_path)
    assert len(found) == len(expected) and all(f.startswith(e) for f, e in zip(found, expected, strict=True)), found


def test_a_required_argument_a_subclass_fills_for_its_base_is_not_asked_for(tmp_path):
    """Only the constructor that runs first says what is required: a base class's required
    arguments may be passed by the subclass itself."""
    (tmp_path / "team_ops.py").write_text(
        "from airflow.providers.standard.operators.bash import BashOperator\n\n"
        "class Hello(BashOperator):\n"
        "    def __init__(self, *, who: str, **kwargs):\n"
        "        super().__init__(bash_command=f'echo {who}', **kwargs)\n"
    )
    text = "steps:\n  a:\n    operator: team_ops.Hello\n    args: {who: me}\n"
    assert deep(text, tmp_path) == []  # the spec's own folder is importable, as under `aq-airflow run`
    assert deep(text.replace("who: me", "whom: me"), tmp_path) == [
        "pipe.aq.yaml:2:3: `Hello` needs `who`: add it under `args:`",
        "pipe.aq.yaml:4:12: `Hello` takes no argument `whom`; did you mean `who`?",
    ]


def test_validate_without_airflow_notes_what_it_did_not_check(tmp_path):
    """`validate` runs without Airflow (editors, CI): an operator class is then not imported, and
    a note says so; everything else is still checked."""
    spec = write(tmp_path, "pipe.aq.yaml", BASE.replace("echo hi", "echo hi, colour: red"))
    code = (
        "import sys\nsys.modules['airflow'] = None  # as if Airflow were not installed\n"
        "from aq_airflow.cli.main import main\nsys.exit(main(['validate', sys.argv[1]]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: Airflow is not installed: `operator:` classes were not imported and checked" in result.stderr
    with_airflow = subprocess.run([sys.executable, "-m", "aq_airflow.cli", "validate", str(spec)],
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
    assert with_airflow.returncode == 1
    assert "`BashOperator` takes no argument `colour`" in with_airflow.stdout


# ---- the plan -----------------------------------------------------------------------------------

PLANNED = f"""
defaults: {{retries: 2, retry_delay: 1m}}
params: {{notify: false}}
steps:
  rows:
    sql: SELECT 1 AS x
  stamp:
    operator: {BASH}
    args: {{bash_command: "echo {{{{ ds }}}}", env: {{WHERE: "{{{{ params.notify }}}}"}}}}
    depends_on: [rows]
    timeout: 5m
    pool: shell
  notify:
    operator: {BASH}
    args: {{bash_command: echo notify}}
    depends_on: [stamp]
    when: {{param: notify}}
  report:
    python: m:f
    inputs: [rows]
    depends_on: [stamp, notify]
"""


def test_an_operator_step_is_one_run_task_with_its_class_and_args():
    plan = plan_of(PLANNED)
    stamp = task(plan, "stamp.run")
    assert stamp.role == TaskRole.RUN
    assert stamp.body == OperatorPlan("stamp", BASH, {"bash_command": "echo {{ ds }}",
                                                      "env": {"WHERE": "{{ params.notify }}"}})  # fmt: skip
    assert [t.task_id for t in plan.tasks if t.group in ("stamp", "notify")] == ["stamp.run", "notify.when",
                                                                                  "notify.run"]  # fmt: skip
    assert stamp.upstream == ("rows.run",)
    assert task(plan, "notify.when").upstream == ("stamp.run",)
    assert task(plan, "notify.run").upstream == ("notify.when",)
    assert set(task(plan, "report.run").upstream) == {"stamp.run", "notify.run"}  # rows.run: implied by stamp.run
    assert operator_import(stamp) == ("airflow.providers.standard.operators.bash", "BashOperator")
    assert operator_import(task(plan, "rows.run")) == (AQ_OPERATORS, "AqSqlStepOperator")
    arguments = operator_arguments(stamp)
    assert "plan" not in arguments
    assert arguments["bash_command"] == "echo {{ ds }}" and arguments["pool"] == "shell"
    assert (arguments["retries"], arguments["retry_delay"].value, arguments["execution_timeout"].value) == (2, 60, 300)
    assert next(g.tooltip for g in plan.groups if g.group_id == "stamp") == "operator step"


def test_an_operator_plan_survives_the_plan_cache():
    plan = plan_of(PLANNED)
    assert plan_from_json(plan_to_json(plan)) == plan


# ---- both backends: live DAG and generated file ---------------------------------------------------


def test_the_live_dag_builds_the_operator_with_the_task_settings():
    from airflow.providers.standard.operators.bash import BashOperator

    dag = build_dag(plan_of(PLANNED))
    stamp = dag.get_task("stamp.run")
    assert type(stamp) is BashOperator
    assert stamp.bash_command == "echo {{ ds }}" and stamp.env == {"WHERE": "{{ params.notify }}"}
    assert (stamp.retries, stamp.retry_delay.total_seconds(), stamp.pool) == (2, 60, "shell")
    assert stamp.execution_timeout.total_seconds() == 300
    assert stamp.task_group.group_id == "stamp"
    assert dag.get_task("report.run").upstream_task_ids == {"stamp.run", "notify.run"}


USER_OPERATORS = """
from airflow.providers.standard.operators.bash import BashOperator as Base
from airflow.sdk import BaseOperator


class BashOperator(Base):
    \"\"\"Another class of the same name as the standard one.\"\"\"


class TaskGroup(BaseOperator):
    \"\"\"A class named like what generated files import from Airflow.\"\"\"

    def __init__(self, *, note: str, **kwargs):
        super().__init__(**kwargs)
        self.note = note

    def execute(self, context):
        return self.note
"""


def test_the_generated_file_is_the_live_dag_and_imports_each_class_once(tmp_path, monkeypatch):
    from tests.test_codegen import serialized

    (tmp_path / "aq_user_ops.py").write_text(USER_OPERATORS)
    monkeypatch.syspath_prepend(str(tmp_path))
    text = PLANNED + (
        "  mine:\n    operator: aq_user_ops.BashOperator\n    args: {bash_command: echo mine}\n"
        "  grouped:\n    operator: aq_user_ops.TaskGroup\n    args: {note: hi}\n"
        f"  wait:\n    operator: {FILE_SENSOR}\n    args: {{filepath: /tmp, poke_interval: 5, mode: reschedule}}\n"
    )
    plan = plan_of(text, "op_codegen")
    source = render_dag(plan)
    imports = [line for line in source.splitlines() if line.startswith("from ") and "aq_airflow" not in line]
    assert imports == [
        "from datetime import datetime, timedelta, timezone  # noqa: F401",
        "from airflow.sdk import DAG, Asset, TaskGroup  # noqa: F401",
        "from airflow.providers.standard.operators.bash import BashOperator",
        "from airflow.providers.standard.sensors.filesystem import FileSensor",
        "from aq_user_ops import BashOperator as BashOperator_2",
        "from aq_user_ops import TaskGroup as TaskGroup_2",
    ]
    namespace: dict = {}
    exec(compile(source, "op_codegen.py", "exec"), namespace)  # our own generated file
    compiled, live = namespace["dag"], build_dag(plan)
    assert serialized(compiled) == serialized(live)
    for task_id in ("stamp.run", "mine.run", "grouped.run", "wait.run"):
        assert type(compiled.get_task(task_id)) is type(live.get_task(task_id)), task_id
    assert type(live.get_task("mine.run")).__module__ == "aq_user_ops"
    assert compiled.get_task("grouped.run").note == "hi"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (OperatorPlan("a", "os; import x.Y"), "module name 'os; import x' is not a Python identifier"),
        (OperatorPlan("a", "import.Y"), "module name 'import' is not a Python identifier"),
        (OperatorPlan("a", "m.Y()"), "class name 'Y()' is not a Python identifier"),
        (OperatorPlan("a", "m.Y", {"x=1, y": 2}), "argument name 'x=1, y' is not a Python identifier"),
    ],
)
def test_codegen_writes_only_identifiers_as_code(body, message):
    """A plan read from the cache is data: what codegen writes as code is checked again."""
    import dataclasses

    plan = plan_of("steps:\n  a:\n    operator: m.Y\n")
    plan = dataclasses.replace(plan, tasks=tuple(dataclasses.replace(t, body=body) for t in plan.tasks))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        render_dag(plan)


# ---- the loader: a class that does not import on this machine -------------------------------------


def test_a_missing_provider_makes_a_located_placeholder(dags_folder):
    write(dags_folder, "http_wait.aq.yaml", """
        steps:
          wait:
            operator: airflow.providers.http.sensors.http.HttpSensor
            args: {http_conn_id: my_api, endpoint: health}
          ok:
            sql: SELECT 1
        """)  # fmt: skip
    write(dags_folder, "fine.aq.yaml", f"steps:\n  a:\n    operator: {BASH}\n    args: {{bash_command: echo}}\n")
    bag = DagBag(dag_folder=str(dags_folder))
    assert shard_import_errors(bag) == {}
    assert list(bag.import_errors) == [str(dags_folder / "http_wait.aq.yaml")]  # the spec's own, hiding nothing
    placeholder = bag.dags["http_wait"]
    assert INVALID_TAG in placeholder.tags
    (error,) = placeholder.get_task("invalid_spec").errors
    assert error == (
        f"{dags_folder}/http_wait.aq.yaml:3:15: cannot import the operator class "
        "`airflow.providers.http.sensors.http.HttpSensor`: no module named `airflow.providers.http`; install its "
        "provider, `pip install apache-airflow-providers-http`, wherever Airflow parses and runs this pipeline "
        "(the dag-processor and the workers)"
    )
    assert INVALID_TAG not in bag.dags["fine"].tags  # the folder's other pipelines still load


# ---- running: dag.test() and `aq-airflow run` ------------------------------------------------------

FUNCTIONS = """
import os

import pyarrow as pa


def count(rows):
    with open(os.environ["OP_STAMP"]) as stamp:  # written by the BashOperator step before this one
        return pa.table({"n": [rows.num_rows], "stamp": [stamp.read().strip()]})
"""

RUN_SPEC = """
pipeline: @NAME@
params: {notify: false}
steps:
  rows:
    sql: SELECT range AS x FROM range(3)
  stamp:
    operator: @BASH@
    args: {bash_command: 'echo "stamped {{ ds }}" > "$OP_STAMP"'}
    depends_on: [rows]
  landed:
    operator: @SENSOR@
    args: {filepath: "@STAMP@", poke_interval: 1, timeout: 60}
    depends_on: [stamp]
  count:
    python: op_funcs:count
    inputs: [rows]
    depends_on: [landed]
  notify:
    operator: @BASH@
    args: {bash_command: 'echo notified > "$OP_STAMP.notified"'}
    depends_on: [count]
    when: {param: notify}
  after_notify:
    python: op_funcs:count
    inputs: [rows]
    depends_on: [notify]
"""


def run_spec(name: str, stamp) -> str:
    """A sql step, a BashOperator writing a file, a FileSensor waiting for it, a python step
    reading it, and a BashOperator that `when:` skips (with the step after it)."""
    replace = {"@NAME@": name, "@BASH@": BASH, "@SENSOR@": FILE_SENSOR, "@STAMP@": str(stamp)}
    text = RUN_SPEC
    for token, value in replace.items():
        text = text.replace(token, value)
    return text


@pytest.fixture
def op_env(tmp_path, monkeypatch):
    (tmp_path / "op_funcs.py").write_text(FUNCTIONS)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.syspath_prepend(str(tmp_path))
    stamp = tmp_path / "stamp.txt"
    monkeypatch.setenv("OP_STAMP", str(stamp))
    monkeypatch.setenv("AIRFLOW_CONN_FS_DEFAULT", json.dumps({"conn_type": "fs", "extra": {"path": "/"}}))
    warehouse = tmp_path / "wh.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(warehouse)}))
    return stamp


def test_operator_steps_run_in_order_and_a_when_skips_one(run_dag, op_env, tmp_path):
    import pyarrow.parquet as pq

    from aq_airflow.artifacts.store import MANIFEST

    _, dag_run, states = run_dag("op_run", run_spec("op_run", op_env))
    assert dag_run.state == "success", states
    assert states == {
        "rows.run": "success", "stamp.run": "success", "landed.run": "success", "count.run": "success",
        "notify.when": "skipped", "notify.run": "skipped", "after_notify.run": "skipped",
    }  # fmt: skip
    assert op_env.read_text() == "stamped 2026-03-01\n"  # the template rendered by the operator itself
    assert not (tmp_path / "stamp.txt.notified").exists()
    out = tmp_path / "artifacts" / "op_run" / dag_run.run_id / "count"
    files = json.loads((out / MANIFEST).read_text())["files"]
    assert pq.read_table(str(out / files[0])).to_pylist() == [{"n": 3, "stamp": "stamped 2026-03-01"}]

    _, dag_run, states = run_dag("op_run", run_spec("op_run", op_env), date="2026-03-02",
                                 conf={"notify": True})  # fmt: skip
    assert dag_run.state == "success" and set(states.values()) == {"success"}, states
    assert (tmp_path / "stamp.txt.notified").read_text() == "notified\n"


def test_aq_airflow_run_runs_an_operator_step(op_env, tmp_path):
    from tests.test_cli import run

    spec = write(tmp_path, "op_cli.aq.yaml", run_spec("op_cli", op_env))
    result = run("run", str(spec), "--date", "2026-03-01", "--workdir", str(tmp_path / "work"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.endswith(")") and " ok      stamp.run " in line for line in lines), result.stdout
    assert any(" ok      landed.run " in line for line in lines), result.stdout
    assert any(" skipped notify.when " in line for line in lines), result.stdout
    assert any(line.startswith("notify.run ") and " skipped " in line for line in lines), result.stdout
    assert any(line.startswith("count.run ") and "table: 1 rows" in line for line in lines), result.stdout
    assert op_env.read_text() == "stamped 2026-03-01\n"


def test_an_invalid_operator_step_stops_the_run_before_it_starts(tmp_path):
    from tests.test_cli import run

    spec = write(tmp_path, "op_bad.aq.yaml", BASE + "    checks: [{name: c, not_null: x}]\n")
    result = run("run", str(spec), "--workdir", str(tmp_path / "work"))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{spec}:7:5: an `operator` step has no output"), result.stderr


def test_a_class_that_refuses_its_args_makes_a_located_placeholder(dags_folder):
    """The loader does not run validate's signature check; the class's own refusal (a required
    argument missing) is the step's error at its `args:`, and the other spec still loads."""
    write(dags_folder, "no_path.aq.yaml", """
        steps:
          landed:
            operator: airflow.providers.standard.sensors.filesystem.FileSensor
            args: {poke_interval: 5}
        """)  # fmt: skip
    write(dags_folder, "fine.aq.yaml", f"steps:\n  a:\n    operator: {BASH}\n    args: {{bash_command: echo}}\n")
    bag = DagBag(dag_folder=str(dags_folder))
    assert shard_import_errors(bag) == {}
    assert INVALID_TAG not in bag.dags["fine"].tags
    (error,) = bag.dags["no_path"].get_task("invalid_spec").errors
    assert error.startswith(f"{dags_folder / 'no_path.aq.yaml'}:4:11: `FileSensor` refused its arguments: ")
    assert "filepath" in error and error.endswith("fix `args:` of this step")
