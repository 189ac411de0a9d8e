"""Spark steps through the real AqSparkStepOperator (the cncf provider's SparkKubernetesOperator)
in real Airflow (``dag.test``), against the loopback Kubernetes API with the test-side Spark
operator (``tests.spark_controller``): the driver pod runs the aq runtime through the image's
launcher, PySpark in local mode in it, and commits the output; the task follows the driver's log,
decides by the SparkApplication's state and deletes it. (The driver's Spark is the runtime's
``aq_airflow.runtime.spark``.)"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from aq_airflow.artifacts.provenance import Provenance
from tests.kube_api import FakeKubernetes, image_id
from tests.spark_controller import SUBMISSION_ERRORS, spark_applications
from tests.test_execution import manifest, output_dir

pytestmark = pytest.mark.slow  # a JVM per driver, several runs

PIPELINE = """
pipeline: {name}
artifacts: {artifacts}
cluster: eks
code: spark_code
defaults:
  image: ghcr.io/acme/spark-steps:1
  env:
    API_TOKEN: {{secret: api, key: token}}
    MARKERS: {markers}
steps:
  {steps}
"""
# a python step's pod and a spark step reading its output
DOUBLED = """numbers:
    python: spark_steps:numbers
  doubled:
    spark: spark_steps:double
    inputs: [numbers]
    args: {factor: 3}
    driver: {cpu: 1, memory: 1Gi}
    executors: {instances: 2, cpu: 1, memory: 1Gi}
    retries: 0
    checks:
      - {name: all_rows, row_count: {min: 100, max: 100}}"""

STEPS = """\
import os
import pathlib
import time

import pyarrow as pa


def numbers():
    return pa.table({"n": list(range(100))})


def double(spark, numbers, factor):
    assert os.environ["API_TOKEN"] == "s3cret"
    print("doubling on", spark.sparkContext.master)
    return numbers.withColumn("n", numbers["n"] * factor)


def broken(spark):
    print("about to fail")
    raise RuntimeError("the job diverged")


def flaky(spark):
    marker = pathlib.Path(os.environ["MARKERS"]) / "flaky.tried"
    if not marker.exists():
        marker.write_text("once")
        raise RuntimeError("first try fails")
    return spark.range(10)


def slow(spark):
    print("sleeping", flush=True)
    time.sleep(120)
    return spark.range(10)
"""


# a plain PySpark script, as spark-submit runs it: its arguments in sys.argv, Parquet into AQ_OUTPUT
SCRIPT = """\
import os
import sys

