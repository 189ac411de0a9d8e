"""Code packages reaching pods: the real KubernetesPodOperator against the loopback Kubernetes
API, whose test-side kubelet runs each pod in an empty working folder with an import path of
aq-airflow alone (``tests.kube_api``), so only the run's code package can supply the steps' code;
the artifact store (and so the package) on each object store's emulator (the churn example's whole
run on S3 only)."""

from __future__ import annotations

import json
import os
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from aq_airflow.artifacts import code_package
from aq_airflow.artifacts.store import Location
from aq_airflow.artifacts.values import read_input
from tests.conftest import EXAMPLES
from tests.kube_api import FakeKubernetes

# minutes of pods on three stores in one file: handed out first (tests/scheduling.py)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("code-cluster")
    with FakeKubernetes() as fake:
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": fake.kubeconfig(str(folder))}}
        os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(connection)
        try:
            yield fake
        finally:
            del os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"]


@pytest.fixture
def code_folder():
    """Makes code folders beside the specs `run_dag` writes (named in their `code:`), and removes
    them after the test: the dags folder is the session's, and a spec at its root packages it all."""
    made = []

    def make(name: str) -> Path:
        folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "profiles" / f"{name}_code"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        made.append(folder)
        return folder

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def pods_of(cluster, dag_id: str) -> list[dict]:
    return [pod for pod in cluster.created if pod["metadata"]["labels"]["dag_id"] == dag_id]


def container_env(pod: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}


# the example's whole run on one store: each store's package fetch, outputs and failures are the
# other tests' (all three stores each); the churn steps read no store differently
@pytest.mark.parametrize("object_store", ["s3"], indirect=True)
def test_the_churn_example_runs_in_pods_from_its_package(code_folder, run_dag, duckdb_warehouse, node, cluster):
    scheme, bucket = node
    bucket("acme-ml")
    name = f"churn_pods_{scheme}"
    code = code_folder(name)
    shutil.copytree(EXAMPLES / "churn", code / "churn")
    text = (EXAMPLES / "churn_scoring.aq.yaml").read_text()
    text = text.replace("pipeline: churn_scoring", f"pipeline: {name}")
    text = text.replace("cluster: gke", f"cluster: eks\ncode: {name}_code").replace("retries: 2", "retries: 0")
    text = text.replace("artifacts: s3://", f"artifacts: {scheme}://")
    # no KServe on this cluster (tests/test_serve_kubernetes.py promotes to one): the model is not served
    text = re.sub(r"\n    # predictions on demand.*?resources: \{cpu: 1, memory: 1Gi\}", "", text, flags=re.S)
    assert "serve:" not in text
    _, dag_run, states = run_dag(name, text, local=False)
    assert set(states.values()) == {"success"}, states
    pods = pods_of(cluster, name)
    steps = sorted(p["metadata"]["labels"]["aq-airflow/step"] for p in pods)
    assert steps == ["approved", "evaluate", "features", "report", "scores", "train"]
    digests = {container_env(p)["AQ_CODE_DIGEST"] for p in pods}
    assert digests == {code_package.build(str(code)).digest}  # one package for the run: the code folder's
    assert all("PYTHONPATH" not in container_env(p) for p in pods)
    report = next(p for p in pods if p["metadata"]["labels"]["aq-airflow/step"] == "report")
    container = report["spec"]["containers"][0]
    assert container["command"] + container["args"] == [
        "python", "-m", "aq_airflow.runtime", "--command", "--", "python", "-m", "churn.report"]  # fmt: skip
    run_root = f"{scheme}://acme-ml/aq/{name}/{dag_run.run_id}"
    report_output = Location.of(f"{run_root}/report")  # the command step ran in the package's folder
    with report_output.fs.open_input_stream(report_output.join("report.md")) as handle:
        assert handle.read().startswith(b"# Churn report")
    assert Location.of(f"{run_root}/scores").read_manifest()["rows"] > 0


CHANGING = '''\
import os
import pathlib

VERSION = "v1"
LIVE = pathlib.Path(os.environ["LIVE_CODE"])  # this very file in the dags folder


def flaky():
    """Its first try changes the code in the dags folder, then fails."""
    marker = LIVE.with_suffix(".tried")
    if not marker.exists():
        marker.write_text("tried")
        LIVE.write_text(LIVE.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))
        raise RuntimeError("the first try fails, after the dags folder changed")
    return {"version": VERSION}


def version(flaky):
    return {"version": VERSION, "flaky": flaky["version"]}
'''

CHANGING_SPEC = """
pipeline: {name}
artifacts: {artifacts}
cluster: eks
code: {name}_code
defaults:
  image: ghcr.io/acme/steps:1
  env: {{LIVE_CODE: "{live}"}}
steps:
  flaky:
    python: changing.steps:flaky
    retries: 1
    retry_delay: 1s
  version:
    python: changing.steps:version
    inputs: [flaky]
"""


