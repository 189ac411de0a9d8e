"""The warehouse adapter contract (``aq_airflow.warehouse``), one suite every adapter passes:
DuckDB (a file, through the DuckDBHook), PostgreSQL (a real server, through the PostgresHook)
and Snowflake (the real SnowflakeHook over fakesnow's patch mode). Then the SQL text each
adapter generates, pinned per dialect, the generic DB-API adapter (on SQLite), and what fakesnow
cannot exercise (the connector's Arrow result chunks) against a stand-in cursor."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from decimal import Decimal

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from sqlglot import exp

from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.results.history import ResultsHistory
from aq_airflow.results.statements import Statements
from aq_airflow.warehouse import (
    DuckDB,
    GenericWarehouse,
    PostgreSQL,
    Snowflake,
    Warehouse,
    is_infrastructure_error,
)
from aq_airflow.warehouse.duckdb import parquet_relation
from tests.warehouse_backends import NAMES, backend_for


@pytest.fixture(params=NAMES)
def backend(request, tmp_path, monkeypatch):
    with backend_for(request.param, request, tmp_path, monkeypatch) as found:
        yield found


# --- choosing the adapter, connections ----------------------------------------------------


def test_the_adapter_is_chosen_by_the_hooks_connection_type(backend):
    expected = {"duckdb": (DuckDB, "duckdb", "?"), "postgres": (PostgreSQL, "postgres", "%s"),
                "snowflake": (Snowflake, "snowflake", "%s")}[backend.name]  # fmt: skip
    wh = backend.warehouse
    assert (type(wh), wh.dialect, wh.placeholder) == expected
    assert Warehouse.of(wh.hook).dialect == wh.dialect and Warehouse.of(wh) is wh


def test_connect_and_cursor(backend):
    wh = backend.warehouse
    conn = wh.connect()
    try:
        cursor = wh.cursor(conn)
        cursor.execute("SELECT 41 + 1")
        assert tuple(cursor.fetchone()) == (42,)
    finally:
        conn.close()
    assert backend.is_closed(conn)


# --- reading Arrow -------------------------------------------------------------------------

TYPED = [
    (i, Decimal(f"{i}.25"), datetime.datetime(2024, 1, 2, 3, 4, 5, 123000) + datetime.timedelta(days=i),
     f"naïve {i}" if i % 3 else "", None if i < 5 else i * 10)
    for i in range(10)
]  # fmt: skip


def _typed_table(backend) -> str:
    wh = backend.warehouse
    table = wh.quote_table(backend.table("typed"))
    backend.execute(
        wh.create_schema_sql(backend.table("typed")),
        f"CREATE TABLE {table} (i INTEGER, d DECIMAL(10, 2), ts TIMESTAMP, s VARCHAR, n INTEGER)",
    )
    marks = ", ".join([wh.placeholder] * 5)
    with wh.writing() as session:
        session.executemany(f"INSERT INTO {table} VALUES ({marks})", TYPED)
    return table


def _check_types(schema: pa.Schema) -> None:
    assert [n.lower() for n in schema.names] == ["i", "d", "ts", "s", "n"]
    i, d, ts, s, n = schema.types
    assert pa.types.is_integer(i) and pa.types.is_integer(n)  # typed even where the first batch is all null
    assert pa.types.is_decimal(d) and d.scale == 2
    assert pa.types.is_timestamp(ts) and ts.tz is None and ts.unit in ("us", "ns")
    assert pa.types.is_string(s) or pa.types.is_large_string(s)


def test_arrow_reads_stream_typed_columns(backend):
    table = _typed_table(backend)
    with backend.warehouse.reading() as session:
        schema, batches = session.arrow(f"SELECT i, d, ts, s, n FROM {table} ORDER BY i", batch_rows=3)
        _check_types(schema)
        got = list(batches)
    assert all(b.schema == schema for b in got)
    if backend.name != "snowflake":  # the connector's chunks are Snowflake's size, not ours
        assert [b.num_rows for b in got] == [3, 3, 3, 1]
    rows = pa.Table.from_batches(got, schema=schema).to_pylist()
    assert [tuple(r.values()) for r in rows] == TYPED


def test_arrow_reads_of_an_empty_result_keep_the_schema(backend):
    table = _typed_table(backend)
    with backend.warehouse.reading() as session:
        schema, batches = session.arrow(f"SELECT i, d, ts, s, n FROM {table} WHERE 1 = 0")
        _check_types(schema)
        assert list(batches) == []


# --- placeholders and identifier case ------------------------------------------------------


def test_placeholders_bind_parameters(backend):
    wh = backend.warehouse
    p = wh.placeholder
    with wh.reading() as session:
        names, rows = session.fetch(f"SELECT {p} AS a, {p} AS b", ("it's", 7))
    assert [n.lower() for n in names] == ["a", "b"] and rows == [("it's", 7)]


def test_unquoted_names_are_found_however_they_are_spelled(backend):
    wh = backend.warehouse
    backend.execute(
        wh.create_schema_sql(backend.table("x")), f"CREATE TABLE {backend.schema}.MixedCase (MyCol INTEGER)"
    )
    backend.execute(f"INSERT INTO {backend.schema}.MixedCase VALUES (5)")
    folded = {"duckdb": "MyCol", "postgres": "mycol", "snowflake": "MYCOL"}[backend.name]  # as stored
    normalized = {"duckdb": "mycol", "postgres": "mycol", "snowflake": "MYCOL"}[backend.name]  # as quoted
    assert wh.normalize_identifier("MyCol") == normalized
    for spelling in ("mixedcase", "MIXEDCASE", "MixedCase"):
        with wh.reading() as session:
            schema, batches = session.arrow(wh.select_all(f"{backend.schema}.{spelling}"))
            assert schema.names == [folded] and pa.Table.from_batches(list(batches)).num_rows == 1


# --- publishing ----------------------------------------------------------------------------


def _parquet(tmp_path, name: str, rows: list[tuple], groups: int = 1) -> list[str]:
    """Parquet files of (id, region, score, amount, seen_at, label, day), ``groups`` row groups."""
    ids, regions, scores, amounts, ats, labels, days = (list(c) for c in zip(*rows, strict=True)) if rows else [[]] * 7
    table = pa.table({
        "id": pa.array(ids, pa.int64()), "region": pa.array(regions, pa.string()),
        "score": pa.array(scores, pa.float64()), "amount": pa.array(amounts, pa.decimal128(10, 2)),
        "seen_at": pa.array(ats, pa.timestamp("us")), "label": pa.array(labels, pa.string()),
        "day": pa.array(days, pa.date32()),
    })  # fmt: skip
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path, row_group_size=max(1, -(-len(rows) // groups)))
    return [str(path)]


def _row(i: int, region: str = "eu", score: float = 0.5, label: str | None = "x") -> tuple:
    return (i, region, score, Decimal(f"{i}.10"), datetime.datetime(2024, 5, 1, 12, 0, i),
            label, datetime.date(2024, 5, i + 1))  # fmt: skip


def test_bulk_load_appends_replaces_and_merges(backend, tmp_path):
    wh = backend.warehouse
    target = backend.table("scores")
    quoted = wh.quote_table(target)

    def load(name, rows, mode, keys=(), groups=1):
        files = _parquet(tmp_path, name, rows, groups)
        wh.bulk_load(files, None, pq.read_schema(files[0]), target, mode, list(keys))

    def read():
        return [
            tuple(r)
            for r in backend.rows(
                f"SELECT id, region, score, amount, seen_at, label, day FROM {quoted} ORDER BY id, region"
            )
        ]

    first = [_row(1), _row(2, label=None), _row(3, label="")]
    load("a", first, "append", groups=2)
    assert read() == first  # the table is created from the Arrow schema; types come back as they went in
    load("b", [_row(4)], "append")
    assert [r[0] for r in read()] == [1, 2, 3, 4]
    load("c", [_row(3, score=0.9), _row(5)], "merge", ["id"])
    assert [(r[0], r[2]) for r in read()] == [(1, 0.5), (2, 0.5), (3, 0.9), (4, 0.5), (5, 0.5)]
    load("d", [_row(1, "eu", 0.1), _row(1, "us", 0.2)], "merge", ["id", "region"])  # composite key
    assert [(r[0], r[1], r[2]) for r in read()][:2] == [(1, "eu", 0.1), (1, "us", 0.2)]
    load("e", [_row(7), _row(8)], "replace", groups=2)
    assert [r[0] for r in read()] == [7, 8]
    with pytest.raises(ValueError, match="no_such_column"):  # refused before the warehouse is touched
        load("f", [_row(9)], "merge", ["no_such_column"])
    bad = tmp_path / "bad.parquet"  # ids that are not numbers: the warehouse fails mid-load
    pq.write_table(pa.table({"id": ["x"], "region": ["eu"]}), bad)
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error type
        wh.bulk_load([str(bad)], None, pq.read_schema(bad), target, "replace", [])
    assert [r[0] for r in read()] == [7, 8]  # a failed load leaves the table as it was
    load("g", [], "replace")  # an empty output empties the table
    assert read() == []


def test_bulk_load_rejects_a_mode_it_does_not_know(backend, tmp_path):
    files = _parquet(tmp_path, "a", [_row(1)])
    with pytest.raises(ValueError, match="upsert"):
        backend.warehouse.bulk_load(files, None, pq.read_schema(files[0]), backend.table("t"), "upsert", [])
    with pytest.raises(ValueError, match="key"):
        backend.warehouse.bulk_load(files, None, pq.read_schema(files[0]), backend.table("t"), "merge", [])


def test_the_results_store_round_trips_on_every_adapter(backend):
    store = ResultsStore(backend.warehouse, backend.schema)
    store.ensure_tables()
    store.ensure_tables()  # idempotent
    key = {"dag_id": "d", "run_id": "r1", "step": "s", "map_index": -1, "logical_date": datetime.datetime(2026, 2, 1)}
    first = [{**key, "name": n, "kind": "not_null", "outcome": "failed", "severity": "error"} for n in ("a", "b")]
    store.replace(CHECKS_TABLE, key, first)
    store.replace(CHECKS_TABLE, key, [{**row, "outcome": "passed"} for row in first])  # a retry replaces
    columns, rows = ResultsHistory(store).newest_rows(CHECKS_TABLE, "d", run_id="r1")
    assert sorted((r[columns.index("name")], r[columns.index("outcome")]) for r in rows) == [
        ("a", "passed"), ("b", "passed")]  # fmt: skip
    for run, value in enumerate([10.0, 11.0, 12.0]):
        metric_key = {**key, "run_id": f"hist{run}", "logical_date": datetime.datetime(2026, 1, 1 + run)}
        row = {**metric_key, "name": "m", "kind": "count", "outcome": "passed", "severity": "warning",
               "value": value, "created_at": datetime.datetime(2026, 1, 1 + run)}  # fmt: skip
        store.replace(METRICS_TABLE, metric_key, [row])
    assert store.metric_history("d", "s", "m", datetime.datetime(2026, 2, 1), 2) == [12.0, 11.0]


# --- infrastructure errors -----------------------------------------------------------------


def _unusable(backend, tmp_path) -> BaseException:
    """The error of a warehouse that cannot be used at all."""
    if backend.name == "duckdb":
        import duckdb

        with pytest.raises(duckdb.Error) as caught:  # a file in a folder that is not there
            Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(tmp_path / "nowhere" / "wh.duckdb"))).connect()
        return caught.value
    if backend.name == "postgres":
        import psycopg2

        with pytest.raises(psycopg2.Error) as caught:  # nothing listens on port 9
            Warehouse.for_dialect("postgres", lambda: psycopg2.connect("postgresql://x@127.0.0.1:9/x")).connect()
        return caught.value
    # fakesnow has no network to lose: the connector's own HTTP failure, as it raises it
    from snowflake.connector.errors import ServiceUnavailableError

    return ServiceUnavailableError(msg="503 Service Unavailable")


def test_infrastructure_errors_are_told_from_query_errors(backend, tmp_path):
    wh = backend.warehouse
    with pytest.raises(Exception) as rejected, wh.reading() as session:
        session.fetch("SELECT no_such_column FROM (SELECT 1 AS a) t")
    assert not wh.is_infrastructure_error(rejected.value) and not is_infrastructure_error(rejected.value)
    unusable = _unusable(backend, tmp_path)
    assert wh.is_infrastructure_error(unusable) and is_infrastructure_error(unusable)
    assert wh.is_infrastructure_error(FileNotFoundError("s3://bucket/x.parquet"))


def test_a_statement_cancelled_by_the_server_is_an_infrastructure_error(postgres_dsn, monkeypatch):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    monkeypatch.setenv("AIRFLOW_CONN_CT_WH", postgres_dsn.replace("postgresql://", "postgres://"))
    wh = Warehouse.of(PostgresHook(postgres_conn_id="ct_wh"))
    with pytest.raises(Exception) as cancelled, wh.reading() as session:
        session.execute("SET LOCAL statement_timeout = 10")
        session.execute("SELECT pg_sleep(1)")
    assert type(cancelled.value).__name__ == "QueryCanceled" and wh.is_infrastructure_error(cancelled.value)


def test_snowflake_errors_by_class_and_sqlstate():
    from snowflake.connector import errors

    for kind in (errors.OperationalError, errors.InterfaceError, errors.RequestTimeoutError,
                 errors.BadGatewayError, errors.GatewayTimeoutError, errors.OtherHTTPRetryableError):  # fmt: skip
        assert Snowflake.is_infrastructure_error(kind(msg="x")) and is_infrastructure_error(kind(msg="x"))
    timeout = errors.ProgrammingError(msg="Statement reached its statement or warehouse timeout", sqlstate="57014")
    assert Snowflake.is_infrastructure_error(timeout)
    compile_error = errors.ProgrammingError(msg="SQL compilation error: invalid identifier", sqlstate="42000")
    assert not Snowflake.is_infrastructure_error(compile_error) and not is_infrastructure_error(compile_error)

    class HttpError(Exception):  # another library's error of the same name is not the connector's
        pass

    assert not Snowflake.is_infrastructure_error(HttpError())


# --- the adapters' SQL, pinned per dialect -------------------------------------------------

PUBLISHED = pa.schema([("id", pa.int64()), ("Score", pa.float64()), ("amount", pa.decimal128(10, 2)),
                       ("at", pa.timestamp("us")), ("at_utc", pa.timestamp("us", tz="UTC")), ("label", pa.string()),
                       ("day", pa.date32()), ("ok", pa.bool_())])  # fmt: skip


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        ("duckdb", 'CREATE TABLE IF NOT EXISTS "out"."scores" ("id" BIGINT, "score" DOUBLE, "amount" DECIMAL(10, 2), '
                   '"at" TIMESTAMP, "at_utc" TIMESTAMPTZ, "label" TEXT, "day" DATE, "ok" BOOLEAN)'),
        ("postgres", 'CREATE TABLE IF NOT EXISTS "out"."scores" ("id" BIGINT, "score" DOUBLE PRECISION, '
                     '"amount" DECIMAL(10, 2), "at" TIMESTAMP, "at_utc" TIMESTAMPTZ, "label" TEXT, "day" DATE, '
                     '"ok" BOOLEAN)'),
        ("snowflake", 'CREATE TABLE IF NOT EXISTS "OUT"."SCORES" ("ID" BIGINT, "SCORE" DOUBLE, '
                      '"AMOUNT" DECIMAL(10, 2), "AT" TIMESTAMPNTZ, "AT_UTC" TIMESTAMPTZ, "LABEL" VARCHAR, '
                      '"DAY" DATE, "OK" BOOLEAN)'),
        (None, 'CREATE TABLE IF NOT EXISTS "out"."scores" ("id" BIGINT, "score" DOUBLE, "amount" DECIMAL(10, 2), '
               '"at" TIMESTAMP, "at_utc" TIMESTAMPTZ, "label" TEXT, "day" DATE, "ok" BOOLEAN)'),
    ],
)  # fmt: skip
def test_create_table_sql(dialect, expected):
    wh = Warehouse.for_dialect(dialect)
    assert wh.create_table_sql("Out.Scores", PUBLISHED) == expected
    assert wh.create_schema_sql("Out.Scores") == expected.split(" (")[0].replace("TABLE", "SCHEMA").rsplit(".", 1)[0]
    assert wh.create_schema_sql("scores") is None


@pytest.mark.parametrize(("dialect", "q"), [("duckdb", str.lower), ("postgres", str.lower), ("snowflake", str.upper)])
def test_load_statements(dialect, q):
    wh = Warehouse.for_dialect(dialect)
    stage = exp.to_table("stage")
    table, insert = f'"{q("out")}"."{q("scores")}"', f'INSERT INTO "{q("out")}"."{q("scores")}" '
    insert += f'("{q("id")}", "{q("region")}", "{q("v")}") SELECT "{q("id")}", "{q("region")}", "{q("v")}" FROM stage'
    names = ["id", "Region", "v"]
    assert wh.load_statements("Out.Scores", stage, names, "append", []) == [insert]
    assert wh.load_statements("Out.Scores", stage, names, "replace", []) == [f"DELETE FROM {table}", insert]
    assert wh.load_statements("Out.Scores", stage, names, "merge", ["id"]) == [
        f'DELETE FROM {table} WHERE "{q("id")}" IN (SELECT "{q("id")}" FROM stage)', insert]  # fmt: skip
    assert wh.load_statements("Out.Scores", stage, names, "merge", ["id", "Region"]) == [
        f'DELETE FROM {table} WHERE ("{q("id")}", "{q("region")}") IN (SELECT "{q("id")}", "{q("region")}" FROM stage)',
        insert]  # fmt: skip


def test_duckdb_publishes_from_read_parquet():
    source = parquet_relation(["/outputs/a.parquet", "/outputs/b.parquet"])
    assert Warehouse.for_dialect("duckdb").load_statements("out.t", source, ["id"], "append", []) == [
        'INSERT INTO "out"."t" ("id") SELECT "id" FROM READ_PARQUET([\'/outputs/a.parquet\', \'/outputs/b.parquet\'])'
    ]


def test_postgresql_copies_csv_into_a_temporary_stage():
    wh = Warehouse.for_dialect("postgres")
    assert (
        wh.stage_sql("Out.Scores") == 'CREATE TEMPORARY TABLE "aq_publish_stage" (LIKE "out"."scores") ON COMMIT DROP'
    )
    assert wh.copy_sql(["id", "Score"]) == 'COPY "aq_publish_stage" ("id", "score") FROM STDIN WITH (FORMAT csv)'


def test_snowflake_stages_parquet_and_copies_it_into_a_temporary_table():
    wh = Warehouse.for_dialect("snowflake")
    assert wh.stage_statements("Out.Scores", "AQ_PUBLISH_1") == [
        'USE SCHEMA "OUT"',
        "CREATE OR REPLACE TEMPORARY STAGE AQ_PUBLISH_1",
        'CREATE OR REPLACE TEMPORARY TABLE "AQ_PUBLISH_STAGE" LIKE "OUT"."SCORES"',
    ]
    assert wh.stage_statements("db.Out.Scores", "AQ_PUBLISH_1")[0] == 'USE SCHEMA "DB"."OUT"'
    assert wh.stage_statements("Scores", "AQ_PUBLISH_1")[0] == "CREATE OR REPLACE TEMPORARY STAGE AQ_PUBLISH_1"
    assert wh.put_sql("/tmp/x/part-0.parquet", "AQ_PUBLISH_1") == (
        "PUT 'file:///tmp/x/part-0.parquet' @AQ_PUBLISH_1 AUTO_COMPRESS = FALSE OVERWRITE = TRUE"
    )
    with pytest.raises(ValueError, match="plain absolute path"):
        wh.put_sql("/tmp/it's.parquet", "AQ_PUBLISH_1")
    assert wh.copy_sql(PUBLISHED, "AQ_PUBLISH_1") == (
        'COPY INTO "AQ_PUBLISH_STAGE" ("ID", "SCORE", "AMOUNT", "AT", "AT_UTC", "LABEL", "DAY", "OK") FROM '
        '(SELECT $1:"id"::BIGINT, $1:"Score"::DOUBLE, $1:"amount"::DECIMAL(10, 2), $1:"at"::TIMESTAMPNTZ, '
        '$1:"at_utc"::TIMESTAMPTZ, $1:"label"::VARCHAR, $1:"day"::DATE, $1:"ok"::BOOLEAN FROM @AQ_PUBLISH_1) '
        "FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE) FORCE = TRUE PURGE = TRUE"
    )  # fmt: skip


KEYED = (
    'WHERE "{dag_id}" = {p} AND "{logical_date}" = {p} AND "{step}" = {p} AND "{map_index}" = {p} AND "{role}" = {p}'
)
LOWER = {n: n for n in ("dag_id", "logical_date", "step", "map_index", "role")}
UPPER = {n: n.upper() for n in LOWER}


@pytest.mark.parametrize(
    ("dialect", "placeholder", "expected"),
    [
        ("duckdb", "?", 'DELETE FROM "aq"."aq_check_results" ' + KEYED.format(p="?", **LOWER)),
        ("postgres", "%s", 'DELETE FROM "aq"."aq_check_results" ' + KEYED.format(p="%s", **LOWER)),
        ("snowflake", "%s", 'DELETE FROM "AQ"."AQ_CHECK_RESULTS" ' + KEYED.format(p="%s", **UPPER)),
    ],
)
def test_results_statements_use_the_adapters_placeholder_and_names(dialect, placeholder, expected):
    executed = []

    class Recorder:
        def cursor(self):
            return self

        def execute(self, sql, params=()):
            executed.append(sql)

        def executemany(self, sql, rows):
            executed.append(sql)

        commit = rollback = close = lambda self: None

    store = ResultsStore(Warehouse.for_dialect(dialect, Recorder), "aq")
    assert store.placeholder == placeholder and store.warehouse.dialect == dialect
    key = {"dag_id": "d", "run_id": "r", "step": "s", "map_index": -1, "logical_date": datetime.datetime(2026, 1, 1)}
    store.replace(CHECKS_TABLE, key, [{"name": "c"}])
    executed = [e for e in executed if not e.startswith("SET client_min_messages")]  # PostgreSQL's connect
    begin = ["BEGIN TRANSACTION"] if dialect != "postgres" else []
    assert executed[: len(begin) + 1] == [*begin, expected]
    first = "DAG_ID" if dialect == "snowflake" else "dag_id"
    assert executed[-1].startswith(f'INSERT INTO {expected.split()[2]} ("{first}", ')


# --- choosing adapters without a registered connection type --------------------------------


class Hook:
    """The part of a DbApiHook the adapters use."""

    def __init__(self, conn_type, connect, placeholder=None, dialect_name=None):
        self.conn_type = conn_type
        self.get_conn = connect
        if placeholder:
            self.placeholder = placeholder
        if dialect_name:
            self.dialect_name = dialect_name


def test_other_connection_types_get_the_generic_adapter():
    import sqlite3

    assert type(Warehouse.of(Hook("duckdb", None))) is DuckDB
    assert type(Warehouse.of(Hook("postgresql", None))) is PostgreSQL
    sqlite = Warehouse.of(Hook("sqlite", sqlite3.connect, "?"))
    assert (type(sqlite), sqlite.dialect, sqlite.placeholder) == (GenericWarehouse, "sqlite", "?")
    assert Warehouse.of(Hook("mssql", None)).dialect == "tsql"
    assert Warehouse.of(Hook("my_odbc_thing", None, dialect_name="mysql")).dialect == "mysql"
    assert Warehouse.of(Hook("my_odbc_thing", None, dialect_name="postgresql")).dialect == "postgres"
    assert type(Warehouse.of(Hook("redshift", None))) is GenericWarehouse  # PostgreSQL's SQL, not its COPY
    unknown = Warehouse.of(Hook("nothing_known", None))
    assert (type(unknown), unknown.dialect, unknown.placeholder) == (GenericWarehouse, None, "%s")

    class NamedOnly:  # a hook naming its connection attribute only
        conn_name_attr = "duckdb_conn_id"

    assert type(Warehouse.of(NamedOnly())) is DuckDB


def test_the_generic_adapter_publishes_with_plain_statements(tmp_path):
    import sqlite3

    path = str(tmp_path / "wh.sqlite")
    wh = Warehouse.of(Hook("sqlite", lambda: sqlite3.connect(path), "?"))

    def load(name, ids, mode, keys=()):
        table = pa.table({"id": ids, "region": ["eu"] * len(ids), "v": [name] * len(ids)})
        pq.write_table(table, tmp_path / f"{name}.parquet", row_group_size=2)
        wh.bulk_load([str(tmp_path / f"{name}.parquet")], None, table.schema, "scores", mode, list(keys))

    def read():
        with wh.reading() as session:
            return session.rows('SELECT id, v FROM "scores" ORDER BY id')

    with wh.writing(begin=False) as session:  # a constraint the loads can break
        session.execute('CREATE TABLE "scores" ("id" BIGINT NOT NULL, "region" TEXT, "v" TEXT)')
    load("a", [1, 2, 3], "append")
    load("b", [3, 4, 5], "merge", ["ID", "region"])  # keys matched the way the warehouse matches names
    assert read() == [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "b")]
    with pytest.raises(sqlite3.IntegrityError):  # after the DELETE: rolled back
        load("c", [9, None], "replace")
    assert len(read()) == 5
    load("d", [7], "replace")
    assert read() == [(7, "d")]
    with wh.reading() as session:
        schema, batches = session.arrow('SELECT id, v FROM "scores"')
        assert schema.names == ["id", "v"] and pa.Table.from_batches(list(batches)).num_rows == 1


def test_importing_the_adapters_imports_no_driver():
    code = (
        "import sys, aq_airflow.warehouse\n"
        "heavy = ['duckdb', 'snowflake.connector', 'psycopg2', 'psycopg', 'pandas', 'pyarrow.dataset', 'airflow']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- what fakesnow cannot show: the connector's Arrow chunks, and staging from object stores ----


class ArrowCursor:
    """A stand-in for the connector's cursor on a real Snowflake: Arrow result chunks."""

    def __init__(self, description, chunks):
        self.description = description
        self.chunks = chunks
        self.asked = {}

    def execute(self, sql):
        self.sql = sql

    def fetch_arrow_batches(self, **kwargs):
        self.asked = kwargs
        return iter(self.chunks)