from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
spark.range(int(sys.argv[1])).withColumnRenamed("id", "n").write.parquet(os.environ["AQ_OUTPUT"])
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One API server with the Spark operator's stand-in for the module, reached through the
    `kubernetes_default` connection; the steps' code reaches the pods only as the run's package."""
    tmp_path = tmp_path_factory.mktemp("spark-cluster")
    steps = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "profiles" / "spark_code" / "spark_steps"
    steps.mkdir(parents=True, exist_ok=True)
    (steps / "__init__.py").write_text(STEPS)
    (steps.parent / "jobs").mkdir(exist_ok=True)
    (steps.parent / "jobs" / "report.py").write_text(SCRIPT)
    controllers = {"sparkapplications": spark_applications}
    with FakeKubernetes(secrets={("api", "token"): "s3cret"}, controllers=controllers) as fake:
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": fake.kubeconfig(str(tmp_path))}}
        os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(connection)
        try:
            yield fake
        finally:
            del os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"]


def spec(tmp_path, name, steps):
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    return PIPELINE.format(name=name, artifacts=tmp_path / "artifacts", markers=markers, steps=steps)


def applications(cluster, dag_id: str, step: str) -> list[dict]:
    return [
        body
        for body in cluster.created_objects
        if body["metadata"]["labels"].get("dag_id") == dag_id and body["metadata"]["labels"]["aq-airflow/step"] == step
    ]


def deleted(cluster, body: dict) -> bool:
    name = body["metadata"]["name"]
    return f"DELETE sparkapplications {name}" in cluster.requests and not any(k[2] == name for k in cluster.objects)


def test_a_spark_step_runs_as_a_spark_application(run_dag, duckdb_warehouse, cluster, tmp_path, capsys, caplog):
    _, dag_run, states = run_dag("spark_k8s", spec(tmp_path, "spark_k8s", DOUBLED), local=False)
    assert states == {"numbers.run": "success", "doubled.run": "success", "doubled.checks": "success"}, states
    result = manifest(tmp_path, dag_run, "spark_k8s", "doubled")
    table = pq.read_table(output_dir(tmp_path, dag_run, "spark_k8s", "doubled") / result["files"][0])
    assert sorted(table.column("n").to_pylist()) == [v * 3 for v in range(100)]
    image = "ghcr.io/acme/spark-steps:1"  # the digest the driver pod's status reported, in the provenance
    assert Provenance.of(result).image.digest == image_id(image).partition("@")[2]
    (body,) = applications(cluster, "spark_k8s", "doubled")
    env = {e["name"]: e for e in body["spec"]["driver"]["env"]}
    assert env["AQ_RUN_ID"]["value"] == dag_run.run_id  # rendered by Airflow before it was created
    assert env["AQ_CODE_DIGEST"]["value"].startswith("sha256:")  # the run's code package
    assert env["API_TOKEN"] == {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
    assert body["spec"]["driver"]["labels"]["try_number"] == "1"
    assert deleted(cluster, body)
    logged = capsys.readouterr()
    assert "doubling on local" in logged.out + logged.err + caplog.text  # the driver's log, followed into the task log


def test_a_script_step_runs_in_the_driver_with_its_arguments(run_dag, cluster, tmp_path):
    steps = 'report:\n    spark: {file: jobs/report.py, args: ["7"]}\n    retries: 0'
    _, dag_run, states = run_dag("spark_script", spec(tmp_path, "spark_script", steps), local=False)
    assert states == {"report.run": "success"}, states
    result = manifest(tmp_path, dag_run, "spark_script", "report")
    folder = output_dir(tmp_path, dag_run, "spark_script", "report")
    assert sorted(v for f in result["files"] for v in pq.read_table(folder / f).column("n").to_pylist()) == list(
        range(7)
    )
    (body,) = applications(cluster, "spark_script", "report")
    assert body["spec"]["arguments"] == ["--script", "jobs/report.py", "--", "7"]
    assert deleted(cluster, body)


def test_a_failing_driver_fails_the_task_with_its_error_and_the_reason(run_dag, cluster, tmp_path, capsys, caplog):
    steps = "broken:\n    spark: spark_steps:broken\n    retries: 0"
    _, _, states = run_dag("spark_fail", spec(tmp_path, "spark_fail", steps), local=False)
    assert states == {"broken.run": "failed"}
    logged = capsys.readouterr()
    text = logged.out + logged.err + caplog.text
    assert "about to fail" in text and "RuntimeError: the job diverged" in text  # the driver's error
    assert "ended FAILED: driver container failed with ExitCode: 1" in text  # the Spark operator's reason
    (body,) = applications(cluster, "spark_fail", "broken")
    assert deleted(cluster, body)


def test_a_retry_is_a_new_application(run_dag, cluster, tmp_path):
    steps = "flaky:\n    spark: spark_steps:flaky\n    retries: 1\n    retry_delay: 1s"
    _, _, states = run_dag("spark_retry", spec(tmp_path, "spark_retry", steps), local=False)
    assert states["flaky.run"] == "success", states
    first, second = applications(cluster, "spark_retry", "flaky")
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert [b["spec"]["driver"]["labels"]["try_number"] for b in (first, second)] == ["1", "2"]
    assert deleted(cluster, first) and deleted(cluster, second)


def test_a_killed_task_deletes_its_application_and_driver(run_dag, cluster, tmp_path):
    steps = "slow:\n    spark: spark_steps:slow\n    retries: 0\n    timeout: 15s"
    _, _, states = run_dag("spark_kill", spec(tmp_path, "spark_kill", steps), local=False)
    assert states["slow.run"] == "failed"
    (body,) = applications(cluster, "spark_kill", "slow")
    assert deleted(cluster, body)
    driver = ("default", f"{body['metadata']['name']}-driver")
    assert driver not in cluster.pods  # owned by the application: gone with it, its process killed
    process = cluster.processes.get(driver)
    assert process is not None and process.returncode is not None and process.returncode < 0  # killed, not done


def test_a_refused_submission_fails_the_task_with_the_spark_operators_reason(
    run_dag, cluster, tmp_path, capsys, caplog
):
    SUBMISSION_ERRORS["aq-spark-refused-"] = "failed to run spark-submit: admission webhook denied the driver pod"
    try:
        steps = "refused:\n    spark: spark_steps:flaky\n    retries: 0"
        _, _, states = run_dag("spark_refused", spec(tmp_path, "spark_refused", steps), local=False)
    finally:
        SUBMISSION_ERRORS.clear()
    assert states == {"refused.run": "failed"}
    logged = capsys.readouterr()
    text = logged.out + logged.err + caplog.text
    assert "ended SUBMISSION_FAILED: failed to run spark-submit: admission webhook denied" in text
    (body,) = applications(cluster, "spark_refused", "refused")
    assert deleted(cluster, body)
    assert not any(k[1].startswith(body["metadata"]["name"]) for k in cluster.pods)  # no driver was made


def test_a_retry_deletes_the_earlier_tries_application_and_never_reattaches_to_it(cluster):
    """What a worker that died mid-task left (the application of try 1, its driver still there):
    try 2 deletes it and creates its own, named and labelled for try 2; it reattaches only to an
    application of its own try."""
    from types import SimpleNamespace

    from aq_airflow.operators.errors import StepFailed
    from aq_airflow.operators.spark_application import AqSparkStepOperator
    from aq_airflow.runners.custom_resource import identity, resource_name
    from tests.test_spark_application import spark_plans

    run = dataclasses.replace(spark_plans()["script"], code_folder=None)  # `code: image`: no package to ship
    operator = AqSparkStepOperator(task_id="script.run", plan=run)
    operator.poll_interval = 0.1
    run_id = "manual__leftover"
    left = resource_name("sparky", run.step, run_id, -1, 1)
    body = {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": left, "labels": identity("sparky", "script.run", run_id, -1, 1)},
        "spec": {},
    }
    kind = operator.kind
    operator.hook.create_custom_object(kind.group, kind.version, kind.plural, body, namespace="default")
    ti = SimpleNamespace(dag_id="sparky", task_id="script.run", map_index=-1, try_number=2)
    SUBMISSION_ERRORS["aq-sparky-script-"] = "refused here: this test needs no driver"
    try:
        with pytest.raises(StepFailed, match="ended SUBMISSION_FAILED: refused here"):
            operator.execute({"ti": ti, "run_id": run_id, "dag": None, "params": {}})
    finally:
        SUBMISSION_ERRORS.clear()
    assert f"DELETE sparkapplications {left}" in cluster.requests
    assert not any(k[2] == left for k in cluster.objects)
    mine = resource_name("sparky", run.step, run_id, -1, 2)
    (created,) = [b for b in cluster.created_objects if b["metadata"]["name"] == mine]
    assert created["metadata"]["labels"]["try_number"] == "2"
    assert created["spec"]["driver"]["labels"]["try_number"] == "2"
    assert not any(k[2] == mine for k in cluster.objects)  # deleted at the end, as any other


def test_an_application_whose_driver_never_starts_fails_at_the_startup_limit(tmp_path, monkeypatch):
    """No Spark operator acts on the application (none runs here): at the start-up limit the task
    fails saying what did not start and what to look at, and the application is deleted. (The
    limit and its message are every custom-resource step's: a RayJob's too.)"""
    from types import SimpleNamespace

    from aq_airflow.operators.errors import StepFailed
    from aq_airflow.operators.spark_application import AqSparkStepOperator
    from tests.test_spark_application import spark_plans

    with FakeKubernetes() as idle:  # an API server with no controller: the application stays new
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": idle.kubeconfig(str(tmp_path))}}
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(connection))
        run = dataclasses.replace(spark_plans()["script"], code_folder=None)
        operator = AqSparkStepOperator(task_id="script.run", plan=run)
        operator.poll_interval, operator.startup_timeout = 0.1, 1
        ti = SimpleNamespace(dag_id="sparky", task_id="script.run", map_index=-1, try_number=1)
        with pytest.raises(StepFailed) as failed:
            operator.execute({"ti": ti, "run_id": "manual__stuck", "dag": None, "params": {}})
        (body,) = idle.created_objects
        name = body["metadata"]["name"]
        assert str(failed.value) == (
            f"step `script`: SparkApplication {name} did not start its work in 1s (new, no "
            "spark-kubernetes-driver pod yet): is the SparkApplication operator running and watching "
            "namespace `default`, and can its other pods be scheduled?"
        )
        assert not idle.objects
