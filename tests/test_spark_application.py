"""A spark step's SparkApplication body (``runners.spark_application``), built from the plan for
every built-in cluster profile and checked against the Kubeflow Spark operator's real CRD schema
(vendored in tests/crds/spark-operator)."""

from __future__ import annotations

import json

import pytest

from aq_airflow.pipeline_spec import SpecFile
from aq_airflow.plan import compile_text
from aq_airflow.plan.model import RunPlan
from aq_airflow.runners.spark_application import application, memory_split, outcome, quantity_bytes
from tests.crd_schema import crd_problems

SPEC = """
pipeline: sparky
artifacts: {artifacts}
cluster: {cluster}
defaults:
  image: ghcr.io/acme/spark-steps:4
  env:
    AWS_ENDPOINT_URL: http://minio.storage:9000
    API_TOKEN: {{secret: api, key: token}}
steps:
  events:
    table: raw.events
  features:
    spark: jobs.features:build
    inputs: [events]
    args: {{as_of: "{{{{ ds }}}}"}}
    driver: {{cpu: 500m, memory: 2Gi}}
    executors: {{instances: 3, cpu: 4, memory: 8Gi{gpu}}}
    spark_conf: {{spark.sql.shuffle.partitions: 64, spark.sql.adaptive.enabled: true}}
  scaled:
    spark: jobs.features:build
    inputs: [events]
    executors: {{cpu: 2, memory: 4Gi}}
    dynamic_allocation: {{min: 0, max: 20}}
  script:
    spark: {{file: jobs/report.py, args: [--out, summary.json, "{{{{ ds }}}}"]}}
    inputs: [events]
    executors: {{instances: 2, cpu: 1, memory: 2Gi}}
"""
PROFILES = ("gke", "eks", "eks-auto", "aks", "nvidia")


def spark_plans(cluster: str = "eks", gpu: str = "", artifacts: str = "s3://acme-ml/aq") -> dict[str, RunPlan]:
    text = SPEC.format(cluster=cluster, gpu=gpu, artifacts=artifacts)
    plan = compile_text(SpecFile("sparky.aq.yaml", text))
    return {t.body.step: t.body for t in plan.tasks if isinstance(t.body, RunPlan) and t.body.job is not None}


@pytest.mark.parametrize("cluster", PROFILES)
@pytest.mark.parametrize("gpu", ["", ", gpu: 2, gpu_type: a100-80gb"], ids=["cpu", "gpu"])
def test_every_body_is_valid_for_the_spark_operators_crd(cluster, gpu):
    for step, run in spark_plans(cluster, gpu).items():
        body = application(run, name=f"aq-sparky-{step}-0123456789")
        assert crd_problems(body) == [], (cluster, step)


def test_the_crd_check_finds_what_the_api_server_would_refuse():
    body = application(spark_plans()["features"], name="aq-x")
    body["spec"]["driver"]["cores"] = "1"  # a string where the schema says integer
    body["spec"]["executor"]["gpus"] = {"name": "nvidia.com/gpu", "quantity": 1}  # misspelled
    del body["spec"]["sparkVersion"]
    problems = crd_problems(body)
    assert any(p.startswith("spec.driver.cores:") for p in problems), problems
    assert any("'gpus' was unexpected" in p for p in problems), problems
    assert any("'sparkVersion' is a required property" in p for p in problems), problems


def test_a_function_step_runs_the_runtime_through_the_images_launcher():
    spec = application(spark_plans()["features"], name="aq-x")["spec"]
    assert (spec["type"], spec["mode"], spec["pythonVersion"]) == ("Python", "cluster", "3")
    assert spec["mainApplicationFile"] == "local:///opt/aq-airflow/spark_main.py"
    assert spec["arguments"] == ["--function", "jobs.features:build"]
    assert spec["image"] == "ghcr.io/acme/spark-steps:4" and spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["restartPolicy"] == {"type": "Never"}  # Airflow's retries, not the Spark operator's
    assert spec["timeToLiveSeconds"] > 0


def test_a_script_step_passes_its_file_and_arguments_to_the_runtime():
    spec = application(spark_plans()["script"], name="aq-x")["spec"]
    assert spec["arguments"] == ["--script", "jobs/report.py", "--", "--out", "summary.json", "{{ ds }}"]


