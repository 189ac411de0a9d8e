"""Tables written by release N (the release before ``role``), brought to this one's shape by the
first write of this version, on DuckDB, PostgreSQL and Snowflake (fakesnow).

The fixture is release N's own SQL, copied as it rendered: its DDL wrote every column name bare
(so Snowflake stored them upper-case, PostgreSQL lower-case) and its INSERT named them bare; a
`when:` verdict was a row of step ``<step>.when`` with name and kind ``when``. The migration adds
``role`` and moves those verdicts to their step with role ``when``; run twice, it changes nothing
more, and no row is lost."""

from __future__ import annotations

import datetime

import pytest

from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.results.history import ResultsHistory
from aq_airflow.results.migrations import table_columns
from aq_airflow.results.rows import COLUMNS, DEPLOYMENTS_TABLE, KEY, DeploymentRow, Role
from tests.test_results_history import open_store

DAY = datetime.timedelta(days=1)
FIRST = datetime.datetime(2026, 2, 1)

# release N's DDL, as it rendered per dialect ({schema}: the quoted schema, {checks} / {metrics}:
# the quoted tables); the column names bare
_CHECKS_N = (
    "CREATE TABLE IF NOT EXISTS {checks} (dag_id {text}, run_id {text}, step {text}, name {text}, kind {text}, "
    "outcome {text}, severity {text}, message {text}, observed {text}, expected {text}, failing_rows BIGINT, "
    "total_rows BIGINT, sample {text}, details {text}, map_index INT, try_number INT, spec_hash {text}, "
    "image {text}, logical_date {ts}, created_at {ts}, item_label {text})"
)
_METRICS_N = (
    "CREATE TABLE IF NOT EXISTS {metrics} (dag_id {text}, run_id {text}, step {text}, name {text}, kind {text}, "
    "outcome {text}, severity {text}, message {text}, value {double}, expected {text}, map_index INT, "
    "try_number INT, spec_hash {text}, image {text}, logical_date {ts}, created_at {ts}, item_label {text})"
)
_TYPES_N = {
    "duckdb": {"text": "TEXT", "ts": "TIMESTAMP", "double": "DOUBLE"},
    "postgres": {"text": "TEXT", "ts": "TIMESTAMP", "double": "DOUBLE PRECISION"},
    "snowflake": {"text": "VARCHAR", "ts": "TIMESTAMPNTZ", "double": "DOUBLE"},
}
# release N's INSERT (ResultsStore.replace): every column, bare
_CHECK_COLUMNS_N = ("dag_id, run_id, step, name, kind, outcome, severity, message, observed, expected, failing_rows, "
                    "total_rows, sample, details, map_index, try_number, spec_hash, image, logical_date, created_at, "
                    "item_label")  # fmt: skip
_METRIC_COLUMNS_N = ("dag_id, run_id, step, name, kind, outcome, severity, message, value, expected, map_index, "
                     "try_number, spec_hash, image, logical_date, created_at, item_label")  # fmt: skip


@pytest.fixture(params=["duckdb", "postgres", "snowflake"])
def store(request, tmp_path):
    yield from open_store(request.param, request, tmp_path)


def _release_n_tables(store: ResultsStore) -> None:
    """The results tables and rows as release N wrote them, by release N's SQL."""
    warehouse, dialect = store.warehouse, store.warehouse.dialect
    names = {
        "schema": warehouse.quote_table(store.schema),
        "checks": warehouse.quote_table(f"{store.schema}.{CHECKS_TABLE}"),
        "metrics": warehouse.quote_table(f"{store.schema}.{METRICS_TABLE}"),
        **_TYPES_N[dialect],
    }
    p = store.placeholder
    checks, metrics = [], []
    for i in range(3):
        date = FIRST + DAY * i
        common = ("pipe", f"scheduled__{i}")
        recorded = [("train", "rows", "row_count", "passed"),
                    ("publish", "ok", "not_null", "passed" if i else "failed"),
                    ("publish.when", "when", "when", "passed" if i != 1 else "skipped")]  # fmt: skip
        for step, name, kind, outcome in recorded:
            checks.append((*common, step, name, kind, outcome, "warning", f"{step} {name}", None, None, None, None,
                           None, None, -1, 1, "h", None, date, date + DAY / 2, None))  # fmt: skip
        metrics.append((*common, "train", "auc", "mean", "passed", "warning", "auc", 0.8 + i / 100, None, -1, 1, "h",
                        None, date, date + DAY / 2, None))  # fmt: skip
    with warehouse.writing(begin=False) as session:
        session.execute(f"CREATE SCHEMA IF NOT EXISTS {names['schema']}")
        session.execute(_CHECKS_N.format(**names))
        session.execute(_METRICS_N.format(**names))
    with warehouse.writing() as session:
        marks = ", ".join([p] * 21)
        session.cursor.executemany(f"INSERT INTO {names['checks']} ({_CHECK_COLUMNS_N}) VALUES ({marks})", checks)
        marks = ", ".join([p] * 17)
        session.cursor.executemany(f"INSERT INTO {names['metrics']} ({_METRIC_COLUMNS_N}) VALUES ({marks})", metrics)


