"""A step's model, written in the file layout its format's model server reads, at a version's
folder in the artifact store (``artifacts.model_repository``), with its signature beside it.

One version folder per format, read by MLServer as it is (``aq-airflow serve``, the local serve
task's smoke test) and by KServe's runtimes at ``/mnt/models``:

- sklearn: ``model.joblib`` (the name KServe's and MLServer's sklearn servers look for);
- xgboost: ``model.json``, the booster of an ``XGBModel`` (or a ``Booster``);
- lightgbm: ``model.bst``, the booster of an ``LGBMModel`` (or a ``Booster``), as text;
- onnx: ``model.onnx`` (an ``onnx.ModelProto`` or its bytes), and ``aq_onnx_runtime.py``, a small
  MLServer runtime on onnxruntime, beside it: the model server venv needs no aq-airflow;
- mlflow: an MLflow model folder (``MLmodel``, the model pickled by ``mlflow.sklearn``). MLflow is
  not in the Airflow venv (mlflow-skinny changes the lock's pins), so the model server venv's
  MLflow writes it (:func:`write_mlflow`).

Beside the model: ``signature.json`` (``serving.signature``) and ``model-settings.json``
(MLServer's: the endpoint's name, the format's runtime, the version, reported back in every
response's ``model_version``). ``model-settings.json`` is written last: a folder holding it is
complete, and a version is never written twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from aq_airflow.artifacts.model_repository import ModelVersion
from aq_airflow.artifacts.root import artifact_uri
from aq_airflow.artifacts.store import Location, filesystem, iter_row_groups, refused
from aq_airflow.plan.model import ModelFormat, ServePlan
from aq_airflow.serving.model_server import server_environment, server_python
from aq_airflow.serving.signature import Signature

MODEL_SETTINGS = "model-settings.json"
SIGNATURE = "signature.json"
#: the sha256 of each file of the version folder but model-settings.json: a complete folder is
#: reused only while its files are these
DIGESTS = "digests.json"
#: each format's model file (mlflow: the folder itself) and MLServer runtime
MODEL_FILE = {
    ModelFormat.SKLEARN: "model.joblib",
    ModelFormat.XGBOOST: "model.json",
    ModelFormat.LIGHTGBM: "model.bst",
    ModelFormat.ONNX: "model.onnx",
    ModelFormat.MLFLOW: "",
}
RUNTIME = {
    ModelFormat.SKLEARN: "mlserver_sklearn.SKLearnModel",
    ModelFormat.XGBOOST: "mlserver_xgboost.XGBoostModel",
    ModelFormat.LIGHTGBM: "mlserver_lightgbm.LightGBMModel",
    ModelFormat.ONNX: "aq_onnx_runtime.OnnxModel",
    ModelFormat.MLFLOW: "mlserver_mlflow.MLflowRuntime",
}
#: the onnx runtime's module: package data (its folder's name is no package's), never imported
#: here, where neither mlserver nor onnxruntime is installed
ONNX_RUNTIME = Path(__file__).with_name("mlserver-runtimes") / "aq_onnx_runtime.py"


class LayoutError(ValueError):
    """The model or its sample cannot be served as the spec says: what to change."""


# where a served model is unpickled and loaded, and so where its classes must import from
_WHERE_MODELS_LOAD = (
    "The serve task unpickles the model in the Airflow worker, and the model server loads it, where the step's "
    "own code package is not importable: a served model's classes must come from installed libraries "
    "(scikit-learn, xgboost, lightgbm) at the step image's versions (the `serve` extra on the worker)"
)


def read_model(location: Location, manifest: dict, step: str) -> object:
    """The step's model: its pickle held to the manifest's digest, then unpickled (the store is a
    trust boundary: README)."""
    data = location.read_object(manifest, step)
    try:
        return pickle.loads(data)  # noqa: S301 - written by this pipeline's own step
    except ModuleNotFoundError as error:  # a class of the step's own code: no model server imports it
        raise LayoutError(
            f"step `{step}`'s model cannot be served: its class comes from module `{error.name}`, which the serve "
            f"task cannot import. {_WHERE_MODELS_LOAD} (a FunctionTransformer of a library function, say, rather "
            "than a class of your own), or export it as `format: onnx`"
        ) from None
    except Exception as error:
        raise refused(
            location.uri,
            step,
            f"its model does not unpickle here ({type(error).__name__}: {error}). {_WHERE_MODELS_LOAD}, not from "
            "the step's code",
        ) from None


def model_columns(model: object) -> list[str] | None:
    """The input columns a model names itself, or None: sklearn's ``feature_names_in_`` (an
    estimator or pipeline fit on a DataFrame; xgboost's and lightgbm's sklearn models too), an
    xgboost booster's ``feature_names``, a lightgbm booster's ``feature_name()``, an onnx graph's
    inputs when there is one per column."""
    names = getattr(model, "feature_names_in_", None)
    if names is None and callable(getattr(model, "get_booster", None)):
        names = model.get_booster().feature_names
    if names is None and type(model).__module__.startswith("xgboost"):
        names = getattr(model, "feature_names", None)
    if names is None and callable(getattr(model, "feature_name", None)):
        names = model.feature_name()
    if names is None and hasattr(model, "graph"):
        inputs = [item.name for item in model.graph.input]
        names = inputs if len(inputs) > 1 else None
    return [str(name) for name in names] if names is not None else None


def sample_rows(plan: ServePlan, run_id: str, model) -> tuple[pa.Table, Signature]:
    """The first ``smoke_rows`` rows of the sample table, of the model's input columns (the
    spec's ``columns:``, else the model's own), and the signature those columns' types make."""
    location = Location.of(artifact_uri(plan.artifacts, plan.sample, run_id))
    manifest = location.read_output(plan.sample.step)
    if manifest["kind"] != "table":
        raise LayoutError(
            f"the sample of `{plan.endpoint}`, step `{plan.sample.step}`'s output, is a {manifest['kind']}, not a "
            "table: name a step that returns the model's input rows in `sample:` under serve:"
        )
    batches: list[pa.RecordBatch] = []
    count = 0
    schema = None
    for batch in iter_row_groups(location, manifest):
        schema = batch.schema
        batches.append(batch)
        count += batch.num_rows
        if count >= plan.smoke_rows:
            break
    if schema is None or count == 0:
        raise LayoutError(
            f"the sample of `{plan.endpoint}`, step `{plan.sample.step}`'s table, has no rows: the smoke test needs "
            f"{plan.smoke_rows}"
        )
    columns = list(plan.columns) or model_columns(model)
    if not columns:
        raise LayoutError(
            f"the {type(model).__module__}.{type(model).__name__} of step `{plan.step}` does not name its input "
            f"columns: list them in `columns:` under serve: (columns of `{plan.sample.step}`: "
            f"{', '.join(schema.names)})"
        )
    missing = [name for name in columns if name not in schema.names]
    if missing:
        source = "`columns:` under serve:" if plan.columns else "the model"
        raise LayoutError(
            f"{source} names {', '.join(f'`{n}`' for n in missing)}, which the sample `{plan.sample.step}` does not "
            f"have (its columns: {', '.join(schema.names)}): fit the model on the sample's columns, or set "
            "`sample:`/`columns:` under serve:"
        )
    rows = pa.Table.from_batches(batches, schema).select(columns).slice(0, plan.smoke_rows)
    return rows, Signature.of_schema(rows.schema, columns)


