"""`aq-airflow doctor` and the connection examples of docs/deployment.md, with real parts: Airflow's
own connection lookup and CLI, DuckDB, the PostgreSQL server on 127.0.0.1:5432, the real
SnowflakeHook over fakesnow, the Kubernetes provider's hook against a loopback API server."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import REPO
from tests.helpers import write

CLI = [sys.executable, "-m", "aq_airflow.cli"]
DOCS = REPO / "docs" / "deployment.md"
PASSWORD = "Sup3r-S3cret@pw"  # has a character a URI must encode
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def doctor(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`aq-airflow doctor` as users run it: a new process, with only the environment given added."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")} | env
    return subprocess.run([*CLI, "doctor", str(folder), *args], capture_output=True, text=True, env=full, timeout=180)


def findings(stdout: str) -> dict[str, str]:
    """The report's lines by subject (`warehouse pg_wh`, `artifacts /x`, an invalid spec's path)."""
    found = {}
    for line in stdout.splitlines():
        state, _, rest = line.partition(" ")
        subject = rest.strip().split(": ")[0].split(" (")[0]
        found[subject] = state
    return found


def spec(folder: Path, name: str, warehouse: str) -> None:
    write(folder, f"{name}.aq.yaml", f"""
        # {name}
        warehouse: {warehouse}
        steps:
          a:
            sql: SELECT 1 AS x
            checks: [{{name: rows, row_count: {{min: 1}}}}]
    """)  # fmt: skip


@pytest.fixture
def duckdb_file(tmp_path: Path) -> Path:
    import duckdb

    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    return path


def test_doctor_reports_each_connection_and_root_without_printing_secrets(tmp_path, duckdb_file, postgres_dsn):
    folder = tmp_path / "dags"
    folder.mkdir()
    spec(folder, "on_duck", "duck_wh")
    spec(folder, "on_pg", "pg_wh")
    spec(folder, "also_pg", "pg_wh")
    spec(folder, "nowhere", "missing_wh")
    spec(folder, "closed", "closed_wh")
    spec(folder, "in_memory", "memory_wh")
    spec(folder, "garbled", "garbled_wh")
    spec(folder, "echoed", "echoed_wh")
    write(folder, "broken.aq.yaml", "steps:\n  a:\n    sql: SELECT 1\n    retries: x\n")
    write(folder, "only_python.aq.yaml", "warehouse: never_used\nsteps:\n  a:\n    python: m:f\n")
    env = {
        "AIRFLOW_CONN_DUCK_WH": json.dumps({"conn_type": "duckdb", "host": str(duckdb_file)}),
        "AIRFLOW_CONN_PG_WH": POSTGRES,
        "AIRFLOW_CONN_CLOSED_WH": f"postgresql://postgres:{quote(PASSWORD, safe='')}@127.0.0.1:1/test",
        "AIRFLOW_CONN_MEMORY_WH": f"duckdb://{duckdb_file}",  # the path lands in the schema: in-memory
        "AIRFLOW_CONN_GARBLED_WH": f'{{"conn_type": "postgres", "password": "{PASSWORD}"',  # no JSON
        # no URI either, and Airflow's error echoes it whole
        "AIRFLOW_CONN_ECHOED_WH": f"postgresql://postgres:{quote(PASSWORD, safe='')}@127.0.0.1:1/test://echo://me",
        "AQ_ARTIFACTS": str(tmp_path / "artifacts"),
    }
    result = doctor(folder, env, "--timeout", "20")
    assert result.returncode == 1, result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert quote(PASSWORD, safe="") not in result.stdout + result.stderr
    lines = {subject: state for subject, state in findings(result.stdout).items()}
    assert lines == {
        f"{folder}/broken.aq.yaml:4:14": "INVALID",
        "warehouse closed_wh": "UNREACHABLE",
        "warehouse duck_wh": "ok",
        "warehouse echoed_wh": "UNUSABLE",
        "warehouse garbled_wh": "UNUSABLE",
        "warehouse memory_wh": "UNUSABLE",
        "warehouse missing_wh": "MISSING",
        "warehouse pg_wh": "ok",
        f"artifacts {tmp_path}/artifacts": "ok",
    }, result.stdout  # `never_used`: no task of only_python opens the warehouse
    text = result.stdout
    assert f"named by {folder}/nowhere.aq.yaml:2:1 (warehouse: missing_wh)" in text
    assert f"named by {folder}/also_pg.aq.yaml:2:1 (warehouse: pg_wh), {folder}/on_pg.aq.yaml:2:1" in text
    assert "SELECT 1 answered" in next(line for line in text.splitlines() if "duck_wh" in line)
    assert "Connection refused" in next(line for line in text.splitlines() if "closed_wh" in line)
    assert "($AQ_ARTIFACTS): local folder, does not exist yet" in text
    assert "AIRFLOW_CONN_GARBLED_WH is set, but is no connection URI or JSON: JSONDecodeError" in text
    assert "Invalid connection string: postgresql://postgres:***@127.0.0.1:1/test://echo://me" in text
    assert "10 spec(s), 1 invalid; 3 ok, 1 missing, 4 unreachable or unusable" in result.stderr


def test_doctor_exits_0_when_everything_answers_and_finds_metadata_db_connections(
    tmp_path, duckdb_file, airflow_db, postgres_dsn
):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    folder = tmp_path / "dags"
    folder.mkdir()
    spec(folder, "on_duck", "duck_wh")
    spec(folder, "on_pg", "pg_in_db")
    write(folder, "stored.aq.yaml", f"artifacts: {tmp_path}/store\nsteps:\n  a:\n    python: m:f\n")
    (tmp_path / "store").mkdir()
    with create_session() as session:  # only in Airflow's metadata database
        session.add(Connection(conn_id="pg_in_db", uri=POSTGRES))
    try:
        env = {"AIRFLOW_CONN_DUCK_WH": json.dumps({"conn_type": "duckdb", "host": str(duckdb_file)})}
        result = doctor(folder, env)
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == "pg_in_db").delete()
    assert result.returncode == 0, result.stdout + result.stderr
    assert findings(result.stdout) == {
        "warehouse duck_wh": "ok",
        "warehouse pg_in_db": "ok",
        f"artifacts {tmp_path}/store": "ok",
        f"artifacts {os.environ['AIRFLOW_HOME']}/aq-artifacts": "ok",
    }, result.stdout
    assert f"used by {folder}/stored.aq.yaml:1:1" in result.stdout
    assert "(the default, $AIRFLOW_HOME/aq-artifacts)" in result.stdout


def test_doctor_says_whether_the_model_server_venv_a_local_serve_needs_is_built(tmp_path, duckdb_file):
    """A local `serve:` smoke-tests in the model server venv on the worker: doctor says when it is
    not built yet (the first serve task would build it from the package index) and how to build it
    ahead; a venv with mlserver at `$AQ_MODEL_SERVER_VENV` is ok."""
    folder = tmp_path / "dags"
    folder.mkdir()
    write(folder, "served.aq.yaml", """
        warehouse: duck_wh
        steps:
          f: {sql: SELECT 1 AS x}
          a:
            python: m:f
            inputs: [f]
            serve: {endpoint: churn, format: sklearn}
    """)  # fmt: skip
    venv = tmp_path / "model-server"
    env = {"AIRFLOW_CONN_DUCK_WH": json.dumps({"conn_type": "duckdb", "host": str(duckdb_file)}),
           "AQ_MODEL_SERVER_VENV": str(venv)}  # fmt: skip
    missing = doctor(folder, env)
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert findings(missing.stdout)[f"model-server {venv}"] == "MISSING"
    assert "the model server venv is not built" in missing.stdout and "`make model-server`" in missing.stdout
    assert f"needed by {folder}/served.aq.yaml" in missing.stdout
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "mlserver").write_text("#!/bin/sh\n")
    built = doctor(folder, env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert findings(built.stdout)[f"model-server {venv}"] == "ok"


@pytest.mark.slow
def test_doctor_asks_the_kubernetes_api_server_of_the_profile_and_lists_the_store(tmp_path, s3_emulator):
    from tests.kube_api import FakeKubernetes

    s3_emulator("aq-pods")
    folder = tmp_path / "dags"
    folder.mkdir()
    write(folder, "aq-profiles.yaml", """
        profiles:
          team: {extends: gke, kubernetes_conn_id: k8s_team}
          far: {extends: gke, kubernetes_conn_id: k8s_far}
    """)  # fmt: skip
    pod_step = "steps:\n  a:\n    python: m:f\n    image: x:1\n"
    write(folder, "pods.aq.yaml", "cluster: team\nartifacts: s3://aq-pods/runs\n" + pod_step)
    write(folder, "lost.aq.yaml", "cluster: far\nartifacts: s3://no-such-bucket/runs\n" + pod_step)
    with FakeKubernetes() as fake:
        kube = {"conn_type": "kubernetes", "extra": {"kube_config_path": fake.kubeconfig(str(tmp_path))}}
        result = doctor(folder, {"AIRFLOW_CONN_K8S_TEAM": json.dumps(kube)})
        assert "VERSION" in fake.requests, result.stdout + result.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    assert findings(result.stdout) == {
        "kubernetes k8s_team": "ok",
        "kubernetes k8s_far": "MISSING",
        "artifacts s3://aq-pods/runs": "ok",
        "artifacts s3://no-such-bucket/runs": "UNREACHABLE",
    }, result.stdout
    assert "API server v1.31.0-aq-test answered" in result.stdout
    assert f"named by {folder}/lost.aq.yaml:1:1 (cluster: far)" in result.stdout


def test_doctor_checks_snowflake_through_the_real_hook(tmp_path, monkeypatch, capsys):
    """In this process, so that fakesnow's patch reaches the SnowflakeHook's connector."""
    import fakesnow

    from aq_airflow.cli.main import main

    folder = tmp_path / "dags"
    folder.mkdir()
    spec(folder, "on_snow", "snow_wh")
    conn = {"conn_type": "snowflake", "login": "aq", "password": PASSWORD, "schema": "public",
            "extra": {"account": "aq-test", "database": "analytics", "warehouse": "wh", "role": "aq"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_SNOW_WH", json.dumps(conn))
    monkeypatch.setenv("AQ_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")  # what doctor sets; restored after
    with fakesnow.patch():
        code = main(["doctor", str(folder)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert findings(out) == {"warehouse snow_wh": "ok", f"artifacts {tmp_path}": "ok"}, out
    assert "snowflake: SELECT 1 answered" in out
    assert PASSWORD not in out + err


@pytest.mark.parametrize(
    "args, message",
    [
        (["/no/such/folder"], "not a folder"),
        ([], "no *.aq.yaml files found"),
        (["--timeout", "0"], "is not a whole number from 1 to"),
    ],
)
def test_doctor_usage_errors_exit_2(tmp_path, args, message):
    folder_args = args if args and not args[0].startswith("--") else [str(tmp_path), *args]
    result = subprocess.run([*CLI, "doctor", *folder_args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


# --- the connection examples of docs/deployment.md ----------------------------------------------------

FIELDS = ("conn_type", "host", "schema", "login", "password", "port")


def documented_examples() -> dict[str, list[str]]:
    """Each warehouse's example block (marked `<!-- connection examples: NAME ... -->`), its lines."""
    text = DOCS.read_text()
    blocks = re.findall(r"<!-- connection examples: (\w+) .*?-->\n```sh\n(.*?)\n```", text, re.DOTALL)
    return {name: [line for line in body.splitlines() if line.strip()] for name, body in blocks}


