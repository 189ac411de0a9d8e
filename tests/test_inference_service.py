"""A `serve:` endpoint's KServe InferenceService, held to KServe's own CRD schema (v0.20.0, vendored
in tests/crds/kserve) for every built-in profile, every model format, with and without a GPU, in
both deployment modes; how its status reads as a rollout; and the operator's decisions that need
no rollout (an InferenceService it does not manage, a kill mid-rollout). The rollouts themselves:
tests/test_serve_kubernetes.py."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest

from aq_airflow.artifacts.model_repository import ModelVersion
from aq_airflow.operators.inference_service import AqInferenceServiceOperator, _patch, _Undo
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
    assert model["runtime"] == ("aq-mlserver-onnx" if model_format == "onnx" else "kserve-mlserver")
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
        operator.deploy(CONTEXT, VERSION, STORAGE, None, None, None)
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
    operator._undo = _Undo(before, VERSION.version, new)
    operator.on_kill()
    assert isvc.storage_uri(live) == "s3://acme/old" and "tolerations" not in live["spec"]["predictor"]
    assert live["metadata"]["annotations"]["aq-airflow/model-version"] == "v00000000000000aa"
    assert live["metadata"]["generation"] == 3
    operator._undo = _Undo(None, "v00000000000000aa", old)  # this try made it
    operator.on_kill()
    assert ("inferenceservices", "default", "churn") not in api.objects
    operator.on_kill()  # nothing under way: nothing done


# -- concurrent changes and calls of unknown outcome, driven through the loopback API -------------
KEY = ("inferenceservices", "default", "churn")
OTHER = ModelVersion("churn", "v0000000000000bbb")
CONTEXT = {"dag": SimpleNamespace(dag_id="churn")}


def report_ready(api, key) -> None:
    """What KServe reports once a generation is served (no model server here: nothing answers)."""
    resource = api.objects[key]
    resource["status"] = status(generation=resource["metadata"]["generation"],
                                observed=resource["metadata"]["generation"])["status"]  # fmt: skip


def another_promotion(api, key, version: ModelVersion) -> None:
    """Another task's patch, as the API server applies it: the version and its storageUri."""
    resource = api.objects[key]
    resource["metadata"]["annotations"]["aq-airflow/model-version"] = version.version
    resource["spec"]["predictor"]["model"]["storageUri"] = f"s3://acme/aq/_models/churn/{version.version}"
    resource["metadata"]["resourceVersion"] = str(int(resource["metadata"]["resourceVersion"]) + 1)
    resource["metadata"]["generation"] += 1
    resource.pop("status", None)


def quick(plan: ServePlan) -> AqInferenceServiceOperator:
    """An operator whose rollout may take one second (half of its timeout), polling often."""
    operator = AqInferenceServiceOperator(task_id="train.serve", plan=plan, execution_timeout=timedelta(seconds=2))
    operator.poll_interval = 0.05
    return operator


def existing(api, plan: ServePlan, version: ModelVersion, dag_id: str = "churn", **annotations) -> dict:
    body = isvc.inference_service(plan, version, f"s3://acme/aq/_models/churn/{version.version}", dag_id)
    body["metadata"]["annotations"].update(annotations)
    operator_for(plan).hook.create_custom_object(
        "serving.kserve.io", "v1beta1", "inferenceservices", body, namespace="default"
    )
    report_ready(api, KEY)
    return api.objects[KEY]


def test_an_inference_service_changed_between_the_read_and_the_patch_is_left_to_that_change(api):
    """The patch carries the resourceVersion read: the API refuses it (409), nothing is overwritten."""
    plan = serve_plan("eks", "sklearn", False, "Standard")
    existing(api, plan, ModelVersion("churn", "v00000000000000aa"))
    reads = []

    def after(line: str) -> None:
        if line == "GET inferenceservices churn" and not reads:
            reads.append(line)
            another_promotion(api, KEY, OTHER)  # lands right after this task read the object

    api.after = after
    with pytest.raises(DeploymentFailed, match="another promotion of the endpoint is under way") as raised:
        quick(plan).deploy(CONTEXT, VERSION, STORAGE, None, None, None)
    assert raised.value.outcome == "failed" and "409" in raised.value.reason
    resource = api.objects[KEY]
    assert resource["metadata"]["annotations"]["aq-airflow/model-version"] == OTHER.version
    assert isvc.storage_uri(resource).endswith(OTHER.version)