class ArrowConnection:
    def __init__(self, cursor):
        self._cursor = cursor
        self._arrow_number_to_decimal = False

    def cursor(self):
        return self._cursor


def _column(name, code, precision=None, scale=None):
    return (name, code, None, None, precision, scale, True)


def test_snowflake_arrow_chunks_are_cast_to_one_schema():
    """Chunk types vary with their data (int8 in one, int64 in the next); the schema comes
    from the description, and every chunk is cast to it."""
    description = [_column("I", 0, 38, 0), _column("D", 0, 10, 2), _column("TS", 8, 0, 9), _column("V", 5)]
    chunks = [
        pa.table({"I": pa.array([1], pa.int8()), "D": pa.array([Decimal("1.50")], pa.decimal128(10, 2)),
                  "TS": pa.array([datetime.datetime(2024, 1, 1)], pa.timestamp("us")), "V": ['{"a": 1}']}),
        pa.table({"I": pa.array([2**40], pa.int64()), "D": pa.array([None], pa.decimal128(10, 2)),
                  "TS": pa.array([None], pa.timestamp("us")), "V": [None]}),
    ]  # fmt: skip
    cursor = ArrowCursor(description, chunks)
    conn = ArrowConnection(cursor)
    schema, batches = Warehouse.for_dialect("snowflake").read_arrow(conn, "SELECT ...", 1000)
    assert conn._arrow_number_to_decimal and cursor.asked == {"force_microsecond_precision": True}
    assert schema == pa.schema([("I", pa.int64()), ("D", pa.decimal128(10, 2)), ("TS", pa.timestamp("us")),
                                ("V", pa.string())])  # fmt: skip
    assert pa.Table.from_batches(list(batches)).column("I").to_pylist() == [1, 2**40]
    empty_schema, none = Warehouse.for_dialect("snowflake").read_arrow(
        ArrowConnection(ArrowCursor(description, [])), "SELECT ...", 1000
    )
    assert empty_schema.types[:3] == [pa.int64(), pa.decimal128(10, 2), pa.timestamp("us")] and list(none) == []


