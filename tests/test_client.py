"""``aq_airflow.client``: a pipeline's runs and step outputs read back from the artifact store
that a real ``aq-airflow run`` wrote (a local folder, and S3 on its emulator)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from aq_airflow.client import MissingOutput, Store, list_runs

pytestmark = pytest.mark.slow  # its module fixtures run pipelines with aq-airflow run

CLI = [sys.executable, "-m", "aq_airflow.cli"]

# Every function logs its call (calls.log beside the spec): resume tests count what ran.
STEPS = """
import os

import pyarrow as pa

LOG = os.path.join(CALLS_FOLDER, "calls.log")


def _called(name):
    with open(LOG, "a") as handle:
        handle.write(name + "\\n")


def double(numbers):
    _called("double")
    return pa.table({"n": [2 * v for v in numbers.column("n").to_pylist()]})


def fit(doubled):
    _called("fit")
    return {"weight": sum(doubled.column("n").to_pylist())}


def per_region(model, item):
    _called("per_region")
    if item == "fail":
        raise ValueError("no such region")
    return pa.table({"region": [item], "score": [model["weight"] * len(item)]})


def together(per_region):
    _called("together")
    return per_region
"""

SPEC = """
pipeline: {name}
params: {{regions: [eu, us, apac]}}
steps:
  numbers:
    sql: SELECT * FROM (VALUES (1), (2), (3)) t(n)
  doubled:
    python: {module}:double
    inputs: [numbers]
    checks: [{{name: small, column: n, between: [1, 100]}}]
  model:
    python: {module}:fit
    inputs: [doubled]
  per_region:
    python: {module}:per_region
    foreach: {{param: regions}}
    inputs: [model]
  together:
    python: {module}:together
    inputs: [per_region]