def write_version(
    model, format: ModelFormat, version: ModelVersion, root: str, signature: Signature, rows: pa.Table | None = None
) -> str:
    """``model`` in ``format``'s layout at ``version``'s folder under ``root``: its storageUri. A
    complete folder (one with ``model-settings.json``) is left as it is. ``rows`` (the sample's,
    of the signature's columns) are needed by mlflow only."""
    uri = version.location(root)
    fs, path = filesystem(uri)
    if fs.get_file_info(f"{path}/{MODEL_SETTINGS}").type == pafs.FileType.File:
        _check_unchanged(fs, path, uri, _settings(format, version))
        return uri
    with tempfile.TemporaryDirectory(prefix="aq-model-version-") as scratch:
        staging = Path(scratch) / version.version
        write_layout(model, ModelFormat(format), version, signature, staging, rows)
        if isinstance(fs, pafs.LocalFileSystem):
            _move_into_place(staging, Path(path))
        else:
            _upload(staging, fs, path)
    return uri


def write_layout(
    model, format: ModelFormat, version: ModelVersion, signature: Signature, folder: Path, rows: pa.Table | None = None
) -> None:
    """The version's files in the local ``folder`` (made here): the model, its signature, and
    ``model-settings.json``."""
    folder.mkdir(parents=True)
    if format == ModelFormat.SKLEARN:
        import joblib

        joblib.dump(model, folder / MODEL_FILE[format])
    elif format == ModelFormat.XGBOOST:
        booster = model.get_booster() if callable(getattr(model, "get_booster", None)) else model
        _expect(booster, "xgboost", "Booster", format, "an xgboost model (XGBClassifier, XGBRegressor, ...) or Booster")
        booster.save_model(str(folder / MODEL_FILE[format]))
    elif format == ModelFormat.LIGHTGBM:
        booster = getattr(model, "booster_", model)
        _expect(booster, "lightgbm", "Booster", format, "a fitted lightgbm model (LGBMClassifier, ...) or Booster")
        booster.save_model(str(folder / MODEL_FILE[format]))
    elif format == ModelFormat.ONNX:
        data = model if isinstance(model, bytes) else getattr(model, "SerializeToString", lambda: None)()
        if not isinstance(data, bytes):
            raise LayoutError(f"format onnx serves an onnx ModelProto or its bytes; the step returned {_name(model)}")
        (folder / MODEL_FILE[format]).write_bytes(data)
        shutil.copyfile(ONNX_RUNTIME, folder / ONNX_RUNTIME.name)
    elif format == ModelFormat.MLFLOW:
        write_mlflow(model, rows, folder)
    (folder / SIGNATURE).write_text(signature.to_json() + "\n")
    digests = {
        item.relative_to(folder).as_posix(): hashlib.sha256(item.read_bytes()).hexdigest()
        for item in sorted(folder.rglob("*"))
        if item.is_file()
    }
    (folder / DIGESTS).write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    (folder / MODEL_SETTINGS).write_text(json.dumps(_settings(format, version), indent=1) + "\n")


