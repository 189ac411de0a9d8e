"""`spark:` and `ray:` steps in the spec and the Plan: what validate refuses (located, with the
fix), and the cluster the planner decides (sizes with the profile's defaults, GPU placement per
cloud, dynamic allocation, the engine's settings passed through)."""

from __future__ import annotations

import pytest

from aq_airflow.pipeline_spec import SpecFile
from aq_airflow.pipeline_spec.profiles import ProfileSpec
from aq_airflow.plan import compile_text
from aq_airflow.plan.model import ClusterJob, Command, StepKind
from aq_airflow.runners.environment import step_environment
from aq_airflow.runtime import contract
from tests.helpers import issues_of

POD = "cluster: gke\nartifacts: s3://b/aq\ndefaults: {image: i}\n"


def _run(text: str, step: str, profiles=("", {})):
    plan = compile_text(SpecFile("pipe.aq.yaml", text), profiles)
    return next(t.body for t in plan.tasks if t.task_id == f"{step}.run")


@pytest.mark.parametrize(
    "text, expected",
    [
        (  # a Spark key on a python step: at the key's own line
            "steps:\n  a:\n    python: m:f\n    executors: {instances: 2, memory: 1Gi}\n",
            "pipe.aq.yaml:4:16: steps.a.executors: `executors` sizes a `spark:` step's cluster; a `python` step "
            "has none: remove it",
        ),
        (
            "steps:\n  a:\n    spark: m:f\n    workers: {replicas: 2, memory: 1Gi}\n",
            "pipe.aq.yaml:4:14: steps.a.workers: `workers` sizes a `ray:` step's cluster; a `spark` step has none: "
            "remove it",
        ),
        (
            "steps:\n  a:\n    sql: SELECT 1\n    spark_conf: {spark.x: 1}\n",
            "pipe.aq.yaml:4:17: steps.a.spark_conf: `spark_conf` sizes a `spark:` step's cluster; a `sql` step has "
            "none: remove it",
        ),
        (
            "steps:\n  a:\n    ray: m:f\n    runtime_env: {pip: [x]}\n    driver: {memory: 1Gi}\n",
            "pipe.aq.yaml:5:13: steps.a.driver: `driver` sizes a `spark:` step's cluster; a `ray` step has none: "
            "remove it",
        ),
        (  # executors with no memory
            "steps:\n  a:\n    spark: m:f\n    executors: {instances: 4, cpu: 2}\n",
            "pipe.aq.yaml:4:16: steps.a.executors: executors need `memory`: each one's size is fixed when the cluster "
            "starts (e.g. `memory: 8Gi`); a default too small fails the job long after it started",
        ),
        (
            "steps:\n  a:\n    ray: m:f\n    workers: {replicas: 3}\n",
            "pipe.aq.yaml:4:14: steps.a.workers: workers need `memory`: each one's size is fixed when the cluster "
            "starts (e.g. `memory: 8Gi`); a default too small fails the job long after it started",
        ),
        (
            "steps:\n  a:\n    spark: m:f\n    spark_conf: {spark.master: 'local[4]'}\n",
            "pipe.aq.yaml:4:17: steps.a.spark_conf: `spark.master` is set by aq-airflow (local mode on a laptop, the "
            "SparkApplication on a cluster): remove it; the cluster profile decides where the job runs",
        ),
        (
            "steps:\n  a:\n    spark: m:f\n    resources: {memory: 1Gi}\n",
            "pipe.aq.yaml:3:5: steps.a: a `spark` step's cluster is sized by `driver:` and `executors:`, not "
            "`resources`: move the ask there",
        ),
        (
            "steps:\n  a:\n    spark: m:f\n    executors: {instances: 2, memory: 1Gi}\n"
            "    dynamic_allocation: {min: 1, max: 4}\n",
            "pipe.aq.yaml:3:5: steps.a: `executors.instances` fixes the executor count and `dynamic_allocation` lets "
            "Spark choose it: keep one of them",
        ),
        (
            "steps:\n  a:\n    spark: m:f\n    dynamic_allocation: {min: 5, max: 2}\n",
            "pipe.aq.yaml:4:25: steps.a.dynamic_allocation: `dynamic_allocation` is reversed: `min` (5) is above "
            "`max` (2)",
        ),
        (
            "steps:\n  a:\n    spark: {file: ../outside.py}\n",
            "pipe.aq.yaml:3:19: steps.a.spark.file: `../outside.py` leaves the code folder: name a script inside it",
        ),
        (
            "steps:\n  a:\n    ray: m:f\n    workers: {replicas: 1, memory: 1Gi, gpu_type: t4}\n",
            "pipe.aq.yaml:4:14: steps.a.workers: `gpu_type` is set but `gpu` is not: add `gpu: 1` (or more)",
        ),
    ],
)
def test_each_engine_mistake_is_one_located_line(text, expected):
    assert issues_of(text) == [expected]


