"""The step runtime as pods run it: ``python -m aq_airflow.runtime`` in a venv without Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aq_airflow.artifacts.store import MANIFEST, Location, MissingArtifact, write_batches
from aq_airflow.runtime import contract
from aq_airflow.runtime.step import StepFailed, call_arguments

STEPS = """
import os, signal
import pandas as pd
import pyarrow as pa

def double(numbers: pd.DataFrame, factor: int, run_id: str):
    return numbers.assign(n=numbers["n"] * factor, run_id=run_id)

def model(numbers):
    return {"weights": [1.0, 2.0], "rows": numbers.num_rows}

def uses_model(model, numbers):
    return pa.table({"rows": [model["rows"]], "w": [sum(model["weights"])]})

def unstorable(numbers):
    import threading
    return threading.Lock()

def killed_midway(numbers):
    def batches():
        yield pa.record_batch({"n": [1, 2, 3]})
        os.kill(os.getpid(), signal.SIGKILL)
    return batches()

def wants_more(numbers, missing_argument):
    return numbers
"""


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "user_steps.py").write_text(textwrap.dedent(STEPS))
    numbers = Location.of(str(tmp_path / "store" / "numbers"))
    attempt = numbers.begin()
    table = pa.table({"n": list(range(5))})
    numbers.commit(write_batches(numbers, attempt, table.schema, table.to_batches()))
    return tmp_path


def run_step(python, workspace, function, output, inputs, args=None):
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(workspace),
        contract.STEP: output,
        contract.OUTPUT: str(workspace / "store" / output),
        contract.CONTEXT: json.dumps({"run_id": "manual__1", "ds": "2026-03-01", "params": {}}),
        contract.INPUTS: contract.encode_inputs(dict(inputs), as_list=False),
        **{contract.input_variable(k): str(workspace / "store" / v) for k, v in inputs.items()},
    }
    if args:
        env[contract.ARGS] = json.dumps(args)
    return subprocess.run(
        [python, "-m", "aq_airflow.runtime", "--function", f"user_steps:{function}"],
        env=env,
        capture_output=True,
        text=True,
        cwd=workspace,
        timeout=120,
    )


@pytest.fixture(scope="module")
def python(core_venv):
    _, env_dir = core_venv
    return str(env_dir / "bin" / "python")


def test_runtime_runs_without_airflow(python, workspace):
    assert subprocess.run([python, "-c", "import airflow"], capture_output=True).returncode != 0
    result = run_step(python, workspace, "double", "doubled", {"numbers": "numbers"}, {"factor": 3})
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout.strip().splitlines()[-1])
    assert manifest["kind"] == "table" and manifest["rows"] == 5
    assert manifest["python_type"] == "pandas.DataFrame"
    table = pq.read_table(workspace / "store" / "doubled" / manifest["files"][0])
    assert table.column("n").to_pylist() == [0, 3, 6, 9, 12]
    assert set(table.column("run_id").to_pylist()) == {"manual__1"}
    committed = json.loads((workspace / "store" / "doubled" / MANIFEST).read_text())
    assert committed["attempt"] == manifest["attempt"] and committed["peak_rss_mib"] > 0


def test_objects_travel_as_pickle_with_their_type(python, workspace):
    assert run_step(python, workspace, "model", "model", {"numbers": "numbers"}).returncode == 0
    result = run_step(python, workspace, "uses_model", "used", {"model": "model", "numbers": "numbers"})
    assert result.returncode == 0, result.stderr
    manifest = json.loads((workspace / "store" / "model" / MANIFEST).read_text())
    assert manifest["kind"] == "object" and manifest["python_type"] == "builtins.dict"
    table = pq.read_table(workspace / "store" / "used" / json.loads(result.stdout.splitlines()[-1])["files"][0])
    assert table.to_pylist() == [{"rows": 5, "w": 3.0}]


def test_missing_input_names_the_producer_and_the_path(python, workspace):
    result = run_step(python, workspace, "double", "out", {"numbers": "never_ran"}, {"factor": 2})
    assert result.returncode == 1
    assert (
        f"aq-airflow: step `out`, input `numbers`: no output of step `never_ran` at {workspace}/store/never_ran"
        in result.stderr
    )


def test_unsupported_return_value_says_so(python, workspace):
    result = run_step(python, workspace, "unstorable", "out", {"numbers": "numbers"})
    assert result.returncode == 1
    assert "the step returned a _thread.lock, which is neither a table (pyarrow, pandas, polars) nor a picklable" in (
        result.stderr
    )
    assert not (workspace / "store" / "out" / MANIFEST).exists()


def test_missing_argument_is_named(python, workspace):
    result = run_step(python, workspace, "wants_more", "out", {"numbers": "numbers"})
    assert result.returncode == 1
    assert "`wants_more` needs `missing_argument`, which is not an input, an `args:` entry of step `out`" in (
        result.stderr
    )


def test_a_killed_step_leaves_no_output_that_reads_as_whole(python, workspace):
    first = run_step(python, workspace, "model", "retried", {"numbers": "numbers"})
    assert first.returncode == 0  # an earlier attempt committed an output ...
    result = run_step(python, workspace, "killed_midway", "retried", {"numbers": "numbers"})
    assert result.returncode == -9  # ... the retry dies after writing part of its table
    written = [p.name for p in (workspace / "store" / "retried").iterdir()]
    assert any(name.startswith("part-") for name in written)  # the half-written file is there
    with pytest.raises(MissingArtifact, match="failed before committing its output"):
        Location.of(str(workspace / "store" / "retried")).read_manifest("retried")
    downstream = run_step(python, workspace, "double", "after", {"numbers": "retried"}, {"factor": 2})
    assert downstream.returncode == 1 and "no output of step `retried`" in downstream.stderr


def stored(tmp_path, name: str, table: pa.Table) -> str:
    location = Location.of(str(tmp_path / name))
    attempt = location.begin()
    location.commit(write_batches(location, attempt, table.schema, table.to_batches()))
    return location.uri


def step_env(tmp_path, inputs: dict[str, str], as_list: bool, **extra) -> dict[str, str]:
    """What the planner and an operator put in a step's environment, for these inputs."""
    table = pa.table({"n": [1, 2]})
    env = {contract.INPUTS: contract.encode_inputs(dict(inputs), as_list), **extra}
    for name, producer in inputs.items():
        env[contract.input_variable(name)] = stored(tmp_path, producer, table)
    return env