def test_snowflake_publish_never_builds_a_dataframe(tmp_path, monkeypatch):
    """PUT and COPY INTO, not write_pandas; object-store files are downloaded one at a time
    and deleted once uploaded (here a filesystem that is not the local one)."""
    import fakesnow
    import snowflake.connector
    from fakesnow.cursor import FakeSnowflakeCursor

    import aq_airflow.warehouse.snowflake as adapter

    executed, present = [], []
    real_execute = FakeSnowflakeCursor.execute

    def execute(self, command, *args, **kwargs):
        executed.append(command)
        if command.startswith("PUT"):
            present.append(sorted(p.name for p in scratch.iterdir()))
        return real_execute(self, command, *args, **kwargs)

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(FakeSnowflakeCursor, "execute", execute)
    monkeypatch.setattr(adapter.tempfile, "TemporaryDirectory", lambda **_: _Keep(scratch))
    store = tmp_path / "store"
    store.mkdir()
    for name, ids in (("p1", [1, 2]), ("p2", [3])):
        pq.write_table(pa.table({"id": ids}), store / f"{name}.parquet")
    remote = pafs.SubTreeFileSystem(str(store), pafs.LocalFileSystem())  # not a LocalFileSystem: downloaded
    with fakesnow.patch():
        monkeypatch.setattr("snowflake.connector.pandas_tools.write_pandas", _no_pandas, raising=False)
        connect = lambda: snowflake.connector.connect(database="db", schema="out")  # noqa: E731
        wh = Warehouse.for_dialect("snowflake", connect)
        wh.bulk_load(["p1.parquet", "p2.parquet"], remote, pa.schema([("id", pa.int64())]), "out.t", "append")
        with wh.reading() as session:
            assert session.rows('SELECT "ID" FROM "OUT"."T" ORDER BY 1') == [(1,), (2,), (3,)]
    puts = [c for c in executed if c.startswith("PUT")]
    assert len(puts) == 2 and present == [["part-00000.parquet"], ["part-00001.parquet"]]  # one file at a time
    assert list(scratch.iterdir()) == []
    assert sum(c.startswith("COPY INTO") for c in executed) == 1