def test_a_failed_rollout_never_puts_back_over_another_promotion(api):
    """A's rollout fails after B patched the endpoint: A leaves B's version serving, and says so."""
    plan = serve_plan("eks", "sklearn", False, "Standard")
    existing(api, plan, ModelVersion("churn", "v00000000000000aa"))

    def after(line: str) -> None:
        if line == "PATCH inferenceservices churn" and api.after is after:
            api.after = None
            another_promotion(api, KEY, OTHER)  # B's patch, while A waits for Ready (never reported)

    api.after = after
    with pytest.raises(DeploymentFailed) as raised:
        quick(plan).deploy(CONTEXT, VERSION, STORAGE, None, None, None)
    failure = raised.value
    assert failure.outcome == "failed", failure.reason
    assert "was not Ready within 1s" in failure.reason
    assert f"carries version {OTHER.version}, not this task's {VERSION.version}" in failure.reason
    assert "it was not put back" in failure.reason
    resource = api.objects[KEY]
    assert resource["metadata"]["annotations"]["aq-airflow/model-version"] == OTHER.version
    assert [r for r in api.requests if r.startswith("PATCH")] == ["PATCH inferenceservices churn"]  # A's only


def test_a_put_back_refused_by_a_concurrent_change_is_not_forced(api, capsys):
    """The put-back's own precondition: a change between its read and its patch wins (409)."""
    plan = serve_plan("eks", "sklearn", False, "Standard")
    before = json.loads(json.dumps(existing(api, plan, ModelVersion("churn", "v00000000000000aa"))))
    operator = quick(plan)
    new = isvc.inference_service(plan, VERSION, STORAGE, "churn")
    operator._patch("churn", _patch(api.objects[KEY], new))  # this try's change
    operator._undo = _Undo(before, VERSION.version, new)

    def after(line: str) -> None:
        if line == "GET inferenceservices churn":  # the put-back's read; then someone labels it
            api.after = None
            resource = api.objects[KEY]
            resource["metadata"]["labels"]["team"] = "search"
            resource["metadata"]["resourceVersion"] = str(int(resource["metadata"]["resourceVersion"]) + 1)

    api.after = after
    operator.on_kill()
    resource = api.objects[KEY]
    assert isvc.storage_uri(resource) == STORAGE and resource["metadata"]["labels"]["team"] == "search"
    said = capsys.readouterr().out  # the task's log
    assert "changed while it was being put back (409" in said and "it was not put back" in said


