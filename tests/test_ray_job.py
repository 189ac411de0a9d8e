"""``ray:`` steps on Kubernetes: the KubeRay RayJob each task try creates, held to KubeRay's own
CRD schema (v1.7.0, vendored in tests/crds/kuberay) on every built-in profile, and the real
operator in real Airflow against the loopback Kubernetes API, whose test-side RayJob controller
(``tests.ray_controller``) runs the job's entrypoint as KubeRay's submitter pod would see it."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from aq_airflow.artifacts.manifest import MANIFEST
from aq_airflow.devstack.processes import wait_for
from aq_airflow.pipeline_spec.load import SpecFile
from aq_airflow.plan import compile_text
from aq_airflow.plan.model import RunPlan
from aq_airflow.runners import environment, ray_job
from aq_airflow.runners.custom_resource import identity
from tests import ray_controller
from tests.crd_schema import RAY_JOBS, crd_problems
from tests.kube_api import FakeKubernetes
from tests.test_execution import manifest, output_dir

pytestmark = pytest.mark.slow

PROFILES = ("gke", "eks", "eks-auto", "aks", "nvidia")


def ray_plan(cluster: str, gpu: bool) -> RunPlan:
    workers = "{replicas: 3, cpu: 1500m, memory: 8Gi" + (", gpu: 2" if gpu else "") + "}"
    text = f"""
pipeline: tune
artifacts: s3://acme/aq
cluster: {cluster}
defaults:
  image: ghcr.io/acme/ray-steps:2.60
  env: {{API_TOKEN: {{secret: api, key: token}}, MODE: fast}}
steps:
  search:
    ray: tune_steps:search
    args: {{trials: 8}}
    head: {{cpu: 2, memory: 4Gi}}
    workers: {workers}
    runtime_env: {{env_vars: {{OMP_NUM_THREADS: "1"}}, pip: [xgboost]}}
    timeout: 1h
