"""Names a step's function already gets, params too deep or too large, and small mistakes of the
spec and the CLI (issue 18, items 2, 6 and 7; found by a hostile tester).

- An `args:` key or input of a python step called `item` (on a `foreach:` step) or like a
  context value (`run_id`, `ds`, `logical_date`, `params`) replaced that value without a word:
  now a located error at the name, with the rename.
- A `--param` nested 50,000 levels was a RecursionError, 900 levels failed every task of the run
  with no reason; a large param stopped every python step (`Argument list too long`). Now: 64
  levels, 64 KiB per param and 96 KiB together (`runtime.param_limits`); `run` refuses more
  before anything runs, `validate` refuses a default past them, and a triggered run's conf past
  them fails only the task that reads that param, naming it.
- A NaN item, a check key written beside its kind, `max_parallel: true`, `--date` with a time or
  blanks, a folder as `--warehouse`: each says what is wrong and what to write.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pendulum
import pytest

from aq_airflow.cli.main import main
from aq_airflow.runtime.contract import CONTEXT_NAMES, ITEM_NAME
from aq_airflow.runtime.param_limits import MAX_BYTES, MAX_DEPTH, MAX_TOTAL_BYTES, measure, text_depth_beyond
from tests import test_kubernetes
from tests.helpers import issues_of

FIX = "put large or deeply nested data in a file or table a step reads, and pass its path or name as the param"
CONTEXT = "`run_id`, `ds`, `logical_date`, `params`"


def nested(levels: int, leaf=1, kind: str = "dict"):
    """``levels`` mappings (or lists) inside one another, built without recursion."""
    value = leaf
    for _ in range(levels):
        value = {"a": value} if kind == "dict" else [value]
    return value


def nested_text(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


# -- 2. reserved names ------------------------------------------------------------------------


def test_an_arg_named_item_on_a_foreach_step_is_a_located_error_at_the_key():
    """`args: {item: hello}` gave every item `hello`."""
    text = """
        steps:
          k:
            python: mods:consume
            args: {item: hello, size: 3}
            foreach: [p, q]
    """
    assert issues_of(text) == [
        "pipe.aq.yaml:4:12: arg `item` would replace every item of this `foreach:` step: rename the arg; a "
        "foreach step gets its item as `item`"
    ]


def test_an_input_named_item_on_a_foreach_step_is_a_located_error_at_the_key_in_any_case():
    """`inputs: {item: a}` gave item 0 `a`'s output; inputs bind to parameters ignoring case, so
    `Item` and a list entry naming a step `item` do the same."""
    text = """
        steps:
          a: {python: mods:make}
          item: {python: mods:make}
          k:
            python: mods:consume
            inputs: {Item: a, rows: a}
            foreach: [p, q]
          m:
            python: mods:consume
            inputs: [a, item]
            foreach: [p, q]
    """
    why = "would replace every item of this `foreach:` step (its function gets its item as `item`)"
    assert issues_of(text) == [
        f"pipe.aq.yaml:6:14: input `Item` {why}: give the input another name, `inputs: {{Item_input: a, rows: a}}`",
        "pipe.aq.yaml:10:17: input `item` (the list form names an input after its step) "
        f"{why}: name its argument with the map form, `inputs: {{a: a, item_input: item}}`",
    ]


@pytest.mark.parametrize("foreach", ["", "\n    foreach: [p, q]"])
def test_context_names_as_args_or_inputs_of_any_python_step_are_located_errors(foreach):
    """The function gets `run_id`, `ds`, `logical_date` and `params` by name: an arg or input of
    that name hid the run's value (inputs > args > context), mapped or not."""
    text = f"""
steps:
  a: {{python: mods:make}}
  k:
    python: mods:consume
    args: {{ds: "2026-01-01", run_id: x, kept: 1}}
    inputs: {{params: a}}{foreach}
"""
    hide = "from the function (a python step's function gets " + CONTEXT + " from the run by name)"
    assert issues_of(text) == [
        f"pipe.aq.yaml:5:12: arg `ds` would hide the run's `ds` {hide}: rename the arg, e.g. `ds_value`, and the "
        "parameter",
        f"pipe.aq.yaml:5:30: arg `run_id` would hide the run's `run_id` {hide}: rename the arg, e.g. "
        "`run_id_value`, and the parameter",
        f"pipe.aq.yaml:6:14: input `params` would hide the run's `params` {hide}: give the input another name, "
        "`inputs: {params_input: a}`",
    ]