class _Keep:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return str(self.path)

    def __exit__(self, *exc):
        return False


def _no_pandas(*args, **kwargs):
    raise AssertionError("publish must not load a DataFrame")


def test_an_in_memory_duckdb_scans_registered_arrow_data(tmp_path):
    """How a step's Parquet output is scanned where it has no warehouse table."""
    wh = DuckDB.in_memory({"aq_artifact": pa.table({"id": [1, 2, 3]})})
    with wh.reading() as session:
        assert session.fetch("SELECT count(*), sum(id) FROM aq_artifact") == (["count_star()", "sum(id)"], [(3, 6)])
    assert json.loads(DuckDB.connection_json(tmp_path / "w.duckdb")) == {
        "conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")}  # fmt: skip


def test_results_tables_ddl_per_dialect():
    """Each dialect's spelling of the tables' types (every statement is pinned in test_results_sql)."""
    ddl = {}
    for dialect in ("duckdb", "postgres", "snowflake", None):
        statements = Statements(Warehouse.for_dialect(dialect), "aq")
        ddl[dialect] = [statements.render(s) for s in (statements.create_schema(),
                        statements.create_table(CHECKS_TABLE), statements.create_table(METRICS_TABLE))]  # fmt: skip
    assert ddl["snowflake"][0] == 'CREATE SCHEMA IF NOT EXISTS "AQ"'
    assert ddl["snowflake"][2] == (
        'CREATE TABLE IF NOT EXISTS "AQ"."AQ_METRIC_RESULTS" ("DAG_ID" VARCHAR, "RUN_ID" VARCHAR, "STEP" VARCHAR, '
        '"NAME" VARCHAR, "KIND" VARCHAR, "OUTCOME" VARCHAR, "SEVERITY" VARCHAR, "MESSAGE" VARCHAR, "VALUE" DOUBLE, '
        '"EXPECTED" VARCHAR, "MAP_INDEX" INT, "TRY_NUMBER" INT, "SPEC_HASH" VARCHAR, "IMAGE" VARCHAR, '
        '"LOGICAL_DATE" TIMESTAMPNTZ, "CREATED_AT" TIMESTAMPNTZ, "ITEM_LABEL" VARCHAR, "CODE_DIGEST" VARCHAR, '
        '"IMAGE_DIGEST" VARCHAR)'
    )
    assert ddl["postgres"][2].startswith('CREATE TABLE IF NOT EXISTS "aq"."aq_metric_results" ("dag_id" TEXT, ')
    tail = '"value" DOUBLE PRECISION, "expected" TEXT, "map_index" INT, "try_number" INT, "spec_hash" TEXT, '
    assert tail in ddl["postgres"][2]
    assert ddl["postgres"][2].endswith(
        '"logical_date" TIMESTAMP, "created_at" TIMESTAMP, "item_label" TEXT, "code_digest" TEXT, "image_digest" TEXT)'
    )
    assert ddl["duckdb"][1].endswith('"role" TEXT DEFAULT \'check\', "code_digest" TEXT, "image_digest" TEXT)')
    # not Snowflake's NTZ spelling
    assert ddl[None][2].endswith('"created_at" TIMESTAMP, "item_label" VARCHAR, "code_digest" VARCHAR, '
                                 '"image_digest" VARCHAR)')  # fmt: skip


def test_results_tables_of_earlier_versions_get_the_columns_added_since():
    """The migration a first write runs on a table without ``item_label``: one additive ALTER,
    IF NOT EXISTS where the dialect has it (a table that has every column takes none:
    tests/test_results_migrations.py)."""
    added = {}
    for dialect in ("duckdb", "postgres", "snowflake", None):
        statements = Statements(Warehouse.for_dialect(dialect), "aq")
        added[dialect] = statements.render(statements.add_column(CHECKS_TABLE, "item_label"))
    assert added == {
        "duckdb": 'ALTER TABLE "aq"."aq_check_results" ADD COLUMN IF NOT EXISTS "item_label" TEXT',
        "postgres": 'ALTER TABLE "aq"."aq_check_results" ADD COLUMN IF NOT EXISTS "item_label" TEXT',
        "snowflake": 'ALTER TABLE "AQ"."AQ_CHECK_RESULTS" ADD IF NOT EXISTS "ITEM_LABEL" VARCHAR',
        None: 'ALTER TABLE "aq"."aq_check_results" ADD COLUMN "item_label" VARCHAR',  # looked up first: no race guard
    }
