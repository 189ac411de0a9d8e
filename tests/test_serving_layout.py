"""The serving package through real parts: models of every format trained here, written in their
layout by ``serving.layout`` and answered by a real MLServer (the model server venv) over the
Open Inference Protocol; the signature, the request and the response check on their own."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from aq_airflow.artifacts.model_repository import ModelVersion, Promotion
from aq_airflow.artifacts.store import Location
from aq_airflow.artifacts.values import write_output
from aq_airflow.plan.model import ArtifactRef, ModelFormat, Runner, ServePlan
from aq_airflow.serving.layout import (
    MODEL_SETTINGS,
    SIGNATURE,
    LayoutError,
    local_folder,
    model_columns,
    read_model,
    sample_rows,
    write_version,
)
from aq_airflow.serving.model_server import ModelServer, ModelServerError, lock_digest
from aq_airflow.serving.oip import SmokeFailed, infer, smoke_test
from aq_airflow.serving.promotion import read_current, write_current
from aq_airflow.serving.signature import Signature, inference_request, response_problem

FRAME = pd.DataFrame(
    {
        "tenure": [1.0, 3.5, 7.0, 12.0, 24.0, 30.0, 2.0, 40.0, 5.5, 18.0],
        "orders": np.array([9, 7, 1, 4, 0, 2, 8, 1, 6, 3], dtype="int64"),
    }
)
LABELS = np.array([1, 1, 0, 1, 0, 0, 1, 0, 1, 0])
ROWS = pa.Table.from_pandas(FRAME, preserve_index=False)


def train(format: ModelFormat):
    """A tiny model of ``format``'s library, fit on FRAME."""
    if format == ModelFormat.XGBOOST:
        import xgboost

        return xgboost.XGBClassifier(n_estimators=4, max_depth=2).fit(FRAME, LABELS)
    if format == ModelFormat.LIGHTGBM:
        import lightgbm

        return lightgbm.LGBMClassifier(n_estimators=4, min_child_samples=1, verbose=-1).fit(FRAME, LABELS)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(FRAME, LABELS)
    if format != ModelFormat.ONNX:
        return model
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    # one input tensor of both columns side by side (the graph names no columns: `columns:` does)
    inputs = [("features", FloatTensorType([None, 2]))]
    return convert_sklearn(model, initial_types=inputs, options={id(model): {"zipmap": False}}, target_opset=17)


ENDPOINTS = {format: f"m-{format}" for format in ModelFormat}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Every format's model written at its version under one store root, all served by one MLServer."""
    root = str(tmp_path_factory.mktemp("store"))
    models, folders = {}, {}
    for format, endpoint in ENDPOINTS.items():
        model = train(format)
        signature = Signature.of_schema(ROWS.schema, model_columns(model) or ["tenure", "orders"])
        version = ModelVersion(endpoint, "v" + format.value.encode().hex().ljust(16, "0")[:16])
        folders[endpoint] = write_version(model, format, version, root, signature, ROWS)
        models[endpoint] = (model, version, signature)
    with ModelServer(folders) as server:
        yield server, models, folders


@pytest.mark.slow
@pytest.mark.parametrize("format", list(ModelFormat))
def test_every_format_is_answered_by_the_real_server(served, format):
    server, models, folders = served
    endpoint = ENDPOINTS[format]
    model, version, signature = models[endpoint]
    assert signature.inputs == (("tenure", "FP64"), ("orders", "INT64"))
    folder = Path(folders[endpoint])
    settings = json.loads((folder / MODEL_SETTINGS).read_text())
    assert settings["name"] == endpoint and settings["parameters"]["version"] == version.version
    assert Signature.from_json((folder / SIGNATURE).read_text()) == signature
    expected_file = {"sklearn": "model.joblib", "xgboost": "model.json", "lightgbm": "model.bst",
                     "onnx": "model.onnx", "mlflow": "MLmodel"}[format]  # fmt: skip
    assert (folder / expected_file).is_file()

    result = smoke_test(server.url, endpoint, ROWS, signature)
    assert result.rows == ROWS.num_rows and result.latency_ms > 0
    answer = infer(server.url, endpoint, inference_request(ROWS, signature))
    assert answer["model_name"] == endpoint and answer["model_version"] == version.version
    predicted = np.asarray(answer["outputs"][0]["data"]).reshape(ROWS.num_rows, -1)
    if format in (ModelFormat.SKLEARN, ModelFormat.MLFLOW):  # the labels the model gives in-process
        assert predicted[:, 0].tolist() == model.predict(FRAME).tolist()
    elif format == ModelFormat.ONNX:
        assert predicted[:, 0].tolist() == train(ModelFormat.SKLEARN).predict(FRAME).tolist()
    else:  # the boosters answer probabilities (xgboost: of the positive class; lightgbm: per class)
        probabilities = model.predict_proba(FRAME)[:, 1]
        assert np.allclose(predicted[:, -1], probabilities, atol=1e-5)


