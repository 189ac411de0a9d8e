"""Python steps through the real KubernetesPodOperator, against a Kubernetes API server on
loopback whose test-side kubelet runs each pod's command locally."""

from __future__ import annotations

import json
import os
from pathlib import Path

import kubernetes_validate
import pyarrow.parquet as pq
import pytest

from tests.kube_api import FakeKubernetes
from tests.test_execution import manifest, output_dir

PIPELINE = """
pipeline: {name}
artifacts: {artifacts}
cluster: eks
code: k8s_code
defaults:
  image: ghcr.io/acme/steps:1
  env:
    API_TOKEN: {{secret: api, key: token}}
steps:
  numbers:
    python: k8s_steps:numbers
  doubled:
    python: k8s_steps:double
    inputs: [numbers]
    resources: {{gpu: 1, gpu_type: a10g, memory: 4Gi}}
    args: {{factor: 3}}
  {extra}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One API server for the module, reached through the `kubernetes_default` connection (the
    Kubernetes client reads $KUBECONFIG once per process, so the path goes in the connection)."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    # the steps' code folder, beside the specs `run_dag` writes: it reaches the pods only as the
    # run's code package (the kubelet's import path holds aq-airflow alone)
    steps = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "profiles" / "k8s_code" / "k8s_steps"
    steps.mkdir(parents=True, exist_ok=True)
    (steps / "__init__.py").write_text(
        "import os\nimport pyarrow as pa\n\n"
        "def numbers():\n    print('making numbers'); return pa.table({'n': list(range(100))})\n\n"
        "def double(numbers, factor):\n"
        "    assert os.environ['API_TOKEN'] == 's3cret'\n"
        "    return pa.table({'n': [v * factor for v in numbers.column('n').to_pylist()]})\n\n"
        "def broken(numbers):\n    print('about to fail'); raise RuntimeError('the model diverged')\n"
    )
    with FakeKubernetes(secrets={("api", "token"): "s3cret"}) as fake:
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": fake.kubeconfig(str(tmp_path))}}
        os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(connection)
        try:
            yield fake
        finally:
            del os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"]


def spec(tmp_path, name, extra=""):
    return PIPELINE.format(name=name, artifacts=tmp_path / "artifacts", extra=extra)


def test_python_steps_run_as_pods(run_dag, cluster, tmp_path):
    _, dag_run, states = run_dag("on_k8s", spec(tmp_path, "on_k8s"), local=False)
    assert states == {"numbers.run": "success", "doubled.run": "success"}, cluster.requests
    result = manifest(tmp_path, dag_run, "on_k8s", "doubled")
    table = pq.read_table(output_dir(tmp_path, dag_run, "on_k8s", "doubled") / result["files"][0])
    assert table.column("n").to_pylist() == [v * 3 for v in range(100)]
    created = [p for p in cluster.created if p["metadata"]["labels"]["dag_id"] == "on_k8s"]
    assert [pod["metadata"]["labels"]["aq-airflow/step"] for pod in created] == ["numbers", "doubled"]
    gpu_pod = created[1]
    kubernetes_validate.validate(gpu_pod, kubernetes_validate.utils.latest_version(), strict=True)
    spec_ = gpu_pod["spec"]
    assert spec_["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec_["nodeSelector"] == {"karpenter.k8s.aws/instance-gpu-name": "a10g"}
    assert spec_["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert [c["name"] for c in spec_["containers"]] == ["base"]  # no XCom sidecar
    env = {e["name"]: e for e in spec_["containers"][0]["env"]}
    assert env["API_TOKEN"] == {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
    assert json.loads(env["AQ_ARGS"]["value"]) == {"factor": 3}
    # KPO found no pod to reattach to (labelSelector honoured), created, polled, followed logs, deleted
    assert any(r.startswith("LIST") and "labelSelector" in r for r in cluster.requests)
    names = {p["metadata"]["name"] for p in created}
    assert {r.split()[1] for r in cluster.requests if r.startswith("DELETE")} >= names
    assert all(not any(k[1] == n for k in cluster.pods) for n in names)


def test_a_failing_pod_fails_its_task_with_the_pod_log(run_dag, cluster, tmp_path, capsys):
    extra = "broken:\n    python: k8s_steps:broken\n    inputs: [numbers]\n    retries: 0"
    _, _, states = run_dag("k8s_fail", spec(tmp_path, "k8s_fail", extra), local=False)
    assert states["broken.run"] == "failed" and states["numbers.run"] == "success"
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "about to fail" in text  # the pod's log, streamed into the task log
    assert "RuntimeError: the model diverged" in text
