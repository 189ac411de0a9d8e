"""Hostile trial of `serve:` (issue 22): specs, models, samples and stores that try to break a
promotion, each run through the real parts (Airflow's ``dag.test`` on the local runner, a real
MLServer answering the smoke test, ``aq-airflow validate`` and ``aq-airflow serve`` as a user runs
them). Bad input is refused with a clear reason (at file:line:col for a spec); an endpoint is
never taken from the pipeline that promotes it, and a failed promotion leaves ``current.json`` as
it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import duckdb
import pytest

CLI = [sys.executable, "-m", "aq_airflow.cli"]

pytestmark = pytest.mark.slow  # each run starts a real model server

SPEC = """
pipeline: {name}
code: {name}_code
params: {{kind: plain, sample: plain}}
defaults: {{retries: 0}}
steps:
  features:
    python: hostile_serve:features
    args: {{kind: "{{{{ params.sample }}}}"}}
  train:
    python: hostile_serve:fit
    inputs: [features]
    args: {{kind: "{{{{ params.kind }}}}"}}
    serve: {{endpoint: {endpoint}, format: {format}{extra}}}
"""

STEPS = """\
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression


def features(kind: str):
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=100), rng.normal(size=100)
    label = (a + b > 0).astype("int64")
    if kind == "missing":  # NaN and NULL in the first rows, as real rows have them
        a[0] = np.nan
        return pa.table({"a": pa.array(a, from_pandas=True), "b": pa.array([None, *b[1:]], pa.float64()),
                         "label": label})
    if kind == "empty":
        return pa.table({"a": a[:0], "b": b[:0], "label": label[:0]})
    return pa.table({"a": a, "b": b, "label": label})


class OwnModel:
    feature_names_in_ = np.array(["a", "b"])

    def predict(self, X):
        return np.zeros(len(X))


def fit(features: pd.DataFrame, kind: str):
    X, y = features[["a", "b"]], features["label"]
    if kind == "none":
        return None
    if kind == "text":
        return "not a model"
    if kind == "nan_output":  # a model whose weights went NaN: it answers, with no number
        model = LinearRegression().fit(X, y.astype("float64"))
        model.coef_[0] = np.nan
        return model
    if kind == "own_class":
        return OwnModel()
    if kind == "nan_aware":
        return HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    return LogisticRegression(C={"plain": 1.0}.get(kind, 0.01)).fit(X, y)
