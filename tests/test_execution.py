"""Pipelines run end to end with dag.test() on the local runner and a DuckDB warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from aq_airflow.artifacts.store import MANIFEST

CHURN = """
pipeline: {name}
params: {{threshold: 0.5}}
steps:
  customers:
    sql: SELECT * FROM raw.customers WHERE signup_date < '{{{{ ds }}}}'
  orders:
    sql: >
      SELECT customer_id, count(*) AS orders_90d, sum(amount) AS spend_90d
      FROM raw.orders WHERE created_at >= '{{{{ macros.ds_add(ds, -90) }}}}' AND created_at < '{{{{ ds }}}}'
      GROUP BY customer_id
  features:
    python: churn.features:build
    inputs: [customers, orders]
  train:
    python: churn.train:fit
    inputs: [features]
    resources: {{gpu: 1}}
  scores:
    python: churn.score:predict
    inputs: {{model: train, rows: features}}
    args: {{as_of: "{{{{ ds }}}}"}}
  report:
    command: [python, -m, churn.report]
    inputs: [scores]
"""


def output_dir(tmp_path: Path, dag_run, dag_id: str, step: str) -> Path:
    return tmp_path / "artifacts" / dag_id / dag_run.run_id / step


def manifest(tmp_path, dag_run, dag_id, step) -> dict:
    return json.loads((output_dir(tmp_path, dag_run, dag_id, step) / MANIFEST).read_text())


def test_example_pipeline_runs_end_to_end(run_dag, duckdb_warehouse, tmp_path):
    import duckdb

    _, dag_run, states = run_dag("churn_e2e", CHURN.format(name="churn_e2e"))
    assert dag_run.state == "success", states
    assert set(states.values()) == {"success"}
    with duckdb.connect(str(duckdb_warehouse), read_only=True) as conn:
        (customers,) = conn.execute("SELECT count(*) FROM raw.customers WHERE signup_date < '2026-03-01'").fetchone()
    assert manifest(tmp_path, dag_run, "churn_e2e", "customers")["rows"] == customers
    features = manifest(tmp_path, dag_run, "churn_e2e", "features")
    assert features["kind"] == "table" and features["rows"] == customers
    assert [name for name, _ in features["schema"]] == [
        "customer_id", "tenure_days", "orders_90d", "spend_90d", "monthly_fee", "is_premium", "churned"
    ]  # fmt: skip
    model = manifest(tmp_path, dag_run, "churn_e2e", "train")
    assert model["kind"] == "object" and model["python_type"] == "sklearn.pipeline.Pipeline"
    scores_dir = output_dir(tmp_path, dag_run, "churn_e2e", "scores")
    scores = pq.read_table(scores_dir / manifest(tmp_path, dag_run, "churn_e2e", "scores")["files"][0])
    assert scores.num_rows == customers
    probabilities = scores.column("churn_probability").to_pylist()
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert 0.05 < sum(probabilities) / len(probabilities) < 0.95  # a model, not a constant
    assert set(scores.column("scored_on").to_pylist()) == {__import__("datetime").date(2026, 3, 1)}
    report = output_dir(tmp_path, dag_run, "churn_e2e", "report") / "report.md"
    assert f"customers scored: {customers}" in report.read_text()
    assert manifest(tmp_path, dag_run, "churn_e2e", "report")["kind"] == "files"


FAILING = """
pipeline: {name}
steps:
  numbers:
    sql: SELECT range AS n FROM range(10)
  boom:
    python: steps_for_tests:explode
    inputs: [numbers]
  after:
    python: steps_for_tests:identity
    inputs: {{table: boom}}
"""


@pytest.fixture
def test_steps(tmp_path, monkeypatch):
    """A module of step functions on the steps' PYTHONPATH."""
    folder = tmp_path / "steps"
    folder.mkdir()
    (folder / "steps_for_tests.py").write_text(
        "import pyarrow as pa\n"
        "import pandas as pd\n\n"
        "def explode(numbers):\n    raise ValueError('bad numbers: ' + str(numbers.num_rows))\n\n"
        "def identity(table):\n    return table\n\n"
        "def as_pandas(numbers: pd.DataFrame) -> pd.DataFrame:\n"
        "    return numbers.assign(kind=type(numbers).__name__)\n\n"
        "def count_batches(numbers: 'Iterator[pa.RecordBatch]'):\n"
        "    return {'batches': sum(1 for _ in numbers), 'kind': type(numbers).__name__}\n\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{folder}:{__import__('os').environ['PYTHONPATH']}")
    return folder