def _rows(store: ResultsStore, table: str) -> list[tuple]:
    with store.warehouse.reading() as session:
        return session.rows(f"SELECT * FROM {store.warehouse.quote_table(f'{store.schema}.{table}')}")


def test_release_n_tables_are_migrated_once_and_keep_every_row(store):
    _release_n_tables(store)
    before = {table: len(_rows(store, table)) for table in (CHECKS_TABLE, METRICS_TABLE)}
    assert before == {CHECKS_TABLE: 9, METRICS_TABLE: 3}

    # read as they are before any write of this version: the verdicts under their old step
    history = ResultsHistory(store)
    verdicts = [c for c in history.check_timeline("pipe").items if c.role == Role.WHEN]
    assert {c.step for c in verdicts} == {"publish.when"} and len(verdicts) == 3

    store.ensure_tables()
    store.ensure_tables()  # idempotent: nothing more moves, nothing is added twice
    with store.warehouse.reading() as session:
        assert "role" in table_columns(session, store.statements, CHECKS_TABLE)
    after = {table: len(_rows(store, table)) for table in (CHECKS_TABLE, METRICS_TABLE)}
    assert after == before

    history = ResultsHistory(store)
    timeline = history.check_timeline("pipe").items
    assert not [c for c in timeline if c.step.endswith(".when")]
    verdicts = sorted((c.logical_date, c.step, c.name, c.kind, c.outcome) for c in timeline if c.role == Role.WHEN)
    assert verdicts == [(FIRST + DAY * i, "publish", "when", "when", "skipped" if i == 1 else "passed")
                        for i in range(3)]  # fmt: skip
    assert sorted((c.step, c.name) for c in timeline if c.role == Role.CHECK) == sorted(
        [("train", "rows"), ("publish", "ok")] * 3)  # fmt: skip
    # what reads the verdicts finds them: the champion's date, the step's rows, the UI's task page
    assert store.champion("pipe", "publish", "train", "auc", FIRST + DAY * 3) == (FIRST + DAY * 2, pytest.approx(0.82))
    assert store.champion("pipe", "publish", "train", "auc", FIRST + DAY * 2) == (FIRST, 0.8)  # day 2 skipped
    columns, rows = history.newest_rows(CHECKS_TABLE, "pipe", step="publish", last=100)
    assert sorted((r[columns.index("role")], r[columns.index("name")]) for r in rows) == sorted(
        [("check", "ok"), ("when", "when")] * 3)  # fmt: skip
    checks, _ = history.run_results("pipe", FIRST, ["publish"], role=Role.WHEN)
    assert [(c.result.name, c.result.outcome) for c in checks] == [("when", "passed")]
    assert history.overview(["pipe"])["pipe"].total == 3  # day 3: 2 checks and the metric, not the verdict

    # this version's writes: a step's checks and its verdict are two sets of one key
    key = {"dag_id": "pipe", "run_id": "new", "step": "publish", "map_index": -1, "logical_date": FIRST}
    store.replace(CHECKS_TABLE, key, [{**key, "name": "ok", "kind": "not_null", "outcome": "passed"}])
    checks, _ = history.run_results("pipe", FIRST, ["publish"])
    assert sorted((c.result.role, c.result.name, c.result.outcome) for c in checks) == [
        ("check", "ok", "passed"), ("when", "when", "passed")]  # fmt: skip
    assert len(_rows(store, CHECKS_TABLE)) == 9


def test_verdicts_an_older_worker_writes_during_an_upgrade_reach_their_step(store):
    """Release N's worker, still running after this version added ``role``, writes a verdict under
    ``<step>.when`` (the column's default says ``check``); the next `when:` task of this version
    moves it, and a checks task's ensure_tables leaves it be."""
    _release_n_tables(store)
    store.ensure_tables()  # this version's first write: the column, and the verdicts moved
    names = {"checks": store.warehouse.quote_table(f"{store.schema}.{CHECKS_TABLE}")}
    late = ("pipe", "scheduled__9", "publish.when", "when", "when", "passed", "warning", "late", None, None, None,
            None, None, None, -1, 1, "h", None, FIRST + DAY * 9, FIRST + DAY * 9, None)  # fmt: skip
    with store.warehouse.writing() as session:  # release N's INSERT: no role named
        marks = ", ".join([store.placeholder] * 21)
        session.execute(f"INSERT INTO {names['checks']} ({_CHECK_COLUMNS_N}) VALUES ({marks})", late)
    store.ensure_tables()  # a checks or metrics task: nothing moves
    assert [c.step for c in ResultsHistory(store).check_timeline("pipe").items if c.run_id == "scheduled__9"] == [
        "publish.when"]  # fmt: skip
    store.ensure_tables(verdicts=True)  # a `when:` task
    late_rows = [c for c in ResultsHistory(store).check_timeline("pipe").items if c.run_id == "scheduled__9"]
    assert [(c.step, c.role) for c in late_rows] == [("publish", Role.WHEN)]
    assert len(_rows(store, CHECKS_TABLE)) == 10