"""


@pytest.fixture
def pipeline(run_dag, tmp_path, monkeypatch):
    """Run a pipeline whose `train` serves ``endpoint`` (local runner, a DuckDB warehouse of its
    own): (task states, the run's aq_deployments rows, the task logs' text)."""
    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(warehouse)}))
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "local"
    made = []

    def run(name: str, endpoint: str, fmt: str = "sklearn", extra: str = "", date: str = "2026-03-01", **conf):
        code = dags / f"{name}_code"
        code.mkdir(parents=True, exist_ok=True)
        (code / "hostile_serve.py").write_text(f"# {name}\n{STEPS}")
        made.append(code)
        text = SPEC.format(name=name, endpoint=endpoint, format=fmt, extra=extra)
        _, dag_run, states = run_dag(name, text, date=date, conf=conf or None)
        if not warehouse.exists():
            return states, []
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            try:
                rows = conn.execute(
                    "SELECT outcome, reason, version, previous_version FROM aq_deployments WHERE dag_id = ? AND "
                    "run_id = ? ORDER BY created_at", [name, dag_run.run_id]).fetchall()  # fmt: skip
            except duckdb.CatalogException:
                rows = []
        return states, rows

    yield run
    for code in made:
        shutil.rmtree(code, ignore_errors=True)


def current(tmp_path: Path, endpoint: str) -> Path:
    return tmp_path / "artifacts" / "_models" / endpoint / "current.json"


def test_two_steps_promoting_one_endpoint_are_refused_by_validate(tmp_path):
    # attack: two steps of one pipeline serve `churn`: every run's second serve task would replace
    # the first's model (two signatures, one URL); validate refuses it at the second's endpoint
    spec = tmp_path / "twice.aq.yaml"
    spec.write_text(
        textwrap.dedent("""\
        pipeline: twice
        steps:
          features:
            sql: SELECT 1 AS a, 2.5 AS b
          train:
            python: churn.train:fit
            inputs: [features]
            serve: {endpoint: churn, format: sklearn}
          other:
            python: churn.train:fit
            inputs: [features]
            serve: {endpoint: churn, format: xgboost}
        """)
    )
    shown = subprocess.run([*CLI, "validate", str(spec)], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert shown.stdout.startswith(f"{spec}:12:23: step `train` serves endpoint `churn` already"), shown.stdout
    assert "name another endpoint" in shown.stdout


def test_a_pipeline_cannot_take_over_another_pipelines_endpoint(pipeline, tmp_path):
    # attack: pipeline `owner_b`, on the same store, serves the endpoint `shared` that `owner_a`
    # promotes: it must not replace a's model (a's clients would get b's predictions)
    states, rows = pipeline("owner_a", "shared")
    assert states["train.serve"] == "success" and rows[0][0] == "promoted"
    record = current(tmp_path, "shared").read_bytes()
    states, rows = pipeline("owner_b", "shared", kind="other")
    assert states["train.serve"] == "failed"
    ((outcome, reason, version, previous),) = rows
    # refused before its model was read: no version named, none written
    assert outcome == "failed" and previous == json.loads(record)["version"] and version is None
    assert "endpoint `shared` belongs to owner_a.train" in reason
    assert "choose another endpoint in `serve:`" in reason and "delete that current.json" in reason
    assert current(tmp_path, "shared").read_bytes() == record  # a's model still the endpoint's
    assert sorted(os.listdir(current(tmp_path, "shared").parent)) == ["current.json", previous]  # nothing for b
    # the owner itself still promotes a new model of its own
    states, rows = pipeline("owner_a", "shared", date="2026-03-02", kind="other")
    assert states["train.serve"] == "success" and rows[-1][0] == "promoted", rows


def test_a_step_that_returns_none_is_a_recorded_failed_attempt(pipeline, tmp_path):
    # attack: the serving step returns None (a forgotten `return`): the task fails saying so, and
    # the attempt is a row in aq_deployments as every attempt is
    states, rows = pipeline("gives_none", "gives-none", kind="none")
    assert states["train.serve"] == "failed"
    ((outcome, reason, version, previous),) = rows
    assert outcome == "failed" and version is None and previous is None
    assert reason.startswith("step `train` returned nothing (None), not a model")
    assert "return the fitted model" in reason
    assert not current(tmp_path, "gives-none").exists()


def start_serving(*args: str) -> tuple[subprocess.Popen, list[str]]:
    """`aq-airflow serve ARGS --port 0` until it printed its curl lines: the process and its lines."""
    server = subprocess.Popen([*CLI, "serve", *args, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip
    lines = []
    for line in server.stdout:
        lines.append(line)
        if "curl -s" in line:
            break
    return server, lines


def stop_serving(server: subprocess.Popen) -> str:
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    return err


def infer(url: str, endpoint: str) -> dict:
    body = {
        "parameters": {"content_type": "pd"},
        "inputs": [{"name": n, "shape": [2], "datatype": "FP64", "data": [0.5, -1.0]} for n in ("a", "b")],
    }
    request = urllib.request.Request(f"{url}/v2/models/{endpoint}/infer", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_serve_outlives_gc_a_moved_store_and_a_record_naming_another_folder(pipeline, tmp_path):
    # attacks: (1) gc deleted every run of the pipeline, and `aq-airflow serve DAG_ID` refused
    # ("no runs") though the promoted model is in _models; (2) the store was moved (the record's
    # storage_uri names the old place); (3) current.json's storage_uri edited to name a folder
    # outside the store; (4) another pipeline's current.json is garbage. The endpoint is served
    # from the store's own version folder all the same.
    states, _ = pipeline("after_gc", "after-gc")
    assert states["train.serve"] == "success"
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "artifacts", moved)
    shutil.rmtree(moved / "after_gc")  # what gc leaves once every run is past the TTL
    record = moved / "_models" / "after-gc" / "current.json"
    promotion = json.loads(record.read_text())
    record.write_text(json.dumps({**promotion, "storage_uri": str(tmp_path / "elsewhere")}))
    (moved / "_models" / "other-ep").mkdir()
    (moved / "_models" / "other-ep" / "current.json").write_text("{not json")
    server, lines = start_serving("after_gc", "--artifacts", str(moved))
    try:
        url = next(line.split()[2] for line in lines if line.startswith("serving on "))
        answer = infer(url, "after-gc")
    finally:
        err = stop_serving(server)
    assert answer["model_version"] == promotion["version"] and answer["outputs"][0]["shape"][0] == 2
    assert "left out: " in err and "other-ep/current.json is not a promotion record" in err
    assert "Traceback" not in err


def test_a_corrupted_current_json_fails_the_task_saying_what_to_do(pipeline, tmp_path):
    # attack: the endpoint's current.json is truncated (a disk full, a hand edit): the serve task
    # records a failed attempt whose reason says what to do, and leaves the file for the user
    states, _ = pipeline("broken_record", "broken-record")
    assert states["train.serve"] == "success"
    current(tmp_path, "broken-record").write_text('{"endpoint": "broken-re')
    states, rows = pipeline("broken_record", "broken-record", date="2026-03-02", kind="other")
    assert states["train.serve"] == "failed"
    ((outcome, reason, _, previous),) = rows
    assert outcome == "failed" and previous is None
    assert "current.json is not a promotion record aq-airflow wrote" in reason
    assert "delete it to have this task promote its model" in reason
    assert current(tmp_path, "broken-record").read_text() == '{"endpoint": "broken-re'
    # as asked: deleted, the next try promotes
    current(tmp_path, "broken-record").unlink()
    states, rows = pipeline("broken_record", "broken-record", date="2026-03-03", kind="other")
    assert states["train.serve"] == "success" and rows[0][0] == "promoted"


def test_a_model_answering_nan_is_not_promoted(pipeline, tmp_path):
    # attack: the model answers the smoke test with the right shape and datatype, but no number
    # (NaN: null in MLServer's JSON): that is not a prediction, and the endpoint is not promoted
    states, rows = pipeline("nan_answer", "nan-answer", kind="nan_output")
    assert states["train.serve"] == "failed"
    ((outcome, reason, *_),) = rows
    assert outcome == "failed"
    assert "values that are not finite numbers" in reason and "the model predicts no number" in reason
    assert not current(tmp_path, "nan-answer").exists()


def test_a_model_of_the_steps_own_class_is_refused_saying_why(pipeline, tmp_path):
    # attack: the step returns an instance of a class defined in its own module; the serve task
    # (and the model server's venv) cannot import that module, so it cannot unpickle the model.
    # Not "run the step again" (it would fail the same): the reason names the module and the fix
    states, rows = pipeline("own_class", "own-class", kind="own_class")
    assert states["train.serve"] == "failed"
    ((outcome, reason, *_),) = rows
    assert outcome == "failed"
    assert "its class comes from module `hostile_serve`" in reason
    assert "scikit-learn" in reason and "Run step `train` again" not in reason


def test_a_version_folder_changed_after_it_was_written_is_not_served(pipeline, tmp_path):
    # attack: the promoted version's model.joblib is replaced by another (valid) model between
    # runs; the next run of the same model reuses the complete folder. It must not smoke-test and
    # re-promote the swapped file as the model's version: the task fails saying what to do
    import joblib
    from sklearn.dummy import DummyClassifier

    states, rows = pipeline("swapped", "swapped")
    assert states["train.serve"] == "success"
    record = current(tmp_path, "swapped").read_bytes()
    folder = Path(json.loads(record)["storage_uri"])
    assert (folder / "digests.json").exists()
    joblib.dump(DummyClassifier(constant=1, strategy="constant").fit([[0, 0]], [1]), folder / "model.joblib")
    states, rows = pipeline("swapped", "swapped", date="2026-03-02")
    assert states["train.serve"] == "failed"
    ((outcome, reason, version, previous),) = rows
    assert outcome == "failed" and version == previous == json.loads(record)["version"]
    assert "was changed after the serve task wrote it (model.joblib)" in reason
    assert "delete the folder to have the serve task write it again" in reason
    assert current(tmp_path, "swapped").read_bytes() == record
    shutil.rmtree(folder)  # as the reason says: written again, and the same model is the endpoint's again
    states, rows = pipeline("swapped", "swapped", date="2026-03-03")
    assert states["train.serve"] == "success" and rows[0][0] == "unchanged", rows
