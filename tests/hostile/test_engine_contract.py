"""The engine part of the step's environment contract (`AQ_ENGINE`, `AQ_ENGINE_CONF`) changed
after the DAG was compiled, or written by a newer aq-airflow than the image's: the step fails with
one line before any engine starts, never a traceback, and never runs as another kind of step."""

from __future__ import annotations

import json

import pytest

from aq_airflow.runtime import contract
from aq_airflow.runtime.failures import StepFailed
from aq_airflow.runtime.step import run_step


def env(tmp_path, engine: str, conf: str | None) -> dict[str, str]:
    values = {
        contract.ENGINE: engine,
        contract.DAG_ID: "d",
        contract.STEP: "s",
        contract.OUTPUT: str(tmp_path / "s"),
        contract.CONTEXT: json.dumps({"params": {}}),
    }
    return values if conf is None else {**values, contract.ENGINE_CONF: conf}


@pytest.mark.parametrize("engine", ["spark", "ray"])
@pytest.mark.parametrize("conf", ["{not json", "[1, 2]", "null", '"text"'])
def test_an_engine_conf_that_is_no_json_object_fails_the_step_in_one_line(tmp_path, engine, conf):
    """Before: a JSONDecodeError or AttributeError traceback (Ray's out of the engine, Spark's
    inside `cannot start Spark:`)."""
    with pytest.raises(StepFailed) as failed:
        run_step("json:dumps", env(tmp_path, engine, conf))
    assert str(failed.value) == (
        "step `s`: AQ_ENGINE_CONF is not a JSON object (aq-airflow writes the step's `spark_conf:` or "
        "`runtime_env:` there): it was changed after the DAG was compiled"
    )
    assert not (tmp_path / "s").exists()


def test_an_engine_this_runtime_does_not_know_fails_instead_of_running_as_a_python_step(tmp_path):
    """Before: `AQ_ENGINE=dask` (a newer DAG's engine on an older image) ran the function as a
    python step's, with none of the engine's values."""
    with pytest.raises(StepFailed) as failed:
        run_step("json:dumps", env(tmp_path, "dask", None))
    assert str(failed.value) == (
        "step `s`: AQ_ENGINE is `dask`, which this runtime does not know (spark, ray): the image's aq-airflow is "
        "older than the DAG's, or the variable was changed"
    )
    assert not (tmp_path / "s").exists()