def test_gpu_on_a_profile_without_gpu_nodes_is_located():
    profiles = {"cpu-only": ProfileSpec(extends="gke", gpu_nodes=False)}
    text = (
        "cluster: cpu-only\nartifacts: s3://b/aq\ndefaults: {image: i}\nsteps:\n  a:\n    ray: m:f\n"
        "    workers: {replicas: 2, memory: 4Gi, gpu: 1}\n"
    )
    from aq_airflow.pipeline_spec import SpecError

    with pytest.raises(SpecError) as error:
        compile_text(SpecFile("pipe.aq.yaml", text), ("h", profiles))
    assert [str(i) for i in error.value.issues] == [
        "pipe.aq.yaml:7:46: profile `cpu-only` has no GPU nodes (`gpu_nodes: false`): "
        "remove `gpu:`, or run the pipeline on a profile with GPU nodes"
    ]
    # the same ask on the profile it extends (which has GPU nodes) plans
    assert _run(text.replace("cpu-only", "gke"), "a").job.workers.resources.gpu == 1


def test_an_unknown_gpu_type_is_located_at_the_workers_ask():
    text = POD + "steps:\n  a:\n    spark: m:f\n    executors: {instances: 2, memory: 4Gi, gpu: 1, gpu_type: nope}\n"
    (issue,) = issues_of(text)
    assert issue.startswith("pipe.aq.yaml:7:62: profile `gke` has no GPU type `nope`; it knows: a100-40gb,")


def test_a_spark_function_step_plans_its_cluster_with_the_profiles_defaults_and_gpu_placement():
    text = POD + (
        "steps:\n  a:\n    spark: jobs.features:build\n    driver: {memory: 3Gi}\n"
        "    executors: {instances: 3, cpu: 2, memory: 8Gi, gpu: 1, gpu_type: l4}\n"
        "    spark_conf: {spark.sql.shuffle.partitions: 16}\n"
    )
    run = _run(text, "a")
    assert run.kind == StepKind.SPARK and run.command == Command(function="jobs.features:build")
    job = run.job
    assert isinstance(job, ClusterJob)
    assert job.leader.resources.requests == {"cpu": "1", "memory": "3Gi"}  # the profile's default cpu
    assert job.leader.placement.node_selector == {}  # the driver asks for no GPU
    assert job.workers.replicas == 3
    assert job.workers.resources.limits == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}
    assert job.workers.placement.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert job.workers.placement.tolerations == (
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
    )
    assert job.conf == {"spark.sql.shuffle.partitions": 16}
    env = step_environment(run)
    assert env[contract.ENGINE] == "spark" and env[contract.ENGINE_CONF] == '{"spark.sql.shuffle.partitions": 16}'


def test_a_spark_script_with_dynamic_allocation():
    text = POD + (
        "steps:\n  a:\n    spark: {file: jobs/agg.py, args: [--day, '{{ ds }}']}\n"
        "    dynamic_allocation: {min: 2, max: 10}\n    executors: {memory: 2Gi}\n"
    )
    run = _run(text, "a")
    assert run.command == Command(argv=("--day", "{{ ds }}"), script="jobs/agg.py")
    assert run.command.runs_runtime  # the runtime runs the script and commits its files
    workers = run.job.workers
    assert (workers.replicas, workers.min_replicas, workers.max_replicas) == (2, 2, 10)


