"""Hostile and mistaken input to checks, metrics and the CLI: SQL that tries to write, a literal
that breaks the fused query, passwords in connection URIs, impossible dates and missing files.

Each test is named after the attack or the mistake, and asserts what really happened: the
victim table is still there, only the bad check errors, the password is absent from everything
printed, the exit code says what went wrong. On DuckDB (a file) and PostgreSQL (a real server).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from aq_airflow.cli.main import main
from aq_airflow.pipeline_spec.models import Check, Metric
from aq_airflow.plan.model import CheckPlan, MetricPlan, QualitySource, SourceKind
from aq_airflow.plan.planner import compile_check, compile_metric
from aq_airflow.quality.engine import Dataset, run_checks, run_metrics
from aq_airflow.warehouse import Warehouse, is_infrastructure_error

CLI = [sys.executable, "-m", "aq_airflow.cli"]
NOW = datetime.datetime(2026, 3, 1, 6, 0, tzinfo=datetime.timezone.utc)
ROWS = [(1, 10.0, "EUR"), (2, 20.0, "USD"), (2, -5.0, "EUR"), (4, None, "XYZ")]
BAD_LITERAL = "0; DROP TABLE x"


# --- warehouses ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Place:
    """A warehouse with an `orders` table to check and a `victim` table attacks aim at."""

    dialect: str
    warehouse: Warehouse
    schema: str
    connect: object

    def sql(self, statement: str) -> list[tuple]:
        conn = self.connect()
        try:
            cursor = conn.cursor()
            cursor.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
            conn.commit()
            return rows
        finally:
            conn.close()

    @property
    def orders(self) -> str:
        return f"{self.schema}.orders"

    @property
    def victim(self) -> str:
        return f"{self.schema}.victim"

    def tables(self) -> set[str]:
        rows = self.sql(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{self.schema}'")
        return {name for (name,) in rows}

    def dataset(self) -> Dataset:
        return Dataset.warehouse_data(QualitySource(SourceKind.TABLE, table=self.orders), self.warehouse)


def _seed(place: Place) -> Place:
    place.sql(f"CREATE SCHEMA {place.schema}")
    place.sql(f"CREATE TABLE {place.orders} (id INT, amount DOUBLE PRECISION, currency VARCHAR)")
    for row in ROWS:
        values = ", ".join("NULL" if v is None else repr(v) for v in row)
        place.sql(f"INSERT INTO {place.orders} VALUES ({values})")
    place.sql(f"CREATE TABLE {place.victim} (secret VARCHAR)")
    place.sql(f"INSERT INTO {place.victim} VALUES ('still here')")
    place.sql(f"CREATE SEQUENCE {place.schema}.counter")
    return place


@pytest.fixture(params=["duckdb", "postgres"])
def place(request, tmp_path):
    schema = f"aq_hostile_{uuid.uuid4().hex[:8]}"
    if request.param == "duckdb":
        import duckdb

        path = str(tmp_path / "warehouse.duckdb")
        connect = lambda: duckdb.connect(path)  # noqa: E731
        yield _seed(Place("duckdb", Warehouse.for_dialect("duckdb", connect), schema, connect))
        return
    import psycopg2

    dsn = request.getfixturevalue("postgres_dsn")
    connect = lambda: psycopg2.connect(dsn)  # noqa: E731
    try:
        yield _seed(Place("postgres", Warehouse.for_dialect("postgres", connect), schema, connect))
    finally:
        Place("postgres", None, schema, connect).sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def checks_of(*specs: dict) -> tuple[CheckPlan, ...]:
    return tuple(compile_check(Check.model_validate(s)) for s in specs)


def metrics_of(*specs: dict) -> tuple[MetricPlan, ...]:
    return tuple(compile_metric(Metric.model_validate(s)) for s in specs)


def sequence_untouched(place: Place) -> bool:
    """Whether the sequence was never advanced (nextval would write)."""
    if place.dialect == "postgres":
        ((called,),) = place.sql(f"SELECT is_called FROM {place.schema}.counter")
        return called is False
    ((value,),) = place.sql(f"SELECT nextval('{place.schema}.counter')")
    return value == 1


# --- 1. user SQL runs as one read-only statement --------------------------------------------------

ATTACKS = {
    "drop_then_select": "DROP TABLE {victim}; SELECT true",
    "select_then_drop": "SELECT true; DROP TABLE {victim}",
    "delete_in_a_cte": "WITH gone AS (DELETE FROM {victim} RETURNING *) SELECT count(*) >= 0 FROM gone",
    "select_into": "SELECT * INTO {schema}.stolen FROM {victim}",
    "create_table_as": "CREATE TABLE {schema}.stolen AS SELECT * FROM {victim}",
    "update": "UPDATE {victim} SET secret = 'owned'",
    "comment_hides_nothing": "SELECT true /* ; */; DELETE FROM {victim}",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_raw_sql_check_cannot_drop_a_table(place, attack):
    """A raw `sql:` check is exactly one SELECT that only reads: anything else is an error
    outcome with a clear message, and never reaches the warehouse."""
    sql = ATTACKS[attack].format(victim=place.victim, schema=place.schema)
    checks = checks_of(
        {"name": "attack", "sql": sql}, {"name": "honest", "sql": f"SELECT count(*) = 4 FROM {place.orders}"}
    )
    attack_outcome, honest = run_checks(place.dataset(), checks, set(), NOW)
    assert attack_outcome.outcome == "error", attack_outcome.message
    assert "SELECT" in attack_outcome.message and "`sql` check" in attack_outcome.message
    assert honest.outcome == "passed", honest.message
    assert place.sql(f"SELECT secret FROM {place.victim}") == [("still here",)]
    assert place.tables() == {"orders", "victim"}


def test_a_raw_sql_select_that_writes_is_stopped_by_the_read_only_transaction(place):
    """A SELECT that writes through a function (nextval advances a sequence) parses as one
    SELECT; the read-only transaction it runs in refuses the write."""
    checks = checks_of({"name": "sneaky", "sql": f"SELECT nextval('{place.schema}.counter') > 0"})
    (outcome,) = run_checks(place.dataset(), checks, set(), NOW)
    assert outcome.outcome == "error"
    assert "read-only" in outcome.message or "read only" in outcome.message, outcome.message
    assert sequence_untouched(place)


def test_a_metric_expression_cannot_write(place):
    """A metric `expression:` is one expression (a second statement is rejected before the
    warehouse), and runs read-only (a writing function is refused there); the other metrics
    still get their values."""
    metrics = metrics_of(
        {"name": "two_statements", "expression": f"count(*); DROP TABLE {place.victim}"},
        {"name": "advances", "expression": f"max(nextval('{place.schema}.counter'))"},
        {"name": "rows", "count": "*"},
    )
    two, advances, rows = run_metrics(place.dataset(), metrics, lambda spec: [])
    assert two.outcome == "error" and "single SQL expression" in two.message
    assert advances.outcome == "error" and "read" in advances.message.lower(), advances.message
    assert rows.outcome == "passed" and rows.value == 4
    assert place.sql(f"SELECT secret FROM {place.victim}") == [("still here",)]
    assert sequence_untouched(place)


def test_a_check_where_clause_cannot_carry_a_second_statement(place):
    checks = checks_of({"name": "w", "not_null": "id", "where": f"true; DROP TABLE {place.victim}"})
    (outcome,) = run_checks(place.dataset(), checks, set(), NOW)
    assert outcome.outcome == "error" and "single SQL expression" in outcome.message
    assert "victim" in place.tables()


# --- 2. one bad check errors alone --------------------------------------------------------------


def _six_checks() -> tuple[CheckPlan, ...]:
    """Five honest checks and one whose literal the column cannot take (as a rendered
    `{{ params.low }}` can be): the spec accepts it, the warehouse rejects it."""
    honest = checks_of(
        {"name": "ids_not_null", "not_null": "id"},
        {"name": "ids_unique", "unique": "id"},
        {"name": "enough_rows", "row_count": {"min": 3}},
        {"name": "currencies", "accepted_values": {"column": "currency", "values": ["EUR", "USD"]}},
        {"name": "positive", "expression": "amount > 0"},
    )
    (between,) = checks_of({"name": "bad_literal", "column": "amount", "between": [0, 5]})
    return (*honest[:2], dataclasses.replace(between, low=BAD_LITERAL), *honest[2:])


def test_one_bad_literal_errors_only_its_own_check(place):
    outcomes = {o.name: o for o in run_checks(place.dataset(), _six_checks(), set(), NOW)}
    got = {name: (o.outcome, o.failing_rows) for name, o in outcomes.items()}
    assert got == {
        "ids_not_null": ("passed", 0),
        "ids_unique": ("failed", 1),
        "bad_literal": ("error", None),
        "enough_rows": ("passed", None),
        "currencies": ("failed", 1),
        "positive": ("failed", 2),
    }, {n: o.message for n, o in outcomes.items()}
    assert BAD_LITERAL in outcomes["bad_literal"].message  # its own message, about its own literal
    assert not any(BAD_LITERAL in o.message for n, o in outcomes.items() if n != "bad_literal")
    assert outcomes["currencies"].sample  # the others are whole verdicts, samples included
    assert "victim" in place.tables()


def test_one_bad_metric_errors_only_itself(place):
    metrics = metrics_of(
        {"name": "rows", "count": "*"},
        {"name": "mean_of_text", "mean": "currency"},
        {"name": "total", "sum": "amount", "bounds": {"max": 10}},
    )
    rows, bad, total = run_metrics(place.dataset(), metrics, lambda spec: [])
    assert (rows.outcome, rows.value) == ("passed", 4)
    assert bad.outcome == "error" and "avg" in bad.message.lower(), bad.message
    assert (total.outcome, total.value) == ("failed", 25)


class _Counting:
    """A connection that counts the statements reading the data."""

    def __init__(self, conn, seen: list[str]):
        self._conn, self._seen = conn, seen

    def execute(self, sql, *args):
        self._seen.append(sql)
        return self._conn.execute(sql, *args)

    def cursor(self):
        return _Counting(self._conn.cursor(), self._seen)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_checks_that_all_pass_read_the_data_in_one_scan(place):
    seen: list[str] = []
    counting = Warehouse.for_dialect(place.dialect, lambda: _Counting(place.connect(), seen))
    dataset = Dataset.warehouse_data(QualitySource(SourceKind.TABLE, table=place.orders), counting)
    checks = checks_of({"name": "a", "not_null": "id"}, {"name": "b", "row_count": {"min": 1}},
                       {"name": "c", "column": "id", "between": [0, 10]})  # fmt: skip
    assert [o.outcome for o in run_checks(dataset, checks, set(), NOW)] == ["passed"] * 3
    reads = [s for s in seen if "aq_source" in s]
    assert len(reads) == 1, reads
    assert any("READ ONLY" in s for s in seen), seen  # in a read-only transaction


def test_a_connection_lost_while_isolating_still_fails_the_task(postgres_dsn, tmp_path):
    """Isolation re-runs checks one by one; a lost connection on the way is still no verdict:
    it propagates (the operator fails the task, Airflow retries it, nothing is recorded)."""
    import psycopg2

    connect = lambda: psycopg2.connect(postgres_dsn)  # noqa: E731
    place = _seed(Place("postgres", Warehouse.for_dialect("postgres", connect), f"aq_hostile_{uuid.uuid4().hex[:8]}",
                        connect))  # fmt: skip
    try:
        killer = checks_of({"name": "kills_its_connection", "expression": "pg_terminate_backend(pg_backend_pid())"})
        checks = (*_six_checks(), *killer)
        with pytest.raises(Exception) as raised:
            run_checks(place.dataset(), checks, set(), NOW)
        assert is_infrastructure_error(raised.value), repr(raised.value)
    finally:
        place.sql(f"DROP SCHEMA IF EXISTS {place.schema} CASCADE")


# --- the CLI ------------------------------------------------------------------------------------


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    environment.update(env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=environment, timeout=300)


HOSTILE_SPEC = """
pipeline: hostile_run
results_schema: aq_results
params: {low: "0"}  # text: `--param low=...` of a number param is refused before the run
steps:
  numbers:
    sql: SELECT range AS n, 'x' || range AS label FROM range(25)
    checks:
      - {name: drop_victim, sql: "DROP TABLE main.victim; SELECT true"}
      - {name: bad_literal, column: n, between: ["{{ params.low }}", 100]}
      - {name: enough, row_count: {min: 10}}
      - {name: labelled, not_null: label}
      - {name: one_per_n, unique: n}
      - {name: small, column: n, between: [0, 20], severity: warning}
    metrics:
      - {name: total, sum: n}