def test_item_stays_a_free_name_where_nothing_is_replaced():
    """A python step without `foreach:` has no item; a command step reads AQ_ARGS, AQ_ITEM and
    AQ_CONTEXT apart; an `operator:` step's args are its operator's (BaseOperator takes `params`)."""
    text = """
        steps:
          item: {python: mods:make}
          k:
            python: mods:consume
            args: {item: 1}
            inputs: [item]
          c:
            command: [echo, hi]
            args: {item: 1, ds: x, params: y}
            inputs: {item: item}
            foreach: [p, q]
          o:
            operator: airflow.providers.standard.operators.bash.BashOperator
            args: {bash_command: echo, params: {a: 1}}
    """
    assert issues_of(text) == []


def test_the_step_context_renders_exactly_the_reserved_context_names():
    """The reserved names and what a step's AQ_CONTEXT holds are one list (runtime.contract)."""
    import datetime
    import types

    from aq_airflow.live_dags import build_dag
    from aq_airflow.plan import compile_text
    from tests.helpers import spec_file

    dag = build_dag(compile_text(spec_file("steps:\n  a:\n    python: m:f\n")))
    task = dag.get_task("a.run")
    moment = datetime.datetime(2026, 3, 1, tzinfo=datetime.timezone.utc)
    context = {"run_id": "r", "params": {}, "dag_run": types.SimpleNamespace(run_after=moment)}
    assert tuple(json.loads(task.render_template(task.env_vars["AQ_CONTEXT"], context))) == CONTEXT_NAMES
    assert ITEM_NAME == "item" and ITEM_NAME not in CONTEXT_NAMES


# -- 6. params: depth and size ----------------------------------------------------------------

DEEP_SPEC = """
pipeline: {name}
params: {{flag: true, blob: {{}}, note: ~, xs: [a]}}
steps:
  a:
    sql: SELECT 1 AS x
"""