def test_a_complete_version_is_not_written_again(tmp_path):
    model = train(ModelFormat.SKLEARN)
    signature = Signature.of_schema(ROWS.schema, ["tenure", "orders"])
    version = ModelVersion("churn", "v" + "1" * 16)
    uri = write_version(model, ModelFormat.SKLEARN, version, str(tmp_path), signature)
    assert uri == f"{tmp_path}/_models/churn/{version.version}"
    written = Path(uri, "model.joblib")
    stamp = written.stat().st_mtime_ns
    assert write_version(model, ModelFormat.SKLEARN, version, str(tmp_path), signature) == uri
    assert written.stat().st_mtime_ns == stamp  # not written again
    # a file of the folder changed since: refused (not served), and left as it is
    written.write_bytes(b"left as it is")
    with pytest.raises(LayoutError, match=r"was changed after the serve task wrote it \(model.joblib\)"):
        write_version(model, ModelFormat.SKLEARN, version, str(tmp_path), signature)
    assert written.read_bytes() == b"left as it is"
    assert sorted(p.name for p in Path(uri).parent.iterdir()) == [version.version]  # no staging left
    # a write cut short (no model-settings.json yet) is written again, whole
    Path(uri, MODEL_SETTINGS).unlink()
    write_version(model, ModelFormat.SKLEARN, version, str(tmp_path), signature)
    assert Path(uri, "model.joblib").read_bytes() != b"left as it is" and Path(uri, MODEL_SETTINGS).is_file()
    assert sorted(p.name for p in Path(uri).parent.iterdir()) == [version.version]  # the old one removed aside


def test_a_changed_format_or_signature_is_a_new_version(tmp_path):
    """The version names what its folder holds: the same model file in another format, or with
    other input columns, is another version in a folder of its own (never the old layout under
    the old name); the same model served the same way is the same version."""
    model = train(ModelFormat.SKLEARN)
    digest = "sha256:" + "ab" * 32
    two = Signature.of_schema(ROWS.schema, ["tenure", "orders"])
    one = Signature.of_schema(ROWS.schema, ["tenure"])
    versions = {
        (format, signature): ModelVersion.of("churn", digest, format, signature.to_json())
        for format in (ModelFormat.SKLEARN, ModelFormat.MLFLOW)
        for signature in (one, two)
    }
    assert len({v.version for v in versions.values()}) == 4
    assert ModelVersion.of("churn", digest.upper(), "sklearn", two.to_json()) == versions[ModelFormat.SKLEARN, two]
    for signature in (one, two):
        version = versions[ModelFormat.SKLEARN, signature]
        uri = write_version(model, ModelFormat.SKLEARN, version, str(tmp_path), signature)
        assert Signature.from_json(Path(uri, SIGNATURE).read_text()) == signature
    assert sorted(p.name for p in (tmp_path / "_models" / "churn").iterdir()) == sorted(
        versions[ModelFormat.SKLEARN, s].version for s in (one, two)
    )


def test_a_model_of_another_format_is_a_clear_error(tmp_path):
    signature = Signature.of_schema(ROWS.schema, ["tenure", "orders"])
    version = ModelVersion("churn", "v" + "2" * 16)
    with pytest.raises(LayoutError, match=r"format xgboost serves an xgboost model .* sklearn.linear_model"):
        write_version(train(ModelFormat.SKLEARN), ModelFormat.XGBOOST, version, str(tmp_path), signature)
    assert not Path(version.location(str(tmp_path))).exists()


