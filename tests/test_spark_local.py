"""`spark:` steps in PySpark's local mode: the runtime's Spark engine in this process (one
SparkSession for the module, which the engine finds running and leaves running), then whole
pipelines through the real local runner and dag.test (each spark step a process of its own, with
its own session), checks, metrics, `foreach:` and `when:` over a spark step's output."""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aq_airflow.artifacts.store import MANIFEST, Location, write_batches
from aq_airflow.artifacts.values import read_input, write_output
from aq_airflow.runtime import contract
from aq_airflow.runtime.failures import StepFailed
from aq_airflow.runtime.spark import run_script
from aq_airflow.runtime.step import run_step

pytestmark = pytest.mark.slow  # two pipelines of spark steps, each step starting a JVM of its own

STEPS = """
import pyspark.sql.functions as F


def weights():
    return {0: 1.0, 1: 2.0, 2: 3.0}


def scale(spark, numbers, weights, factor: int, ds):
    table = spark.createDataFrame([(k, v) for k, v in weights.items()], "grp long, weight double")
    return (
        numbers.join(table, "grp")
        .select("n", "grp", (F.col("n") * F.col("weight") * factor).alias("value"))
        .withColumn("ds", F.lit(ds))
        .repartition(3)
    )


def as_pandas(spark, numbers):
    return numbers.toPandas().assign(kind="pandas")


def nothing(spark, numbers):
    return None


def grouped(spark, numbers):
    return numbers.groupBy("grp")


def explode(spark, numbers):
    raise ValueError("bad numbers: " + str(numbers.count()))


def bad_cast(spark, numbers):
    return numbers.select(F.lit("abc").cast("int").alias("n"))


def summarize(scaled, item):
    return {"grp": item, "rows": scaled.num_rows}


def note(scaled):
    return {"rows": scaled.num_rows}
"""

SCRIPT = """
import os
import sys

from pyspark.sql import SparkSession
import pyspark.sql.functions as F

factor = int(sys.argv[sys.argv.index("--factor") + 1])
spark = SparkSession.builder.appName("a plain script").getOrCreate()
scaled = spark.read.parquet(os.environ["AQ_INPUT_SCALED"])
scaled.select("n", (F.col("value") * factor).alias("tripled")).write.parquet(os.environ["AQ_OUTPUT"])
{after}
"""


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("test_spark_local")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def steps_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark_steps")
    (folder / "spark_steps_here.py").write_text(STEPS)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


def committed(uri: str, value) -> str:
    location = Location.of(uri)
    attempt = location.begin()
    location.commit({**write_output(location, attempt, value), "step": uri.rsplit("/", 1)[-1]})
    return uri


def step_env(root: Path, step: str, inputs: dict[str, str], args: dict | None = None) -> dict[str, str]:
    env = {
        contract.ENGINE: "spark",
        contract.DAG_ID: "spark_dag",
        contract.STEP: step,
        contract.OUTPUT: str(root / step),
        contract.INPUTS: contract.encode_inputs({name: name for name in inputs}, as_list=True),
        contract.CONTEXT: json.dumps({"ds": "2026-03-01", "run_id": "r", "logical_date": "2026-03-01", "params": {}}),
        **{contract.input_variable(name): uri for name, uri in inputs.items()},
    }
    if args:
        env[contract.ARGS] = json.dumps(args)
    return env


NUMBERS = pa.table({"n": list(range(30)), "grp": [i % 3 for i in range(30)]})


@pytest.fixture
def inputs(tmp_path, spark, steps_module) -> tuple[Path, dict[str, str]]:
    """A table step's output (several files' worth of row groups) and a python step's object."""
    numbers = Location.of(str(tmp_path / "numbers"))
    attempt = numbers.begin()
    numbers.commit(write_batches(numbers, attempt, NUMBERS.schema, NUMBERS.to_batches(max_chunksize=7)))
    weights = committed(str(tmp_path / "weights"), {0: 1.0, 1: 2.0, 2: 3.0})
    return tmp_path, {"numbers": str(tmp_path / "numbers"), "weights": weights}