def _settings(format: ModelFormat, version: ModelVersion) -> dict:
    """MLServer's model-settings.json of the version."""
    return {
        "name": version.endpoint,
        "implementation": RUNTIME[ModelFormat(format)],
        "parameters": {"uri": f"./{MODEL_FILE[ModelFormat(format)]}", "version": version.version},
    }


def _read(fs: pafs.FileSystem, path: str) -> bytes | None:
    """A file's bytes, or None when it is not there."""
    try:
        with fs.open_input_stream(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError:  # pyarrow's object stores say "not found" as an OSError
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        raise


def _check_unchanged(fs: pafs.FileSystem, path: str, uri: str, settings: dict) -> None:
    """A complete version folder is reused only as it was written: its files those its
    ``digests.json`` lists (a folder written before digests were recorded is taken as it is) and its
    ``model-settings.json`` this version's; else a :class:`LayoutError` saying what to do."""
    try:
        written = json.loads(_read(fs, f"{path}/{MODEL_SETTINGS}") or b"")
    except ValueError:
        written = None
    if isinstance(written, dict) and written.get("implementation") not in (None, settings["implementation"]):
        raise LayoutError(
            f"the version folder {uri} holds this model for {written.get('implementation')}, written when the spec "
            f"said another `format:` (a version is the model's digest, whatever its format); delete the folder to "
            f"have the serve task write it for {settings['implementation']}"
        )
    recorded = _read(fs, f"{path}/{DIGESTS}")
    if recorded is None:
        return
    changed = []
    try:
        digests = json.loads(recorded)
        for name, digest in sorted(digests.items()):
            data = _read(fs, f"{path}/{name}")
            if data is None or hashlib.sha256(data).hexdigest() != digest:
                changed.append(name)
    except (ValueError, AttributeError, TypeError):
        changed.append(DIGESTS)
    if written != settings:
        changed.append(MODEL_SETTINGS)
    if changed:
        raise LayoutError(
            f"the version folder {uri} was changed after the serve task wrote it ({', '.join(changed)}): its files "
            "are not this model's, and are not served; delete the folder to have the serve task write it again"
        )


def _expect(value, module: str, name: str, format: ModelFormat, wanted: str) -> None:
    if not (type(value).__module__.startswith(module) and type(value).__name__ == name):
        raise LayoutError(f"format {format} serves {wanted}; the step returned {_name(value)}")


def _name(value) -> str:
    """``a``/``an`` and the value's class, by its full name."""
    name = f"{type(value).__module__}.{type(value).__name__}"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


_MLFLOW_WRITER = """
import sys
import joblib
import mlflow.sklearn
import pandas
from mlflow.models import infer_signature
model = joblib.load(sys.argv[1])
rows = pandas.read_parquet(sys.argv[2])
mlflow.sklearn.save_model(model, sys.argv[3], signature=infer_signature(rows, model.predict(rows)))
"""


def write_mlflow(model, rows: pa.Table | None, folder: Path) -> None:
    """An MLflow model folder of ``model`` (an sklearn-compatible model: ``predict``) in
    ``folder``, written by the model server venv's MLflow, its signature inferred from ``rows``
    and the model's predictions of them (MLServer's MLflow runtime needs inputs and outputs)."""
    if not callable(getattr(model, "predict", None)):
        raise LayoutError(
            f"format mlflow serves a model with predict() (written by mlflow.sklearn); the step returned {_name(model)}"
        )
    import joblib

    if rows is None:
        raise LayoutError("format mlflow is written with sample rows: its signature needs the model's predictions")
    with tempfile.TemporaryDirectory(prefix="aq-mlflow-") as scratch:
        pickled, sample, written = (
            Path(scratch) / "model.joblib",
            Path(scratch) / "rows.parquet",
            Path(scratch) / "model",
        )
        joblib.dump(model, pickled)
        pq.write_table(rows, sample)
        done = subprocess.run(
            [server_python(), "-c", _MLFLOW_WRITER, str(pickled), str(sample), str(written)],
            capture_output=True, text=True, check=False, env=server_environment(),
        )  # fmt: skip
        if done.returncode != 0:
            raise LayoutError(f"MLflow could not write the model ({(done.stderr or done.stdout)[-2000:]})")
        for item in written.iterdir():
            shutil.move(str(item), folder / item.name)


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename a copy of the staged folder to ``target``. A complete folder there (another task's:
    the same version, the same files) is kept. An incomplete one (a write cut short) is renamed
    aside and removed there, never in place: another task may rename its complete folder to
    ``target`` meanwhile, and what is renamed aside then is that folder, whose files ours repeat."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if (target / MODEL_SETTINGS).exists():
        return
    beside = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    shutil.copytree(staging, beside)
    try:
        if target.exists():
            aside = target.with_name(f".{target.name}.incomplete.{uuid.uuid4().hex[:8]}")
            with contextlib.suppress(FileNotFoundError):
                os.rename(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.rename(beside, target)
    except OSError:  # another task renamed the same version first: the same files
        shutil.rmtree(beside, ignore_errors=True)


def _upload(staging: Path, fs: pafs.FileSystem, path: str) -> None:
    """The staged files to the object store folder ``path``, ``model-settings.json`` last."""
    local = pafs.LocalFileSystem()
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == MODEL_SETTINGS and p.parent == staging)
    for file in files:
        relative = file.relative_to(staging).as_posix()
        pafs.copy_files(str(file), f"{path}/{relative}", source_filesystem=local, destination_filesystem=fs)


@contextlib.contextmanager
def local_folder(storage_uri: str) -> Iterator[str]:
    """A version folder on this machine's disk: the folder itself when the store is local, else a
    temporary copy of its files (removed on exit)."""
    fs, path = filesystem(storage_uri)
    if isinstance(fs, pafs.LocalFileSystem):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="aq-model-") as scratch:
        target = os.path.join(scratch, os.path.basename(path.rstrip("/")))
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        files = [info.path for info in infos if info.type == pafs.FileType.File]
        if not files:
            raise FileNotFoundError(f"{storage_uri} holds no files: not a model version folder")
        local = pafs.LocalFileSystem()
        for file in files:
            relative = file[len(path.rstrip("/")) + 1 :]
            os.makedirs(os.path.dirname(os.path.join(target, relative)), exist_ok=True)
            pafs.copy_files(file, os.path.join(target, relative), source_filesystem=fs, destination_filesystem=local)
        yield target