"""
    plan = compile_text(SpecFile("tune.aq.yaml", text))
    return next(t.body for t in plan.tasks if isinstance(t.body, RunPlan) and t.body.step == "search")


def body_for(run: RunPlan) -> dict:
    labels = identity("tune", "search.run", "manual__2026-03-01T00:00:00+00:00", -1, 1)
    return ray_job.ray_job(run, "aq-tune-search-0123456789", environment.step_environment(run), labels, 3600)


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
@pytest.mark.parametrize("cluster", PROFILES)
def test_the_rayjob_is_valid_for_kuberay_on_every_profile(cluster, gpu):
    run = ray_plan(cluster, gpu)
    body = body_for(run)
    problems = crd_problems(body, RAY_JOBS)
    assert problems == [], problems
    spec = body["spec"]
    assert (body["apiVersion"], body["kind"]) == ("ray.io/v1", "RayJob")
    assert spec["entrypoint"] == "python -m aq_airflow.runtime --function tune_steps:search"
    assert spec["submissionMode"] == "K8sJobMode" and spec["shutdownAfterJobFinishes"] is True
    assert spec["activeDeadlineSeconds"] == 3600 and spec["backoffLimit"] == 0
    assert yaml.safe_load(spec["runtimeEnvYAML"]) == {"env_vars": {"OMP_NUM_THREADS": "1"}, "pip": ["xgboost"]}
    assert body["metadata"]["labels"]["run_id"].startswith("manual__2026-03-01T00-00-00-00-00-")  # a label value
    cluster_spec = spec["rayClusterSpec"]
    # token authentication: KubeRay makes the token's Secret, and accepts it for Ray 2.52 or later
    assert cluster_spec["authOptions"] == {"mode": "token"} and cluster_spec["rayVersion"] == "2.60.0"
    head = cluster_spec["headGroupSpec"]
    (workers,) = cluster_spec["workerGroupSpecs"]
    assert head["rayStartParams"] == {"num-cpus": "2", "num-gpus": "0", "dashboard-host": "0.0.0.0"}
    assert workers["rayStartParams"] == {"num-cpus": "2", "num-gpus": "2" if gpu else "0"}  # 1500m: KubeRay's ceil
    assert (workers["replicas"], workers["minReplicas"], workers["maxReplicas"]) == (3, 3, 3)
    head_pod, worker_pod = head["template"]["spec"], workers["template"]["spec"]
    # the entrypoint runs on the head: the contract's environment there, secrets by reference only
    env = {e["name"]: e for e in head_pod["containers"][0]["env"]}
    assert env["API_TOKEN"] == {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
    assert env["AQ_ENGINE"]["value"] == "ray" and json.loads(env["AQ_ARGS"]["value"]) == {"trials": 8}
    assert worker_pod["containers"][0]["env"] == head_pod["containers"][0]["env"]
    assert "s3cret" not in json.dumps(body)
    for pod in (head_pod, worker_pod, spec["submitterPodTemplate"]["spec"]):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["submitterPodTemplate"]["spec"]["restartPolicy"] == "Never"
    # GPUs: the workers only, placed as the profile places GPU pods; the head never on a GPU node
    limits = worker_pod["containers"][0]["resources"]["limits"]
    assert limits.get("nvidia.com/gpu") == ("2" if gpu else None)
    assert "nvidia.com/gpu" not in head_pod["containers"][0]["resources"]["limits"]
    assert not {"tolerations", "nodeSelector", "affinity"} & set(head_pod)
    placement = run.job.workers.placement
    if gpu:
        assert worker_pod["tolerations"] == [dict(t) for t in placement.tolerations] and placement.tolerations
        assert worker_pod.get("nodeSelector", {}) == dict(placement.node_selector)
    else:
        assert not {"tolerations", "nodeSelector", "affinity"} & set(worker_pod)


def test_a_body_with_a_misspelt_field_is_refused_by_the_schema():
    """The strict schema would catch a field KubeRay does not know (the test above can fail)."""
    body = body_for(ray_plan("gke", False))
    body["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replica"] = 2
    body["spec"]["ttlSecondsAfterFinished"] = "60"
    messages = crd_problems(body, RAY_JOBS)
    assert any("'replica' was unexpected" in m for m in messages), messages
    assert any("is not of type 'integer'" in m for m in messages), messages


@pytest.mark.parametrize(
    ("status", "finished", "succeeded"),
    [
        ({}, False, False),
        ({"jobDeploymentStatus": "Initializing"}, False, False),
        ({"jobDeploymentStatus": "Running", "jobStatus": "SUCCEEDED"}, False, False),  # the submitter still logs
        ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, True, True),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "STOPPED"}, True, False),
        ({"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed"}, True, False),
        ({"jobDeploymentStatus": "Failed", "jobStatus": "RUNNING", "reason": "DeadlineExceeded"}, True, False),
        ({"jobDeploymentStatus": "ValidationFailed", "message": "bad"}, True, False),
    ],
)
def test_a_rayjob_status_reads_as_its_outcome(status, finished, succeeded):
    outcome = ray_job.outcome(status)
    assert (outcome.finished, outcome.succeeded) == (finished, succeeded)


# -- the operator in Airflow -----------------------------------------------------------------------
PIPELINE = """
pipeline: {name}
artifacts: {artifacts}
cluster: eks
code: ray_code
defaults:
  image: ghcr.io/acme/ray-steps:2.60
  env:
    API_TOKEN: {{secret: api, key: token}}
steps:
  numbers:
    python: ray_steps:numbers
  {step}:
    ray: {function}
    inputs: [numbers]
    args: {{factor: 3}}
    head: {{cpu: 1, memory: 2Gi}}
    workers: {{replicas: 2, cpu: 1, memory: 2Gi}}
    runtime_env: {{env_vars: {{MODE: fast}}}}
{settings}
"""

STEPS = """\
import os
import time

import pyarrow as pa


def numbers():
    return pa.table({"n": list(range(10))})


def scale(numbers, factor):
    assert os.environ["API_TOKEN"] == "s3cret" and os.environ["MODE"] == "fast"
    assert "RAY_ADDRESS" not in os.environ
    print("scaling the numbers", flush=True)
    return pa.table({"n": [v * factor for v in numbers.column("n").to_pylist()]})


def broken(numbers, factor):
    print("about to fail", flush=True)
    raise RuntimeError("the search diverged")


def flaky(numbers, factor):
    if os.environ["AQ_TRY_NUMBER"] == "1":
        raise RuntimeError("the first try fails")
    return scale(numbers, factor)


def per_item(numbers, factor, item):
    return pa.table({"n": [v * item for v in numbers.column("n").to_pylist()]})


def slow(numbers, factor):
    print("sleeping", flush=True)
    time.sleep(300)