def test_a_function_gets_spark_its_inputs_as_dataframes_and_its_dataframe_is_the_output(inputs):
    root, uris = inputs
    manifest = run_step("spark_steps_here:scale", step_env(root, "scaled", uris, {"factor": 2}))
    assert manifest["kind"] == "table" and manifest["rows"] == 30
    assert manifest["schema"] == [["n", "int64"], ["grp", "int64"], ["value", "double"], ["ds", "string"]]
    assert manifest["python_type"] == "pyspark.sql.DataFrame"
    assert len(manifest["files"]) == 3  # Spark's three parts, named for the attempt
    assert all(re.fullmatch(rf"part-{manifest['attempt']}-0000[0-2]\.parquet", f) for f in manifest["files"])
    # nothing of Spark's is left beside them (_SUCCESS, .crc files, its staging folder)
    assert sorted(os.listdir(root / "scaled")) == sorted([MANIFEST, *manifest["files"]])
    output = Location.of(str(root / "scaled"))
    output.read_output("scaled")  # digests, rows and schema hold
    table = read_input(output, "scaled", pa.Table).sort_by("n")  # as the next python step gets it
    weight = {0: 1.0, 1: 2.0, 2: 3.0}
    assert table.column("value").to_pylist() == [n * weight[n % 3] * 2 for n in range(30)]
    assert set(table.column("ds").to_pylist()) == {"2026-03-01"}
    inputs_read = manifest["provenance"]["inputs"]
    assert set(inputs_read) == {"numbers", "weights"}
    assert all(i["manifest_digest"].startswith("sha256:") for i in inputs_read.values())


def test_a_second_attempt_leaves_only_its_own_files(inputs):
    root, uris = inputs
    env = step_env(root, "scaled", uris, {"factor": 1})
    first = run_step("spark_steps_here:scale", env)
    (root / "scaled" / ".spark-0123456789ab").mkdir()  # a killed attempt's Spark folder
    (root / "scaled" / ".spark-0123456789ab" / "part-0.parquet").write_bytes(b"half")
    second = run_step("spark_steps_here:scale", env)
    assert first["attempt"] != second["attempt"]
    assert sorted(os.listdir(root / "scaled")) == sorted([MANIFEST, *second["files"]])


def test_a_changed_input_file_is_refused_before_spark_reads_it(inputs):
    root, uris = inputs
    first = json.loads((root / "numbers" / MANIFEST).read_text())["files"][0]
    other = pa.table({"n": list(range(30)), "grp": [0] * 30})
    pq.write_table(other, root / "numbers" / first)  # same schema and rows, other values
    with pytest.raises(StepFailed, match=r"step `scaled`, input `numbers`: .*its manifest says sha256:"):
        run_step("spark_steps_here:scale", step_env(root, "scaled", uris, {"factor": 1}))


def test_a_pandas_table_and_none_are_stored_as_a_python_steps(inputs):
    root, uris = inputs
    frame = run_step("spark_steps_here:as_pandas", step_env(root, "frame", {"numbers": uris["numbers"]}))
    assert frame["kind"] == "table" and frame["rows"] == 30 and frame["python_type"].startswith("pandas.")
    none = run_step("spark_steps_here:nothing", step_env(root, "none", {"numbers": uris["numbers"]}))
    assert none["kind"] == "none" and none["files"] == []


def test_a_return_value_spark_cannot_store_fails_naming_its_type(inputs):
    root, uris = inputs
    with pytest.raises(StepFailed) as failed:
        run_step("spark_steps_here:grouped", step_env(root, "grouped", {"numbers": uris["numbers"]}))
    assert "step `grouped`: its function returned a pyspark.sql.group.GroupedData" in str(failed.value)
    assert "return a Spark DataFrame" in str(failed.value)
    assert not (root / "grouped" / MANIFEST).exists()


def test_a_spark_error_raised_while_writing_is_the_steps_failure(inputs):
    root, uris = inputs
    with pytest.raises(StepFailed) as failed:
        run_step("spark_steps_here:bad_cast", step_env(root, "cast", {"numbers": uris["numbers"]}))
    message = str(failed.value)
    assert message.startswith("step `cast`: Spark failed computing or writing the DataFrame its function returned")
    assert "CAST_INVALID_INPUT" in message and "'abc'" in message
    assert not (root / "cast" / MANIFEST).exists()


