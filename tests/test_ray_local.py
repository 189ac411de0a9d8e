"""`ray:` steps on the local runner: a real local Ray started in the step's process.

Through dag.test (the local runner's operator, its checks, metrics and publish): a ray step
reading a python step's output, the churn example's Ray Tune search and its best configuration,
a step whose Ray task fails. Then the step's process killed as the local operator kills it (its
process group, SIGTERM: a task killed or timed out) and outright (SIGKILL of the step's process
alone): no process of its Ray is left behind, nor its folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from aq_airflow.artifacts.store import MANIFEST
from aq_airflow.runners import local
from aq_airflow.runtime import contract
from aq_airflow.runtime.machine import usable_cpus

pytestmark = pytest.mark.slow  # three local Rays in one DAG run, two more killed: over a minute on 2 cores

STEPS = '''
import os
import time

import numpy as np
import pandas as pd
import ray


def numbers() -> pd.DataFrame:
    return pd.DataFrame({"n": range(6)})


@ray.remote(max_calls=1)  # each task a worker process of its own: lines from several processes
def square(n):
    print(f"{os.environ.get('GREETING')} from a task: {n}")  # GREETING: the step's runtime_env
    return n * n


def squares(numbers: pd.DataFrame) -> pd.DataFrame:
    squared = ray.get([square.remote(int(n)) for n in numbers["n"]])
    return numbers.assign(sq=squared, cpus=ray.cluster_resources()["CPU"])


@ray.remote
def explode(n):
    raise ValueError(f"bad value {n}")


def broken(numbers: pd.DataFrame):
    return ray.get([explode.remote(int(n)) for n in numbers["n"]])


def features(rows: int = 1500) -> pd.DataFrame:
    """Per-customer features as the Spark step makes them (no churn label)."""
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "customer_id": np.arange(rows)[::-1],
        "orders_90d": rng.poisson(3, rows),
        "spend_90d": rng.gamma(2.0, 40.0, rows).round(2),
        "days_since_last_order": rng.integers(0, 90, rows),
    })


@ray.remote
def wait(marker):
    open(marker, "w").close()
    time.sleep(600)


def hangs(marker: str):
    return ray.get(wait.remote(marker))
'''

SPEC = """
pipeline: ray_local
steps:
  numbers:
    python: ray_test_steps:numbers
  squares:
    ray: ray_test_steps:squares
    inputs: [numbers]
    runtime_env: {env_vars: {GREETING: hello}}
    checks: [{name: all_squared, not_null: sq}]
    metrics: [{name: rows, count: "*"}, {name: total, sum: sq}]
  broken:
    ray: ray_test_steps:broken
    inputs: [numbers]
  features:
    python: ray_test_steps:features
  search:
    ray: churn.tune:search
    inputs: [features]
    args: {trials: 4}
    checks: [{name: every_trial_scored, not_null: auc}]
    metrics:
      - {name: trials, count: "*"}
      - {name: best_auc, max: auc, bounds: {min: 0.5}}
      - {name: mean_auc, mean: auc}
  best_config:
    python: churn.tune:best
    inputs: [search]
    checks: [{name: one_config, row_count: {min: 1, max: 1}}]
    publish: {table: analytics.ray_local_best_config, mode: replace}