def on_ray(numbers, factor):
    import ray

    assert ray.is_initialized(), "the engine did not start Ray"  # before any Ray call would start one
    # the engine's own local Ray (no RAY_ADDRESS here): its folder is the one the engine made
    temp = ray._private.worker._global_node.get_temp_dir_path()

    @ray.remote
    def times(value):
        return value * factor

    values = ray.get([times.remote(v) for v in numbers.column("n").to_pylist()])
    rows = len(values)
    return pa.table({"n": values, "nodes": [len(ray.nodes())] * rows, "temp": [temp] * rows})
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One API server with the RayJob controller for the module; the steps' code folder beside
    the specs, which reaches the pods only as the run's code package."""
    tmp_path = tmp_path_factory.mktemp("ray-cluster")
    steps = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "profiles" / "ray_code"
    steps.mkdir(parents=True, exist_ok=True)
    (steps / "ray_steps.py").write_text(STEPS)
    (steps / "ray_missing.py").write_text("import sklearn_not_in_this_image\n\n\ndef fit(numbers, factor):\n    pass\n")
    controllers = {"rayjobs": ray_controller.rayjob}
    with FakeKubernetes(secrets={("api", "token"): "s3cret"}, controllers=controllers) as fake:
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": fake.kubeconfig(str(tmp_path))}}
        os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(connection)
        try:
            yield fake
        finally:
            del os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"]


def spec(tmp_path, name: str, function: str, settings: str = "    retries: 0", step: str = "scaled") -> str:
    function = function if ":" in function else f"ray_steps:{function}"
    return PIPELINE.format(name=name, artifacts=tmp_path / "artifacts", step=step, function=function, settings=settings)


def rayjobs_of(cluster, dag_id: str) -> list[dict]:
    return [o for o in cluster.created_objects if o["kind"] == "RayJob" and o["metadata"]["labels"]["dag_id"] == dag_id]


def submitter_pods(cluster, rayjob: dict) -> list[tuple[str, str]]:
    name = rayjob["metadata"]["name"]
    return [key for key in cluster.logs if key[1].startswith(name + "-")]


def log_of(cluster, key) -> list[str]:
    return [text for _, text in cluster.logs[key]]


def test_a_ray_step_runs_as_a_rayjob_and_commits_its_output(run_dag, cluster, tmp_path, caplog):
    _, dag_run, states = run_dag("ray_ok", spec(tmp_path, "ray_ok", "scale"), local=False)
    assert states == {"numbers.run": "success", "scaled.run": "success"}, cluster.requests[-30:]
    result = manifest(tmp_path, dag_run, "ray_ok", "scaled")
    table = pq.read_table(output_dir(tmp_path, dag_run, "ray_ok", "scaled") / result["files"][0])
    assert table.column("n").to_pylist() == [v * 3 for v in range(10)]
    (rayjob,) = rayjobs_of(cluster, "ray_ok")
    assert crd_problems(rayjob, RAY_JOBS) == []
    labels = rayjob["metadata"]["labels"]
    assert (labels["task_id"], labels["try_number"], labels["map_index"]) == ("scaled.run", "1", "-1")
    env = {e["name"]: e.get("value") for e in rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
           ["containers"][0]["env"]}  # fmt: skip
    assert env["AQ_RUN_ID"] == dag_run.run_id and env["AQ_OUTPUT"].endswith("/scaled")  # rendered, this run's
    assert env["AQ_CODE_DIGEST"].startswith("sha256:")  # the run's code package, as a pod step's
    (pod,) = submitter_pods(cluster, rayjob)
    assert "scaling the numbers" in log_of(cluster, pod)
    assert "[ray-job-submitter] scaling the numbers" in caplog.text  # the submitter's log, in the task's
    # deleted when done, its pod with it: by the garbage collector (the pod's owner is KubeRay's
    # Job), after the DELETE answered, as Kubernetes' own does
    assert not [k for k in cluster.objects if k[2] == rayjob["metadata"]["name"]]
    wait_for("the submitter pod's deletion", lambda: pod not in cluster.pods, 30, every=0.1)
    assert pod not in cluster.pods
    assert f"DELETE rayjobs {rayjob['metadata']['name']}" in cluster.requests


def test_a_failing_ray_job_fails_its_task_with_its_error(run_dag, cluster, tmp_path, capsys, caplog):
    _, _, states = run_dag("ray_fail", spec(tmp_path, "ray_fail", "broken", step="search"), local=False)
    assert states == {"numbers.run": "success", "search.run": "failed"}
    text = capsys.readouterr()
    logged = text.out + text.err + caplog.text
    assert "[ray-job-submitter] about to fail" in logged  # the job's log in the task's
    assert "RuntimeError: the search diverged" in logged
    assert "its RayJob" in logged and "ended FAILED (exit code 1): RuntimeError: the search diverged" in logged
    (rayjob,) = rayjobs_of(cluster, "ray_fail")
    assert not [k for k in cluster.objects if k[2] == rayjob["metadata"]["name"]]  # deleted on failure too