@pytest.fixture
def script_run(inputs, monkeypatch):
    """run_script in this process: what it changes of the process (argv, path, the script's
    variables) put back after."""
    root, uris = inputs
    scaled = run_step("spark_steps_here:scale", step_env(root, "scaled", uris, {"factor": 1}))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv(contract.OUTPUT, "")
    monkeypatch.setenv(contract.input_variable("scaled"), "")
    monkeypatch.chdir(root)
    env = {**step_env(root, "script", {"scaled": scaled["uri"]}), "PYTHONPATH": ""}
    return root, env


def test_a_script_writes_parquet_into_its_output_and_it_is_committed(script_run):
    root, env = script_run
    (root / "job.py").write_text(SCRIPT.format(after=""))
    manifest = run_script("job.py", ["--factor", "3"], env)
    assert manifest["kind"] == "table" and manifest["rows"] == 30 and manifest["script"] == "job.py"
    assert manifest["schema"] == [["n", "int64"], ["tripled", "double"]]
    assert sorted(os.listdir(root / "script")) == sorted([MANIFEST, *manifest["files"]])  # no _SUCCESS, .crc
    assert manifest["provenance"]["inputs"]["scaled"]["manifest_digest"].startswith("sha256:")
    table = read_input(Location.of(str(root / "script")), "script", pa.Table).sort_by("n")
    assert table.column("tripled").to_pylist() == [n * {0: 1.0, 1: 2.0, 2: 3.0}[n % 3] * 3 for n in range(30)]


def test_a_failing_script_fails_with_its_own_traceback(script_run):
    root, env = script_run
    (root / "job.py").write_text(SCRIPT.format(after="raise RuntimeError('the script gave up')"))
    with pytest.raises(StepFailed) as failed:
        run_script("job.py", ["--factor", "3"], env)
    message = str(failed.value)
    assert message.startswith("step `script`: script job.py raised an exception:\nTraceback")
    assert f'File "{root / "job.py"}", line 12, in <module>' in message
    assert message.endswith("RuntimeError: the script gave up")
    assert "runpy" not in message and "aq_airflow" not in message  # the script's frames, not ours
    assert not (root / "script" / MANIFEST).exists()


def test_a_missing_script_is_named(script_run):
    _, env = script_run
    with pytest.raises(StepFailed, match=r"step `script`: no script jobs/none.py in "):
        run_script("jobs/none.py", [], env)


def test_on_an_object_store_without_spark_s_connector_the_files_go_through_a_local_folder(
    spark, steps_module, s3_emulator, tmp_path
):
    """PySpark's wheel has no s3a filesystem: inputs are downloaded (and verified there), the
    output written locally and uploaded, hashed on the way."""
    from aq_airflow.runtime.spark_session import direct_access

    assert not direct_access(spark, "s3://spark-runs/x")
    assert direct_access(spark, str(tmp_path))
    s3_emulator("spark-runs")
    numbers = committed("s3://spark-runs/aq/numbers", NUMBERS)
    weights = committed("s3://spark-runs/aq/weights", {0: 1.0, 1: 2.0, 2: 3.0})
    env = {**step_env(tmp_path, "scaled", {"numbers": numbers, "weights": weights}, {"factor": 1})}
    env[contract.OUTPUT] = "s3://spark-runs/aq/scaled"
    manifest = run_step("spark_steps_here:scale", env)
    assert manifest["kind"] == "table" and manifest["rows"] == 30 and len(manifest["files"]) == 3
    output = Location.of("s3://spark-runs/aq/scaled")
    assert output.read_output("scaled")["digests"] == manifest["digests"]
    assert read_input(output, "scaled", pa.Table).num_rows == 30


