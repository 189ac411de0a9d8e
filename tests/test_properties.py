"""Property-based: any mutation of a valid spec compiles to a DAG or to located errors, and
never raises anything else."""

from __future__ import annotations

import copy
import datetime

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aq_airflow.live_dags import build_dag
from aq_airflow.live_dags.dag import StepBuildError
from aq_airflow.pipeline_spec import Problem, SpecError, SpecFile
from aq_airflow.plan import Seconds, compile_text
from tests.conftest import EXAMPLES

BASES = [yaml.safe_load((EXAMPLES / name).read_text()) for name in ("churn_scoring.aq.yaml", "fraud_training.aq.yaml")]
for base in BASES:
    base["start_date"] = str(base["start_date"])

KEYS = ["steps", "inputs", "python", "sql", "table", "command", "checks", "metrics", "resources", "gpu", "gpu_type",
        "between", "column", "publish", "mode", "keys", "schedule", "cluster", "retries", "timeout", "env", "args",
        "depends_on", "name", "severity", "history", "bounds", "input", "sqll", "after", "image", "memory",
        "cpu"]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["1d", "5m", "0 6 * * *", "@daily", "a100-80gb", "gke", "eks", "aks", "nvidia", "features",
                     "customers", "train", "m:f", "2Gi", "500m", "merge", "{{ ds }}", "-1", "x.y.z.w"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


@st.composite
def mutated_specs(draw):
    spec = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(paths(spec))))
        parent = spec
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            continue
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent.get(path[-1]) if isinstance(parent, dict) else None, dict):
            parent[path[-1]][draw(st.sampled_from(KEYS))] = draw(values)
    return yaml.safe_dump(spec, sort_keys=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(mutated_specs())
def test_mutated_specs_give_a_dag_or_located_errors(text):
    spec_file = SpecFile("mutant.aq.yaml", text)
    try:
        plan = compile_text(spec_file)
    except SpecError as error:
        assert error.issues
        lines = text.count("\n") + 1
        for issue in error.issues:
            assert issue.file == "mutant.aq.yaml"
            assert 1 <= issue.line <= lines and issue.col >= 1
            assert issue.message and "Traceback" not in issue.message
        return
    try:
        dag = build_dag(plan)
    except StepBuildError as error:  # an `operator:` step's class refused its mutated args
        assert error.path[0] == "steps" and error.path[-1] in ("args", "operator"), error.path
        assert spec_file.issue(Problem(error.path, error.message)).line >= 1
        return
    assert dag.dag_id == plan.dag_id and len(dag.tasks) == len(plan.tasks)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_gives_a_dag_or_located_errors(text):
    try:
        compile_text(SpecFile("random.aq.yaml", text))
    except SpecError as error:
        assert all(i.line >= 1 and i.col >= 1 for i in error.issues)


# ---- codegen writes every plan value as the live DAG gets it ---------------------------------

_LITERAL_NAMESPACE = {"datetime": datetime.datetime, "timedelta": datetime.timedelta, "timezone": datetime.timezone}


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.datetimes(timezones=st.just(datetime.timezone.utc)),
        st.integers(min_value=0, max_value=10**9).map(Seconds),
        st.text(),
        st.dictionaries(st.text(), st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.booleans())),
    )
)
def test_generated_literals_evaluate_to_what_the_live_dag_gets(value):
    """compiled == live for every value: the source codegen writes evaluates to exactly what the
    live builder materializes (datetimes to the microsecond, durations, any unicode)."""
    from aq_airflow.codegen.literals import py_literal
    from aq_airflow.live_dags.dag import materialize

    assert eval(py_literal(value), dict(_LITERAL_NAMESPACE)) == materialize(value)