def _release_n1_tables(store: ResultsStore) -> None:
    """The tables as the release after N wrote them: N's, with ``role`` (the ALTER that release
    ran), and no ``code_digest`` or ``image_digest``."""
    _release_n_tables(store)
    table = store.warehouse.quote_table(f"{store.schema}.{CHECKS_TABLE}")
    role = f"ALTER TABLE {table} ADD COLUMN role {_TYPES_N[store.warehouse.dialect]['text']} DEFAULT 'check'"
    with store.warehouse.writing(begin=False) as session:
        session.execute(role.replace("ADD COLUMN", "ADD") if store.warehouse.dialect == "snowflake" else role)


def test_tables_before_provenance_gain_its_columns_and_keep_every_row(store):
    """``code_digest`` and ``image_digest`` are added to tables that lack them (NULL in every row
    there), once; each row is still there, and this version's rows carry the values."""
    _release_n1_tables(store)
    before = {table: sorted(map(repr, _rows(store, table))) for table in (CHECKS_TABLE, METRICS_TABLE)}
    store.ensure_tables()
    store.ensure_tables()  # idempotent
    with store.warehouse.reading() as session:
        for table in (CHECKS_TABLE, METRICS_TABLE):
            columns = table_columns(session, store.statements, table)
            assert {"code_digest", "image_digest"} <= columns, table
    for table in (CHECKS_TABLE, METRICS_TABLE):
        rows = _rows(store, table)
        assert sorted(repr(row[:-2]) for row in rows) == before[table], table  # every row, as it was
        assert {row[-2:] for row in rows} == {(None, None)}, table

    digest, image_digest = "sha256:" + "c" * 64, "sha256:" + "d" * 64
    made = {"code_digest": digest, "image": "ghcr.io/acme/steps:1", "image_digest": image_digest}
    key = {"dag_id": "pipe", "run_id": "new", "step": "train", "map_index": -1, "logical_date": FIRST + DAY * 5}
    store.replace(CHECKS_TABLE, key, [{**key, **made, "name": "rows", "kind": "row_count", "outcome": "passed"}])
    store.replace(METRICS_TABLE, key, [{**key, **made, "name": "auc", "kind": "mean", "outcome": "passed", "value": 1}])
    quote = store.warehouse.quote_table
    for table in (CHECKS_TABLE, METRICS_TABLE):
        with store.warehouse.reading() as session:
            columns, rows = session.fetch(f"SELECT * FROM {quote(f'{store.schema}.{table}')} WHERE run_id = 'new'")
        names = [str(c).lower() for c in columns]
        (row,) = rows
        assert [row[names.index(c)] for c in ("code_digest", "image", "image_digest")] == list(made.values()), table
    assert len(_rows(store, CHECKS_TABLE)) == 10 and len(_rows(store, METRICS_TABLE)) == 4


def test_a_warehouse_before_serving_gains_the_deployments_table_and_keeps_every_row(store):
    """Tables of the release before `serve:` (checks and metrics, no ``aq_deployments``): the
    first write makes the table with every column, moves no row, and a serve task's row (one per
    try: a retry adds its own, a re-run of the same try replaces it) reads back."""
    _release_n1_tables(store)
    before = {table: sorted(map(repr, _rows(store, table))) for table in (CHECKS_TABLE, METRICS_TABLE)}
    assert ResultsHistory(store).deployments("pipe") == []  # read before the table is there
    store.ensure_tables()
    store.ensure_tables()  # idempotent
    with store.warehouse.reading() as session:
        assert table_columns(session, store.statements, DEPLOYMENTS_TABLE) == {c for c, _ in COLUMNS[DEPLOYMENTS_TABLE]}
    for table in (CHECKS_TABLE, METRICS_TABLE):
        assert sorted(repr(row[:-2]) for row in _rows(store, table)) == before[table], table

    def attempt(try_number: int, outcome: str, latency: float | None) -> DeploymentRow:
        return DeploymentRow(dag_id="pipe", run_id="r1", step="train", endpoint="churn", version="3f2a",
                             outcome=outcome, try_number=try_number, smoke_latency_ms=latency,
                             logical_date=datetime.datetime(2026, 1, 5),
                             created_at=datetime.datetime(2026, 1, 5, 1, try_number))  # fmt: skip

    for row in (attempt(1, "failed", None), attempt(2, "rolled_back", 9.0), attempt(2, "promoted", 8.5)):
        store.replace(DEPLOYMENTS_TABLE, {k: getattr(row, k) for k in KEY[DEPLOYMENTS_TABLE]}, [row])
    rows = ResultsHistory(store).deployments("pipe")
    assert [(d.try_number, d.outcome, d.smoke_latency_ms) for d in rows] == [(2, "promoted", 8.5), (1, "failed", None)]
