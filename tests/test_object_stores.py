"""Artifacts on an object store, against a local emulator: the production path of a pod profile
(`artifacts: s3://…`) with the local runner, so Celery workers on several machines can share it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from aq_airflow.runtime.artifacts import Location, MissingArtifact, write_batches
from aq_airflow.runtime.values import read_input
from tests.conftest import EXAMPLES


@pytest.fixture(params=["s3", "gs"])
def store(request):
    """An object store on a local emulator: (scheme, make_bucket)."""
    emulator = request.getfixturevalue({"s3": "s3_emulator", "gs": "gcs_emulator"}[request.param])
    return request.param, emulator


def committed_steps(root: str) -> set[str]:
    """The steps with a committed output under a run folder of the store."""
    import pyarrow.fs as pafs

    base = Location.of(root)
    files = base.fs.get_file_info(pafs.FileSelector(base.path, recursive=True))
    return {f.path.split("/")[-2] for f in files if f.base_name == "_manifest.json"}


def test_the_store_commits_and_reads(store):
    scheme, bucket = store
    bucket("store")
    location = Location.of(f"{scheme}://store/dag/run/step")
    with pytest.raises(MissingArtifact):
        location.read_manifest("step")
    attempt = location.begin()
    table = pa.table({"n": list(range(1000))})
    half = write_batches(location, attempt, table.schema, table.to_batches(max_chunksize=100))
    with pytest.raises(MissingArtifact):  # data written, manifest not yet: nothing reads as whole
        location.read_manifest("step")
    location.commit(half)
    assert read_input(location, "step", pa.Table).equals(table)


def test_the_churn_production_spec_runs_on_the_store_with_the_local_runner(run_dag, duckdb_warehouse, store):
    """The example's own spec (GKE profile, s3:// artifacts) with `cluster: local`: steps as
    processes writing to the emulated store, checks and metrics over the Parquet there, publish
    from it into the warehouse."""
    import duckdb

    scheme, bucket = store
    bucket("acme-ml")
    name = f"churn_{scheme}"
    text = (EXAMPLES / "churn_scoring.aq.yaml").read_text()
    text = text.replace("pipeline: churn_scoring", f"pipeline: {name}").replace("cluster: gke", "cluster: local")
    text = text.replace("retries: 2", "retries: 0").replace("artifacts: s3://", f"artifacts: {scheme}://")
    assert f"artifacts: {scheme}://acme-ml/aq" in text
    _, dag_run, states = run_dag(name, text, local=False)
    assert set(states.values()) == {"success"}, states
    run_root = f"{scheme}://acme-ml/aq/{name}/{dag_run.run_id}"
    assert committed_steps(run_root) == {"customers", "orders", "features", "train", "scores", "report"}
    report = Location.of(f"{run_root}/report")
    assert report.read_manifest()["files"] == ["report.md"]  # the command step wrote into the store
    with report.fs.open_input_stream(report.join("report.md")) as handle:
        assert handle.read().startswith(b"# Churn report")
    with duckdb.connect(str(duckdb_warehouse), read_only=True) as conn:
        checks = conn.execute(
            "SELECT step, name, outcome FROM aq_check_results WHERE dag_id = ? ORDER BY step, name", [name]
        ).fetchall()
        published = conn.execute("SELECT count(*) FROM analytics.churn_scores").fetchone()[0]
    assert ("scores", "one_row_per_customer", "passed") in checks  # checked over the Parquet in the store
    assert ("scores", "ids_present", "passed") in checks  # Great Expectations too
    scores = Location.of(f"{run_root}/scores").read_manifest()
    assert published == scores["rows"] > 0  # merged on customer_id from the Parquet in the store


def test_aq_airflow_run_puts_the_outputs_on_a_given_store(s3_emulator, tmp_path):
    import subprocess
    import sys

    client = s3_emulator("laptop-runs")
    (tmp_path / "s3_steps.py").write_text("def double(numbers):\n    return numbers.set_column(0, 'n', [[2, 4, 6]])\n")
    spec = tmp_path / "s3_run.aq.yaml"
    spec.write_text(
        "steps:\n"
        "  numbers: {sql: 'SELECT * FROM (VALUES (1), (2), (3)) t(n)'}\n"
        "  doubled:\n"
        "    python: s3_steps:double\n"
        "    inputs: [numbers]\n"
        "    checks: [{name: positive, column: n, between: [1, 10]}]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "aq_airflow.cli", "run", str(spec), "--date", "2026-03-01",
         "--workdir", str(tmp_path / "work"), "--artifacts", "s3://laptop-runs/aq"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "artifacts: s3://laptop-runs/aq" in result.stdout
    assert "positive                " in result.stdout and "passed" in result.stdout
    keys = {o["Key"].split("/")[-2:][0] for o in client.list_objects_v2(Bucket="laptop-runs")["Contents"]}
    assert {"numbers", "doubled"} <= keys