def test_a_patch_whose_answer_is_lost_is_read_again_and_put_back_exactly(api):
    """M3: the change landed, the client saw a dropped connection: the object is read again and put
    back, with the annotations it had (it had no model version: the failed one's is removed)."""
    plan = serve_plan("eks", "sklearn", False, "Standard")
    resource = existing(api, plan, ModelVersion("churn", "v00000000000000aa"))
    del resource["metadata"]["annotations"]["aq-airflow/model-version"]  # made before versions were annotated
    before = json.loads(json.dumps(resource))
    api.lose_answers = {"PATCH inferenceservices churn"}

    def after(line: str) -> None:
        if line == "PATCH inferenceservices churn" and isvc.storage_uri(api.objects[KEY]) != STORAGE:
            api.lose_answers = set()  # the put-back's answer arrives
            report_ready(api, KEY)  # the old model is Ready again at once

    api.after = after
    with pytest.raises(DeploymentFailed) as raised:
        quick(plan).deploy(CONTEXT, VERSION, STORAGE, None, None, None)
    failure = raised.value
    assert failure.outcome == "rolled_back", failure.reason
    assert "outcome unknown" in failure.reason and "it landed" in failure.reason
    assert f"serves {isvc.storage_uri(before)} again" in failure.reason
    resource = api.objects[KEY]
    assert resource["spec"] == before["spec"]
    assert resource["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert "aq-airflow/model-version" not in resource["metadata"]["annotations"]


def test_a_create_whose_answer_is_lost_is_deleted_again(api):
    plan = serve_plan("eks", "sklearn", False, "Standard")
    api.lose_answers = {"POST inferenceservices default/churn"}
    with pytest.raises(DeploymentFailed) as raised:
        quick(plan).deploy(CONTEXT, VERSION, STORAGE, None, None, None)
    assert raised.value.outcome == "rolled_back", raised.value.reason
    assert "it landed" in raised.value.reason and "created was deleted" in raised.value.reason
    assert KEY not in api.objects


def test_an_inference_service_of_another_pipeline_or_step_is_refused_unchanged(api):
    """H3: the endpoint's labels name its owner; another pipeline's (or step's) task leaves it alone."""
    plan = serve_plan("eks", "sklearn", False, "Standard")
    theirs = existing(api, plan, ModelVersion("churn", "v00000000000000aa"), dag_id="churn_scoring")
    theirs["metadata"]["labels"]["aq-airflow/step"] = "approved"
    with pytest.raises(DeploymentFailed) as raised:
        quick(plan).deploy(CONTEXT, VERSION, STORAGE, None, None, None)
    failure = raised.value
    assert failure.outcome == "failed"
    assert "endpoint `churn` belongs to churn_scoring.approved" in failure.reason
    assert "choose another `endpoint`" in failure.reason and "kubectl delete inferenceservice -n default churn" in (
        failure.reason
    )
    assert isvc.storage_uri(api.objects[KEY]).endswith("v00000000000000aa")
    assert not [r for r in api.requests if r.startswith("PATCH")]
    theirs["metadata"]["labels"]["aq-airflow/step"] = "train"  # the same pipeline, another step: refused too
    theirs["metadata"]["labels"]["dag_id"] = "churn"
    theirs["metadata"]["labels"]["aq-airflow/step"] = "retrain"
    with pytest.raises(DeploymentFailed, match=r"belongs to churn\.retrain"):
        quick(plan).deploy(CONTEXT, VERSION, STORAGE, None, None, None)


def test_a_task_timing_out_mid_rollout_puts_the_endpoint_back(api):
    """M3: Airflow's task timeout (a BaseException) passes through deploy; the task runner then calls
    on_kill, which puts the previous predictor back."""
    from airflow.sdk.exceptions import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    plan = serve_plan("eks", "sklearn", False, "Standard")
    before = json.loads(json.dumps(existing(api, plan, ModelVersion("churn", "v00000000000000aa"))))
    operator = operator_for(plan)  # no timeout of its own: the rollout could take 10 minutes
    operator.poll_interval = 0.05
    with pytest.raises(AirflowTaskTimeout), timeout(3):  # as the task runner runs execute
        operator.deploy(CONTEXT, VERSION, STORAGE, None, None, None)  # never Ready: nothing reports it
    assert isvc.storage_uri(api.objects[KEY]) == STORAGE
    operator.on_kill()  # as the task runner does on AirflowTaskTimeout
    resource = api.objects[KEY]
    assert resource["spec"] == before["spec"]
    assert resource["metadata"]["annotations"] == before["metadata"]["annotations"]


def test_a_kill_before_the_change_landed_changes_nothing(api, capsys):
    plan = serve_plan("eks", "sklearn", False, "Standard")
    before = json.loads(json.dumps(existing(api, plan, ModelVersion("churn", "v00000000000000aa"))))
    operator = operator_for(plan)
    operator._undo = _Undo(before, VERSION.version, isvc.inference_service(plan, VERSION, STORAGE, "churn"))
    operator.on_kill()
    assert api.objects[KEY]["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "still carries version v00000000000000aa: nothing to put back" in capsys.readouterr().out