def test_edited_code_reaches_the_next_runs_pods_and_a_retry_keeps_its_runs_code(code_folder, run_dag, node, cluster):
    """One spec and one image throughout. The first run's first task pins the package; its
    retry, after the code folder changed, still runs that package; the next run runs the new code."""
    scheme, bucket = node
    bucket("runs")
    name = f"changing_{scheme}"
    code = code_folder(name)
    live = code / "changing" / "steps.py"
    live.parent.mkdir()
    (code / "changing" / "__init__.py").write_text("")
    live.write_text(CHANGING)
    first_digest = code_package.build(str(code)).digest
    text = CHANGING_SPEC.format(name=name, artifacts=f"{scheme}://runs/aq", live=live)

    def outputs(dag_run) -> dict:
        root = f"{scheme}://runs/aq/{name}/{dag_run.run_id}"
        return {step: read_input(Location.of(f"{root}/{step}"), step, dict) for step in ("flaky", "version")}

    _, first, states = run_dag(name, text, local=False)
    assert states == {"flaky.run": "success", "version.run": "success"}, states
    assert 'VERSION = "v2"' in live.read_text()  # the dags folder changed during the run ...
    assert outputs(first) == {"flaky": {"version": "v1"}, "version": {"version": "v1", "flaky": "v1"}}  # ... not it
    first_pods = pods_of(cluster, name)
    assert [p["metadata"]["labels"]["aq-airflow/step"] for p in first_pods] == ["flaky", "flaky", "version"]  # a retry
    assert {container_env(p)["AQ_CODE_DIGEST"] for p in first_pods} == {first_digest}

    _, second, states = run_dag(name, text, date="2026-03-02", local=False)
    assert states == {"flaky.run": "success", "version.run": "success"}, states
    assert outputs(second) == {"flaky": {"version": "v2"}, "version": {"version": "v2", "flaky": "v2"}}
    second_pods = pods_of(cluster, name)[len(first_pods) :]
    second_digest = code_package.build(str(code)).digest
    assert second_digest != first_digest
    assert {container_env(p)["AQ_CODE_DIGEST"] for p in second_pods} == {second_digest}
    assert {p["spec"]["containers"][0]["image"] for p in first_pods + second_pods} == {"ghcr.io/acme/steps:1"}


MISSING_SPEC = """
pipeline: {name}
artifacts: {artifacts}
cluster: eks
code: {name}_code
defaults:
  image: ghcr.io/acme/churn:1.4.2
steps:
  train:
    python: churn.train:fit
    retries: 0
"""


def test_an_image_without_a_needed_package_fails_naming_it(code_folder, run_dag, node, cluster, capsys):
    scheme, bucket = node
    bucket("missing")
    name = f"missing_{scheme}"
    code = code_folder(name)
    (code / "churn").mkdir()
    (code / "churn" / "__init__.py").write_text("")
    (code / "churn" / "train.py").write_text(textwrap.dedent("""\
        from __future__ import annotations

        import sklearn_not_in_this_image


        def fit():
            return {"never": "run"}
        """))  # fmt: skip
    _, _, states = run_dag(name, MISSING_SPEC.format(name=name, artifacts=f"{scheme}://missing/aq"), local=False)
    assert states == {"train.run": "failed"}
    message = (
        "image ghcr.io/acme/churn:1.4.2 has no Python package `sklearn_not_in_this_image` "
        "(imported by churn/train.py line 3)"
    )
    (pod,) = pods_of(cluster, name)
    logged = [text for _, text in cluster.logs[("default", pod["metadata"]["name"])]]
    assert logged == [f"aq-airflow: {message}: add it to the image, or stop importing it"]  # no traceback
    output = capsys.readouterr()
    text = output.out + output.err
    # the task's error: the distinct reason, the exit code and the runtime's line
    reason = "step `train` failed: a Python package its code imports is missing (exit code 4)"
    assert f"{reason}: aq-airflow: {message}" in text


EXITS_SPEC = """
pipeline: {name}
artifacts: {artifacts}
cluster: eks
code: {code}
defaults:
  image: ghcr.io/acme/tools:1
  retries: 0
steps:
  grep_3:
    command: [sh, -c, "echo no match; exit 3"]
  cli_4:
    command: [sh, -c, "echo usage problem; exit 4"]
"""


@pytest.mark.parametrize("shipped", [True, False], ids=["package", "image"])
def test_a_pod_command_exiting_3_or_4_fails_as_its_own(shipped, code_folder, run_dag, node, cluster, capsys):
    """A user command exiting 3 or 4 in a pod (exec'd by the runtime after the fetch, or with no
    runtime at all, `code: image`) is KubernetesPodOperator's plain failure, with its exit code."""
    scheme, bucket = node
    bucket("exits")
    name = f"pod_exits_{'package' if shipped else 'image'}_{scheme}"
    if shipped:
        (code_folder(name) / "tools.txt").write_text("shipped")
    code = f"{name}_code" if shipped else "image"
    _, _, states = run_dag(name, EXITS_SPEC.format(name=name, artifacts=f"{scheme}://exits/aq", code=code), local=False)
    assert states == {"grep_3.run": "failed", "cli_4.run": "failed"}
    pods = {p["metadata"]["labels"]["aq-airflow/step"]: p for p in pods_of(cluster, name)}
    assert ("--command" in pods["grep_3"]["spec"]["containers"][0].get("args", [])) is shipped
    output = capsys.readouterr()
    text = output.out + output.err
    assert "returned a failure" in text and "'exit_code': 3" in text and "'exit_code': 4" in text
    assert "could not be fetched" not in text and "a Python package its code imports is missing" not in text


EXIT_4_SPEC = """
pipeline: {name}
artifacts: {artifacts}
cluster: eks
code: {name}_code
defaults:
  image: ghcr.io/acme/steps:1
  retries: 0
steps:
  quit:
    python: quitting:quit
"""


def test_a_python_step_calling_sys_exit_4_in_a_pod_is_no_missing_package(code_folder, run_dag, node, cluster, capsys):
    scheme, bucket = node
    bucket("quits")
    name = f"pod_sys_exit_{scheme}"
    (code_folder(name) / "quitting.py").write_text("import sys\n\n\ndef quit():\n    sys.exit(4)\n")
    _, _, states = run_dag(name, EXIT_4_SPEC.format(name=name, artifacts=f"{scheme}://quits/aq"), local=False)
    assert states == {"quit.run": "failed"}
    output = capsys.readouterr()
    text = output.out + output.err
    assert "'exit_code': 1" in text and "called sys.exit(4) instead of returning" in text
    assert "a Python package its code imports is missing" not in text
