"""Example specs through Airflow's own DagBag: structure, wiring, and the pods they would create."""

from __future__ import annotations

import shutil
import textwrap

import kubernetes_validate
import pytest
from airflow.dag_processing.dagbag import DagBag
from kubernetes.client import ApiClient

from aq_airflow.live_dags import INVALID_TAG, build_dag
from aq_airflow.pipeline_spec import SpecFile
from aq_airflow.plan import BUILTIN_PROFILES, compile_text
from tests.conftest import EXAMPLES, example_specs

K8S_VERSION = kubernetes_validate.utils.latest_version()


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> DagBag:
    folder = tmp_path_factory.mktemp("dags")
    shutil.copytree(EXAMPLES, folder, dirs_exist_ok=True)
    return DagBag(dag_folder=str(folder))


def pod_dict(task) -> dict:
    return ApiClient().sanitize_for_serialization(task.build_pod_request_obj())


def test_every_example_loads_without_errors(bag):
    assert bag.import_errors == {}
    expected = {p.name.removesuffix(".aq.yaml") for p in example_specs()}
    assert set(bag.dags) == expected
    assert not [d for d in bag.dags.values() if INVALID_TAG in d.tags]


def test_churn_scoring_groups_tasks_and_edges(bag):
    dag = bag.dags["churn_scoring"]
    assert dag.task_ids == [
        "customers.run",
        "customers.checks",
        "orders.run",
        "features.run",
        "features.metrics",
        "train.run",
        "evaluate.run",
        "evaluate.metrics",
        "approved.run",
        "approved.serve",
        "scores.run",
        "scores.checks",
        "scores.metrics",
        "scores.publish",
        "report.run",
        "raw_orders.checks",
    ]
    assert set(dag.task_group.children) == {
        "customers",
        "orders",
        "features",
        "train",
        "evaluate",
        "approved",
        "scores",
        "report",
        "raw_orders",
    }
    upstream = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {
        "customers.run": set(),
        "customers.checks": {"customers.run"},
        "orders.run": set(),
        # an error-severity check on customers gates every reader of customers
        "features.run": {"customers.checks", "orders.run"},
        "features.metrics": {"features.run"},
        # features' metrics are warnings: they never block train
        "train.run": {"features.run"},
        "evaluate.run": {"train.run"},
        "evaluate.metrics": {"evaluate.run"},
        # the model is approved once its error-severity metric passed; serve waits for the step's
        # own gates (it has none), as publish does
        "approved.run": {"evaluate.metrics"},
        "approved.serve": {"approved.run"},
        # scores reads features and train; train already follows features, so one edge is enough
        "scores.run": {"train.run"},
        "scores.checks": {"scores.run"},
        "scores.metrics": {"scores.run"},
        # publish waits for error checks, not for warning metrics
        "scores.publish": {"scores.checks"},
        "report.run": {"scores.checks"},
        # a warning-only check gates nothing
        "raw_orders.checks": set(),
    }
    assert {t.trigger_rule for t in dag.tasks} == {"all_success"}
    publish = dag.get_task("scores.publish")
    assert [o.name for o in publish.outlets] == ["analytics.churn_scores"]
    assert (publish.plan.mode, publish.plan.keys) == ("merge", ("customer_id",))
    serve = dag.get_task("approved.serve")
    assert type(serve).__name__ == "AqInferenceServiceOperator"
    assert (serve.plan.endpoint, serve.plan.model.step, serve.plan.sample.step) == ("churn", "approved", "features")
    assert dag.get_task("customers.run").sql.startswith("SELECT * FROM raw.customers")
    assert dag.get_task("train.run").execution_timeout.total_seconds() == 7200
    assert dag.get_task("features.run").retries == 2
    assert dag.params["min_rows"] == 1000


def test_quality_and_publish_tasks_take_the_steps_task_settings():
    """retries, retry_delay, timeout and pool (defaults, then the step) reach every task of a step."""
    text = """
        pipeline: settings
        warehouse: wh
        cluster: local
        defaults: {retries: 3, retry_delay: 30s, pool: warehouse}
        steps:
          rows:
            sql: SELECT 1 AS id
            timeout: 5m
            retries: 1
            checks: [{name: ids, not_null: id}]
            metrics: [{name: n, count: "*"}]
            publish: {table: out.rows}
    """
    dag = build_dag(compile_text(SpecFile("settings.aq.yaml", textwrap.dedent(text))))
    for task_id in ("rows.run", "rows.checks", "rows.metrics", "rows.publish"):
        task = dag.get_task(task_id)
        assert task.retries == 1, task_id
        assert task.retry_delay.total_seconds() == 30, task_id
        assert task.execution_timeout.total_seconds() == 300, task_id
        assert task.pool == "warehouse", task_id