def as_airflow_reads_it(line: str, monkeypatch) -> dict:
    """A documented line through Airflow itself: an `export AIRFLOW_CONN_...` as the variable
    tasks read (Airflow's lookup), an `airflow connections add` through Airflow's own command
    into the metadata database, then looked up the same way."""
    from airflow.cli.cli_parser import get_parser
    from airflow.sdk import BaseHook

    words = shlex.split(line)
    if words[0] == "export":
        name, _, value = words[1].partition("=")
        assert name.startswith("AIRFLOW_CONN_"), line
        monkeypatch.setenv(name, value)
        conn = BaseHook.get_connection(name.removeprefix("AIRFLOW_CONN_").lower())
        monkeypatch.delenv(name)
    else:
        assert words[:3] == ["airflow", "connections", "add"], line
        monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")  # as `airflow connections get` looks up
        args = get_parser().parse_args(words[1:])
        args.func(args)
        try:
            conn = BaseHook.get_connection(words[3])
        finally:
            delete = get_parser().parse_args(["connections", "delete", words[3]])
            delete.func(delete)
    return {**{name: getattr(conn, name) or None for name in FIELDS}, "extra": conn.extra_dejson}  # "" as None


def hook_for(fields: dict, monkeypatch, **changes):
    """The provider's real hook for a connection of these fields (with ``changes``), defined as
    tasks find it (a hook looks its connection up by id)."""
    from airflow.sdk import BaseHook

    monkeypatch.setenv("AIRFLOW_CONN_DOCUMENTED", json.dumps({**fields, **changes}))
    return BaseHook.get_connection("documented").get_hook()


