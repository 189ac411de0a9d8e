"""`serve:` on the local runner, as a user runs it: `aq-airflow run` of the churn example promotes
its model to the endpoint `churn` (after a real MLServer answered the smoke test), `aq-airflow
serve` serves it, and the test calls it over HTTP as a client would. Running again with the same
model leaves the endpoint unchanged; a version the server cannot load fails the task and leaves
the endpoint's promoted version as it was; so do an endpoint another pipeline holds and a
current.json the store refuses to write."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.conftest import EXAMPLES

SPEC = EXAMPLES / "churn_scoring.aq.yaml"
CLI = [sys.executable, "-m", "aq_airflow.cli"]

pytestmark = pytest.mark.slow  # three runs of the churn example, each starting a model server, and one serving


def seed(path: Path) -> None:
    module_spec = importlib.util.spec_from_file_location("seed_warehouse", EXAMPLES / "seed_warehouse.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    module.seed(str(path), customers=2000, order_events=20_000)


def run_churn(work: Path, *only: str) -> subprocess.CompletedProcess:
    """`aq-airflow run` of the example; with ``only`` (``--steps``), those steps in a new run that
    reuses the latest run's outputs upstream of them, as a user reruns a promotion."""
    command = [*CLI, "run", str(SPEC), "--date", "2026-03-01", "--workdir", str(work)]
    if only:
        command += ["--steps", ",".join(only)]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def deployments(work: Path) -> list[tuple]:
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(
            "SELECT endpoint, version, outcome, reason, previous_version, smoke_rows, smoke_latency_ms, target "
            "FROM aq_deployments ORDER BY created_at"
        ).fetchall()


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def run_folder(work: Path, step: str) -> Path:
    (run,) = sorted((work / "artifacts" / "churn_scoring").glob("manual__*"))[:1]
    return run / step