def test_sizes_are_spark_quantities_and_the_memory_is_the_pods_whole():
    spec = application(spark_plans()["features"], name="aq-x")["spec"]
    driver, executor = spec["driver"], spec["executor"]
    # half a core: Spark's `cores` is whole (one task slot), the pod asks for exactly 500m
    assert (driver["cores"], driver["coreRequest"], driver["coreLimit"]) == (1, "500m", "500m")
    assert (executor["cores"], executor["coreLimit"], executor["instances"]) == (4, "4", 3)
    assert "coreRequest" not in executor
    # Spark asks Kubernetes for heap + overhead: together exactly the spec's 2Gi and 8Gi
    assert (driver["memory"], driver["memoryOverhead"]) == ("1462m", "586m")  # 2/7 of 2048, rounded up
    assert (executor["memory"], executor["memoryOverhead"]) == ("5851m", "2341m")
    assert memory_split("1Gi") == ("640m", "384m")  # 2/7 of 1024 is below Spark's minimum overhead
    for quantity in ("2Gi", "1500M", "1Gi", "1e10", "8Gi", "100Gi"):
        heap, overhead = memory_split(quantity)
        assert int(heap[:-1]) + int(overhead[:-1]) == -(-quantity_bytes(quantity) // 2**20), quantity
        assert int(overhead[:-1]) >= 384 and int(heap[:-1]) > 0
    assert quantity_bytes("1Ki") == 1024 and quantity_bytes("1500M") == 1_500_000_000
    with pytest.raises(ValueError, match="not a Kubernetes memory quantity"):
        quantity_bytes("2 GB")


def test_environment_labels_and_security_reach_driver_and_executors():
    body = application(spark_plans()["features"], name="aq-x", extra_labels={"dag_id": "sparky"})
    spec = body["spec"]
    for role in ("driver", "executor"):
        pod = spec[role]
        env = {e["name"]: e for e in pod["env"]}
        assert env["API_TOKEN"] == {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
        assert env["AQ_ENGINE"]["value"] == "spark"
        assert env["AQ_OUTPUT"]["value"] == "s3://acme-ml/aq/sparky/{{ run_id }}/features"
        assert env["AQ_INPUT_EVENTS"]["value"] == "s3://acme-ml/aq/sparky/{{ run_id }}/events"
        assert pod["podSecurityContext"]["runAsNonRoot"] is True and pod["podSecurityContext"]["runAsUser"] == 1000
        assert pod["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["labels"] == {"app.kubernetes.io/managed-by": "aq-airflow", "aq-airflow/step": "features",
                                 "dag_id": "sparky"}  # fmt: skip
    assert body["metadata"]["labels"] == spec["driver"]["labels"]
    assert "s3cret" not in str(body)


def test_spark_conf_has_the_always_settings_and_keeps_the_users():
    """The settings local mode has too (one constant), the user's on top; no store settings: the
    runtime in the driver sets those from its environment (configure_stores), as in local mode."""
    from aq_airflow.runtime.spark_session import ALWAYS, local_settings

    conf = application(spark_plans()["features"], name="aq-x")["spec"]["sparkConf"]
    assert conf == {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
                    "spark.sql.shuffle.partitions": "64", "spark.sql.adaptive.enabled": "true"}  # fmt: skip
    assert ALWAYS.items() <= conf.items() and ALWAYS.items() <= local_settings({})[1].items()
    for root in ("abfs://ml@acme.dfs.core.windows.net/aq", "gs://acme-ml/aq"):
        assert not any(k.startswith("spark.hadoop.") for k in application(spark_plans(artifacts=root)["features"])[
            "spec"]["sparkConf"])  # fmt: skip


@pytest.mark.parametrize(
    ("cluster", "placement"),
    [
        ("gke", {"nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"}}),
        (
            "eks",
            {
                "nodeSelector": {
                    "karpenter.k8s.aws/instance-gpu-name": "a100",
                    "karpenter.k8s.aws/instance-gpu-memory": "81920",
                }
            },
        ),
        ("aks", {"nodeSelector": {"kubernetes.azure.com/accelerator": "nvidia"}}),
    ],
)
def test_gpu_executors_get_the_gpu_its_nodes_and_rapids(cluster, placement):
    spec = application(spark_plans(cluster, ", gpu: 2, gpu_type: a100-80gb")["features"], name="aq-x")["spec"]
    executor, driver = spec["executor"], spec["driver"]
    assert executor["gpu"] == {"name": "nvidia.com/gpu", "quantity": 2}
    for key, value in placement.items():
        assert executor[key] == value
    assert any(t["key"] in ("nvidia.com/gpu", "sku") for t in executor["tolerations"])
    assert "gpu" not in driver and "tolerations" not in driver  # the driver stays on CPU nodes
    conf = spec["sparkConf"]
    assert conf["spark.plugins"] == "com.nvidia.spark.SQLPlugin"
    assert conf["spark.executor.resource.gpu.amount"] == "2"
    assert conf["spark.task.resource.gpu.amount"] == "0.5"  # 2 GPUs over 4 task slots
    assert conf["spark.executor.resource.gpu.discoveryScript"].endswith("getGpusResources.sh")
    cpu_only = application(spark_plans(cluster)["features"], name="aq-x")["spec"]
    assert "gpu" not in cpu_only["executor"] and "spark.plugins" not in cpu_only["sparkConf"]


def test_dynamic_allocation_from_zero_executors():
    spec = application(spark_plans()["scaled"], name="aq-x")["spec"]
    assert spec["dynamicAllocation"] == {"enabled": True, "initialExecutors": 0, "minExecutors": 0, "maxExecutors": 20}
    assert "instances" not in spec["executor"]
    assert "dynamicAllocation" not in application(spark_plans()["features"], name="aq-x")["spec"]


def test_the_application_state_reads_as_an_outcome():
    def status(state, message=None):
        return {"applicationState": {"state": state, **({"errorMessage": message} if message else {})}}

    assert outcome(status("COMPLETED")).succeeded
    failed = outcome(status("FAILED", "driver container failed with ExitCode: 1, Reason: Error"))
    assert failed.finished and not failed.succeeded and "ExitCode: 1" in failed.message
    assert outcome(status("SUBMISSION_FAILED", "bad image")).finished
    for running in ("", "SUBMITTED", "RUNNING", "SUCCEEDING", "FAILING", "UNKNOWN"):
        assert not outcome(status(running)).finished, running
    assert not outcome({}).finished and not outcome(None).finished


def test_a_profile_names_the_images_launcher_and_spark_version():
    from aq_airflow.pipeline_spec.errors import SpecError
    from aq_airflow.pipeline_spec.profiles import parse_profiles

    text = (
        "profiles:\n  gke-spark:\n    extends: gke\n"
        '    spark_launcher: local:///app/spark_main.py\n    spark_version: "4.0.1"\n'
    )
    profiles = parse_profiles(SpecFile("aq-profiles.yaml", text))
    spec_text = SPEC.format(cluster="gke-spark", gpu="", artifacts="s3://acme-ml/aq")
    plan = compile_text(SpecFile("sparky.aq.yaml", spec_text), profiles=("gke-spark-v1", profiles))
    run = next(t.body for t in plan.tasks if isinstance(t.body, RunPlan) and t.body.step == "features")
    spec = application(run, name="aq-x")["spec"]
    assert (spec["mainApplicationFile"], spec["sparkVersion"]) == ("local:///app/spark_main.py", "4.0.1")
    with pytest.raises(SpecError, match=r"aq-profiles.yaml:4:"):  # a path without a scheme Spark reads
        parse_profiles(SpecFile("aq-profiles.yaml", text.replace("local:///app/", "/app/")))


def test_the_operator_is_built_without_a_cluster_and_renders_script_arguments_as_text(monkeypatch):
    import jinja2
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
    from airflow.sdk import DAG

    from aq_airflow.operators.spark_application import AqSparkStepOperator

    # parse time: nothing is asked of the cluster (there is none at this address)
    connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": "/nonexistent/kubeconfig"}}
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(connection))
    with DAG(dag_id="sparky", schedule=None):
        operator = AqSparkStepOperator(task_id="script.run", plan=spark_plans()["script"])
        provider = SparkKubernetesOperator(task_id="as_the_provider_renders", template_spec={})
    assert not {"hook", "client", "custom_obj_api", "launcher"} & set(operator.__dict__)
    assert crd_problems({**operator.template_spec["spark"], "metadata": {"name": "aq-x"}}) == []
    # a script argument naming a .json file is an argument, not a template file to load
    arguments = operator.template_spec["spark"]["spec"]["arguments"]
    rendered = operator.render_template(arguments, {"ds": "2026-03-01"})
    assert rendered == ["--script", "jobs/report.py", "--", "--out", "summary.json", "2026-03-01"]
    with pytest.raises(jinja2.TemplateNotFound):
        provider.render_template(arguments, {"ds": "2026-03-01"})