def select_one(hook) -> list:
    from aq_airflow.warehouse import Warehouse

    with Warehouse.of(hook).reading(wait=10) as session:
        return session.rows("SELECT 1")


def test_the_docs_give_each_warehouse_a_uri_a_json_and_a_cli_form():
    examples = documented_examples()
    assert sorted(examples) == ["duckdb", "postgres", "snowflake"]
    for name, lines in examples.items():
        assert len(lines) == 3, (name, lines)
        assert "://" in shlex.split(lines[0])[1], lines[0]
        assert shlex.split(lines[1])[1].split("=", 1)[1].startswith("{"), lines[1]
        assert lines[2].startswith("airflow connections add aq_warehouse "), lines[2]


@pytest.fixture
def documented(airflow_db, monkeypatch, request) -> dict:
    """The fields every documented form of a warehouse's connection gives, once all agree."""
    forms = [as_airflow_reads_it(line, monkeypatch) for line in documented_examples()[request.param]]
    assert forms[0] == forms[1] == forms[2], forms  # URI, JSON and `connections add` are one connection
    return forms[0]


@pytest.mark.parametrize("documented", ["duckdb"], indirect=True)
def test_documented_duckdb_connection_opens_its_file(documented, tmp_path, monkeypatch):
    assert documented["conn_type"] == "duckdb"
    hook = hook_for(documented, monkeypatch)
    assert hook.get_database() == "/var/lib/aq/warehouse.duckdb"  # the file, not :memory:
    path = tmp_path / "warehouse.duckdb"
    assert select_one(hook_for(documented, monkeypatch, host=str(path))) == [(1,)]
    assert path.is_file()