def test_run_promotes_serve_answers_and_a_broken_version_changes_nothing(tmp_path):
    work = tmp_path / "work"
    seed(work / "warehouse.duckdb")

    nothing = subprocess.run([*CLI, "serve", str(SPEC), "--workdir", str(work)], capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert nothing.returncode == 1 and "run the pipeline first" in nothing.stderr
    assert "Traceback" not in nothing.stderr

    first = run_churn(work)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    current_file = work / "artifacts" / "_models" / "churn" / "current.json"
    current = json.loads(current_file.read_text())
    version = current["version"]
    assert current["endpoint"] == "churn" and current["step"] == "approved" and current["format"] == "sklearn"
    assert f"endpoint churn: {version} promoted" in first.stdout  # the summary's serve line
    assert f"`aq-airflow serve churn_scoring --workdir {work}`" in first.stdout
    ((endpoint, promoted, outcome, reason, previous, rows, latency, target),) = deployments(work)
    assert (endpoint, promoted, outcome, reason, previous, rows, target) == ("churn", version, "promoted", None,
                                                                             None, 5, "local")  # fmt: skip
    assert latency > 0

    # a port something already listens on (Airflow's api-server takes 8080 too): said before any
    # server starts, whose readiness probe would otherwise be answered by the other one
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = subprocess.run([*CLI, "serve", "churn_scoring", "--workdir", str(work), "--port",
                               str(taken.getsockname()[1])], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert busy.returncode == 1 and "is in use" in busy.stderr and "--port 0" in busy.stderr, busy.stderr
    assert "serving on" not in busy.stdout and "Traceback" not in busy.stderr

    # the endpoint as a user calls it: `aq-airflow serve`, then an HTTP request of feature rows
    # as the run's summary says it (the pipeline's dag_id: its promotions in the store)
    server = subprocess.Popen([*CLI, "serve", "churn_scoring", "--workdir", str(work), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        lines = []
        for line in server.stdout:
            lines.append(line)
            if "curl -s" in line:
                break
        url = next(line.split()[2] for line in lines if line.startswith("serving on "))
        assert any(line.strip().startswith(f"churn: {version} (sklearn)") for line in lines), lines
        signature = json.loads((Path(current["storage_uri"]) / "signature.json").read_text())["inputs"]
        features = pq.read_table(run_folder(work, "features")).slice(0, 20)
        body = {
            "parameters": {"content_type": "pd"},
            "inputs": [
                {"name": i["name"], "shape": [20], "datatype": i["datatype"], "data": features[i["name"]].to_pylist()}
                for i in signature
            ],
        }
        answer = post(f"{url}/v2/models/churn/infer", body)
        # the pasted curl line answers too (its request is one row of zeros)
        curl = next(line.strip() for line in lines if "curl -s" in line)
        pasted = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=60)
        assert json.loads(pasted.stdout)["outputs"][0]["shape"][0] == 1, pasted
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "stopped" in out
    assert answer["model_name"] == "churn" and answer["model_version"] == version
    (model_file,) = run_folder(work, "approved").glob("object-*.pkl")
    model = pickle.loads(model_file.read_bytes())
    expected = model.predict(features.select([i["name"] for i in signature]).to_pandas())
    output = answer["outputs"][0]
    assert output["shape"][0] == 20 and output["data"] == expected.tolist()

    # the step that carries `serve:` again (`--steps approved`, the rest reused), so the same model
    # again: the endpoint is unchanged, and so is its record of the run that promoted it
    record = current_file.read_bytes()
    second = run_churn(work, "approved")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"endpoint churn: {version} unchanged" in second.stdout
    assert [row[:5] for row in deployments(work)][-1] == ("churn", version, "unchanged", None, version)
    assert current_file.read_bytes() == record

    # a version folder whose model file was corrupted after it was written: the task fails saying
    # so (its digests.json), current.json stays, the attempt is recorded as failed
    model_path = Path(current["storage_uri"]) / "model.joblib"
    good = model_path.read_bytes()
    model_path.write_bytes(b"not a joblib file")
    third = run_churn(work, "approved")
    assert third.returncode == 1
    assert "approved.serve               failed" in third.stdout
    assert "was changed after the serve task wrote it (model.joblib)" in third.stderr
    assert current_file.read_bytes() == record
    endpoint, failed_version, outcome, reason, previous, *_ = deployments(work)[-1]
    assert (endpoint, failed_version, outcome, previous) == ("churn", version, "failed", version)
    assert "was changed after the serve task wrote it (model.joblib)" in reason
    assert sorted(os.listdir(Path(current["storage_uri"]).parent)) == ["current.json", version]  # nothing staged
    model_path.write_bytes(good)

    # another pipeline's promotion holds the endpoint: refused before anything is written, the
    # owner named, the attempt recorded as failed; its current.json stays
    current_file.write_text(json.dumps({**current, "dag_id": "fraud_scoring", "step": "train"}))
    held = current_file.read_bytes()
    fourth = run_churn(work, "approved")
    assert fourth.returncode == 1
    assert "endpoint `churn` belongs to fraud_scoring.train" in fourth.stderr, fourth.stderr[-3000:]
    assert "choose another endpoint in `serve:`, or retire it there" in fourth.stderr
    assert current_file.read_bytes() == held
    endpoint, _, outcome, reason, previous, *_ = deployments(work)[-1]
    assert (endpoint, outcome, previous) == ("churn", "failed", version)
    assert "belongs to fraud_scoring.train" in reason

    # the smoke test passes but current.json cannot be written (the store refuses writes to the
    # endpoint's folder): the task fails saying what the endpoint serves, and the attempt is recorded
    older = "v" + "0" * 16
    current_file.write_text(json.dumps({**current, "version": older}))
    held = current_file.read_bytes()
    with refusing_writes(current_file.parent):
        fifth = run_churn(work, "approved")
    assert fifth.returncode == 1
    assert f"{current_file} could not be written" in fifth.stderr, fifth.stderr[-3000:]
    assert f"{version} passed its smoke test; the endpoint still serves {older}" in fifth.stderr
    assert current_file.read_bytes() == held
    endpoint, failed_version, outcome, reason, previous, rows, latency, _ = deployments(work)[-1]
    assert (endpoint, failed_version, outcome, previous, rows) == ("churn", version, "failed", older, 5)
    assert "current.json could not be written" in reason and latency > 0


@contextlib.contextmanager
def refusing_writes(folder: Path):
    """``folder`` refuses new files while the block runs (root ignores permissions: immutable)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        return
    folder.chmod(0o555)
    try:
        yield
    finally:
        folder.chmod(0o755)
