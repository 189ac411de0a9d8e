"""What every step output's manifest records of what made it (``artifacts.provenance``), on the
local runner with dag.test() and a DuckDB warehouse: python, command and sql steps, a retry's try
number, and the check and metric rows that carry the output's code digest and image."""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid

import pytest

from aq_airflow.artifacts.code_package import read_pin
from aq_airflow.artifacts.provenance import CodeVersion, ImageVersion, Provenance
from aq_airflow.artifacts.store import MANIFEST, Location
from aq_airflow.runtime import record
from tests.kube_api import image_id
from tests.test_execution import manifest, output_dir
from tests.test_kubernetes import cluster  # noqa: F401  (the loopback API server and its kubelet)
from tests.test_kubernetes import spec as k8s_spec

SPEC = """
pipeline: {name}
cluster: local
artifacts: {artifacts}
warehouse: {warehouse}
results_schema: {results}
params: {{factor: 3, note: hello}}
steps:
  numbers:
    sql: SELECT {numbers} WHERE '{{{{ ds }}}}' = '2026-03-01'
  scaled:
    python: prov_steps:scale
    inputs: [numbers]
    args: {{factor: "{{{{ params.factor }}}}", day: "{{{{ ds }}}}"}}
    checks:
      - {{name: n_present, not_null: n}}
    metrics:
      - {{name: rows, count: "*"}}
  report:
    command: [python, -c, "import os; open(os.path.join(os.environ['AQ_OUTPUT'], 'out.txt'), 'w').write('hi')"]
    inputs: [scaled]
  flaky:
    python: prov_steps:flaky
    retries: 1
    retry_delay: 1s
"""


@pytest.fixture
def prov_steps(tmp_path, monkeypatch):
    """Step functions on the steps' PYTHONPATH; ``flaky`` fails its first try (a marker file)."""
    folder = tmp_path / "steps"
    folder.mkdir()
    marker = tmp_path / "flaky-tried"
    (folder / "prov_steps.py").write_text(
        "import os\nimport pyarrow as pa\n\n"
        "def scale(numbers, factor, day):\n"
        "    return pa.table({'n': [v * int(factor) for v in numbers.column('n').to_pylist()]})\n\n"
        "def flaky():\n"
        f"    if not os.path.exists({str(marker)!r}):\n"
        f"        open({str(marker)!r}, 'w').close()\n"
        "        raise RuntimeError('first try fails')\n"
        "    return pa.table({'x': [1]})\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{folder}:{__import__('os').environ['PYTHONPATH']}")
    return folder