def test_list_inputs_bind_by_name_then_in_order(tmp_path):
    def explode(rows, ds, lookup=None):
        return rows, ds, lookup

    env = step_env(tmp_path, {"orders": "orders"}, as_list=True, **{contract.CONTEXT: '{"ds": "2026-03-01"}'})
    kwargs = call_arguments(explode, env, "explode")
    assert set(kwargs) == {"rows", "ds"} and kwargs["rows"].num_rows == 2 and kwargs["ds"] == "2026-03-01"

    def join(customers, rows):
        return customers, rows

    env = step_env(tmp_path, {"orders": "orders", "customers": "customers"}, as_list=True)
    assert set(call_arguments(join, env, "join")) == {"customers", "rows"}  # customers by name, orders in order


def test_mixed_case_input_names_arrive(tmp_path):
    def score(myModel, Rows):  # users name parameters as they like
        return myModel, Rows

    env = step_env(tmp_path, {"myModel": "train", "Rows": "features"}, as_list=False)
    assert set(call_arguments(score, env, "score")) == {"myModel", "Rows"}


def test_an_input_binds_to_its_parameter_whatever_the_case_before_any_goes_by_order(tmp_path):
    """`inputs: [Prices, qty]` into `total(q, prices)`: `Prices` is `prices`, and only `qty` is
    left for `q` (by order it would have taken the wrong table)."""

    def total(q, prices):
        return q, prices

    env = step_env(tmp_path, {"Prices": "prices_step", "qty": "qty_step"}, as_list=True)
    env[contract.input_variable("Prices")] = stored(tmp_path, "prices_step", pa.table({"price": [9.5]}))
    kwargs = call_arguments(total, env, "total")
    assert kwargs["prices"].column_names == ["price"] and kwargs["q"].column_names == ["n"]


def test_an_input_matching_no_parameter_says_how_to_map_it(tmp_path):
    def explode(rows):
        return rows

    env = step_env(tmp_path, {"orders": "orders"}, as_list=False)
    with pytest.raises(StepFailed) as failure:
        call_arguments(explode, env, "explode")
    assert str(failure.value) == (
        "step `explode`: input(s) `orders` match no parameter of `test_an_input_matching_no_parameter_says_how_to_"
        "map_it.<locals>.explode(rows)`; its inputs are orders. Name the parameter each input goes to with the map "
        "form, e.g. `inputs: {rows: orders}`"
    )


def test_decimals_reach_pandas_as_floats_and_arrow_keeps_them(tmp_path):
    import decimal

    import pandas as pd

    from aq_airflow.artifacts.values import read_input

    price = pa.array([decimal.Decimal("9.50"), None, decimal.Decimal("19.99")], pa.decimal128(10, 2))
    number = pa.array([1, 2, 3], pa.decimal128(38, 0))  # Snowflake's integers
    huge = pa.array([decimal.Decimal(10**30), 1, 2], pa.decimal128(38, 0))
    table = pa.table({"price": price, "qty": pa.array([3, 4, 5], pa.int64()), "id": number, "huge": huge})
    location = Location.of(stored(tmp_path, "prices", table))
    frame = read_input(location, "prices", pd.DataFrame)
    assert frame.dtypes.astype(str).to_dict() == {"price": "float64", "qty": "int64", "id": "int64", "huge": "float64"}
    assert (frame["price"] * 1.19).round(3).tolist()[0] == 11.305
    assert frame["price"].tolist()[2] == 19.99  # the nearest double, as DuckDB's .df() gives (not 19.990000000000002)
    assert read_input(location, "prices", pa.Table).schema == table.schema  # Arrow keeps exact decimals