"""


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """`aq-airflow run` of a spec whose raw `sql:` check drops a table and whose `between` takes
    `--param low="0; DROP TABLE x"`, on a DuckDB file warehouse given by its path."""
    import duckdb

    root = tmp_path_factory.mktemp("hostile_run")
    warehouse = root / "wh.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("CREATE TABLE victim (secret VARCHAR); INSERT INTO victim VALUES ('still here')")
    spec = root / "hostile_run.aq.yaml"
    spec.write_text(textwrap.dedent(HOSTILE_SPEC).lstrip())
    result = cli("run", spec.name, "--date", "2026-03-01", "--warehouse", str(warehouse), "--param",
                 f"low={BAD_LITERAL}", cwd=root)  # fmt: skip
    return root, spec, warehouse, result


def _results_json(root: Path, *args: str) -> dict:
    shown = cli("results", *args, "--format", "json", cwd=root)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return json.loads(shown.stdout)


def test_a_raw_sql_check_cannot_drop_a_table_in_a_run(hostile_run):
    import duckdb

    root, spec, warehouse, result = hostile_run
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]  # error checks fail the task
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT secret FROM victim").fetchall() == [("still here",)]
    checks = {r["name"]: r for r in _results_json(root, spec.name, "--warehouse", str(warehouse))["checks"]}
    assert checks["drop_victim"]["outcome"] == "error"
    assert "exactly one SELECT" in checks["drop_victim"]["message"]


def test_one_bad_param_literal_in_a_run_errors_only_its_own_check(hostile_run):
    root, spec, warehouse, _ = hostile_run
    document = _results_json(root, spec.name, "--warehouse", str(warehouse))
    got = {r["name"]: r["outcome"] for r in document["checks"]}
    assert got == {"drop_victim": "error", "bad_literal": "error", "enough": "passed", "labelled": "passed",
                   "one_per_n": "passed", "small": "failed"}, document  # fmt: skip
    messages = {r["name"]: r["message"] for r in document["checks"]}
    assert BAD_LITERAL in messages["bad_literal"]
    assert messages["small"] == "4 of 25 rows fail; expected at most 0 failing rows"
    assert [(m["name"], m["outcome"], m["value"]) for m in document["metrics"]] == [("total", "passed", 300.0)]
    assert document["results_schema"] == "aq_results"  # read from the spec, no --schema given


def test_results_of_a_spec_needs_no_flags_after_a_local_run(tmp_path):
    """`aq-airflow run SPEC` then `aq-airflow results SPEC`: the pipeline id, the connection
    (here the local run's DuckDB file) and results_schema come from the spec; stdout is only the
    results, full messages wrapped, never cut."""
    spec = tmp_path / "plain.aq.yaml"
    spec.write_text(textwrap.dedent(HOSTILE_SPEC).replace("hostile_run", "plain").lstrip())
    ran = cli("run", spec.name, "--date", "2026-03-01", cwd=tmp_path)
    assert ran.returncode == 1, ran.stdout[-3000:] + ran.stderr[-3000:]
    shown = cli("results", spec.name, cwd=tmp_path, env={"COLUMNS": "100"})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    assert "checks (aq_check_results), newest first" in lines and "metrics (aq_metric_results), newest first" in lines
    assert not any("[info" in line or "[warning" in line or "Opening DuckDB" in line for line in lines), lines
    document = _results_json(tmp_path, spec.name)
    flat = " ".join(shown.stdout.split())
    for row in document["checks"] + document["metrics"]:
        assert " ".join(row["message"].split()) in flat, row["message"]  # wrapped, not one character cut
    long = next(r["message"] for r in document["checks"] if r["name"] == "drop_victim")
    assert len(long) > 60


def test_results_of_a_pipeline_id_reads_the_flags(hostile_run):
    root, _, warehouse, _ = hostile_run
    without_schema = cli("results", "hostile_run", "--warehouse", str(warehouse), cwd=root)
    assert without_schema.returncode == 1  # nothing in the default schema: the spec put it in aq_results
    assert "checks: nothing recorded yet (no aq_check_results table" in without_schema.stdout
    shown = cli("results", "hostile_run", "--warehouse", str(warehouse), "--schema", "aq_results", "--step", "numbers",
                cwd=root)  # fmt: skip
    assert shown.returncode == 0 and "bad_literal" in shown.stdout


def test_results_of_an_empty_warehouse_say_nothing_recorded_yet(tmp_path):
    import duckdb

    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    shown = cli("results", "nobody", "--warehouse", "empty.duckdb", cwd=tmp_path)
    assert shown.returncode == 1, shown.stderr
    assert "nothing recorded yet" in shown.stdout and "Traceback" not in shown.stderr
    as_json = cli("results", "nobody", "--warehouse", "empty.duckdb", "--format", "json", cwd=tmp_path)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["checks"] == []


# --- 3. passwords ---------------------------------------------------------------------------------


def _with_password(dsn: str, password: str) -> tuple[str, str]:
    """The DSN with a password in it (the test server trusts, so any works), and that password."""
    parts = urlsplit(dsn)
    if parts.password:
        return dsn, parts.password
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), password


PG_SPEC = """
pipeline: pw_run
results_schema: {schema}
steps:
  numbers:
    sql: SELECT generate_series(1, 25) AS n
    checks: [{{name: enough, row_count: {{min: 10}}}}, {{name: none_null, not_null: n}}]
    metrics: [{{name: total, sum: n}}]
"""


def test_a_password_in_the_warehouse_uri_is_never_printed(postgres_dsn, tmp_path):
    import psycopg2

    uri, password = _with_password(postgres_dsn, "TopSecretPW")
    schema = f"aq_pw_{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "pw_run.aq.yaml"
    spec.write_text(textwrap.dedent(PG_SPEC.format(schema=schema)).lstrip())
    try:
        ran = cli("run", spec.name, "--date", "2026-03-01", "--warehouse", uri, cwd=tmp_path)
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        assert "enough" in ran.stdout and ":***@" in ran.stdout
        shown = cli("results", spec.name, "--warehouse", uri, cwd=tmp_path)
        as_json = cli("results", spec.name, "--warehouse", uri, "--format", "json", cwd=tmp_path)
        assert shown.returncode == 0 and as_json.returncode == 0 and json.loads(as_json.stdout)["checks"]
        parts = urlsplit(uri)
        unreachable = urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@127.0.0.1:9"))  # nothing listens
        refused = cli("results", "pw_run", "--warehouse", unreachable, cwd=tmp_path)
        failed_run = cli("run", spec.name, "--warehouse", unreachable, cwd=tmp_path)
        echoed = cli("run", spec.name, "--warehouse", uri + "://echo://me", cwd=tmp_path)  # Airflow echoes the URI
        assert refused.returncode == 2 and "cannot connect to the warehouse" in refused.stderr
        assert failed_run.returncode == 1
        assert echoed.returncode == 2 and "***" in echoed.stderr
        for result in (ran, shown, as_json, refused, failed_run, echoed):
            assert password not in result.stdout + result.stderr, result.args
    finally:
        with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_password_in_a_json_connection_is_masked_too():
    from aq_airflow.cli.connection import display
    from aq_airflow.warehouse.secrets import mask, secrets_of

    value = json.dumps(
        {"conn_type": "postgres", "host": "h", "password": "Hunter2Pw", "extra": {"private_key": "PEMDATA"}}
    )
    assert set(secrets_of(value)) == {"Hunter2Pw", "PEMDATA"}
    assert "Hunter2Pw" not in display(value) and "PEMDATA" not in display(value)
    assert mask("failed: postgres://u:Sec%20ret@h/db and user:x@y", secrets_of("postgres://u:Sec%20ret@h/db")) == (
        "failed: postgres://u:***@h/db and user:x@y"
    )


# --- 4. mistakes that used to be tracebacks -------------------------------------------------------


def test_run_with_an_impossible_date_says_so(tmp_path, capsys):
    spec = tmp_path / "d.aq.yaml"
    spec.write_text("steps:\n  a:\n    sql: SELECT 1 AS x\n")
    for date in ("2026-13-45", "2026-02-30", "tomorrow", "P1D"):
        assert main(["run", str(spec), "--date", date, "--workdir", str(tmp_path / "w")]) == 2
        captured = capsys.readouterr()
        assert captured.err.strip() == f"--date {date}: not a date: use YYYY-MM-DD"
        assert "Traceback" not in captured.out + captured.err


def test_results_with_a_missing_duckdb_file_says_no_such_file(tmp_path):
    shown = cli("results", "x", "--warehouse", "missing.duckdb", cwd=tmp_path)
    assert shown.returncode == 2
    assert shown.stderr.strip() == "no such warehouse file: missing.duckdb" and shown.stdout == ""
    default = cli("results", "x", cwd=tmp_path)  # nothing ran here: no .aq-run/warehouse.duckdb
    assert default.returncode == 2 and "no such warehouse file: .aq-run/warehouse.duckdb" in default.stderr
    assert not (tmp_path / "missing.duckdb").exists()  # reading never creates a warehouse


def test_run_with_a_duckdb_file_path_as_the_warehouse_just_works(hostile_run):
    """`--warehouse wh.duckdb` (a path, not a URI) is a DuckDB warehouse (used by the module's
    run): its results are in that file."""
    import duckdb

    _, _, warehouse, result = hostile_run
    assert "Unknown hook type" not in result.stderr and "Traceback" not in result.stderr
    assert f"warehouse: {warehouse}" in result.stdout
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM aq_results.aq_check_results").fetchall() == [(6,)]


def test_run_with_a_warehouse_in_a_missing_folder_or_of_an_unknown_type_says_so(tmp_path, capsys):
    spec = tmp_path / "d.aq.yaml"
    spec.write_text("steps:\n  a:\n    sql: SELECT 1 AS x\n")
    assert main(["run", str(spec), "--warehouse", "no/such/folder/wh.duckdb", "--workdir", str(tmp_path / "w")]) == 2
    assert capsys.readouterr().err.strip() == "no such folder for the warehouse file: no/such/folder/wh.duckdb"
    unknown = cli("run", spec.name, "--warehouse", "nosuchdb://u:Pw12345@h/db", cwd=tmp_path)
    assert unknown.returncode == 2 and "no hook for connection type `nosuchdb`" in unknown.stderr
    assert "Pw12345" not in unknown.stdout + unknown.stderr and "Traceback" not in unknown.stderr


def test_results_when_the_warehouse_refuses_connections_is_not_nothing_recorded(tmp_path):
    shown = cli("results", "x", "--warehouse", "postgresql://postgres@127.0.0.1:9/test", cwd=tmp_path)
    assert shown.returncode == 2
    assert "cannot connect to the warehouse: OperationalError" in shown.stderr
    assert "nothing recorded" not in shown.stdout + shown.stderr and shown.stdout == ""


@pytest.mark.parametrize("text", ["sum(x) FROM t", "x FROM t WHERE y", "x GROUP BY x", "x ORDER BY x", "x LIMIT 1"])
def test_an_expression_cannot_smuggle_in_a_clause(text):
    """`expression: "sum(x) FROM t"` must not run as `sum(x)` with the FROM silently dropped."""
    from aq_airflow.quality.sql import QualitySQLError, user_expression

    with pytest.raises(QualitySQLError, match="must be a single SQL expression"):
        user_expression(text, "duckdb", "expression")
    assert user_expression("sum(x) > 0", "duckdb", "expression").sql() == "SUM(x) > 0"


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM wh.victim RETURNING id",
        "SELECT 1 AS x; DROP TABLE wh.victim",
        "CREATE TABLE wh.pwned AS SELECT 1 AS x",
        "COPY (SELECT 42) TO 'copied.csv'",
        "ATTACH 'attached.duckdb' AS other",
    ],
)
def test_a_sql_step_cannot_write_to_the_warehouse(run_dag, duckdb_warehouse, sql):
    """A `sql:` step runs exactly one SELECT at run time too, not only in `validate` (a hostile
    tester wiped the results tables with `DELETE ... RETURNING` in a step)."""
    import duckdb

    with duckdb.connect(str(duckdb_warehouse)) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS wh; CREATE OR REPLACE TABLE wh.victim AS SELECT 1 AS id")
    spec = f"pipeline: writer\nstart_date: 2026-01-01\nsteps:\n  s:\n    sql: {json.dumps(sql)}\n"
    states = run_dag("writer", spec)[2]
    assert states["s.run"] == "failed"
    with duckdb.connect(str(duckdb_warehouse)) as conn:
        assert conn.execute("SELECT count(*) FROM wh.victim").fetchone() == (1,)
        assert not conn.execute("SELECT * FROM duckdb_tables() WHERE table_name = 'pwned'").fetchall()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT string_agg(content, '') FROM read_text('/proc/self/environ')",
        "SELECT count(*) > 0 FROM glob('/etc/*')",
        "SELECT count(*) > 0 FROM read_csv('/etc/passwd')",
    ],
)
def test_a_check_on_a_step_output_cannot_read_the_workers_files(tmp_path, sql):
    """Checks on a python or command step's output run in DuckDB on the worker: it reads the
    output's folder and nothing else, and a check's message never echoes the rows a query
    returned (a hostile tester stored the worker's environment in aq_check_results)."""
    import datetime

    import pyarrow as pa

    from aq_airflow.artifacts.store import Location, write_batches
    from aq_airflow.plan.model import CheckPlan, Severity
    from aq_airflow.quality.engine import Dataset, run_checks

    location = Location.of(str(tmp_path / "out"))
    table = pa.table({"x": [1, 2]})
    location.commit(write_batches(location, location.begin(), table.schema, table.to_batches()))
    dataset = Dataset.artifact(location, location.read_manifest(), "out")
    checks = (
        CheckPlan("peek", "sql", Severity.ERROR, sql=sql),
        CheckPlan("echo", "sql", Severity.ERROR, sql="SELECT 'SECRET_VALUE' AS v"),
        CheckPlan("fine", "not_null", Severity.ERROR, columns=("x",)),
    )
    outcomes = {o.name: o for o in run_checks(dataset, checks, set(), datetime.datetime.now(datetime.UTC))}
    assert outcomes["peek"].outcome == "error" and "Permission" in outcomes["peek"].message
    assert outcomes["echo"].outcome == "error" and "SECRET_VALUE" not in outcomes["echo"].message
    assert outcomes["fine"].outcome == "passed"


def test_run_with_a_date_before_the_start_date_says_so_instead_of_a_green_nothing(tmp_path, capsys):
    """It printed `success` with every task `not run` (found by a hostile tester)."""
    from aq_airflow.cli.main import main

    spec = tmp_path / "dated.aq.yaml"
    spec.write_text("pipeline: dated\nstart_date: 2026-01-01\nend_date: 2026-12-31\nsteps:\n  a: {sql: SELECT 1}\n")
    for date, why in (("1900-01-01", "before the pipeline's start_date 2026-01-01"),
                      ("2027-06-01", "after the pipeline's end_date 2026-12-31")):  # fmt: skip
        assert main(["run", str(spec), "--date", date, "--workdir", str(tmp_path / "w")]) == 2
        assert f"--date {date}: {why}" in capsys.readouterr().err


def test_results_with_a_negative_row_count_is_a_usage_error(capsys):
    from aq_airflow.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["results", "x", "--last", "-1"])
    assert exit_.value.code == 2 and "is not a whole number from 1 to 1,000,000" in capsys.readouterr().err
