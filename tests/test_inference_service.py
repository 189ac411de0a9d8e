"""A `serve:` endpoint's KServe InferenceService, held to KServe's own CRD schema (v0.20.0, vendored
in tests/crds/kserve) for every built-in profile, every model format, with and without a GPU, in
both deployment modes; how its status reads as a rollout; and the operator's decisions that need
no rollout (an InferenceService it does not manage, a kill mid-rollout). The rollouts themselves:
tests/test_serve_kubernetes.py."""

from __future__ import annotations

import json

import pytest

from aq_airflow.artifacts.model_repository import ModelVersion
from aq_airflow.operators.inference_service import AqInferenceServiceOperator, _patch
from aq_airflow.operators.serve import DeploymentFailed
from aq_airflow.pipeline_spec.load import SpecFile
from aq_airflow.pipeline_spec.profiles import ProfileSpec
from aq_airflow.plan import compile_text
from aq_airflow.plan.model import ModelFormat, ServePlan
from aq_airflow.runners import inference_service as isvc
from tests.crd_schema import INFERENCE_SERVICES, crd_problems
from tests.kube_api import FakeKubernetes

PROFILES = ("gke", "eks", "eks-auto", "aks", "nvidia")
FORMATS = tuple(ModelFormat)
VERSION = ModelVersion("churn", "v0123456789abcdef")
STORAGE = "s3://acme/aq/_models/churn/v0123456789abcdef"


