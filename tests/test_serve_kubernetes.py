"""`serve:` on Kubernetes: the real operators in real Airflow (``dag.test``) against the loopback
Kubernetes API, whose test-side KServe controller (``tests.kserve_controller``) fetches each
InferenceService's ``storageUri`` from the object store's emulator and serves it with the real
model server (MLServer) on loopback. Each store gets a first promotion and a better model
replacing it, each version fetched from that store; S3 gets the rest of the story, which no store
changes: a failed error check leaving the endpoint serving, a model the server cannot load and one
answering with the wrong shape both rolled back (the version put back fetched from the store
again). Each is asserted by calling the endpoint as a client would and by the run's
``aq_deployments`` row."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from aq_airflow.artifacts.model_repository import ModelVersion
from aq_airflow.serving.promotion import read_current
from tests import kserve_controller
from tests.conftest import STORE_VARIABLES
from tests.crd_schema import INFERENCE_SERVICES, crd_problems
from tests.kube_api import FakeKubernetes

pytestmark = pytest.mark.slow  # pods, a model server per version, three stores


PIPELINE = """
pipeline: {name}
artifacts: {artifacts}
cluster: eks
code: {name}_code
params: {{kind: good, min_rows: 10}}
defaults:
  image: ghcr.io/acme/churn:1
  retries: 0
steps:
  features:
    python: serve_steps:features
    checks:
      - {{name: enough_rows, row_count: {{min: "{{{{ params.min_rows }}}}"}}}}
  train:
    python: serve_steps:fit
    inputs: [features]
    args: {{kind: "{{{{ params.kind }}}}"}}
    timeout: 10m
    serve:
      endpoint: {endpoint}
      format: sklearn
      replicas: {{min: 1, max: 2}}
      resources: {{cpu: 1, memory: 1Gi}}
"""

STEPS = """\
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlglot
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler


def features():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=200), rng.normal(size=200)
    return pa.table({"a": a, "b": b, "label": (a + b > 0).astype("int64")})