def test_store_uris_as_hadoop_names_them():
    from aq_airflow.runtime.spark_session import spark_uri

    assert spark_uri("s3://bucket/aq/run/step", {}) == "s3a://bucket/aq/run/step"
    assert spark_uri("gs://bucket/aq", {}) == "gs://bucket/aq"
    account = {"AZURE_STORAGE_ACCOUNT_NAME": "acme"}
    assert spark_uri("abfs://outputs/aq", account) == "abfss://outputs@acme.dfs.core.windows.net/aq"
    connection = "AccountName=acme;AccountKey=k;EndpointSuffix=core.chinacloudapi.cn"
    sovereign = {"AZURE_STORAGE_CONNECTION_STRING": connection}
    assert spark_uri("az://outputs/aq", sovereign) == "abfss://outputs@acme.dfs.core.chinacloudapi.cn/aq"
    assert spark_uri("abfss://outputs@other.dfs.core.windows.net/aq", account) == (
        "abfss://outputs@other.dfs.core.windows.net/aq"
    )
    assert spark_uri("relative/folder", {}) == os.path.abspath("relative/folder")


def test_local_mode_is_sized_to_the_machine_and_the_steps_conf_goes_on_top(monkeypatch):
    from aq_airflow.runtime.machine import usable_cpus, usable_memory
    from aq_airflow.runtime.spark_session import local_settings

    master, conf = local_settings({contract.ENGINE_CONF: json.dumps({"spark.sql.shuffle.partitions": 8,
                                                                     "spark.ui.enabled": True})})  # fmt: skip
    assert master == f"local[{usable_cpus()}]" and usable_cpus() <= (os.cpu_count() or 1)
    assert conf["spark.driver.memory"] == f"{min(max(usable_memory() // 2**21, 1024), 65536)}m"
    assert conf["spark.sql.shuffle.partitions"] == "8" and conf["spark.ui.enabled"] == "true"  # the step's
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert local_settings({"SPARK_MASTER": "local[1]"})[0] == "local[1]"


def test_s3a_reaches_the_endpoint_the_sdks_variables_name_without_the_credentials(spark):
    from aq_airflow.runtime.spark_session import configure_stores

    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    configure_stores(spark, env)
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    assert hadoop.get("fs.s3a.endpoint") == "http://127.0.0.1:9000"
    assert hadoop.get("fs.s3a.path.style.access") == "true"
    assert hadoop.get("fs.s3a.endpoint.region") == "eu-west-1"
    assert hadoop.get("fs.s3a.secret.key") is None  # S3A's own providers read it from the environment


# -- through the real local runner -----------------------------------------------------------------
PIPELINE = """
pipeline: {name}
steps:
  numbers:
    sql: SELECT range AS n, range % 3 AS grp FROM range(1000)
  weights:
    python: spark_steps_here:weights
  scaled:
    spark: spark_steps_here:scale
    inputs: [numbers, weights]
    args: {{factor: 2}}
    spark_conf: {{spark.sql.shuffle.partitions: 4}}
    checks:
      - {{name: one_row_per_n, unique: n}}
      - {{name: known_group, column: grp, between: [0, 2]}}
    metrics:
      - {{name: scaled_rows, count: "*", bounds: {{min: 1000, max: 1000}}}}
      - {{name: mean_value, mean: value}}
  per_group:
    python: spark_steps_here:summarize
    inputs: [scaled]
    foreach: {{step: scaled, column: grp}}
  noted:
    python: spark_steps_here:note
    inputs: [scaled]
    when: {{metric: scaled.scaled_rows, at_least: 1000}}
  skipped:
    python: spark_steps_here:note
    inputs: [scaled]
    when: {{metric: scaled.scaled_rows, above: 1000}}
  tripled:
    spark: {{file: job.py, args: [--factor, "3"]}}
    inputs: [scaled]
"""

FAILING = """
pipeline: {name}
steps:
  numbers:
    sql: SELECT range AS n, range % 3 AS grp FROM range(10)
  boom:
    spark: spark_steps_here:explode
    inputs: [numbers]
  wrong:
    spark: spark_steps_here:grouped
    inputs: [numbers]
"""


