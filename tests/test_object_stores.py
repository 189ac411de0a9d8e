"""Artifacts on an object store, against a local emulator (moto for S3, fake-gcs-server for GCS,
Azurite for Azure): the production path of a pod profile (`artifacts: s3://…`) with the local
runner, so Celery workers on several machines can share it."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from aq_airflow.artifacts.store import Location, MissingArtifact, write_batches
from aq_airflow.artifacts.values import read_input
from tests.conftest import AZURITE_KEY, EXAMPLES


def committed_steps(root: str) -> set[str]:
    """The steps with a committed output under a run folder of the store."""
    import pyarrow.fs as pafs

    base = Location.of(root)
    files = base.fs.get_file_info(pafs.FileSelector(base.path, recursive=True))
    return {f.path.split("/")[-2] for f in files if f.base_name == "_manifest.json"}


def test_the_store_commits_and_reads(object_store):
    scheme, bucket = object_store
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


def test_the_churn_production_spec_runs_on_the_store_with_the_local_runner(run_dag, duckdb_warehouse, object_store):
    """The example's own spec (GKE profile, s3:// artifacts) with `cluster: local`: steps as
    processes writing to the emulated store, checks and metrics over the Parquet there, publish
    from it into the warehouse."""
    import duckdb

    scheme, bucket = object_store
    bucket("acme-ml")
    name = f"churn_{scheme}"
    text = (EXAMPLES / "churn_scoring.aq.yaml").read_text()
    text = text.replace("pipeline: churn_scoring", f"pipeline: {name}").replace("cluster: gke", "cluster: local")
    text = text.replace("retries: 2", "retries: 0").replace("artifacts: s3://", f"artifacts: {scheme}://")
    assert f"artifacts: {scheme}://acme-ml/aq" in text
    _, dag_run, states = run_dag(name, text, local=False)
    assert set(states.values()) == {"success"}, states
    run_root = f"{scheme}://acme-ml/aq/{name}/{dag_run.run_id}"
    assert committed_steps(run_root) == {"customers", "orders", "features", "train", "evaluate", "approved", "scores",
                                         "report"}  # fmt: skip
    # the approved model promoted to the store's model repository (smoke-tested by a local MLServer)
    promotion = Location.of(f"{scheme}://acme-ml/aq/_models/churn")
    with promotion.fs.open_input_stream(promotion.join("current.json")) as handle:
        assert json.loads(handle.read())["run_id"] == dag_run.run_id
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


@pytest.mark.slow
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


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres", "snowflake"])
def test_publish_from_each_store_into_each_warehouse(warehouse, object_store, tmp_path, request):
    """A step's output in the store (several files' worth of row groups) loads into every
    warehouse straight from the store's filesystem."""
    import contextlib
    import uuid

    from aq_airflow.warehouse.transfer import publish
    from tests.test_publish import Hook

    scheme, bucket = object_store
    bucket("outputs")
    location = Location.of(f"{scheme}://outputs/dag/run/scores")
    table = pa.table({"id": list(range(50)), "score": [i / 50 for i in range(50)]})
    location.commit(write_batches(location, location.begin(), table.schema, table.to_batches(max_chunksize=7)))
    files = [location.join(f) for f in location.read_manifest()["files"]]
    schema = f"aq_{scheme}_{uuid.uuid4().hex[:8]}"
    patch = contextlib.nullcontext()
    if warehouse == "duckdb":
        import duckdb

        connect = lambda: duckdb.connect(str(tmp_path / "wh.duckdb"))  # noqa: E731
    elif warehouse == "postgres":
        import psycopg2

        dsn = request.getfixturevalue("postgres_dsn")
        connect = lambda: psycopg2.connect(dsn)  # noqa: E731
    else:
        import fakesnow
        import snowflake.connector

        patch = fakesnow.patch()
        connect = lambda: snowflake.connector.connect(database="db", schema=schema)  # noqa: E731
    with patch:
        assert publish(Hook(warehouse, connect), files, f"{schema}.scores", "append", [], location.fs) == 50
        conn = connect()
        try:
            cursor = conn if warehouse == "duckdb" else conn.cursor()
            cursor.execute(f"SELECT count(*), sum(id) FROM {schema}.scores")
            assert tuple(cursor.fetchone()) == (50, sum(range(50)))
            if warehouse == "postgres":
                cursor.execute(f"DROP SCHEMA {schema} CASCADE")
                conn.commit()
        finally:
            conn.close()


KILLED = """
import os, signal
import pyarrow as pa

def model(numbers):
    return {"rows": numbers.num_rows}

def killed_midway(numbers):
    def batches():
        yield pa.record_batch({"n": [1, 2, 3]})
        os.kill(os.getpid(), signal.SIGKILL)
    return batches()
"""