def test_each_item_of_a_foreach_ray_step_is_a_rayjob_of_its_own(run_dag, cluster, tmp_path):
    text = spec(tmp_path, "ray_items", "per_item", "    foreach: [2, 5]\n    retries: 0")
    _, dag_run, states = run_dag("ray_items", text, local=False)
    assert states["scaled.run"] == "success", states
    jobs = sorted(rayjobs_of(cluster, "ray_items"), key=lambda o: o["metadata"]["labels"]["map_index"])
    assert [o["metadata"]["labels"]["map_index"] for o in jobs] == ["0", "1"]
    assert len({o["metadata"]["name"] for o in jobs}) == 2
    for index, factor in enumerate((2, 5)):
        folder = output_dir(tmp_path, dag_run, "ray_items", "scaled") / str(index)
        committed = json.loads((folder / MANIFEST).read_text())
        assert pq.read_table(folder / committed["files"][0]).column("n").to_pylist() == [v * factor for v in range(10)]


def test_a_package_missing_from_the_image_fails_with_the_runtimes_reason(run_dag, cluster, tmp_path, capsys, caplog):
    """The runtime's own failure (exit code 4, its marker line) is the task's reason, as in a pod."""
    _, _, states = run_dag("ray_missing", spec(tmp_path, "ray_missing", "ray_missing:fit"), local=False)
    assert states["scaled.run"] == "failed"
    output = capsys.readouterr()
    text = output.out + output.err + caplog.text
    reason = "step `scaled` failed: a Python package its code imports is missing (exit code 4): aq-airflow: image"
    assert reason in text and "`sklearn_not_in_this_image`" in text, text[-3000:]


def test_a_retry_makes_a_new_rayjob_for_its_try(run_dag, cluster, tmp_path):
    settings = "    retries: 1\n    retry_delay: 1s"
    _, dag_run, states = run_dag("ray_retry", spec(tmp_path, "ray_retry", "flaky", settings), local=False)
    assert states["scaled.run"] == "success"
    tries = rayjobs_of(cluster, "ray_retry")
    assert [o["metadata"]["labels"]["try_number"] for o in tries] == ["1", "2"]
    assert len({o["metadata"]["name"] for o in tries}) == 2
    first = submitter_pods(cluster, tries[0])
    assert any("RuntimeError: the first try fails" in line for line in log_of(cluster, first[0]))
    assert manifest(tmp_path, dag_run, "ray_retry", "scaled")["step"] == "scaled"
    assert not [k for k in cluster.objects if k[0] == "rayjobs" and "ray-retry" in k[2]]


def test_the_task_timeout_is_the_rayjobs_deadline_and_stops_it(run_dag, cluster, tmp_path):
    text = spec(tmp_path, "ray_slow", "slow", "    retries: 0\n    timeout: 4s")
    _, _, states = run_dag("ray_slow", text, local=False)
    assert states["scaled.run"] == "failed"
    (rayjob,) = rayjobs_of(cluster, "ray_slow")
    assert rayjob["spec"]["activeDeadlineSeconds"] == 4
    assert not [k for k in cluster.objects if k[2] == rayjob["metadata"]["name"]]
    (pod,) = submitter_pods(cluster, rayjob)
    assert cluster.processes[pod].returncode is not None  # the job's process was stopped