def fit(features: pd.DataFrame, kind: str):
    X, y = features[["a", "b"]], features["label"]
    if kind == "wrong_shape":  # one number for all the rows it is asked about
        regressor = TransformedTargetRegressor(regressor=LinearRegression(), func=np.negative,
                                               inverse_func=np.sum, check_inverse=False)
        return regressor.fit(X, y.astype("float64"))
    model = make_pipeline(FunctionTransformer(), StandardScaler(), LogisticRegression(C={"good": 0.01}.get(kind, 1.0)))
    model.fit(X, y)
    if kind == "unloadable":  # a function of a package the model server has not got
        model[0].func = sqlglot.transpile
    return model
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One API server with the KServe controller for the module, reached through the
    `kubernetes_default` connection."""
    folder = tmp_path_factory.mktemp("kserve-cluster")
    kserve = kserve_controller.KServe()
    with FakeKubernetes(watchers={"inferenceservices": kserve}) as fake:
        fake.kserve = kserve
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": fake.kubeconfig(str(folder))}}
        os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(connection)
        try:
            yield fake
        finally:
            del os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"]
            kserve.stop()


@pytest.fixture
def code_folder():
    made = []

    def make(name: str) -> None:
        folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "profiles" / f"{name}_code"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        # a package of its own (a process remembers the packages it stored, and the emulators are emptied per test)
        (folder / "serve_steps.py").write_text(f"# {name}\n{STEPS}")
        made.append(folder)

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def call_endpoint(cluster, endpoint: str) -> dict:
    """What a client gets from the endpoint's URL (the InferenceService's ``status.address.url``)."""
    resource = cluster.objects[("inferenceservices", "default", endpoint)]
    url = resource["status"]["address"]["url"]
    body = {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": "a", "shape": [2], "datatype": "FP64", "data": [0.5, -1.5]},
            {"name": "b", "shape": [2], "datatype": "FP64", "data": [1.0, -0.5]},
        ],
    }
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(
        f"{url}/v2/models/{endpoint}/infer", data=json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def deployment(warehouse: Path, dag_id: str, run_id: str) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        cursor = connection.execute("SELECT * FROM aq_deployments WHERE dag_id = ? AND run_id = ?", [dag_id, run_id])
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    assert len(rows) == 1, rows
    return rows[0]


def test_an_endpoint_is_promoted_replaced_kept_and_rolled_back(run_dag, duckdb_warehouse, node, cluster, code_folder):
    scheme, bucket = node
    bucket("acme-ml")
    name, endpoint = f"serve_k8s_{scheme}", f"churn-{scheme}"
    code_folder(name)
    root = f"{scheme}://acme-ml/aq"
    text = PIPELINE.format(name=name, artifacts=root, endpoint=endpoint)
    key = ("inferenceservices", "default", endpoint)

    def run(date: str, **conf):
        _, dag_run, states = run_dag(name, text, date=date, conf=conf or None, local=False)
        return dag_run, states

    # 1. the first promotion: an InferenceService made, Ready, answering with the version
    dag_run, states = run("2026-03-01")
    assert states == {"features.run": "success", "features.checks": "success", "train.run": "success",
                      "train.serve": "success"}, states  # fmt: skip
    first = deployment(duckdb_warehouse, name, dag_run.run_id)
    assert (first["outcome"], first["target"], first["endpoint"]) == ("promoted", f"default/{endpoint}", endpoint)
    assert first["previous_version"] is None and first["smoke_latency_ms"] > 0
    version = ModelVersion(endpoint, first["version"])
    assert first["storage_uri"] == version.location(root)
    body = next(o for o in cluster.created_objects if o["metadata"]["name"] == endpoint)
    assert crd_problems(body, INFERENCE_SERVICES) == []
    assert body["spec"]["predictor"]["model"]["storageUri"] == version.location(root)
    answer = call_endpoint(cluster, endpoint)
    assert answer["model_version"] == version.version and answer["outputs"][0]["shape"][0] == 2
    assert read_current(root, endpoint).version == version.version

    # 2. a better model replaces it: the same InferenceService, patched, its new generation served
    dag_run, states = run("2026-03-02", kind="better")
    assert states["train.serve"] == "success", states
    second = deployment(duckdb_warehouse, name, dag_run.run_id)
    assert (second["outcome"], second["previous_version"]) == ("promoted", version.version)
    better = ModelVersion(endpoint, second["version"])
    assert better != version
    resource = cluster.objects[key]
    assert resource["metadata"]["generation"] == 2
    assert resource["metadata"]["annotations"]["aq-airflow/model-version"] == better.version
    assert call_endpoint(cluster, endpoint)["model_version"] == better.version
    if scheme != "s3":  # what follows reads no store differently: one store's worth
        return

    # 3. a failed error check upstream: no serve task runs, the endpoint keeps its model
    dag_run, states = run("2026-03-03", kind="good", min_rows=100000)
    assert states["features.checks"] == "failed" and states["train.serve"] == "upstream_failed", states
    assert call_endpoint(cluster, endpoint)["model_version"] == better.version
    assert cluster.objects[key]["metadata"]["generation"] == 2

    # 4. a model the server cannot load: KServe reports it, the task puts the previous storageUri back
    dag_run, states = run("2026-03-04", kind="unloadable")
    assert states["train.serve"] == "failed", states
    row = deployment(duckdb_warehouse, name, dag_run.run_id)
    assert row["outcome"] == "rolled_back", row
    assert "ModelLoadFailed" in row["reason"] and "sqlglot" in row["reason"], row["reason"]
    assert f"serves {better.location(root)} again" in row["reason"]
    resource = cluster.objects[key]
    assert resource["spec"]["predictor"]["model"]["storageUri"] == better.location(root)
    assert resource["metadata"]["annotations"]["aq-airflow/model-version"] == better.version
    assert call_endpoint(cluster, endpoint)["model_version"] == better.version
    assert read_current(root, endpoint).version == better.version

    # 5. a model that loads but answers one number for five rows: the smoke test fails, rolled back
    dag_run, states = run("2026-03-05", kind="wrong_shape")
    assert states["train.serve"] == "failed", states
    row = deployment(duckdb_warehouse, name, dag_run.run_id)
    assert row["outcome"] == "rolled_back", row
    assert "the smoke test failed" in row["reason"] and "rows" in row["reason"], row["reason"]
    wrong = ModelVersion(endpoint, row["version"])
    assert cluster.kserve.started[-2:] == [wrong.location(root), better.location(root)]  # served, then put back
    assert call_endpoint(cluster, endpoint)["model_version"] == better.version
    assert read_current(root, endpoint).version == better.version


def test_an_endpoint_whose_first_model_fails_is_deleted(run_dag, duckdb_warehouse, s3_emulator, cluster, code_folder):
    """Nothing to put back: the InferenceService the task created goes, and the row says so."""
    s3_emulator("acme-ml")
    cluster.extra_env = {name: os.environ[name] for name in STORE_VARIABLES if name in os.environ}
    name, endpoint = "serve_k8s_first_fails", "churn-first"
    code_folder(name)
    text = PIPELINE.format(name=name, artifacts="s3://acme-ml/aq", endpoint=endpoint)
    try:
        _, dag_run, states = run_dag(name, text, conf={"kind": "unloadable"}, local=False)
    finally:
        cluster.extra_env = {}
    assert states["train.serve"] == "failed", states
    row = deployment(duckdb_warehouse, name, dag_run.run_id)
    assert row["outcome"] == "rolled_back" and "the InferenceService this task created was deleted" in row["reason"]
    assert ("inferenceservices", "default", endpoint) not in cluster.objects
    assert f"DELETE inferenceservices {endpoint}" in cluster.requests
    assert read_current("s3://acme-ml/aq", endpoint) is None


KNATIVE_PROFILES = "profiles:\n  knative:\n    extends: eks\n    serving_mode: Knative\n"


def test_a_canary_promotion_splits_the_traffic_and_its_smoke_test_reaches_the_new_model(
    run_dag, duckdb_warehouse, s3_emulator, cluster, code_folder
):
    """Knative mode, `canary: 25`: the smoke test goes to the new version's own path (the old model
    answers 404 for it, and is asked again until the new one answers); once promoted the new model
    gets a quarter of the requests and the model rolled out before it the rest, as the row says,
    until the percent is raised to 100."""
    s3_emulator("acme-ml")
    cluster.extra_env = {name: os.environ[name] for name in STORE_VARIABLES if name in os.environ}
    profiles = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "profiles" / "aq-profiles.yaml"
    profiles.parent.mkdir(parents=True, exist_ok=True)
    profiles.write_text(KNATIVE_PROFILES)
    name, endpoint, root = "serve_k8s_canary", "churn-canary", "s3://acme-ml/aq"
    code_folder(name)
    text = PIPELINE.format(name=name, artifacts=root, endpoint=endpoint).replace("cluster: eks", "cluster: knative")
    text = text.replace("resources: {cpu: 1, memory: 1Gi}", "resources: {cpu: 1, memory: 1Gi}\n      canary: 25")
    key = ("inferenceservices", "default", endpoint)
    try:
        _, first_run, states = run_dag(name, text, date="2026-03-01", local=False)
        assert states["train.serve"] == "success", states
        row = deployment(duckdb_warehouse, name, first_run.run_id)
        first = ModelVersion(endpoint, row["version"])
        assert row["outcome"] == "promoted" and row["reason"] is None, row  # nothing to split with yet
        assert cluster.objects[key]["spec"]["predictor"]["canaryTrafficPercent"] == 25
        # nothing was rolled out before the first model: it has all the traffic
        assert {call_endpoint(cluster, endpoint)["model_version"] for _ in range(4)} == {first.version}

        _, dag_run, states = run_dag(name, text, date="2026-03-02", conf={"kind": "better"}, local=False)
        assert states["train.serve"] == "success", states
        row = deployment(duckdb_warehouse, name, dag_run.run_id)
        better = ModelVersion(endpoint, row["version"])
        assert row["outcome"] == "promoted" and better != first
        assert row["reason"].startswith("canary: the new model gets 25% of the endpoint's traffic, the last model "
                                        "rolled out to all of it the other 75%"), row["reason"]  # fmt: skip
        # the smoke test: its version's path, answered 404 by the old model, then by the new one
        smoke = [(uri, status) for path, uri, status in cluster.kserve.routed
                 if path == f"/v2/models/{endpoint}/versions/{better.version}/infer"]  # fmt: skip
        assert (first.location(root), 404) in smoke and smoke[-1] == (better.location(root), 200), smoke
        assert all(status == 404 for uri, status in smoke if uri == first.location(root))
        answers = [call_endpoint(cluster, endpoint)["model_version"] for _ in range(8)]
        assert sorted(answers) == sorted([better.version] * 2 + [first.version] * 6), answers

        # someone raises it to 100: the new model has all the traffic, the old one is stopped
        request = urllib.request.Request(
            f"{cluster.url}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{endpoint}",
            data=json.dumps({"spec": {"predictor": {"canaryTrafficPercent": 100}}}).encode(),
            headers={"Content-Type": "application/merge-patch+json"}, method="PATCH",
        )  # fmt: skip
        urllib.request.urlopen(request, timeout=30).close()
        wait_observed(cluster, key)
        assert {call_endpoint(cluster, endpoint)["model_version"] for _ in range(4)} == {better.version}
    finally:
        cluster.extra_env = {}
        profiles.unlink(missing_ok=True)


def wait_observed(cluster, key, limit: float = 60.0) -> None:
    """Until the controller reported the object's latest generation (its reconcile is asynchronous)."""
    deadline = time.monotonic() + limit
    while True:
        resource = cluster.objects[key]
        status = resource.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        if status.get("observedGeneration") == resource["metadata"]["generation"] and conditions.get("Ready") == "True":
            return
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