def test_a_step_that_raises_fails_its_task_and_blocks_downstream(run_dag, duckdb_warehouse, test_steps, capsys, caplog):
    _, dag_run, states = run_dag("raises", FAILING.format(name="raises"))
    assert dag_run.state == "failed"
    assert states == {"numbers.run": "success", "boom.run": "failed", "after.run": "upstream_failed"}
    logged = capsys.readouterr()
    text = logged.out + logged.err + caplog.text
    assert "step `boom`: `steps_for_tests:explode` raised an exception" in text
    assert "step `boom` failed: the step's process exited with code 1: ValueError: bad numbers: 10" in text
    assert text.count(", in explode") == 1  # the user's traceback is in the log once, not again in the error


def test_a_bad_query_fails_with_a_message_naming_the_step(run_dag, duckdb_warehouse, capsys):
    text = "pipeline: bad_sql\nsteps:\n  q:\n    sql: SELEC 1\n"
    _, _, states = run_dag("bad_sql", text)
    assert states == {"q.run": "failed"}
    logged = capsys.readouterr()
    assert "step `q`: a `sql` step `SELEC 1` is not valid SQL" in logged.out + logged.err


def test_a_query_the_warehouse_rejects_fails_with_the_driver_message(run_dag, duckdb_warehouse, capsys):
    text = "pipeline: bad_table\nsteps:\n  q:\n    sql: SELECT * FROM no_such_table\n"
    _, _, states = run_dag("bad_table", text)
    assert states == {"q.run": "failed"}
    logged = capsys.readouterr()
    assert "step `q`: the query failed: CatalogException" in logged.out + logged.err


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("as_pandas", {"kind": "table", "rows": 10}),
        ("count_batches", {"kind": "object", "python_type": "builtins.dict"}),
    ],
)
def test_inputs_arrive_as_the_annotation_asks(run_dag, duckdb_warehouse, test_steps, tmp_path, function, expected):
    name = f"annotated_{function}"
    text = f"pipeline: {name}\nsteps:\n  numbers:\n    sql: SELECT range AS n FROM range(10)\n"
    text += f"  out:\n    python: steps_for_tests:{function}\n    inputs: [numbers]\n"
    _, dag_run, states = run_dag(name, text)
    assert set(states.values()) == {"success"}
    result = manifest(tmp_path, dag_run, name, "out")
    assert expected.items() <= result.items()
    if function == "as_pandas":
        table = pq.read_table(output_dir(tmp_path, dag_run, name, "out") / result["files"][0])
        assert set(table.column("kind").to_pylist()) == {"DataFrame"}
    else:
        import pickle

        value = pickle.loads((output_dir(tmp_path, dag_run, name, "out") / result["files"][0]).read_bytes())
        assert value == {"batches": 1, "kind": "generator"}


def test_the_step_context_renders_for_runs_without_a_logical_date():
    """Asset-triggered runs have no `ds` or `logical_date` in Airflow's context; a step still gets
    its context, dated by the run."""
    import datetime
    import json as jsonlib
    import types

    from aq_airflow.live_dags import build_dag
    from aq_airflow.pipeline_spec import SpecFile
    from aq_airflow.plan import compile_text

    dag = build_dag(compile_text(SpecFile("ctx.aq.yaml", "steps:\n  a:\n    python: m:f\n")))
    task = dag.get_task("a.run")
    run_after = datetime.datetime(2026, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)
    dag_run = types.SimpleNamespace(run_after=run_after)
    context = {"run_id": "asset_triggered__x", "params": {"k": 1}, "dag_run": dag_run}
    rendered = jsonlib.loads(task.render_template(task.env_vars["AQ_CONTEXT"], context))
    assert rendered == {"run_id": "asset_triggered__x", "ds": "2026-03-04", "logical_date": str(run_after),
                        "params": {"k": 1}}  # fmt: skip
    dated = {**context, "logical_date": datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc), "ds": "2026-01-02"}
    assert jsonlib.loads(task.render_template(task.env_vars["AQ_CONTEXT"], dated))["ds"] == "2026-01-02"


def test_a_local_command_is_templated_as_a_pod_command_is():
    import datetime
    import types

    from aq_airflow.live_dags import build_dag
    from aq_airflow.pipeline_spec import SpecFile
    from aq_airflow.plan import compile_text

    dag = build_dag(compile_text(SpecFile("tpl.aq.yaml", 'steps:\n  a:\n    command: "echo {{ ds }}"\n')))
    task = dag.get_task("a.run")
    when = datetime.datetime(2026, 3, 1, tzinfo=datetime.timezone.utc)
    dag_run = types.SimpleNamespace(run_after=when)
    task.render_template_fields(
        {"ds": "2026-03-01", "logical_date": when, "run_id": "r1", "params": {}, "dag_run": dag_run}
    )
    # through the runtime, which fetches the run's code package and runs the command in its folder
    assert task.argv == ["python", "-m", "aq_airflow.runtime", "--command", "--", "/bin/sh", "-c", "echo 2026-03-01"]