@pytest.mark.slow
def test_a_model_the_server_cannot_load_fails_with_its_log(tmp_path):
    signature = Signature.of_schema(ROWS.schema, ["tenure", "orders"])
    version = ModelVersion("broken", "v" + "3" * 16)
    uri = write_version(train(ModelFormat.SKLEARN), ModelFormat.SKLEARN, version, str(tmp_path), signature)
    Path(uri, "model.joblib").write_bytes(b"not a joblib file")
    with pytest.raises(ModelServerError) as failure, ModelServer({"broken": uri}, timeout=60):
        pass
    assert "did not serve `broken`" in str(failure.value) and "the server's log ends" in str(failure.value)


@pytest.mark.slow
def test_a_wrong_answer_fails_the_smoke_test_saying_what_was_sent(served):
    server, models, _ = served
    _, _, signature = models[ENDPOINTS[ModelFormat.SKLEARN]]
    wrong = Signature((("tenure", "FP64"), ("orders", "INT64"), ("extra", "FP64")))
    rows = ROWS.append_column("extra", pa.array([1.0] * ROWS.num_rows))
    with pytest.raises(SmokeFailed, match=r"sent 10 rows of tenure FP64, orders INT64, extra FP64; POST .* answered"):
        smoke_test(server.url, ENDPOINTS[ModelFormat.SKLEARN], rows, wrong)
    with pytest.raises(SmokeFailed, match="answered 404"):
        smoke_test(server.url, "no-such-model", ROWS, signature)


def test_signature_types_and_request():
    table = pa.table(
        {
            "f32": pa.array([1.5], pa.float32()),
            "i32": pa.array([2], pa.int32()),
            "flag": pa.array([True]),
            "name": pa.array(["a"]),
            "price": pa.array([Decimal("19.99")], pa.decimal128(10, 2)),
            "count": pa.array([3], pa.decimal128(38, 0)),
            "tier": pa.array(["gold"]).dictionary_encode(),
        }
    )
    signature = Signature.of_schema(table.schema, table.column_names)
    assert signature.inputs == (
        ("f32", "FP32"), ("i32", "INT32"), ("flag", "BOOL"), ("name", "BYTES"), ("price", "FP64"),
        ("count", "INT64"), ("tier", "BYTES"),
    )  # fmt: skip
    assert Signature.from_json(signature.to_json()) == signature
    request = inference_request(table, signature)
    assert request["parameters"] == {"content_type": "pd"}
    by_name = {item["name"]: item for item in request["inputs"]}
    assert by_name["price"]["data"] == [19.99] and by_name["count"]["data"] == [3]
    assert by_name["tier"] == {
        "name": "tier", "shape": [1], "datatype": "BYTES", "data": ["gold"], "parameters": {"content_type": "str"},
    }  # fmt: skip
    json.dumps(request)  # JSON as it is sent
    with pytest.raises(ValueError, match=r"column `day` is date32.*cast it"):
        Signature.of_schema(pa.schema([("day", pa.date32())]), ["day"])