@pytest.mark.parametrize("levels", [65, 900, 50_000])
@pytest.mark.parametrize("param", ["blob", "note", "xs"])
def test_run_refuses_a_param_nested_past_the_limit_before_anything_runs(tmp_path, capsys, levels, param):
    """50,000 levels were a RecursionError traceback; 900 failed every task of the run (Airflow's
    execution API cannot serialize it) with no reason. Refused (exit 2) naming the param, the
    limit and the fix, the value shown cut short; nothing runs (no workdir)."""
    spec = tmp_path / "deep.aq.yaml"
    spec.write_text(DEEP_SPEC.format(name="deep"))
    text = nested_text(levels) if param != "xs" else "[" * levels + "]" * levels
    code = main(["run", str(spec), "--param", f"{param}={text}", "--workdir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not (tmp_path / "w").exists()
    assert err.startswith(f"--param {param}={text[:77]}...: {param} is ")
    assert err.rstrip().endswith(f"(nested more than {MAX_DEPTH} lists or mappings deep, the limit for a param; {FIX})")
    assert len(err) < 1000


def test_run_takes_a_param_at_the_depth_limit(tmp_path):
    """64 levels is a param (the spec itself may nest 64): the run goes on past the checks."""
    from aq_airflow.cli.params import parse

    assert parse(nested_text(MAX_DEPTH), {}) == nested(MAX_DEPTH)
    assert parse(nested_text(MAX_DEPTH), None) == nested(MAX_DEPTH)


def test_run_refuses_a_param_larger_than_the_limit_and_params_larger_together(tmp_path, capsys):
    spec = tmp_path / "big.aq.yaml"
    spec.write_text("pipeline: big\nparams: {a: x, b: x, c: []}\nsteps:\n  s:\n    sql: SELECT 1 AS x\n")
    workdir = ["--workdir", str(tmp_path / "w")]
    one = json.dumps(["y" * 1000] * 70)  # 70 KiB as JSON
    assert main(["run", str(spec), "--param", f"c={one}", *workdir]) == 2
    err = capsys.readouterr().err
    assert err.rstrip().endswith(f"(more than {MAX_BYTES:,} bytes as JSON, the limit for a param; {FIX})")
    half = "z" * 50_000  # each fits; together they are past 96 KiB
    assert main(["run", str(spec), "--param", f"a={half}", "--param", f"b={half}", *workdir]) == 2
    assert capsys.readouterr().err.strip() == (
        f"--param a: param `a` (50,002 bytes as JSON) takes the run's params past {MAX_TOTAL_BYTES:,} bytes "
        f"together, the limit for a run's params; {FIX}"
    )
    assert not (tmp_path / "w").exists()


DIGITS_SPEC = """
pipeline: digits
params: {note: null, xs: [1], limits: {eu: 1}, n: 1}
steps:
  s:
    sql: SELECT 1 AS x
"""


@pytest.mark.parametrize(("param", "text"), [("note", "{big}"), ("xs", "[{big}]"), ("limits", '{{"eu": {big}}}'),
                                             ("n", "{big}")])  # fmt: skip
def test_run_refuses_a_number_of_more_digits_than_python_reads(tmp_path, capsys, param, text):
    """`--param note=<5000 digits>` with an any, list or object default was a ValueError traceback
    (Python reads no int of more than 4300 digits; json.loads raises a plain ValueError)."""
    from aq_airflow.cli.params import TOO_MANY_DIGITS

    spec = tmp_path / "digits.aq.yaml"
    spec.write_text(DIGITS_SPEC)
    value = text.format(big="9" * 5000)
    code = main(["run", str(spec), "--param", f"{param}={value}", "--workdir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not (tmp_path / "w").exists(), err[-2000:]
    assert err.startswith(f"--param {param}={value[:77]}...: {param} is ")
    assert err.rstrip().endswith(f"({TOO_MANY_DIGITS})") and len(err) < 1000, err
    assert "a number of more than 4,300 digits, more than Python reads" in TOO_MANY_DIGITS


def test_a_spec_default_past_the_size_limits_is_a_located_error():
    """A default that large stopped every python step of every run (one environment string over
    128 KiB: Argument list too long)."""
    big = "y" * (MAX_BYTES + 1)
    assert issues_of(f"params: {{small: 1, big: {big}}}\nsteps:\n  s:\n    sql: SELECT 1 AS x\n") == [
        f"pipe.aq.yaml:1:25: param `big` is more than {MAX_BYTES:,} bytes as JSON, the limit for a param; {FIX}"
    ]
    third = "w" * 40_000
    text = f"params:\n  a: {third}\n  b: {third}\n  c: {third}\nsteps:\n  s:\n    sql: SELECT 1 AS x\n"
    assert issues_of(text) == [
        f"pipe.aq.yaml:2:6: param `a` (40,002 bytes as JSON) takes the run's params past {MAX_TOTAL_BYTES:,} bytes "
        f"together, the limit for a run's params; {FIX}"
    ]


def test_measuring_a_hostile_value_never_recurses_and_stops_at_the_limit():
    deep = nested(200_000, kind="list")  # a RecursionError for anything that recurses
    assert measure(deep)[0] == MAX_DEPTH + 1  # stopped one level past the limit
    assert measure(list(range(10**6)))[1] > MAX_BYTES  # stopped at the commas, the items never walked
    assert measure({"k": "é" * 10, "n": [1, 2.5, None, True]}) == (
        2,
        len(json.dumps({"k": "é" * 10, "n": [1, 2.5, None, True]}, ensure_ascii=False, separators=(",", ":")).encode()),
    )
    assert text_depth_beyond("[" * 65 + "]" * 65) and not text_depth_beyond("[" * 64 + "]" * 64)
    assert not text_depth_beyond('["' + "[" * 100 + '"]')  # brackets in a string are text
    assert not text_depth_beyond('["\\"' + "[" * 100 + '"]')  # an escaped quote does not end it


CONF_STEPS = """
import pyarrow as pa


def plain():
    return pa.table({"n": [1]})


def reads_params(params):
    return pa.table({"n": [len(params)]})


def consume(item):
    return pa.table({"item": [json_text(item)]})


def json_text(value):
    import json

    return json.dumps(value)


def numbers():
    return [1.0, float("nan"), 3.0]


def rows():
    return pa.table({"region": ["eu", "us"], "x": [1.0, float("nan")]})
"""

CONF_SPEC = """
pipeline: {name}
params: {{flag: true, blob: {{}}, big: "", xs: [a]}}
steps:
  gated:                  # its condition reads `flag` only
    python: np_steps:plain
    when: {{param: flag}}
  blob_gated:             # reads `blob`
    python: np_steps:plain
    when: {{param: blob}}
  plain:                  # reads no param; gets AQ_CONTEXT
    python: np_steps:plain
  reader:                 # takes `params`
    python: np_steps:reads_params
  each:                   # items from `xs`
    python: np_steps:consume
    foreach: {{param: xs}}
"""


@pytest.fixture
def run_capturing(run_dag, tmp_path, monkeypatch):
    """Runs a spec with dag.test() and a conf, as a triggered run; returns ({task_id: state},
    {task_id: the failure's message})."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    (tmp_path / "np_steps.py").write_text(CONF_STEPS)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    written = []

    def run(name: str, text: str, conf: dict | None = None):
        folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "local"
        folder.mkdir(parents=True, exist_ok=True)
        spec = folder / f"{name}.aq.yaml"
        spec.write_text(textwrap.dedent(text))
        written.append(spec)
        dag = DagBag(dag_folder=str(folder.parent)).dags[name]
        assert "aq:invalid" not in dag.tags, dag.description
        errors: dict[str, str] = {}

        def failed(context):
            errors[context["ti"].task_id] = f"{context.get('exception')}"

        for task in dag.tasks:
            task.on_failure_callback = [failed]
        dag_run = dag.test(logical_date=pendulum.parse("2026-03-01"), run_conf=conf)
        with create_session() as session:
            states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}
        return states, errors

    yield run
    for spec in written:
        spec.unlink(missing_ok=True)


def test_a_triggered_conf_past_the_limits_fails_only_the_tasks_that_read_that_param(run_capturing):
    """A conf may hold anything (Airflow takes it from whoever may trigger the DAG). A param
    nested 100 levels (within what Airflow's execution API carries) and a 200 KB param: the
    condition reading `flag` holds and its step runs; the one reading `blob` fails naming it; a
    step that reads no param runs (the 200 KB param is left out of its AQ_CONTEXT, which would
    otherwise stop the process: Argument list too long); a function taking `params` fails naming
    both; the items task of `foreach: {param: xs}` fails naming `xs`."""
    conf = {"blob": nested(100), "big": "x" * 200_000, "xs": nested(100, kind="list")}
    states, errors = run_capturing("np_conf", CONF_SPEC.format(name="np_conf"), conf)
    assert states["gated.when"] == "success" and states["gated.run"] == "success"
    assert states["plain.run"] == "success"
    assert states["blob_gated.when"] == "failed" and states["blob_gated.run"] == "upstream_failed"
    deep = f"is nested more than {MAX_DEPTH} lists or mappings deep, the limit for a param"
    assert errors["blob_gated.when"] == f"step `blob_gated`, `when:`: param `blob` {deep}; {FIX}"
    assert states["reader.run"] == "failed"
    assert errors["reader.run"].endswith(
        "aq-airflow: step `reader`: `reads_params` takes `params`, and the run's params do not fit: param `big` is "
        f"more than {MAX_BYTES:,} bytes as JSON, the limit for a param; param `blob` {deep}; param `xs` {deep}; {FIX}"
    )
    assert states["each.items"] == "failed"
    assert errors["each.items"] == f"step `each`: `foreach: {{param: xs}}`: param `xs` {deep}; {FIX}"
    assert set(errors) == {"blob_gated.when", "reader.run", "each.items"}


def test_a_conf_within_the_limits_reaches_conditions_steps_and_items(run_capturing):
    """The limits take nothing from a conf that fits: the same pipeline runs whole."""
    conf = {"blob": nested(MAX_DEPTH - 1), "big": "x" * 60_000, "xs": ["p", nested(3)]}
    states, errors = run_capturing("np_fits", CONF_SPEC.format(name="np_fits"), conf)
    assert errors == {}
    assert set(states.values()) == {"success"}


def test_a_step_whose_environment_linux_would_refuse_says_which_variable_and_what_to_shrink(run_capturing):
    """`args:` of 200 KB (a literal here; a param templated into them alike) made the process fail
    to start with only "Argument list too long"."""
    text = f"""
        pipeline: np_args
        steps:
          big_args:
            python: np_steps:plain
            args: {{blob: {"b" * 200_000}}}
    """
    states, errors = run_capturing("np_args", text)
    assert states == {"big_args.run": "failed"}
    assert errors["big_args.run"] == (
        "step `big_args` cannot start: its `args:` come to 200,021 bytes as AQ_ARGS (params templated in: none), "
        "and Linux starts no process with one variable over 131,072 (Argument list too long): make its `args:` "
        "smaller (keep large data in a file or table and pass its path or name)"
    )


cluster = test_kubernetes.cluster  # the loopback API server and kubelet (a module fixture)
POD_SPEC = """
pipeline: np_pod
artifacts: {artifacts}
cluster: eks
code: k8s_code  # the cluster fixture writes k8s_steps there
params: {{big: "", small: 1}}
defaults:
  image: ghcr.io/acme/steps:1
  env:
    API_TOKEN: {{secret: api, key: token}}
steps:
  numbers:
    python: k8s_steps:numbers
"""


def test_a_pod_step_gets_its_context_without_the_params_past_the_limits(run_dag, cluster, tmp_path):
    """A pod's spec carries AQ_CONTEXT too (the API server refuses a pod over 1.5 MiB): the pod
    is created without the 200 KB param, named under `refused_params`, and the step runs."""
    conf = {"big": "x" * 200_000}
    _, _, states = run_dag("np_pod", POD_SPEC.format(artifacts=tmp_path / "artifacts"), conf=conf, local=False)
    assert states == {"numbers.run": "success"}
    pod = next(p for p in cluster.created if p["metadata"]["labels"]["dag_id"] == "np_pod")
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    context = json.loads(env["AQ_CONTEXT"])
    assert context["params"] == {"small": 1}
    assert context["refused_params"] == {
        "big": f"param `big` is more than {MAX_BYTES:,} bytes as JSON, the limit for a param; {FIX}"
    }


ARGS_SPEC = """
pipeline: {name}
params: {{note: "", small: 1}}
steps:
  plain:                  # no args: its AQ_CONTEXT leaves `note` out when past the limit
    python: np_steps:plain
  dotted:
    python: np_steps:plain
    args: {{note: "{{{{ params.note }}}}"}}
  keyed:
    command: [python, -c, "import os; print(len(os.environ['AQ_ARGS']))"]
    args: {{note: "{{{{ params['note'] }}}}"}}
  thrice:
    python: np_steps:plain
    args: {{a: "{{{{ params.note }}}}", b: "{{{{ params.note }}}}", c: "x{{{{ params.note }}}}"}}
"""


def test_a_conf_param_templated_into_args_past_the_limits_fails_that_step_naming_it(run_capturing):
    """`bounded_context` leaves a param past the limits out of AQ_CONTEXT, but `args:` that
    template it in carried it whole into AQ_ARGS (a 200 KB conf value: Argument list too long on
    the local runner, a pod the API server refuses). Now the step fails before it starts, naming
    the param, the limit and the fix; a step whose args do not take it runs."""
    states, errors = run_capturing("np_args", ARGS_SPEC.format(name="np_args"), {"note": "x" * 200_000})
    assert states["plain.run"] == "success"
    too_large = f"param `note` is more than {MAX_BYTES:,} bytes as JSON, the limit for a param; {FIX}"
    for step in ("dotted", "keyed", "thrice"):
        assert states[f"{step}.run"] == "failed", states
        assert (
            errors[f"{step}.run"]
            == f"step `{step}` cannot start: its `args:` template in param `note`, and {too_large}"
        )


def test_args_over_what_linux_takes_in_one_variable_fail_the_step_naming_the_params(run_capturing):
    """Each param within the limits, but templated in three times: AQ_ARGS over 128 KiB."""
    states, errors = run_capturing("np_args_fit", ARGS_SPEC.format(name="np_args_fit"), {"note": "y" * 60_000})
    assert states["plain.run"] == states["dotted.run"] == states["keyed.run"] == "success", states
    assert states["thrice.run"] == "failed"
    assert re.fullmatch(
        r"step `thrice` cannot start: its `args:` come to 180,0\d\d bytes as AQ_ARGS \(params templated in: `note`\), "
        r"and Linux starts no process with one variable over 131,072 \(Argument list too long\): make its `args:` "
        r"smaller \(keep large data in a file or table and pass its path or name\)",
        errors["thrice.run"],
    ), errors["thrice.run"]


POD_ARGS_SPEC = """
pipeline: np_pod_args
artifacts: {artifacts}
cluster: eks
params: {{note: ""}}
defaults:
  image: ghcr.io/acme/steps:1
steps:
  numbers:
    python: k8s_steps:numbers
    args: {{note: "{{{{ params.note }}}}"}}
"""


def test_a_pod_step_whose_args_template_a_param_past_the_limits_is_never_created(run_dag, cluster, tmp_path, capsys):
    conf = {"note": "x" * 200_000}
    _, _, states = run_dag("np_pod_args", POD_ARGS_SPEC.format(artifacts=tmp_path / "artifacts"), conf=conf,
                           local=False)  # fmt: skip
    assert states == {"numbers.run": "failed"}
    assert not [p for p in cluster.created if p["metadata"]["labels"]["dag_id"] == "np_pod_args"]
    logged = capsys.readouterr()
    assert (
        "step `numbers` cannot start: its `args:` template in param `note`, and param `note` is more than "
        f"{MAX_BYTES:,} bytes as JSON, the limit for a param; {FIX}"
    ) in logged.out + logged.err


# -- 5. AQ_ names in env: aq-airflow's own ------------------------------------------------------


def test_an_env_variable_named_like_aq_airflows_own_is_a_located_error_at_the_name():
    """`env: {AQ_ITEM: x}` replaced a large item (the runtime reads AQ_ITEM before AQ_ITEM_FROM)."""
    text = """
        defaults:
          env: {AQ_OUTPUT: /tmp/elsewhere, LANG: C}
        steps:
          k:
            python: mods:consume
            foreach: [p, q]
            env:
              AQ_ITEM: '"hello"'
              AQ_ITEM_FROM: /tmp/x.json
              aq_item: fine
    """
    tail = "a value here would replace or contradict it; rename the variable"
    assert issues_of(text) == [
        f"pipe.aq.yaml:2:9: env `AQ_OUTPUT`: `AQ_` names are aq-airflow's own (aq-airflow sets them for every step): "
        f"{tail}, e.g. `MY_OUTPUT`",
        "pipe.aq.yaml:8:7: env `AQ_ITEM`: `AQ_` names are aq-airflow's own (AQ_ITEM is a `foreach:` step's item, read "
        f"before a large item's AQ_ITEM_FROM): {tail}, e.g. `MY_ITEM`",
        "pipe.aq.yaml:9:7: env `AQ_ITEM_FROM`: `AQ_` names are aq-airflow's own (AQ_ITEM_FROM names the file of a "
        f"`foreach:` step's large item): {tail}, e.g. `MY_ITEM_FROM`",
    ]


def test_an_item_sets_exactly_one_of_its_two_variables_whatever_the_environment_held():
    """A by-reference item's task got AQ_ITEM_FROM beside whatever AQ_ITEM the environment had."""
    from aq_airflow.artifacts import item_refs
    from aq_airflow.plan import compile_text
    from aq_airflow.plan.model import TaskRole
    from aq_airflow.runners.environment import item_environment
    from tests.helpers import spec_file

    text = "steps:\n  k:\n    python: mods:consume\n    foreach: [p, q]\n  plain:\n    python: mods:consume\n"
    plan = compile_text(spec_file(text))
    runs = {t.group: t.body for t in plan.tasks if t.role == TaskRole.RUN}
    held = {"AQ_ITEM": '"stale"', "AQ_ITEM_FROM": "/stale.json", "AQ_MAP_INDEX": "9", "LANG": "C"}
    large = item_refs.reference(1, 200_000, "big")
    env = item_environment(held, runs["k"], large, 1, "/store", "run")
    assert env == {"LANG": "C", "AQ_ITEM_FROM": "/store/pipe/run/k/_items/1.json", "AQ_MAP_INDEX": "1"}
    env = item_environment(held, runs["k"], "p", 0, "/store", "run")
    assert env == {"LANG": "C", "AQ_ITEM": '"p"', "AQ_MAP_INDEX": "0"}
    assert item_environment(held, runs["plain"], None, None, "/store", "run") == {"LANG": "C"}


# -- 7. small mistakes ------------------------------------------------------------------------


def test_a_nan_item_names_the_step_and_the_item(run_capturing):
    """It said only "Out of range float values are not JSON compliant"."""
    text = """
        pipeline: np_nan
        steps:
          numbers: {python: np_steps:numbers}
          rows: {python: np_steps:rows}
          each_number: {python: np_steps:consume, foreach: {step: numbers}}
          each_row: {python: np_steps:consume, foreach: {step: rows}}
    """
    states, errors = run_capturing("np_nan", text)
    assert states["each_number.items"] == "failed" and states["each_row.items"] == "failed"
    tail = (
        "which JSON cannot hold (an item is passed as JSON: to the step as AQ_ITEM, the grid and the item list); "
        "drop the item, or give the value as null or text"
    )
    assert errors["each_number.items"] == f"step `each_number`: item each_number[1:NaN] is NaN, {tail}"
    assert errors["each_row.items"] == (
        f'step `each_row`: item each_row[1:{{"region":"us","x":NaN}}] holds NaN at `x`, {tail}'
    )


def test_a_nan_or_infinite_literal_item_is_a_located_error():
    text = "steps:\n  k:\n    python: m:f\n    foreach: [p, .nan, {a: [-.inf]}]\n"
    tail = "an item is passed as JSON (AQ_ITEM, the grid), which cannot hold NaN or infinity; drop it, or write it"
    assert issues_of(text) == [
        f"pipe.aq.yaml:4:18: steps.k.foreach.1: NaN is no item: {tail} as text (`'nan'`) or null",
        f"pipe.aq.yaml:4:24: steps.k.foreach.2: -Infinity is no item: {tail} as text (`'nan'`) or null",
    ]


def test_a_check_or_metric_key_written_beside_its_kind_says_the_nested_form():
    """`freshness: d, max_age: 1d` said `max_age` was unknown (and once, "did you mean `max_age`?")."""
    text = """
        steps:
          a:
            sql: SELECT 1 AS d
            checks:
              - {name: f, freshness: d, max_age: 1d}
              - {name: v, accepted_values: d, values: [1, 2]}
            metrics:
              - {name: q, quantile: d, q: 0.5}
              - {name: h, mean: d, window: 5, max_zscore: 3}
              - {name: m, mean: d, column: x}
    """
    issues = issues_of(text)
    assert issues == [
        "pipe.aq.yaml:5:30: steps.a.checks.0.freshness: expected a mapping, `{column: ..., max_age: ...}`, not the "
        "text `d`",
        "pipe.aq.yaml:5:33: `max_age` goes inside `freshness:`, not beside it: write `freshness: {column: d, "
        "max_age: 1d}`",
        "pipe.aq.yaml:6:36: steps.a.checks.1.accepted_values: expected a mapping, `{column: ..., values: ...}`, "
        "not the text `d`",
        "pipe.aq.yaml:6:39: `values` goes inside `accepted_values:`, not beside it: write `accepted_values: "
        "{column: d, values: [1, 2]}`",
        "pipe.aq.yaml:8:29: steps.a.metrics.0.quantile: expected a mapping, `{column: ..., q: ...}`, not the text `d`",
        "pipe.aq.yaml:8:32: `q` goes inside `quantile:`, not beside it: write `quantile: {column: d, q: 0.5}`",
        "pipe.aq.yaml:9:28: `window` goes inside `history:`, not beside it: write `history: {window: 5, "
        "max_zscore: 3}`",
        "pipe.aq.yaml:9:39: `max_zscore` goes inside `history:`, not beside it: write `history: {window: 5, "
        "max_zscore: 3}`",
        "pipe.aq.yaml:10:28: unknown key `column`; did you mean `count`?",
    ]
    assert not any("did you mean `max_age`" in issue for issue in issues)


def _int_fields():
    """(model, field) of every spec model field that takes a whole number."""
    from aq_airflow.pipeline_spec import profiles  # noqa: F401  (its models are spec models too)
    from aq_airflow.pipeline_spec.load import _members, _spec_models

    for model in _spec_models().values():
        for name, info in model.model_fields.items():
            members = _members(info.annotation)
            if int in members and bool not in members:  # `between: [true, false]` may hold booleans
                yield model, info.alias or name


def test_every_whole_number_field_refuses_a_boolean():
    """`max_parallel: true` must not be 1 (a bool is an int to Python and to pydantic's lax mode):
    every int field of every spec model, now and added later, is strict."""
    import pydantic

    fields = list(_int_fields())
    names = {f"{model.__name__}.{field}" for model, field in fields}
    assert {"Step.max_parallel", "Step.retries", "Resources.gpu", "History.window", "Pipeline.max_active_runs"} <= names
    for model, field in fields:
        with pytest.raises(pydantic.ValidationError) as refused:
            model.model_validate({field: True})
        at_field = [e for e in refused.value.errors() if e["loc"][:1] == (field,)]
        assert at_field and all(e["type"] != "missing" for e in at_field), (model.__name__, field)
    assert issues_of("steps:\n  k:\n    python: m:f\n    foreach: [a]\n    max_parallel: true\n") == [
        "pipe.aq.yaml:5:19: steps.k.max_parallel: expected a whole number, not `true`"
    ]


@pytest.mark.parametrize(
    "date, message",
    [
        (" 2026-03-01", "--date ' 2026-03-01': not a date: use YYYY-MM-DD, without blanks around it (2026-03-01)"),
        ("2026-03-01 ", "--date '2026-03-01 ': not a date: use YYYY-MM-DD, without blanks around it (2026-03-01)"),
        ("2026-03-01T00:00", "--date 2026-03-01T00:00: a date and time; use YYYY-MM-DD, the day alone (2026-03-01): "
         "a run is of a day"),
        ("2026-03-01 06:00:00+02:00", "--date 2026-03-01 06:00:00+02:00: a date and time; use YYYY-MM-DD, the day "
         "alone (2026-03-01): a run is of a day"),
        ("20260301", "--date 20260301: not a date: use YYYY-MM-DD"),
    ],
)  # fmt: skip
def test_run_date_takes_the_day_alone(tmp_path, capsys, date, message):
    """` 2026-03-01` and `2026-03-01T00:00` were accepted (the first as a date, the second as a
    time of day the run never uses); `run --from` (resume) reads the same option."""
    spec = tmp_path / "d.aq.yaml"
    spec.write_text("steps:\n  a:\n    sql: SELECT 1 AS x\n")
    for resume in ([], ["--from", "a"]):
        assert main(["run", str(spec), "--date", date, *resume, "--workdir", str(tmp_path / "w")]) == 2
        assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "w").exists()


def test_a_folder_as_warehouse_says_it_is_a_folder(tmp_path, capsys):
    """It said "no such warehouse file" of a folder that exists."""
    spec = tmp_path / "d.aq.yaml"
    spec.write_text("steps:\n  a:\n    sql: SELECT 1 AS x\n")
    folder = tmp_path / "wh"
    folder.mkdir()
    expected = (
        f"--warehouse {folder}: this is a folder; --warehouse takes a DuckDB file (such as "
        f"{folder / 'warehouse.duckdb'}) or an Airflow connection URI or JSON"
    )
    assert main(["results", "d", "--warehouse", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == expected
    assert main(["run", str(spec), "--warehouse", str(folder), "--workdir", str(tmp_path / "w")]) == 2
    assert capsys.readouterr().err.strip() == expected


# -- the fuzz campaign's names mutation -------------------------------------------------------


def test_the_fuzz_names_mutation_is_refused_at_the_name_and_its_check_can_fail(tmp_path, capsys):
    """`make fuzz` injects `item` and context names into python steps' args and inputs: each spec
    is refused with a reserved-name error located at the name; a misplaced one is a failure."""
    from tests.fuzzing import Campaign, Mutator

    mutator = Mutator(7)
    folder = tmp_path / "specs"
    folder.mkdir()
    origins, texts = {}, {}
    for index in range(40):
        path = folder / f"n{index}.aq.yaml"
        text = mutator.reserved_names(f"n{index}")
        path.write_text(text)
        origins[str(path)], texts[str(path)] = "names", text.encode()
    assert main(["validate", "--format", "json", str(folder)]) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    campaign = Campaign(specs=0, seed=7, batch=1, exec_every=1, out=tmp_path / "out")
    campaign.check_names(errors, origins, texts)
    assert campaign.tally.failures == []
    reserved = [e for e in errors if re.search(r"would (replace every item|hide the run's)", e["message"])]
    assert {e["file"] for e in reserved} == set(origins)
    assert {e["message"].split("`")[1].lower() for e in reserved} <= {*CONTEXT_NAMES, ITEM_NAME}
    moved = [{**e, "col": e["col"] + 2} for e in reserved]  # two columns off: the check must say so
    campaign.check_names(moved, origins, texts)
    assert len(campaign.tally.failures) == len(moved)


@pytest.mark.parametrize(
    ("param", "detail"),
    [
        ("note=NaN", "NaN is not a JSON number (JSON has no NaN or infinity); write a number, or "
         '"NaN" in quotes as text'),
        ('lim={"eu": Infinity}', "Infinity is not a JSON number (JSON has no NaN or infinity); write a number, or "
         '"Infinity" in quotes as text'),
        ("n=\uff11", "ASCII digits 0-9 only"),
        ("n= 5", 'no blanks around it: write "5"'),
    ],
)  # fmt: skip
def test_run_refuses_nan_infinity_unicode_digits_and_blanks_in_a_param(tmp_path, capsys, param, detail):
    """NaN and Infinity were read (Python's JSON reader takes them) and became null in the run's
    conf, silently; `n=` and a fullwidth one was 1 and `n= 5` was 5 while `--date` refuses both."""
    spec = tmp_path / "p.aq.yaml"
    spec.write_text("pipeline: p\nparams: {note: ~, lim: {eu: 5}, n: 1}\nsteps:\n  s:\n    sql: SELECT 1 AS x\n")
    code = main(["run", str(spec), "--param", param, "--workdir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not (tmp_path / "w").exists(), err
    assert err.startswith(f"--param {param}: {param.split('=')[0]} is ") and err.rstrip().endswith(f"({detail})"), err


CONTROL_SPEC = """
pipeline: controls
steps:
  echo:
    command: 'printf "%s" "$AQ_ITEM" > "$AQ_OUTPUT/item.txt" && exit 1'
    foreach: ["a\\e[31mRED", "x\\rOVERWRITE", "bidi\\u202eevil"]
"""


def test_run_and_validate_show_terminal_controls_escaped(tmp_path):
    """Items' labels with ESC, CR and a bidi override reached the terminal raw in the progress
    lines, the summary and the failures; validate echoed a raw ESC in a name it refused."""
    import subprocess
    import sys

    cli = [sys.executable, "-m", "aq_airflow.cli"]
    spec = tmp_path / "controls.aq.yaml"
    spec.write_text(CONTROL_SPEC)
    ran = subprocess.run([*cli, "run", str(spec), "--workdir", str(tmp_path / "w")], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert ran.returncode == 1, ran.stdout[-3000:] + ran.stderr[-3000:]
    for stream in (ran.stdout, ran.stderr):
        assert not {"\x1b", "\r", "\u202e"} & set(stream), stream[-3000:]
    assert "a\\x1b[31mRED" in ran.stdout and "x\\rOVERWRITE" in ran.stdout and "bidi\\u202eevil" in ran.stdout
    assert "start   echo.run[0:a\\x1b[31mRED]\n" in ran.stdout, ran.stdout
    assert "\necho.run[2:bidi\\u202eevil]   failed " in ran.stdout, ran.stdout
    assert "echo.run[1:x\\rOVERWRITE] failed:" in ran.stderr, ran.stderr[-3000:]

    bad = tmp_path / "bad.aq.yaml"
    bad.write_text('steps:\n  "a\\e[2Jb":\n    sql: SELECT 1 AS x\n')
    checked = subprocess.run([*cli, "validate", str(bad)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "\\x1b[2J" in checked.stdout, checked.stdout + checked.stderr
    assert "\x1b" not in checked.stdout + checked.stderr