def test_error_metric_gates_nothing_downstream_but_fails_its_task(bag):
    dag = bag.dags["image_embeddings"]
    # null_vectors is severity error, so publish waits for the metrics task
    assert dag.get_task("embed.publish").upstream_task_ids == {"embed.metrics"}


def test_table_step_read_by_a_python_step_is_exported_first(bag):
    dag = bag.dags["fraud_training"]
    export = dag.get_task("labels.run")
    assert (export.plan.table, export.plan.sql) == ("risk.chargebacks", None)
    assert dag.get_task("dataset.run").upstream_task_ids == {"labels.run", "transactions.checks"}
    assert "labels.checks" not in dag.get_task("dataset.run").upstream_task_ids  # warning only


def test_an_operator_step_is_the_class_it_names_in_the_order(bag):
    from airflow.providers.standard.sensors.filesystem import FileSensor

    dag = bag.dags["fraud_training"]
    sensor = dag.get_task("chargebacks_landed.run")
    assert type(sensor) is FileSensor
    assert (sensor.fs_conn_id, sensor.filepath, sensor.mode) == ("chargeback_drop", "{{ ds }}/_SUCCESS", "reschedule")
    assert (sensor.poke_interval, sensor.timeout, sensor.retries) == (600, 43200, 1)  # retries: from `defaults:`
    assert dag.get_task("labels.run").upstream_task_ids == {"chargebacks_landed.run"}
    assert sensor.upstream_task_ids == set()


def test_asset_scheduled_pipeline_follows_the_publisher(bag):
    alerts = bag.dags["churn_alerts"]
    assets = alerts.timetable.asset_condition.objects
    assert [(a.name, a.uri) for a in assets] == [("analytics.churn_scores", "aq://warehouse/analytics.churn_scores")]
    publisher = bag.dags["churn_scoring"].get_task("scores.publish")
    assert publisher.outlets == list(assets)


def test_pod_of_a_gpu_step_on_the_user_profile(bag):
    pod = pod_dict(bag.dags["image_embeddings"].get_task("embed.run"))
    spec = pod["spec"]
    container = spec["containers"][0]
    assert pod["metadata"]["namespace"] == "search"
    assert container["image"] == "registry.internal/search/embedder:5.0.0"
    assert container["imagePullPolicy"] == "Always"
    assert container["command"] == ["python", "-m", "aq_airflow.runtime"]
    assert container["args"] == ["--function", "embedder.batch:embed"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "64Gi", "nvidia.com/gpu": "2"}
    assert spec["nodeSelector"] == {"node-role.acme.io/ml": "true"}
    (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {
            "key": "nvidia.com/gpu.product",
            "operator": "In",
            "values": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"],
        }
    ]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    env = {e["name"]: e for e in container["env"]}
    assert env["AQ_INPUT_IMAGES"]["value"] == "s3://catalogue/aq/image_embeddings/{{ run_id }}/new_images"


def test_secrets_reach_pods_only_as_secret_references(bag):
    pod = pod_dict(bag.dags["fraud_training"].get_task("dataset.run"))
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["FEATURE_STORE_TOKEN"] == {
        "name": "FEATURE_STORE_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "feature-store", "key": "token"}},
    }
    assert env["LOG_LEVEL"]["value"] == "info"


def test_command_step_runs_its_own_command(bag):
    container = pod_dict(bag.dags["fraud_training"].get_task("evaluate.run"))["spec"]["containers"][0]
    # through the runtime, which fetches the run's code package and runs the command in its folder
    assert container["command"] == ["python", "-m", "aq_airflow.runtime"]
    assert container["args"] == ["--command", "--", "fraud-eval", "--report", "/tmp/report.html"]
    assert container["image"].endswith("fraud-eval:2.3.0")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AQ_INPUT_GBM"].endswith("/train_gbm") and env["AQ_OUTPUT"].endswith("/evaluate")


# ---- every built-in profile turns the same GPU ask into its cloud's pod settings ----------------

GPU_SPEC = """
pipeline: gpu_{profile}
artifacts: s3://bucket/aq
cluster: {profile}
defaults: {{image: "ghcr.io/acme/train:1"}}
steps:
  prep:
    python: m:prep
  train:
    python: m:train
    inputs: [prep]
    resources: {{gpu: 1, gpu_type: {gpu_type}, memory: 16Gi}}
"""