def _iso(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    assert moment.utcoffset() == datetime.timedelta(0), text  # UTC
    return moment


def _sha256(path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request, tmp_path, monkeypatch):
    """(connection id, results schema, the query of ten numbers, a function returning a table's
    rows) on DuckDB or PostgreSQL."""
    schema = f"aq_prov_{uuid.uuid4().hex[:8]}"
    if request.param == "duckdb":
        import duckdb

        path = str(tmp_path / "wh.duckdb")
        monkeypatch.setenv("AIRFLOW_CONN_PROV_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": path}))

        def rows(sql: str, params: list) -> list[tuple]:
            with duckdb.connect(path, read_only=True) as conn:
                return conn.execute(sql, params).fetchall()

        yield "prov_warehouse", schema, "range AS n FROM range(10)", rows
        return
    import psycopg2

    dsn = request.getfixturevalue("postgres_dsn")
    monkeypatch.setenv("AIRFLOW_CONN_PROV_WAREHOUSE", dsn.replace("postgresql://", "postgres://"))

    def rows(sql: str, params: list) -> list[tuple]:
        with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall()

    try:
        yield "prov_warehouse", schema, "n FROM generate_series(0, 9) AS n", rows
    finally:
        with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_every_output_records_what_made_it(run_dag, warehouse, prov_steps, tmp_path):
    from aq_airflow.pipeline_spec.load import SpecFile

    conn_id, results, numbers_sql, fetch = warehouse
    name = "prov_local"
    text = SPEC.format(name=name, artifacts=tmp_path / "artifacts", warehouse=conn_id, results=results,
                       numbers=numbers_sql)  # fmt: skip
    began = datetime.datetime.now(datetime.timezone.utc)
    _, dag_run, states = run_dag(name, text, local=False)  # the local profile, with its retries
    ended = datetime.datetime.now(datetime.timezone.utc)
    assert set(states.values()) == {"success"}, states
    spec_hash = hashlib.sha256(text.encode()).hexdigest()
    assert SpecFile("x.aq.yaml", text).sha256 == spec_hash  # the spec's sha256, whole
    made = {step: manifest(tmp_path, dag_run, name, step) for step in ("numbers", "scaled", "report", "flaky")}
    records = {step: Provenance.of(m) for step, m in made.items()}
    for step, made_by in records.items():
        assert made_by is not None, step
        assert made_by.run_id == dag_run.run_id and made_by.spec_hash == spec_hash, step
        assert made_by.logical_date.startswith("2026-03-01T00:00:00"), step
        assert made_by.params == {"factor": 3, "note": "hello"}, step
        assert began <= _iso(made_by.started) <= _iso(made_by.finished) <= ended, step
        assert made_by.image is None  # local processes
    numbers, scaled, report, flaky = (records[s] for s in ("numbers", "scaled", "report", "flaky"))
    # a sql step: no code, no image, no inputs
    assert numbers.code is None and numbers.inputs == {} and numbers.args == {} and numbers.try_number == 1
    # a python step: its code package, args as rendered, its input pinned by its producer's manifest
    # the run's code package, as its first task pinned it (the spec's folder; not a git checkout)
    pinned = read_pin(str(tmp_path / "artifacts" / name / dag_run.run_id))
    assert pinned is not None and pinned.git is None
    code = CodeVersion(pinned.digest, pinned.uri, None)
    assert scaled.code == code and scaled.try_number == 1
    assert scaled.args == {"factor": "3", "day": "2026-03-01"}
    (numbers_input,) = scaled.inputs.values()
    assert (numbers_input.step, numbers_input.uri) == ("numbers", str(output_dir(tmp_path, dag_run, name, "numbers")))
    assert numbers_input.manifest_digest == _sha256(output_dir(tmp_path, dag_run, name, "numbers") / MANIFEST)
    # a command step: the same record, made by the operator that commits its files
    assert report.code == code and report.args == {}
    assert report.inputs["scaled"].manifest_digest == _sha256(output_dir(tmp_path, dag_run, name, "scaled") / MANIFEST)
    assert made["report"]["kind"] == "files" and made["report"]["files"] == ["out.txt"]
    # the schema and rows stay where they were, top level
    assert made["scaled"]["schema"] == [["n", "int64"]] and made["scaled"]["rows"] == 10
    # a retry: its output records the try that made it
    assert flaky.try_number == 2
    assert Provenance.from_json(records["scaled"].to_json()) == records["scaled"]  # the record round-trips

    # the check and metric rows of `scaled` carry what its output's manifest records
    for table in ("aq_check_results", "aq_metric_results"):
        rows = fetch(f"SELECT DISTINCT step, code_digest, image, image_digest FROM {results}.{table} WHERE dag_id = ?",
                     [name])  # fmt: skip
        assert rows == [("scaled", pinned.digest, None, None)], table


def test_the_record_reads_what_a_pod_status_says():
    """``imageID`` as kubelets report it: a repository digest, with the docker-pullable scheme or
    without; nothing else is taken for a digest."""
    hexdigits = "0123456789abcdef" * 4
    assert record.image_digest(f"ghcr.io/acme/steps@sha256:{hexdigits}") == f"sha256:{hexdigits}"
    assert record.image_digest(f"docker-pullable://ghcr.io/acme/steps@sha256:{hexdigits}") == f"sha256:{hexdigits}"
    assert record.image_digest(f"sha256:{hexdigits}") is None  # an image ID, not a repository digest
    assert record.image_digest("") is None and record.image_digest(None) is None


@pytest.mark.usefixtures("cluster")
def test_pod_outputs_record_the_image_and_its_digest(run_dag, tmp_path):
    """Through the real KubernetesPodOperator: the image as the spec names it (``AQ_IMAGE``) and the
    digest the pod's container status reports (``imageID``), in a python step's manifest (which
    the runtime committed in the pod and the operator commits again with the digest) and a command
    step's (committed by the operator)."""
    name = "prov_k8s"
    extra = (
        "listing:\n    command: [python, -c, \"import os; open(os.path.join(os.environ['AQ_OUTPUT'], 'a.txt'), "
        "'w').write('a')\"]\n    inputs: [numbers]\n    image: ghcr.io/acme/tools:2"
    )
    _, dag_run, states = run_dag(name, k8s_spec(tmp_path, name, extra), local=False)
    assert set(states.values()) == {"success"}, states
    for step, image in (("numbers", "ghcr.io/acme/steps:1"), ("doubled", "ghcr.io/acme/steps:1"),
                        ("listing", "ghcr.io/acme/tools:2")):  # fmt: skip
        written = manifest(tmp_path, dag_run, name, step)
        made = Provenance.of(written)
        assert made.image == ImageVersion(image, image_id(image).partition("@")[2]), step
        assert made.run_id == dag_run.run_id and made.try_number == 1, step
        assert Location.of(str(output_dir(tmp_path, dag_run, name, step))).read_output(step) == written
    doubled = Provenance.of(manifest(tmp_path, dag_run, name, "doubled"))
    assert doubled.args == {"factor": 3}
    numbers_manifest = output_dir(tmp_path, dag_run, name, "numbers") / MANIFEST
    assert doubled.inputs["numbers"].manifest_digest == _sha256(numbers_manifest)  # as the pod read it
