"""A spark step's SparkApplication deleted by someone else while its driver runs (`kubectl
delete`, a namespace clean-up), through the real AqSparkStepOperator in real Airflow against the
loopback Kubernetes API and the test-side Spark operator: the task fails at once saying so,
instead of waiting five minutes for a state that never comes and blaming the driver."""

from __future__ import annotations

import threading
import time

import pytest

from aq_airflow.runners.spark_application import SPARK_APPLICATION
from tests.test_spark_kubernetes import applications, cluster, spec  # noqa: F401  (cluster: the fixture)

pytestmark = pytest.mark.slow  # a driver's JVM


def delete_once_running(fake, dag_id: str, step: str, folder: str, stop: threading.Event) -> None:
    """Delete the step's application as a user would, once its driver pod runs."""
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(fake.kubeconfig(folder)))
    while not stop.is_set():
        bodies = applications(fake, dag_id, step)
        if bodies:
            name = bodies[0]["metadata"]["name"]
            if ("default", f"{name}-driver") in fake.pods:
                time.sleep(3)  # the driver is under way
                k = SPARK_APPLICATION
                api.delete_namespaced_custom_object(k.group, k.version, "default", k.plural, name)
                return
        stop.wait(0.5)


def test_an_application_deleted_by_someone_else_fails_its_task_saying_so(run_dag, cluster, tmp_path, capsys):  # noqa: F811
    stop = threading.Event()
    deleter = threading.Thread(
        target=delete_once_running, args=(cluster, "spark_gone", "slow", str(tmp_path), stop), daemon=True
    )
    deleter.start()
    try:
        steps = "slow:\n    spark: spark_steps:slow\n    retries: 0\n    timeout: 400s"
        _, _, states = run_dag("spark_gone", spec(tmp_path, "spark_gone", steps), local=False)
    finally:
        stop.set()
        deleter.join(10)
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert states == {"slow.run": "failed"}, text[-4000:]
    (body,) = applications(cluster, "spark_gone", "slow")
    assert f"SparkApplication default/{body['metadata']['name']} was deleted before it finished" in text, text[-4000:]
    assert "its state after 300s" not in text
