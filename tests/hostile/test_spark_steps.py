"""`spark:` steps against hostile step code, in real step processes on PySpark's local mode: a
UDF on a worker whose PATH has another `python3` than the step's, a function that stops the
SparkSession before returning its DataFrame, and Spark refusing what a function returned
(duplicate columns, an INTERVAL column). Each step succeeds, or fails with one clear message and
commits nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aq_airflow.artifacts.store import MANIFEST
from aq_airflow.runtime import contract

pytestmark = pytest.mark.slow  # a JVM for the module's steps: over a minute on 2 busy cores

STEPS = """
import pyspark.sql.functions as F
from pyspark.sql.types import LongType


@F.udf(LongType())
def double(n):
    return n * 2


def doubled(spark):
    return spark.range(4).select(double("id").alias("twice"))


def stops(spark):
    frame = spark.range(3)
    spark.stop()
    return frame


def duplicate(spark):
    return spark.range(3).select("id", F.col("id"))


def interval(spark):
    return spark.range(1).select(F.make_interval(F.lit(1)).alias("every"))
"""

# the steps one after another in one process (one JVM; each step its own session), as run_step
# runs them for the local runner: each one's manifest, or its failure as the task log shows it
DRIVER = """
import json, os, sys
from aq_airflow.runtime.failures import StepFailed
from aq_airflow.runtime.step import run_step

root = sys.argv[1]
for function in sys.argv[2:]:
    env = {**os.environ, "AQ_STEP": function, "AQ_OUTPUT": os.path.join(root, function)}
    try:
        print(json.dumps({"function": function, "manifest": run_step("hostile_spark_steps:" + function, env)}))
    except StepFailed as failure:
        print(json.dumps({"function": function, "failure": str(failure)}))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    folder = tmp_path_factory.mktemp("spark_hostile")
    (folder / "hostile_spark_steps.py").write_text(STEPS)
    # a `python3` first on the PATH that is not the step's Python (a worker whose venv is not on its PATH)
    bin_folder = folder / "bin"
    bin_folder.mkdir()
    (bin_folder / "python3").write_text("#!/bin/sh\necho 'the wrong python3' >&2\nexit 1\n")
    (bin_folder / "python3").chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYSPARK_PYTHON"},
        "PATH": os.pathsep.join([str(bin_folder), "/usr/bin", "/bin"]),
        "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
        "SPARK_MASTER": "local[2]",
        contract.ENGINE: "spark",
        contract.DAG_ID: "hostile",
        contract.CONTEXT: json.dumps({"params": {}}),
    }
    root = folder / "out"
    command = [sys.executable, "-c", DRIVER, str(root), "doubled", "stops", "duplicate", "interval"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            found[result["function"]] = result
    return root, found


def test_a_udf_runs_on_the_steps_own_python_whatever_python3_the_path_holds(results):
    """Before: Spark started the UDF's workers as `python3` from the PATH, another Python (here one
    that fails at once; on a worker whose venv is not on its PATH, one without pyarrow)."""
    root, found = results
    assert "manifest" in found["doubled"], found["doubled"]
    assert found["doubled"]["manifest"]["rows"] == 4
    assert (root / "doubled" / MANIFEST).exists()


def test_a_function_that_stops_the_session_is_told_to_leave_that_to_the_runtime(results):
    """Before: a Java stack trace (`Cannot call methods on a stopped SparkContext`) through the
    runtime's and py4j's frames."""
    root, found = results
    assert found["stops"]["failure"] == (
        "step `stops`: its function stopped the SparkSession (`spark.stop()`) and then returned a DataFrame, which "
        "Spark computes and writes only after the function, with that session: leave stopping it to the runtime"
    )
    assert not (root / "stops" / MANIFEST).exists()


@pytest.mark.parametrize(
    "function, reason",
    [
        ("duplicate", "AnalysisException: [COLUMN_ALREADY_EXISTS] The column `id` already exists."),
        ("interval", "AnalysisException: [UNSUPPORTED_DATA_TYPE_FOR_DATASOURCE] The Parquet datasource doesn't "),
    ],
)
def test_what_spark_cannot_write_fails_with_sparks_reason_and_no_frames_of_ours(results, function, reason):
    root, found = results
    failure = found[function]["failure"]
    assert failure.startswith(
        f"step `{function}`: Spark failed computing or writing the DataFrame its function returned:\n{reason}"
    ), failure
    assert "Traceback" not in failure and "aq_airflow" not in failure and "py4j" not in failure
    assert not (root / function / MANIFEST).exists()
