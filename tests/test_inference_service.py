"""A `serve:` endpoint's KServe InferenceService, held to KServe's own CRD schema (v0.20.0, vendored
in tests/crds/kserve) for every built-in profile, every model format, with and without a GPU, in
both deployment modes; and how its status reads as a rollout."""

from __future__ import annotations

import json

import pytest

from aq_airflow.artifacts.model_repository import ModelVersion
from aq_airflow.pipeline_spec.load import SpecFile
from aq_airflow.pipeline_spec.profiles import ProfileSpec
from aq_airflow.plan import compile_text
from aq_airflow.plan.model import ModelFormat, ServePlan
from aq_airflow.runners import inference_service as isvc
from tests.crd_schema import INFERENCE_SERVICES, crd_problems

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