def test_response_problems():
    good = {"outputs": [{"name": "predict", "shape": [2, 1], "datatype": "FP64", "data": [0.1, 0.2]}]}
    assert response_problem(good, 2) is None
    assert response_problem({"outputs": []}, 2) == "the response has no outputs"
    assert "shape [3, 1], not 2 rows" in response_problem(
        {"outputs": [{"name": "predict", "shape": [3, 1], "datatype": "FP64", "data": [1, 2, 3]}]}, 2
    )
    assert "is BYTES, not numbers" in response_problem(
        {"outputs": [{"name": "label", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}, 2
    )


def test_model_columns_of_each_library():
    assert model_columns(train(ModelFormat.SKLEARN)) == ["tenure", "orders"]
    assert model_columns(train(ModelFormat.XGBOOST).get_booster()) == ["tenure", "orders"]
    assert model_columns(train(ModelFormat.LIGHTGBM).booster_) == ["tenure", "orders"]
    assert model_columns(train(ModelFormat.ONNX)) is None  # one input tensor: the spec's `columns:` name them
    from sklearn.linear_model import LogisticRegression

    assert model_columns(LogisticRegression().fit(FRAME.to_numpy(), LABELS)) is None


def _committed(root: str, dag_id: str, run_id: str, step: str, value) -> ArtifactRef:
    ref = ArtifactRef(dag_id, step)
    location = Location.of(ref.location(root, run_id))
    location.commit({**write_output(location, location.begin(), value), "step": step})
    return ref


def _plan(root: str, model: ArtifactRef, sample: ArtifactRef, **fields) -> ServePlan:
    return ServePlan(
        step="train", endpoint="churn", format=ModelFormat.SKLEARN, model=model, sample=sample, artifacts=root,
        runner=Runner.LOCAL, warehouse="aq_warehouse", results_schema=None, spec_hash="x", **fields,
    )  # fmt: skip


def test_sample_rows_take_the_models_columns_of_the_sample(tmp_path):
    root = str(tmp_path)
    wide = FRAME.assign(customer_id=range(len(FRAME)), plan=["a"] * len(FRAME))
    model = train(ModelFormat.SKLEARN)
    model_ref = _committed(root, "p", "r1", "train", model)
    sample_ref = _committed(root, "p", "r1", "features", wide)
    location = Location.of(model_ref.location(root, "r1"))
    read = read_model(location, location.read_output("train"), "train")
    assert pickle.dumps(read) == pickle.dumps(model)

    rows, signature = sample_rows(_plan(root, model_ref, sample_ref, smoke_rows=3), "r1", read)
    assert rows.column_names == ["tenure", "orders"] and rows.num_rows == 3
    assert signature.inputs == (("tenure", "FP64"), ("orders", "INT64"))

    rows, signature = sample_rows(_plan(root, model_ref, sample_ref, columns=("orders", "plan")), "r1", read)
    assert signature.inputs == (("orders", "INT64"), ("plan", "BYTES")) and rows.num_rows == 5

    with pytest.raises(LayoutError, match=r"the model names `tenure`, which the sample `features` does not have"):
        narrow = _committed(root, "p", "r2", "features", wide.drop(columns=["tenure"]))
        sample_rows(_plan(root, model_ref, narrow), "r2", read)
    with pytest.raises(LayoutError, match=r"does not name its input columns: list them in `columns:`"):
        from sklearn.linear_model import LogisticRegression

        sample_rows(_plan(root, model_ref, sample_ref), "r1", LogisticRegression().fit(FRAME.to_numpy(), LABELS))


def test_current_is_replaced_whole(tmp_path):
    root = str(tmp_path)
    assert read_current(root, "churn") is None
    first = Promotion(
        endpoint="churn", version="v" + "a" * 16, format="sklearn", storage_uri=f"{root}/_models/churn/v",
        model_digest="sha256:" + "a" * 64, dag_id="p", run_id="r", step="train", promoted_at="2026-01-01T00:00:00Z",
    )  # fmt: skip
    write_current(root, first)
    assert read_current(root, "churn") == first
    second = dataclasses.replace(first, version="v" + "b" * 16)
    write_current(root, second)
    assert read_current(root, "churn") == second
    assert sorted(p.name for p in (tmp_path / "_models" / "churn").iterdir()) == ["current.json"]


@pytest.mark.slow
def test_a_version_on_an_object_store_is_written_localized_and_served(object_store):
    """The serve task on an object store: the version folder uploaded (``model-settings.json``
    last), ``current.json`` replaced, and a local copy of the folder served (`aq-airflow serve`
    and the local serve task)."""
    scheme, bucket = object_store
    bucket("models")
    root = f"{scheme}://models/aq"
    model = train(ModelFormat.SKLEARN)
    signature = Signature.of_schema(ROWS.schema, model_columns(model))
    version = ModelVersion("churn", "v" + "4" * 16)
    uri = write_version(model, ModelFormat.SKLEARN, version, root, signature, ROWS)
    assert uri == f"{root}/_models/churn/{version.version}"
    assert write_version(model, ModelFormat.SKLEARN, version, root, signature, ROWS) == uri  # complete: kept
    assert read_current(root, "churn") is None
    promotion = Promotion(
        endpoint="churn", version=version.version, format="sklearn", storage_uri=uri, model_digest="sha256:" + "4" * 64,
        dag_id="p", run_id="r", step="train", promoted_at="2026-01-01T00:00:00Z",
    )  # fmt: skip
    write_current(root, promotion)
    assert read_current(root, "churn") == promotion
    with local_folder(uri) as folder, ModelServer({"churn": folder}) as server:
        files = sorted(p.name for p in Path(folder).iterdir())
        assert files == ["digests.json", MODEL_SETTINGS, "model.joblib", SIGNATURE]
        answer = infer(server.url, "churn", inference_request(ROWS, signature))
    assert answer["model_version"] == version.version
    assert np.asarray(answer["outputs"][0]["data"]).ravel().tolist() == model.predict(FRAME).tolist()


@pytest.mark.slow
def test_concurrent_first_uses_build_the_model_server_venv_once(tmp_path):
    """Two processes (xdist workers, tasks) needing the venv at once: one builds it under the file
    lock, the other waits and uses it; neither sees a half-built venv."""
    env = {**os.environ, "AQ_MODEL_SERVER_VENV": str(tmp_path / "venv")}
    code = "from aq_airflow.serving.model_server import server_python; print(server_python())"
    both = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    paths = {process.communicate(timeout=600)[0].strip() for process in both}
    assert [process.returncode for process in both] == [0, 0]
    assert paths == {str(tmp_path / "venv" / "bin" / "python")}
    assert (tmp_path / "venv" / ".installed").read_text().strip() == lock_digest()
    version = subprocess.run([tmp_path / "venv" / "bin" / "mlserver", "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == "mlserver, version 1.7.1"


def test_a_users_folder_without_mlserver_is_refused_and_left_as_it_is(tmp_path):
    """`AQ_MODEL_SERVER_VENV` naming a folder of the user's (a project venv before MLServer is
    installed into it, a home folder) is never built over or removed: the first use says how to
    fix it, and the folder keeps every file."""
    folder = tmp_path / "project-venv"
    (folder / "bin").mkdir(parents=True)
    (folder / "keep.txt").write_text("the user's")
    (folder / "bin" / "python").write_text("#!/bin/sh\n")
    env = {**os.environ, "AQ_MODEL_SERVER_VENV": str(folder)}
    code = "from aq_airflow.serving.model_server import server_python; print(server_python())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"$AQ_MODEL_SERVER_VENV={folder} is a folder without mlserver" in done.stderr
    assert "model-server.lock" in done.stderr and "or unset AQ_MODEL_SERVER_VENV" in done.stderr
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["bin", "bin/python", "keep.txt"]
    assert (folder / "keep.txt").read_text() == "the user's"
    assert not (tmp_path / ".project-venv.aq-airflow").exists()


def test_a_model_of_the_steps_own_classes_says_they_must_come_from_installed_libraries(tmp_path):
    """A step's model whose class lives in the step's code package (a custom transformer) does not
    load where the serve task runs: the message says why and what a served model is made of."""
    code = tmp_path / "code"
    (code / "churn_steps").mkdir(parents=True)
    (code / "churn_steps" / "__init__.py").write_text("class Scaler:\n    factor = 2\n")
    commit = (
        "import sys; from churn_steps import Scaler; from tests.test_serving_layout import _committed; "
        "_committed(sys.argv[1], 'p', 'r', 'train', Scaler())"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", commit, str(tmp_path)], env=env, check=True, cwd=Path(__file__).parent.parent)
    location = Location.of(ArtifactRef("p", "train").location(str(tmp_path), "r"))
    with pytest.raises(LayoutError) as refused:
        read_model(location, location.read_output("train"), "train")
    message = str(refused.value)
    assert "its class comes from module `churn_steps`, which the serve task cannot import" in message
    assert "a served model's classes must come from installed libraries" in message
    assert "the step's own code package is not importable" in message