def test_a_killed_writer_leaves_no_output_on_the_store_that_reads_as_whole(object_store, tmp_path):
    """The runtime as a pod runs it, writing to the store: an attempt killed after writing part of
    its table withdrew the earlier attempt's manifest and committed none of its own (what it
    wrote, if anything reached the store, is never read)."""
    import json
    import os
    import subprocess
    import sys

    from aq_airflow.runtime import contract

    scheme, bucket = object_store
    bucket("runs")
    root = f"{scheme}://runs/dag/manual__1"
    numbers = Location.of(f"{root}/numbers")
    table = pa.table({"n": list(range(5))})
    numbers.commit(write_batches(numbers, numbers.begin(), table.schema, table.to_batches()))
    (tmp_path / "killed_steps.py").write_text(KILLED)

    def run(function: str) -> subprocess.CompletedProcess:
        path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "PYTHONPATH": path, contract.STEP: "retried", contract.OUTPUT: f"{root}/retried",
               contract.CONTEXT: json.dumps({"run_id": "manual__1", "ds": "2026-03-01", "params": {}}),
               contract.INPUTS: contract.encode_inputs({"numbers": "numbers"}, as_list=False),
               contract.input_variable("numbers"): numbers.uri}  # fmt: skip
        command = [sys.executable, "-m", "aq_airflow.runtime", "--function", f"killed_steps:{function}"]
        return subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)

    first = run("model")
    assert first.returncode == 0, first.stderr  # an earlier attempt committed an output ...
    retried = Location.of(f"{root}/retried")
    assert retried.read_manifest()["kind"] == "object"
    assert run("killed_midway").returncode == -9  # ... the retry dies after writing part of its table
    with pytest.raises(MissingArtifact, match="failed before committing its output"):
        retried.read_manifest("retried")


def test_azure_uri_forms(azure_emulator):
    """`az://` as well as `abfs://`, and the account named in the URI (ADLS Gen2's form) rather
    than the environment's."""
    azure_emulator("forms")
    table = pa.table({"n": [1, 2, 3]})
    for uri in ("abfs://forms/a", "abfss://forms/b", "az://forms/c",
                "abfs://forms@devstoreaccount1.dfs.core.windows.net/d"):  # fmt: skip
        location = Location.of(uri)
        location.commit(write_batches(location, location.begin(), table.schema, table.to_batches()))
    assert read_input(Location.of("az://forms/a"), "a", pa.Table).equals(table)
    assert read_input(Location.of("abfs://forms/d"), "d", pa.Table).equals(table)


@pytest.mark.parametrize(
    ("environment", "uri", "expected"),
    [
        ({"AZURE_STORAGE_ACCOUNT_NAME": "acme"}, "abfs://c/p", {"account_name": "acme"}),  # DefaultAzureCredential
        ({"AZURE_STORAGE_ACCOUNT_NAME": "acme", "AZURE_STORAGE_ACCOUNT_KEY": "k2V5"}, "az://c/p",
         {"account_name": "acme", "account_key": "k2V5"}),
        ({"AZURE_STORAGE_ACCOUNT_NAME": "acme", "AZURE_STORAGE_SAS_TOKEN": "?sv=1&sig=x"}, "abfs://c/p",
         {"account_name": "acme", "sas_token": "sv=1&sig=x"}),
        ({}, "abfss://c@other.dfs.core.windows.net/p", {"account_name": "other",
         "blob_storage_authority": ".blob.core.windows.net", "dfs_storage_authority": ".dfs.core.windows.net"}),
        ({"AZURE_STORAGE_ACCOUNT_NAME": "acme", "AZURE_STORAGE_ACCOUNT_KEY": "k2V5"},
         "abfs://c@other.blob.core.chinacloudapi.cn/p",  # another account: not the environment's key
         {"account_name": "other", "blob_storage_authority": ".blob.core.chinacloudapi.cn",
          "dfs_storage_authority": ".dfs.core.chinacloudapi.cn"}),
        ({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}, "abfs://c/p",
         {"account_name": "devstoreaccount1", "account_key": AZURITE_KEY, "blob_storage_authority": "127.0.0.1:10000",
          "dfs_storage_authority": "127.0.0.1:10000", "blob_storage_scheme": "http", "dfs_storage_scheme": "http"}),
        ({"AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=gov;AccountKey=a2V5;"
          "EndpointSuffix=core.usgovcloudapi.net"}, "abfs://c/p",
         {"account_name": "gov", "account_key": "a2V5", "blob_storage_authority": ".blob.core.usgovcloudapi.net",
          "dfs_storage_authority": ".dfs.core.usgovcloudapi.net", "blob_storage_scheme": "https",
          "dfs_storage_scheme": "https"}),
        ({"AZURE_STORAGE_CONNECTION_STRING": "AccountName=acme;SharedAccessSignature=sv=1&sig=y;"
          "BlobEndpoint=https://acme.blob.core.windows.net/"}, "abfs://c/p",
         {"account_name": "acme", "sas_token": "sv=1&sig=y", "blob_storage_authority": ".blob.core.windows.net",
          "dfs_storage_authority": ".dfs.core.windows.net", "blob_storage_scheme": "https",
          "dfs_storage_scheme": "https"}),
    ],
)  # fmt: skip
def test_azure_settings_come_from_the_sdks_variables(environment, uri, expected, monkeypatch):
    """What the Azure SDKs and adlfs read, as pyarrow's AzureFileSystem options."""
    from aq_airflow.artifacts import store as artifacts

    for variable in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY",
                     "AZURE_STORAGE_SAS_TOKEN"):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    made = []
    monkeypatch.setattr(artifacts.pafs, "AzureFileSystem", lambda name, **options: made.append(
        {"account_name": name, **options}))  # fmt: skip
    artifacts._azure.cache_clear()
    try:
        _, path = artifacts.filesystem(uri)
    finally:
        artifacts._azure.cache_clear()
    assert made == [expected] and path == "c/p"


def test_an_azure_store_without_an_account_says_so(monkeypatch):
    for variable in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ValueError, match="abfs://c/p: no storage account; set AZURE_STORAGE_ACCOUNT_NAME"):
        Location.of("abfs://c/p")