@pytest.mark.parametrize("documented", ["postgres"], indirect=True)
def test_documented_postgres_connection_reaches_its_database(documented, postgres_dsn, monkeypatch):
    assert {k: documented[k] for k in ("conn_type", "host", "port", "schema", "login", "password")} == {
        "conn_type": "postgres", "host": "db.example.com", "port": 5432, "schema": "analytics",
        "login": "aq_airflow", "password": "PASSWORD",
    }  # fmt: skip
    hook = hook_for(documented, monkeypatch, host="127.0.0.1", schema="test", login="postgres")  # the test server
    assert select_one(hook) == [(1,)]
    assert hook.get_conn().info.dbname == "test"  # the schema field is the database


@pytest.mark.parametrize("documented", ["snowflake"], indirect=True)
def test_documented_snowflake_connection_through_the_real_hook(documented, monkeypatch):
    import fakesnow

    hook = hook_for(documented, monkeypatch)
    params = hook._get_conn_params()
    assert {k: params[k] for k in ("user", "password", "schema", "account", "warehouse", "database", "role")} == {
        "user": "AQ_AIRFLOW", "password": "PASSWORD", "schema": "PUBLIC", "account": "myorg-myaccount",
        "warehouse": "TRANSFORMING", "database": "ANALYTICS", "role": "AQ_AIRFLOW",
    }  # fmt: skip
    with fakesnow.patch():
        assert select_one(hook) == [(1,)]
