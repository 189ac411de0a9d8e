"""Artifacts on an object store, against a local emulator: the production path of a pod profile
(`artifacts: s3://…`) with the local runner, so Celery workers on several machines can share it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from aq_airflow.runtime.artifacts import Location, MissingArtifact, write_batches
from aq_airflow.runtime.values import read_input
from tests.conftest import EXAMPLES


def test_the_store_commits_and_reads_on_s3(s3_emulator):
    s3_emulator("store")
    location = Location.of("s3://store/dag/run/step")
    with pytest.raises(MissingArtifact):
        location.read_manifest("step")
    attempt = location.begin()
    table = pa.table({"n": list(range(1000))})
    half = write_batches(location, attempt, table.schema, table.to_batches(max_chunksize=100))
    with pytest.raises(MissingArtifact):  # data written, manifest not yet: nothing reads as whole
        location.read_manifest("step")
    location.commit(half)
    assert read_input(location, "step", pa.Table).equals(table)


def test_the_churn_production_spec_runs_on_s3_with_the_local_runner(run_dag, duckdb_warehouse, s3_emulator):
    """The example's own spec (GKE profile, s3:// artifacts) with `cluster: local`: steps as
    processes writing to the S3 emulator, checks and metrics over the Parquet there, publish
    from it into the warehouse."""
    import duckdb

    client = s3_emulator("acme-ml")
    text = (EXAMPLES / "churn_scoring.aq.yaml").read_text()
    text = text.replace("pipeline: churn_scoring", "pipeline: churn_s3").replace("cluster: gke", "cluster: local")
    text = text.replace("retries: 2", "retries: 0")
    assert "artifacts: s3://acme-ml/aq" in text
    _, dag_run, states = run_dag("churn_s3", text, local=False)
    assert set(states.values()) == {"success"}, states
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="acme-ml", Prefix="aq/churn_s3/")["Contents"]]
    for step in ("customers", "features", "train", "scores", "report"):
        assert f"aq/churn_s3/{dag_run.run_id}/{step}/_manifest.json" in keys
    with duckdb.connect(str(duckdb_warehouse), read_only=True) as conn:
        checks = conn.execute(
            "SELECT step, name, outcome FROM aq_check_results WHERE dag_id = 'churn_s3' ORDER BY step, name"
        ).fetchall()
        published = conn.execute("SELECT count(*) FROM analytics.churn_scores").fetchone()[0]
    assert ("scores", "one_row_per_customer", "passed") in checks  # checked over the Parquet on S3
    assert ("scores", "ids_present", "passed") in checks  # Great Expectations too
    scores = Location.of(f"s3://acme-ml/aq/churn_s3/{dag_run.run_id}/scores").read_manifest()
    assert published == scores["rows"] > 0  # merged on customer_id from the Parquet on S3


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