@pytest.fixture
def runner_steps(steps_module):
    """The step code beside the spec in the dags folder (its code folder, shipped as a package)."""
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "local"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spark_steps_here.py").write_text(STEPS)
    (folder / "job.py").write_text(SCRIPT.format(after="spark.stop()"))
    yield folder
    for name in ("spark_steps_here.py", "job.py"):
        (folder / name).unlink(missing_ok=True)


def test_spark_steps_run_on_the_local_runner_with_checks_metrics_foreach_and_when(
    run_dag, duckdb_warehouse, runner_steps, tmp_path
):
    import duckdb

    _, dag_run, states = run_dag("spark_local", PIPELINE.format(name="spark_local"))
    assert dag_run.state == "success", states
    assert states["skipped.run"] == "skipped" and states["noted.run"] == "success"
    assert {s for t, s in states.items() if not t.startswith("skipped.")} == {"success"}, states
    run_folder = tmp_path / "artifacts" / "spark_local" / dag_run.run_id
    scaled = json.loads((run_folder / "scaled" / MANIFEST).read_text())
    assert scaled["kind"] == "table" and scaled["rows"] == 1000 and scaled["python_type"] == "pyspark.sql.DataFrame"
    items = []
    for index in range(3):
        (name,) = json.loads((run_folder / "per_group" / str(index) / MANIFEST).read_text())["files"]
        items.append(pickle.loads((run_folder / "per_group" / str(index) / name).read_bytes())["grp"])
    assert sorted(items) == [0, 1, 2]  # one item per group of the spark step's output
    tripled = json.loads((run_folder / "tripled" / MANIFEST).read_text())
    assert tripled["kind"] == "table" and tripled["rows"] == 1000 and tripled["script"] == "job.py"
    with duckdb.connect(str(duckdb_warehouse), read_only=True) as conn:
        checks = conn.execute(
            "SELECT name, outcome FROM aq_check_results WHERE dag_id = 'spark_local' AND step = 'scaled' ORDER BY name"
        ).fetchall()
        metrics = dict(
            conn.execute("SELECT name, value FROM aq_metric_results WHERE dag_id = 'spark_local'").fetchall()
        )
    assert checks == [("known_group", "passed"), ("one_row_per_n", "passed")]  # over Spark's Parquet
    assert metrics["scaled_rows"] == 1000
    assert metrics["mean_value"] == pytest.approx(sum(n * (n % 3 + 1) * 2 for n in range(1000)) / 1000)


def test_a_failing_spark_function_fails_its_task_with_the_users_traceback(
    run_dag, duckdb_warehouse, runner_steps, capsys, caplog
):
    _, dag_run, states = run_dag("spark_failing", FAILING.format(name="spark_failing"))
    assert dag_run.state == "failed"
    assert states == {"numbers.run": "success", "boom.run": "failed", "wrong.run": "failed"}
    logged = capsys.readouterr()
    text = logged.out + logged.err + caplog.text
    assert "step `boom`: `spark_steps_here:explode` raised an exception" in text
    assert re.search(r'spark_steps_here\.py\\?", line \d+, in explode', text)  # (escaped in a JSON log line)
    assert "step `boom` failed: the step's process exited with code 1: ValueError: bad numbers: 10" in text
    assert "step `wrong` failed: the step's process exited with code 1: aq-airflow: step `wrong`: its function " \
        "returned a pyspark.sql.group.GroupedData" in text  # fmt: skip


def test_without_java_the_step_says_so(tmp_path):
    """PySpark's JVM cannot start: the step's one line names the Java it looked for and the fix."""
    import subprocess

    (tmp_path / "spark_steps_nojava.py").write_text("def one(spark):\n    return spark.range(1)\n")
    env = {**os.environ, **step_env(tmp_path, "nojava", {}), "JAVA_HOME": str(tmp_path / "no-jdk")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "aq_airflow.runtime", "--function", "spark_steps_nojava:one"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"aq-airflow: step `nojava`: cannot start Spark: JAVA_HOME is {tmp_path / 'no-jdk'}, with no bin/java: "
        "PySpark needs a JDK 17 or 21 (`make install` installs Debian's default-jdk-headless; elsewhere install one "
        "and put it on the PATH, or set JAVA_HOME)"
    )
    assert "Traceback" not in done.stderr