def serve_plan(cluster: str, model_format: str, gpu: bool, mode: str) -> ServePlan:
    canary = "\n      canary: 10" if mode == "Knative" else ""
    gpu_ask = ", gpu: 1, gpu_type: a100-80gb" if gpu else ""
    text = f"""
pipeline: churn
artifacts: s3://acme/aq
cluster: served
defaults:
  image: ghcr.io/acme/churn:1
steps:
  features:
    python: churn.features:build
  train:
    python: churn.train:fit
    inputs: [features]
    serve:
      endpoint: churn
      format: {model_format}
      replicas: {{min: 1, max: 3}}
      resources: {{cpu: 2, memory: 4Gi{gpu_ask}}}{canary}
"""
    profiles = {"served": ProfileSpec(extends=cluster, serving_mode=mode, service_account="models")}
    plan = compile_text(SpecFile("churn.aq.yaml", text), (f"{cluster}-{mode}", profiles))
    return next(t.body for t in plan.tasks if isinstance(t.body, ServePlan))


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
@pytest.mark.parametrize("model_format", FORMATS, ids=[str(f) for f in FORMATS])
@pytest.mark.parametrize("cluster", PROFILES)
def test_the_inference_service_is_valid_for_kserve(cluster, model_format, gpu, mode):
    plan = serve_plan(cluster, model_format, gpu, mode)
    body = isvc.inference_service(plan, VERSION, STORAGE, "churn")
    problems = crd_problems(body, INFERENCE_SERVICES)
    assert problems == [], problems
    assert (body["apiVersion"], body["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    metadata = body["metadata"]
    assert (metadata["name"], metadata["namespace"]) == ("churn", "default")
    annotations = {"serving.kserve.io/deploymentMode": mode, "aq-airflow/model-version": VERSION.version}
    assert metadata["annotations"] == annotations
    labels = metadata["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "aq-airflow"
    assert (labels["aq-airflow/step"], labels["dag_id"]) == ("train", "churn")
    predictor = body["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)
    assert predictor["serviceAccountName"] == "models"  # KServe's storage initializer reads its Secrets
    # canary only where KServe splits traffic: Knative (Standard mode would ignore it; the planner refuses it)
    assert predictor.get("canaryTrafficPercent") == (10 if mode == "Knative" else None)
    assert predictor["securityContext"]["runAsNonRoot"] is True and predictor["securityContext"]["runAsUser"] == 1000
    model = predictor["model"]
    assert model["modelFormat"] == {"name": str(model_format)}
    assert model["protocolVersion"] == "v2" and model["storageUri"] == STORAGE
    assert model["runtime"] == ("kserve-tritonserver" if model_format == "onnx" else "kserve-mlserver")
    assert model["securityContext"]["allowPrivilegeEscalation"] is False
    assert model["resources"]["requests"]["cpu"] == "2" and model["resources"]["limits"]["memory"] == "4Gi"
    assert model["resources"]["limits"].get("nvidia.com/gpu") == ("1" if gpu else None)
    placement = plan.placement
    if gpu:  # on the profile's GPU nodes, as any GPU pod of ours
        assert predictor["tolerations"] == [dict(t) for t in placement.tolerations] and placement.tolerations
        assert predictor.get("nodeSelector", {}) == dict(placement.node_selector)
        assert bool(predictor.get("affinity")) == bool(placement.node_affinity)
        assert "nodeSelector" in predictor or "affinity" in predictor
    else:
        assert not {"tolerations", "nodeSelector", "affinity"} & set(predictor)
    assert "s3cret" not in json.dumps(body)


def test_a_body_with_a_misspelt_field_is_refused_by_the_schema():
    """The strict schema would catch a field KServe does not know (the test above can fail)."""
    body = isvc.inference_service(serve_plan("gke", "sklearn", False, "Standard"), VERSION, STORAGE, "churn")
    body["spec"]["predictor"]["model"]["storageURI"] = STORAGE
    body["spec"]["predictor"]["minReplicas"] = "1"
    messages = crd_problems(body, INFERENCE_SERVICES)
    assert any("'storageURI' was unexpected" in m for m in messages), messages
    assert any("is not of type 'integer'" in m for m in messages), messages


def status(generation=2, observed=2, transition="UpToDate", target="Loaded", ready="True", **extra) -> dict:
    model = {"transitionStatus": transition, "states": {"activeModelState": "Loaded", "targetModelState": target}}
    body = {
        "observedGeneration": observed,
        "conditions": [{"type": "Ready", "status": ready}, {"type": "PredictorReady", "status": ready}],
        "url": "http://churn-default.example.com",
        "address": {"url": "http://churn-predictor.default.svc.cluster.local"},
        "modelStatus": model,
    }
    body.update(extra)
    return {"metadata": {"generation": generation}, "status": body}


def test_a_status_reads_as_its_rollout():
    ready = isvc.rollout(status())
    assert ready.ready and not ready.failed and ready.url == "http://churn-predictor.default.svc.cluster.local"
    assert not isvc.rollout(status(observed=1)).ready  # the earlier generation's Ready says nothing of this one
    assert not isvc.rollout({"metadata": {"generation": 1}}).ready
    assert not isvc.rollout(status(transition="InProgress", target="Loading", ready="Unknown")).ready
    failure = {"reason": "ModelLoadFailed", "message": "could not load model.joblib"}
    blocked = isvc.rollout(status(transition="BlockedByFailedLoad", target="FailedToLoad", ready="False"))
    assert blocked.failed and blocked.reason == "BlockedByFailedLoad"
    with_info = status(transition="InvalidSpec", target="FailedToLoad", ready="False")
    with_info["status"]["modelStatus"]["lastFailureInfo"] = failure
    assert isvc.rollout(with_info).reason == "ModelLoadFailed: could not load model.joblib"
    no_address = status()
    del no_address["status"]["address"]
    assert isvc.rollout(no_address).url == "http://churn-default.example.com"


def test_the_live_storage_uri_is_read_from_the_object():
    body = isvc.inference_service(serve_plan("eks", "xgboost", False, "Standard"), VERSION, STORAGE, "churn")
    assert isvc.storage_uri(body) == STORAGE
    assert isvc.storage_uri(None) is None and isvc.storage_uri({"spec": {"predictor": {}}}) is None


# -- the operator's own decisions, against the loopback API (no controller: nothing rolls out) ------
@pytest.fixture
def api(tmp_path, monkeypatch):
    with FakeKubernetes() as fake:
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": fake.kubeconfig(str(tmp_path))}}
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(connection))
        yield fake


def operator_for(plan: ServePlan) -> AqInferenceServiceOperator:
    return AqInferenceServiceOperator(task_id="train.serve", plan=plan)


def test_an_inference_service_not_managed_by_aq_airflow_is_refused_unchanged(api):
    plan = serve_plan("eks", "sklearn", False, "Standard")
    theirs = isvc.inference_service(plan, VERSION, "s3://theirs/model", "churn")
    theirs["metadata"]["labels"] = {"team": "search"}
    operator = operator_for(plan)
    operator.hook.create_custom_object("serving.kserve.io", "v1beta1", "inferenceservices", theirs, namespace="default")
    with pytest.raises(DeploymentFailed, match="is not managed by aq-airflow") as raised:
        operator.deploy({}, VERSION, STORAGE, None, None, None)
    assert raised.value.outcome == "failed"
    assert isvc.storage_uri(api.objects[("inferenceservices", "default", "churn")]) == "s3://theirs/model"
    assert not [r for r in api.requests if r.startswith("PATCH")]
    assert operator.target() == "default/churn"


def test_killed_mid_rollout_the_endpoint_is_put_back(api):
    """on_kill: the previous predictor back (merge patch), or the InferenceService this try made deleted."""
    plan = serve_plan("eks", "sklearn", False, "Standard")
    operator = operator_for(plan)
    hook = operator.hook
    old = isvc.inference_service(plan, ModelVersion("churn", "v00000000000000aa"), "s3://acme/old", "churn")
    hook.create_custom_object("serving.kserve.io", "v1beta1", "inferenceservices", old, namespace="default")
    live = api.objects[("inferenceservices", "default", "churn")]
    before = json.loads(json.dumps(live))
    new = isvc.inference_service(plan, VERSION, STORAGE, "churn")
    new["spec"]["predictor"]["tolerations"] = [{"key": "x", "operator": "Exists"}]  # a field the old one lacks
    operator._patch("churn", _patch(live, new))
    assert isvc.storage_uri(live) == STORAGE and live["metadata"]["generation"] == 2
    operator._undo = {"live": before}
    operator.on_kill()
    assert isvc.storage_uri(live) == "s3://acme/old" and "tolerations" not in live["spec"]["predictor"]
    assert live["metadata"]["annotations"]["aq-airflow/model-version"] == "v00000000000000aa"
    assert live["metadata"]["generation"] == 3
    operator._undo = {"live": None}  # this try made it
    operator.on_kill()
    assert ("inferenceservices", "default", "churn") not in api.objects
    operator.on_kill()  # nothing under way: nothing done