"""


def make_spec(folder: Path, name: str) -> Path:
    """A small pipeline with a sql step, a table, an object, a mapped step and its fan-in."""
    module = f"{name}_steps"
    # the log beside the spec: the module runs from the run's code package, extracted elsewhere
    (folder / f"{module}.py").write_text(STEPS.replace("CALLS_FOLDER", repr(str(folder))))
    spec = folder / f"{name}.aq.yaml"
    spec.write_text(textwrap.dedent(SPEC.format(name=name, module=module)))
    return spec


def aq_run(spec: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "run", str(spec), "--date", "2026-03-01", "--workdir", str(workdir), *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def calls(spec: Path) -> list[str]:
    log = spec.parent / "calls.log"
    return log.read_text().split() if log.exists() else []


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    folder = tmp_path_factory.mktemp("client")
    spec = make_spec(folder, "client_demo")
    result = aq_run(spec, folder / "work")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return Store(folder / "work" / "artifacts")


def test_runs_are_listed_with_their_steps_items_and_record(store):
    pipeline = store.pipeline("client_demo")
    [run] = pipeline.runs()
    assert run.run_id.startswith("manual__") and run.state == "success"
    assert run.record["logical_date"].startswith("2026-03-01") and run.record["ran"][0] == "numbers"
    assert len(run.record["spec_sha256"]) == 64
    assert set(run.steps) == {"numbers", "doubled", "model", "per_region", "together"}
    assert all(step.committed for step in run.steps.values())
    assert (run.steps["per_region"].items, run.steps["per_region"].committed_items) == (3, 3)
    assert run.steps["model"].items is None and not run.steps["model"].mapped
    assert pipeline.latest_run().run_id == run.run_id == pipeline.latest_run(successful=True).run_id
    assert run.written == run.folder.written and run.written.tzinfo is not None
    assert [f.run_id for f in list_runs(store.root, "client_demo")] == [run.run_id]  # the one shared listing
    assert store.pipeline("no_such_pipeline").runs() == []


def test_tables_objects_and_manifests_read_as_the_next_step_gets_them(store):
    pipeline = store.pipeline("client_demo")
    doubled = pipeline.step("doubled")  # the latest run holding it committed
    assert doubled.read().equals(pa.table({"n": [2, 4, 6]}))
    assert doubled.read(as_="pandas")["n"].tolist() == [2, 4, 6]
    assert doubled.manifest["kind"] == "table" and doubled.manifest["rows"] == 3
    assert doubled.manifest["schema"] == [["n", "int64"]]
    assert pipeline.step("numbers").read().column("n").to_pylist() == [1, 2, 3]  # a sql step's export
    model = pipeline.latest_run().step("model")
    assert model.read() == {"weight": 12} and model.manifest["kind"] == "object"
    with pytest.raises(ValueError, match="use one of arrow, pandas"):
        doubled.read(as_="excel")
    if importlib.util.find_spec("polars") is None:  # not in the lock: the library is named, not a pickle
        with pytest.raises(ModuleNotFoundError, match=r"^as_='polars' needs polars: pip install polars$"):
            doubled.read(as_="polars")


def test_a_mapped_step_reads_per_item_as_a_list_or_as_the_fan_in(store):
    per_region = store.pipeline("client_demo").step("per_region")
    assert per_region.mapped and per_region.items == ["eu", "us", "apac"]
    assert per_region.read(map_index=2).to_pylist() == [{"region": "apac", "score": 48}]
    assert per_region.item(1).manifest["rows"] == 1
    assert [t.column("region")[0].as_py() for t in per_region.read_items()] == ["eu", "us", "apac"]
    fan_in = per_region.read()  # as the runtime's gather: an `item` column first
    assert fan_in.column_names == ["item", "region", "score"]
    assert fan_in.column("item").to_pylist() == ["eu", "us", "apac"]
    assert per_region.read(as_="pandas")["score"].tolist() == [24, 24, 48]
    with pytest.raises(TypeError, match="each item has its own manifest"):
        per_region.manifest  # noqa: B018
    with pytest.raises(IndexError, match="3 item"):
        per_region.item(3)


def test_uncommitted_and_missing_outputs_are_errors_naming_step_run_and_path(store, tmp_path):
    copy = tmp_path / "artifacts"
    shutil.copytree(store.root, copy)
    pipeline = Store(copy).pipeline("client_demo")
    run = pipeline.latest_run()
    (Path(run.uri) / "doubled" / "_manifest.json").unlink()  # as a step killed before its commit leaves it
    (Path(run.uri) / "model" / "_manifest.json").write_text("{not json")
    (Path(run.uri) / "per_region" / "1" / "_manifest.json").unlink()
    run = pipeline.latest_run()
    assert not run.steps["doubled"].committed and run.steps["per_region"].committed_items == 2
    with pytest.raises(MissingOutput) as error:
        run.step("doubled").read()
    message = str(error.value)
    assert f"step `doubled` of run `{run.run_id}`" in message and f"{run.uri}/doubled" in message
    with pytest.raises(MissingOutput, match=r"step `model` .* not valid JSON"):
        run.step("model").read()
    with pytest.raises(MissingOutput, match=r"step `per_region` \(item 1\) of run"):
        run.step("per_region").read()
    assert run.step("per_region").read(map_index=0).num_rows == 1  # the committed items still read
    with pytest.raises(MissingOutput, match=r"step `report` has no output in run .* \(steps there: doubled, model"):
        run.step("report")
    with pytest.raises(MissingOutput, match="no run with a committed output of step `doubled`"):
        pipeline.step("doubled")
    with pytest.raises(MissingOutput, match="has no run `nope`"):
        pipeline.run("nope")


def test_a_folder_no_step_wrote_is_not_a_run(store, tmp_path):
    root = tmp_path / "store"
    (root / "client_demo" / "notes").mkdir(parents=True)
    (root / "client_demo" / "notes" / "readme.txt").write_text("not a run")
    assert Store(root).pipeline("client_demo").runs() == []


def test_the_client_reads_an_object_store(s3_emulator, tmp_path):
    """Listing and reading on S3 (moto), where `aq-airflow run --artifacts s3://...` wrote."""
    s3_emulator("client-runs")
    spec = make_spec(tmp_path, "client_s3")
    result = aq_run(spec, tmp_path / "work", "--artifacts", "s3://client-runs/aq")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    pipeline = Store("s3://client-runs/aq").pipeline("client_s3")
    [run] = pipeline.runs()
    assert run.state == "success" and run.steps["per_region"].items == 3
    assert run.uri == f"s3://client-runs/aq/client_s3/{run.run_id}"
    assert pipeline.step("doubled").read().column("n").to_pylist() == [2, 4, 6]
    assert pipeline.step("model").read() == {"weight": 12}
    assert pipeline.step("per_region").read().column("item").to_pylist() == ["eu", "us", "apac"]
    assert json.loads(json.dumps(run.step("together").manifest))["rows"] == 3


def test_the_client_imports_no_airflow():
    code = "import sys, aq_airflow.client; print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