"""


@pytest.fixture
def ray_tmp(monkeypatch):
    """Ray's folders (``RAY_TMPDIR``, where the engine puts each step's Ray) in a folder of the
    test's own, short enough for Ray's sockets."""
    folder = tempfile.mkdtemp(prefix="aqrt-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", folder)
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def shipped_steps():
    """The test's step module beside the spec, so in the run's code package: the step's process
    (the Ray driver) imports it from the extracted package, and so must Ray's task workers."""
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "local" / "ray_test_steps.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STEPS)
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def steps_on_path(tmp_path, monkeypatch):
    """The test's step module on the step's PYTHONPATH (a step started without the local operator)."""
    folder = tmp_path / "steps"
    folder.mkdir()
    (folder / "ray_test_steps.py").write_text(STEPS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    return folder


# a line Ray forwarded from one of its workers' own output: `(trial pid=16991) ...`, `(explode pid=7)`.
# A worker's stderr is the worker's: a Tune trial actor stopped at the search's end may print
# Python's "Exception ignored in" with Ray's SIGTERM handler in its frames (seen under load)
FORWARDED = re.compile(r"\((?:[\w:.]+ )?pid=\d+(?:, ip=[\d.]+)?\) ")


def processes_naming(text: str) -> list[str]:
    """The live processes whose command line names ``text`` (Ray's name their session folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
            continue
        if text in command and entry.name != str(os.getpid()):
            found.append(f"{entry.name}: {command[:200]}")
    return found


def session_processes(session: int) -> list[str]:
    """The live (not zombie) processes of a session: a step's, started in one of its own."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append(f"{entry.name} {name}")
    return found


def gone(probe, seconds: float = 30.0) -> list[str]:
    """``probe()`` once it is empty, or what it still finds after ``seconds`` (Ray's task workers
    leave a few seconds after their raylet)."""
    deadline = time.monotonic() + seconds
    while (left := probe()) and time.monotonic() < deadline:
        time.sleep(0.25)
    return left


def test_ray_steps_run_on_a_local_ray_with_checks_metrics_and_the_tune_example(
    run_dag, duckdb_warehouse, shipped_steps, ray_tmp, tmp_path, capsys, caplog
):
    _, dag_run, states = run_dag("ray_local", SPEC)
    logged = capsys.readouterr()
    text = logged.out + logged.err + caplog.text
    assert states == {
        "numbers.run": "success",
        "squares.run": "success",
        "squares.checks": "success",
        "squares.metrics": "success",
        "broken.run": "failed",
        "features.run": "success",
        "search.run": "success",
        "search.checks": "success",
        "search.metrics": "success",
        "best_config.run": "success",
        "best_config.checks": "success",
        "best_config.publish": "success",
    }, text[-5000:]
    artifacts = tmp_path / "artifacts" / "ray_local" / dag_run.run_id

    def table(step):
        manifest = json.loads((artifacts / step / MANIFEST).read_text())
        return pq.read_table(artifacts / step / manifest["files"][0]).to_pandas()

    # a ray step's inputs and output as a python step's; the local Ray has the machine's CPUs
    squares = table("squares")
    assert squares["sq"].tolist() == [0, 1, 4, 9, 16, 25]
    assert set(squares["cpus"]) == {usable_cpus()}
    # the step's runtime_env reached its tasks, and their prints the task's log, each line as printed
    # (by several worker processes: not folded into Ray's `[repeated 5x across cluster]`)
    assert all(f"hello from a task: {n}\n" in text for n in range(6)), text[-5000:]
    # a failing Ray task: the step's failure names the step, the function and the task's own traceback
    assert "step `broken`: `ray_test_steps:broken` raised an exception" in text
    assert "ray::explode()" in text and 'ray_test_steps.py", line 27, in explode' in text
    assert 'raise ValueError(f"bad value {n}")' in text
    # no terminal colour codes (as `\x1b[36m` in a log), none of Ray's frames in the step's process,
    # and no note from the step's private Ray that it turned its token authentication on
    assert "\x1b[36mray::" not in text and "\\x1b[36mray::" not in text, text[-5000:]
    assert "Token authentication is enabled" not in text, text[-5000:]
    ours = [line for line in text.splitlines() if "ray/_private/" in line and not FORWARDED.search(line)]
    assert ours == [], text[-5000:]
    assert "step `broken` failed: the step's process exited with code 1: ValueError: bad value" in text
    # the Tune search: one row per trial, as the checks and metrics record them
    trials = table("search")
    assert trials["trial"].tolist() == [0, 1, 2, 3]
    assert set(trials["model"]) <= {"logistic_regression", "gradient_boosting"}
    assert trials["auc"].between(0.5, 1.0).all() and trials["auc"].nunique() > 1
    with duckdb.connect(str(duckdb_warehouse), read_only=True) as conn:
        metrics = dict(
            conn.execute(
                "SELECT name, value FROM aq_metric_results WHERE dag_id = 'ray_local' AND run_id = ?", [dag_run.run_id]
            ).fetchall()
        )
        published = conn.execute("SELECT trial, model, auc, as_of FROM analytics.ray_local_best_config").fetchall()
    assert metrics == {
        "rows": 6,
        "total": 55,
        "trials": 4,
        "best_auc": pytest.approx(trials["auc"].max()),
        "mean_auc": pytest.approx(trials["auc"].mean()),
    }
    winner = trials.loc[trials["auc"].idxmax()]
    assert published == [(winner["trial"], winner["model"], pytest.approx(winner["auc"]), "2026-03-01")]
    # every step's Ray stopped with its step, its folder removed
    assert list(ray_tmp.iterdir()) == []
    assert processes_naming(str(ray_tmp)) == []


@pytest.mark.parametrize("kill", ["task_killed", "process_killed_outright"])
def test_a_killed_step_leaves_no_ray_process_behind(steps_on_path, ray_tmp, tmp_path, kill):
    """The local operator's kill (a task killed or timed out: SIGTERM to the step's process
    group), and the step's process alone killed outright (SIGKILL: the OOM killer): every
    process of the step's Ray goes, and its folder."""
    marker = tmp_path / "task_started"
    env = {
        **os.environ,  # the steps' folder first on its PYTHONPATH (the fixture's)
        contract.STEP: "hangs",
        contract.OUTPUT: str(tmp_path / "out"),
        contract.ENGINE: "ray",
        contract.ARGS: json.dumps({"marker": str(marker)}),
        contract.CONTEXT: "{}",
    }
    step = local.LocalProcess([sys.executable, "-m", "aq_airflow.runtime", "--function", "ray_test_steps:hangs"], env)
    failures: list[local.ProcessFailed] = []

    def run():
        try:
            step.run()
        except local.ProcessFailed as failure:
            failures.append(failure)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and runner.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the step's Ray task never started"
        session = step.process.pid
        assert len(session_processes(session)) > 3  # the step, Ray's head processes, its task's worker
        if kill == "task_killed":
            step.kill()
        else:
            os.kill(step.process.pid, signal.SIGKILL)
        runner.join(60)
    finally:
        if runner.is_alive():  # the test failed: stop what it started
            os.killpg(step.process.pid, signal.SIGKILL)
            runner.join(60)
    [failure] = failures
    if kill == "task_killed":  # said in the task's log, as the step's last words
        assert failure.returncode == 128 + signal.SIGTERM
        assert failure.tail[-1].startswith(f"{contract.RUNTIME_MARKER}stopped by signal SIGTERM")
    else:
        assert failure.returncode == -signal.SIGKILL
    assert gone(lambda: session_processes(session)) == []
    assert gone(lambda: list(ray_tmp.iterdir())) == []


SHIPPED = """
import sys

import pandas as pd
import ray


@ray.remote
def where():
    import shipped_steps
    return shipped_steps.__file__


def run() -> pd.DataFrame:
    return pd.DataFrame({"task_imported": [ray.get(where.remote())]})
"""


def test_ray_tasks_import_the_steps_code_package(ray_tmp, tmp_path):
    """A step's code package is on its tasks' import path too: a task defined in the package (a
    module on no PYTHONPATH) is imported by Ray's workers from the extracted package."""
    from aq_airflow.artifacts import code_package

    source = tmp_path / "code"
    source.mkdir()
    (source / "shipped_steps.py").write_text(SHIPPED)
    package = code_package.build(str(source))
    env = {
        **os.environ,
        contract.STEP: "shipped",
        contract.OUTPUT: str(tmp_path / "store" / "shipped"),
        contract.ENGINE: "ray",
        contract.CONTEXT: "{}",
        contract.CODE_URI: code_package.upload(package, str(tmp_path / "store")),
        contract.CODE_DIGEST: package.digest,
        contract.CODE_CACHE: str(tmp_path / "cache"),
    }
    command = [sys.executable, "-m", "aq_airflow.runtime", "--function", "shipped_steps:run"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = json.loads((tmp_path / "store" / "shipped" / MANIFEST).read_text())
    imported = pq.read_table(tmp_path / "store" / "shipped" / manifest["files"][0]).column(0).to_pylist()
    assert imported == [str(tmp_path / "cache" / package.digest.removeprefix("sha256:") / "shipped_steps.py")]


ON_A_CLUSTER = """
import os

import pandas as pd
import ray


@ray.remote
def where():
    import shipped_on_a_cluster
    return shipped_on_a_cluster.__file__


def run() -> pd.DataFrame:
    assert ray.is_initialized()  # by the engine, before the function's first Ray call
    return pd.DataFrame({
        "task_imported": [ray.get(where.remote())],
        "gcs_address": [ray.get_runtime_context().gcs_address],
        "nodes": [len(ray.nodes())],
        "greeting": [ray.get(ray.remote(lambda: os.environ.get("GREETING")).remote())],
    })
"""


@pytest.fixture
def ray_head(ray_tmp):
    """A Ray head of its own on loopback (``ray start --head``, as a RayJob's head runs), with a
    token as KubeRay's authOptions give one; stopped after. (address, the environment to reach it)"""
    from tests.ports import free_port

    port = free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": "a" * 64,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    started = [ray_cli, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
               "--include-dashboard=false", f"--temp-dir={ray_tmp}"]  # fmt: skip
    done = subprocess.run(started, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env={**env, "RAY_TMPDIR": str(ray_tmp)},
                       capture_output=True, timeout=120)  # fmt: skip


def test_a_step_on_a_ray_cluster_ships_its_code_package_to_the_workers(ray_head, ray_tmp, tmp_path):
    """With ``RAY_ADDRESS`` (a RayJob's entrypoint) the engine connects to that cluster, with the
    step's runtime_env and its code package: a task defined in the package is imported by the
    cluster's workers from the copy Ray shipped them, not from the step's extracted folder (on
    KubeRay another pod's filesystem)."""
    from aq_airflow.artifacts import code_package

    address, head_env = ray_head
    source = tmp_path / "code"
    source.mkdir()
    (source / "shipped_on_a_cluster.py").write_text(ON_A_CLUSTER)
    package = code_package.build(str(source))
    env = {
        **head_env,
        "RAY_ADDRESS": address,
        contract.STEP: "shipped",
        contract.OUTPUT: str(tmp_path / "store" / "shipped"),
        contract.ENGINE: "ray",
        contract.ENGINE_CONF: json.dumps({"env_vars": {"GREETING": "hello"}}),
        contract.CONTEXT: "{}",
        contract.CODE_URI: code_package.upload(package, str(tmp_path / "store")),
        contract.CODE_DIGEST: package.digest,
        contract.CODE_CACHE: str(tmp_path / "cache"),
    }
    command = [sys.executable, "-m", "aq_airflow.runtime", "--function", "shipped_on_a_cluster:run"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = json.loads((tmp_path / "store" / "shipped" / MANIFEST).read_text())
    [row] = pq.read_table(tmp_path / "store" / "shipped" / manifest["files"][0]).to_pylist()
    # the cluster's Ray (its GCS's port: the head names itself by the machine's address), not one of its own
    assert row["gcs_address"].rpartition(":")[2] == address.rpartition(":")[2] and row["nodes"] == 1
    assert row["greeting"] == "hello"  # the step's runtime_env reached the cluster's workers
    extracted = tmp_path / "cache" / package.digest.removeprefix("sha256:")
    imported = Path(row["task_imported"])
    assert imported.name == "shipped_on_a_cluster.py" and imported.is_relative_to(ray_tmp), row
    assert not imported.is_relative_to(extracted), row


def test_the_engine_leaves_the_process_as_it_found_it(ray_tmp, tmp_path, monkeypatch):
    """Started in a process that is not a session of its own (a terminal's job, a script's
    child: here pytest's), the engine keeps the process in its group (a Ctrl-C still reaches it;
    no reaper that would kill its parent's group), and puts its SIGTERM handler back as it was
    when the step ends (ray.init replaces it with one of Ray's)."""
    from aq_airflow.runtime.ray import RayEngine

    for name, value in (("RAY_AUTH_TOKEN", "b" * 64), ("RAY_USAGE_STATS_ENABLED", "0"), ("RAY_COLOR_PREFIX", "0")):
        monkeypatch.setenv(name, value)  # what the engine would set in this process, put back after
    assert os.getsid(0) != os.getpid()

    def handler(signum, frame):  # this process's own handler
        pass

    previous = signal.signal(signal.SIGTERM, handler)
    group = os.getpgrp()
    engine = RayEngine()
    try:
        engine.start({contract.STEP: "in_process", contract.ENGINE: "ray"})
        import ray

        assert ray.is_initialized() and os.getpgrp() == group
        assert engine._reaper is None
    finally:
        engine.stop()
        restored = signal.signal(signal.SIGTERM, previous)
    assert restored is handler
    import ray

    assert not ray.is_initialized()
    assert list(ray_tmp.iterdir()) == []