def test_a_ray_step_on_aks_places_gpu_workers_by_vm_size():
    text = (
        "cluster: aks\nartifacts: abfs://c/aq\ndefaults: {image: i}\nsteps:\n  t:\n    ray: jobs.tune:search\n"
        "    head: {cpu: 2, memory: 4Gi}\n    workers: {replicas: 4, memory: 16Gi, gpu: 2, gpu_type: t4}\n"
        "    runtime_env: {env_vars: {MODE: tune}}\n"
    )
    run = _run(text, "t")
    job = run.job
    assert job.leader.resources.requests == {"cpu": "2", "memory": "4Gi"}
    assert job.workers.replicas == 4 and job.workers.resources.limits["nvidia.com/gpu"] == "2"
    assert job.workers.placement.node_selector == {"kubernetes.azure.com/accelerator": "nvidia"}
    assert job.workers.placement.node_affinity["node.kubernetes.io/instance-type"][0] == "Standard_NC4as_T4_v3"
    assert {
        "key": "sku",
        "operator": "Equal",
        "value": "gpu",
        "effect": "NoSchedule",
    } in job.workers.placement.tolerations
    assert job.runtime_env == {"env_vars": {"MODE": "tune"}}
    assert step_environment(run)[contract.ENGINE] == "ray"


def test_engine_steps_are_process_steps_for_their_inputs_and_checks():
    """A table read by a spark step is exported (its data leaves the warehouse); the spark step's
    checks read its Parquet output."""
    text = (
        "steps:\n  t:\n    table: raw.events\n  a:\n    spark: m:f\n    inputs: [t]\n"
        "    checks: [{name: ok, not_null: id}]\n"
    )
    plan = compile_text(SpecFile("pipe.aq.yaml", text))
    ids = {t.task_id for t in plan.tasks}
    assert {"t.run", "a.run", "a.checks"} <= ids
    checks = next(t.body for t in plan.tasks if t.task_id == "a.checks")
    assert checks.source.kind == "artifact"


def test_pods_need_a_shared_store_for_engine_steps_too():
    (issue,) = issues_of("cluster: gke\ndefaults: {image: i}\nsteps:\n  a:\n    ray: m:f\n")
    assert "need a shared artifact store" in issue


@pytest.mark.parametrize(
    "conf",
    [
        "spark.hadoop.fs.s3a.secret.key: wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
        "spark.hadoop.fs.s3a.access.key: AKIDEXAMPLE",
        "spark.hadoop.fs.s3a.session.token: abc",
        "spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net: c2VjcmV0",
        "spark.hadoop.fs.azure.account.oauth2.client.secret: oauth-s3cr3t-value",
        "spark.authenticate.secret: auth-s3cr3t-value",
        "spark.ssl.keyStorePassword: keystore-pw-value",
    ],
)
def test_a_credential_in_spark_conf_is_refused_at_its_line(conf):
    (issue,) = issues_of(f"steps:\n  a:\n    spark: m:f\n    spark_conf:\n      {conf}\n")
    key = conf.partition(":")[0]
    assert issue.startswith(f"pipe.aq.yaml:5:7: steps.a.spark_conf: `{key}` holds a credential: ")
    assert "`{secret: name, key: k}`" in issue and conf.partition(": ")[2] not in issue  # the value never shown


def test_settings_that_name_where_credentials_come_from_are_not_credentials():
    text = (
        "steps:\n  a:\n    spark: m:f\n    spark_conf:\n"
        "      spark.hadoop.fs.s3a.aws.credentials.provider:\n"
        "        com.amazonaws.auth.EnvironmentVariableCredentialsProvider\n"
        "      spark.hadoop.google.cloud.auth.service.account.json.keyfile: /var/secrets/gcs/key.json\n"
        "      spark.sql.shuffle.partitions: 8\n"
    )
    assert issues_of(text) == []


def test_a_credential_in_ray_runtime_env_is_refused():
    text = "steps:\n  a:\n    ray: m:f\n    runtime_env: {env_vars: {DB_PASSWORD: hunter2, MODE: fast}}\n"
    (issue,) = issues_of(text)
    assert issue.startswith("pipe.aq.yaml:4:18: steps.a.runtime_env: `runtime_env.env_vars.DB_PASSWORD` looks like")
    assert "hunter2" not in issue
    shaped = "steps:\n  a:\n    ray: m:f\n    runtime_env: {pip: [x], note: AKIAIOSFODNN7EXAMPLE}\n"  # by its shape
    (issue,) = issues_of(shaped)
    assert "steps.a.runtime_env.note: this looks like a credential" in issue