EXPECTED = {
    "gke": (
        "t4",
        {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
        None,
        [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}],
    ),
    "eks": (
        "a100-80gb",
        {"karpenter.k8s.aws/instance-gpu-name": "a100", "karpenter.k8s.aws/instance-gpu-memory": "81920"},
        None,
        [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}],
    ),
    "eks-auto": (
        "l4",
        {"eks.amazonaws.com/instance-gpu-name": "l4"},
        None,
        [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}],
    ),
    "aks": (
        "t4",
        {"kubernetes.azure.com/accelerator": "nvidia"},
        ("node.kubernetes.io/instance-type", [f"Standard_NC{n}as_T4_v3" for n in (4, 8, 16, 64)]),
        [
            {"effect": "NoSchedule", "key": "sku", "operator": "Equal", "value": "gpu"},
            {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"},
        ],
    ),
    "nvidia": (
        "l4",
        {"nvidia.com/gpu.product": "NVIDIA-L4"},
        None,
        [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}],
    ),
}


def test_every_kubernetes_profile_is_covered():
    assert set(EXPECTED) == {n for n, p in BUILTIN_PROFILES.items() if p.runner == "kubernetes"}


@pytest.mark.parametrize("profile", sorted(EXPECTED))
def test_gpu_ask_becomes_the_profile_pod_settings(profile):
    gpu_type, selector, affinity, tolerations = EXPECTED[profile]
    text = GPU_SPEC.format(profile=profile, gpu_type=gpu_type)
    dag = build_dag(compile_text(SpecFile(f"gpu_{profile}.aq.yaml", text)))
    gpu_pod, cpu_pod = pod_dict(dag.get_task("train.run")), pod_dict(dag.get_task("prep.run"))
    for pod in (gpu_pod, cpu_pod):
        assert kubernetes_validate.validate(pod, K8S_VERSION, strict=True) is not None
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        resources = spec["containers"][0]["resources"]
        assert resources["requests"] and resources["limits"]
    spec = gpu_pod["spec"]
    assert spec["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert spec["nodeSelector"] == selector
    assert spec["tolerations"] == tolerations
    if affinity:
        (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ]
        assert term["matchExpressions"] == [{"key": affinity[0], "operator": "In", "values": affinity[1]}]
    else:
        assert not spec.get("affinity")
    # a CPU step on the same profile lands on no GPU node and tolerates no GPU taint
    assert "nvidia.com/gpu" not in cpu_pod["spec"]["containers"][0]["resources"]["limits"]
    assert not cpu_pod["spec"].get("nodeSelector") and not cpu_pod["spec"].get("tolerations")


@pytest.mark.parametrize("path", example_specs(), ids=lambda p: p.name)
def test_every_example_pod_validates_against_the_kubernetes_schema(bag, path):
    dag = bag.dags[path.name.removesuffix(".aq.yaml")]
    pods = [t for t in dag.tasks if hasattr(t, "build_pod_request_obj")]
    for task in pods:
        kubernetes_validate.validate(pod_dict(task), K8S_VERSION, strict=True)


def test_local_profile_runs_steps_as_processes():
    text = "steps:\n  a:\n    python: m:f\n    resources: {gpu: 1}\n"
    dag = build_dag(compile_text(SpecFile("local.aq.yaml", text)))
    task = dag.get_task("a.run")
    assert type(task).__name__ == "AqLocalStepOperator"
    assert task.plan.resources.asked == {"gpu": 1}  # what the spec asked, no profile defaults filled in
    assert task.plan.output.path("r1") == "local/r1/a"


def test_profile_pod_labels_reach_every_pod():
    """AKS workload identity needs a label on the pod as well as the service account."""
    from aq_airflow.pipeline_spec import SpecError
    from aq_airflow.pipeline_spec.profiles import ProfileSpec, parse_profiles

    labels = {"azure.workload.identity/use": "true"}
    profiles = {"aks-wi": ProfileSpec(extends="aks", service_account="aq-runner", pod_labels=labels)}
    text = "artifacts: abfs://c/x\ncluster: aks-wi\ndefaults: {image: i}\nsteps:\n  a:\n    python: m:f\n"
    task = build_dag(compile_text(SpecFile("wi.aq.yaml", text), ("h", profiles))).get_task("a.run")
    pod = pod_dict(task)
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["metadata"]["labels"]["aq-airflow/step"] == "a"
    assert pod["spec"]["serviceAccountName"] == "aq-runner"
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    bad = SpecFile("aq-profiles.yaml", "profiles:\n  x:\n    pod_labels: {'not a key!': v}\n")
    with pytest.raises(SpecError, match=r"aq-profiles.yaml:3:"):
        parse_profiles(bad)