def test_killing_the_task_deletes_its_rayjob_and_stops_the_job(run_dag, cluster, tmp_path):
    """SIGTERM to the task's process (what a worker gets when the task is marked failed or the
    run is stopped) runs the operator's on_kill: the RayJob is deleted, its pod and process go."""
    previous = signal.getsignal(signal.SIGTERM)
    sent = []

    def kill_when_running():
        # Polls until the job sleeps (300 s): a busy worker's local Ray can take over a minute to
        # start, so the bound is the job's own length, not a guess at start-up time.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            names = [o["metadata"]["name"] for o in rayjobs_of(cluster, "ray_kill")]
            pods = [k for k in cluster.logs if any(k[1].startswith(f"{name}-") for name in names)]
            handler = signal.getsignal(signal.SIGTERM)
            running = getattr(handler, "__name__", "") == "_on_term"  # the task runner's, not pytest's
            if running and pods and "sleeping" in log_of(cluster, pods[0]):
                sent.append(pods[0])
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    try:
        _, _, states = run_dag("ray_kill", spec(tmp_path, "ray_kill", "slow"), local=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
        killer.join(5)
    assert sent, "the task's process never ran its SIGTERM handler"
    assert states["scaled.run"] == "failed"
    (rayjob,) = rayjobs_of(cluster, "ray_kill")
    assert not [k for k in cluster.objects if k[2] == rayjob["metadata"]["name"]]
    deadline = time.monotonic() + 10
    while cluster.processes[sent[0]].returncode is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cluster.processes[sent[0]].returncode is not None


def test_earlier_tries_rayjobs_are_deleted_before_a_new_one(cluster):
    """What a worker that died mid-task left: the next try deletes it (by its labels), and leaves
    other runs' and tasks' alone."""
    from aq_airflow.operators.ray_job import AqRayJobStepOperator

    run = ray_plan("eks", False)
    operator = AqRayJobStepOperator(task_id="search.run", plan=run)
    hook = operator.hook
    mine = identity("tune", "search.run", "manual__1", -1, 3)
    left = {
        "left-1": {**mine, "try_number": "1"},
        "left-2": {**mine, "try_number": "2"},
        "other-run": {**mine, "run_id": "manual__2", "try_number": "1"},
        "other-item": {**mine, "map_index": "4", "try_number": "1"},
    }
    for name, labels in left.items():
        body = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": name, "labels": labels}, "spec": {}}
        hook.create_custom_object("ray.io", "v1", "rayjobs", body, namespace="default")
    operator._remove_earlier_tries(hook, mine)
    remaining = {k[2] for k in cluster.objects if k[0] == "rayjobs" and k[2] in left}
    assert remaining == {"other-run", "other-item"}
    for name in remaining:
        hook.delete_custom_object("ray.io", "v1", "rayjobs", name, namespace="default")


def test_a_ray_step_uses_ray_in_its_job(run_dag, cluster, tmp_path):
    """The Ray engine (aq_airflow.runtime.ray) connects the step to a Ray: here a local one in the
    submitter's process (no RAY_ADDRESS), on a real KubeRay the RayJob's cluster."""
    _, dag_run, states = run_dag("ray_remote", spec(tmp_path, "ray_remote", "on_ray"), local=False)
    assert states["scaled.run"] == "success"
    result = manifest(tmp_path, dag_run, "ray_remote", "scaled")
    table = pq.read_table(output_dir(tmp_path, dag_run, "ray_remote", "scaled") / result["files"][0])
    assert table.column("n").to_pylist() == [v * 3 for v in range(10)]
    assert set(table.column("nodes").to_pylist()) == {1}  # one local Ray, the engine's
    (temp,) = set(table.column("temp").to_pylist())
    assert os.path.basename(temp).startswith("aq-ray-"), temp  # runtime.ray's folder, not Ray's default


def test_a_rayjob_of_the_same_try_is_followed_not_made_again(cluster):
    """A worker that restarted mid-try finds its try's RayJob (same name) and follows it to its end:
    no second RayJob; it is deleted at the end as any other (here KubeRay refused it)."""
    from types import SimpleNamespace

    from aq_airflow.operators.errors import StepFailed
    from aq_airflow.operators.ray_job import AqRayJobStepOperator
    from aq_airflow.runners.custom_resource import resource_name

    run = ray_plan("eks", False)
    operator = AqRayJobStepOperator(task_id="search.run", plan=run)
    operator.poll_interval = 0.1
    ti = SimpleNamespace(dag_id="tune", task_id="search.run", map_index=-1, try_number=2)
    name = resource_name("tune", "search", "manual__again", -1, 2)
    labels = identity("tune", "search.run", "manual__again", -1, 2)
    body = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": name, "labels": labels}, "spec": {}}
    hook = operator.hook
    hook.create_custom_object("ray.io", "v1", "rayjobs", body, namespace="default")
    posts = [r for r in cluster.requests if r.startswith("POST rayjobs")]
    with pytest.raises(
        StepFailed, match=rf"its RayJob {name} ended ValidationFailed: ValidationFailed: no rayClusterSpec"
    ):
        operator.execute({"ti": ti, "run_id": "manual__again", "dag": None, "params": {}})
    assert [r for r in cluster.requests if r.startswith("POST rayjobs")] == posts  # none made
    assert ("rayjobs", "default", name) not in cluster.objects
