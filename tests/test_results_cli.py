"""`aq-airflow results` as users run it (a subprocess of the CLI) over a DuckDB warehouse holding
what the operators write: a failed check's failing rows under its row (text) and parsed (JSON),
the spec's sensitive columns dropped again at read time; a `when:` verdict found by its step;
a `foreach:` item named `step[index:label]`; numbers as users write them. Then a table of an
earlier version (no `item_label`), read as it is."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from aq_airflow.quality.numbers import number
from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.results.rows import DEPLOYMENTS_TABLE, KEY, DeploymentRow
from aq_airflow.warehouse import Warehouse

CLI = [sys.executable, "-m", "aq_airflow.cli"]
DATE = datetime.datetime(2026, 3, 1)
SPEC = """
pipeline: shop
warehouse: shop_wh
results_schema: aq
steps:
  orders:
    sql: SELECT 1 AS id, 'a@x.io' AS email, 'n' AS note
    sensitive: [email]
    checks:
      - {name: ids_unique, unique: id}
    metrics:
      - {name: revenue, sum: id}
  evaluate:
    command: [python, -c, "print(1)"]
    image: python:3.12-slim
    foreach: [apac, eu, us]
    metrics:
      - {name: auc, max: auc}
  notify:
    sql: SELECT 1 AS sent
    depends_on: [orders]
    when: {metric: orders.revenue, above: 0}
"""
LONG_NOTE = "a note much longer than any sample cell is shown"
# the sample the engine wrote before `email` was marked sensitive (the read drops it again)
SAMPLE = [{"id": i, "email": f"user{i}@example.com", "note": LONG_NOTE if i == 1 else f"n{i}"} for i in range(1, 8)]
AUC = {"apac": 26500.0, "eu": 0.8476, "us": 1234567.5}  # one of each: whole, fraction, large with a fraction


ROLLED_BACK = "the smoke test's response has 3 outputs for 5 rows"
ATTEMPTS = [
    DeploymentRow(dag_id="shop", run_id="manual__2026-03-01", step="train", endpoint="churn", version="v3f2a9c01d4e5",
                  previous_version="v0a1b2c3d4e5f", format="sklearn", target="local", outcome=outcome,
                  reason=reason, smoke_rows=5, smoke_latency_ms=latency, try_number=tries, logical_date=DATE,
                  created_at=DATE + datetime.timedelta(minutes=tries))
    for tries, outcome, reason, latency in ((1, "rolled_back", ROLLED_BACK, None), (2, "promoted", None, 12.3456))
]  # fmt: skip


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    environment["COLUMNS"] = "200"
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=environment, timeout=300)


def _store(path: Path) -> ResultsStore:
    return ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(path))), "aq")


def _write(
    store: ResultsStore, table: str, step: str, rows: list[dict], map_index: int = -1, label=None, role="check"
) -> None:
    """One task's rows as the operators write them (``replace``, keyed by date, step, map index
    and, for checks, role)."""
    key = {"dag_id": "shop", "run_id": "manual__2026-03-01", "step": step, "map_index": map_index,
           "logical_date": DATE, **({"role": role} if table == CHECKS_TABLE else {})}  # fmt: skip
    common = {**key, "item_label": label, "try_number": 1, "created_at": DATE}
    store.replace(table, key, [{**common, **row} for row in rows])


def _row(name: str, kind: str, outcome: str, message: str, **values) -> dict:
    severity = "error" if kind == "unique" else "warning"
    return {"name": name, "kind": kind, "outcome": outcome, "severity": severity, "message": message, **values}


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """A folder with the spec and `wh.duckdb`: the results of one run of it."""
    root = tmp_path_factory.mktemp("shop")
    (root / "shop.aq.yaml").write_text(textwrap.dedent(SPEC).lstrip())
    store = _store(root / "wh.duckdb")
    store.ensure_tables()
    duplicates = _row("ids_unique", "unique", "failed", "7 of 40 rows are duplicates; expected 0", failing_rows=7,
                      total_rows=40, sample=json.dumps(SAMPLE))  # fmt: skip
    _write(store, CHECKS_TABLE, "orders", [duplicates])
    _write(store, METRICS_TABLE, "orders", [_row("revenue", "sum", "passed", "revenue = 2.1e+18", value=2.1e18)])
    for index, (region, auc) in enumerate(AUC.items()):
        _write(
            store, METRICS_TABLE, "evaluate", [_row("auc", "max", "passed", f"auc = {auc}", value=auc)], index, region
        )
    verdict = _row("when", "when", "skipped", "metric orders.revenue = 0.0 > 0: does not hold")
    _write(store, CHECKS_TABLE, "notify", [verdict], role="when")
    for attempt in ATTEMPTS:  # as the serve task records them: a row per try
        store.replace(DEPLOYMENTS_TABLE, {k: getattr(attempt, k) for k in KEY[DEPLOYMENTS_TABLE]}, [attempt])
    return root


def _json(root: Path, *args: str) -> dict:
    shown = cli("results", *args, "--format", "json", cwd=root)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return json.loads(shown.stdout)


def test_the_text_shows_failing_rows_items_and_plain_numbers(shop):
    shown = cli("results", "shop.aq.yaml", "--warehouse", "wh.duckdb", cwd=shop)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if " ids_unique " in line)
    assert lines[at + 1 : at + 8] == [
        "  failing rows (sample; first 5; hidden as sensitive: email):",
        "    id  note",
        "    1   a note much longer than…",
        "    2   n2",
        "    3   n3",
        "    4   n4",
        "    5   n5",
    ]
    assert "example.com" not in shown.stdout  # the spec's sensitive column, dropped at read time too
    metrics = {line.split()[3]: line.split()[8] for line in lines if " auc " in line or " revenue " in line}
    assert metrics == {"evaluate[0:apac]": "26500", "evaluate[1:eu]": "0.8476", "evaluate[2:us]": "1234567.5",
                       "orders": "2.1e+18"}  # fmt: skip
    assert "2.65e+04" not in shown.stdout and "1.235e+06" not in shown.stdout


def test_the_json_carries_the_sample_parsed_and_the_item_label(shop):
    document = _json(shop, "shop.aq.yaml", "--warehouse", "wh.duckdb")
    (check,) = [c for c in document["checks"] if c["name"] == "ids_unique"]
    assert check["sample"] == {"columns": ["id", "note"], "rows": [[r["id"], r["note"]] for r in SAMPLE],
                               "hidden_columns": ["email"], "truncated": False}  # fmt: skip
    auc = [(m["step"], m["map_index"], m["item_label"], m["value"]) for m in document["metrics"] if m["name"] == "auc"]
    assert auc == [("evaluate", i, region, value) for i, (region, value) in enumerate(AUC.items())]
    assert {m["item_label"] for m in document["metrics"] if m["name"] == "revenue"} == {None}  # not mapped


def test_promotion_attempts_are_shown_beside_the_checks_and_metrics(shop):
    """Each try of a `serve` task, newest first: endpoint, version, outcome, the version served
    since, the smoke test's latency and why it was rolled back; whole in the JSON."""
    shown = cli("results", "shop.aq.yaml", "--warehouse", "wh.duckdb", cwd=shop)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    section = shown.stdout.split("deployments (aq_deployments), newest first\n", 1)[1].splitlines()
    assert section[0].split() == ["time", "run_id", "step", "endpoint", "version", "outcome", "serving", "smoke",
                                  "ms", "reason"]  # fmt: skip
    assert section[1].split() == ["2026-03-01", "00:02:00", "manual__2026-03-01", "train", "churn", "v3f2a9c01d4e5",
                                  "promoted", "v3f2a9c01d4e5", "12.3"]  # fmt: skip
    assert section[2].split()[6:9] == ["rolled_back", "v0a1b2c3d4e5f", *ROLLED_BACK.split()[:1]]
    assert ROLLED_BACK in " ".join(" ".join(line.split()) for line in section[2:])
    document = _json(shop, "shop.aq.yaml", "--warehouse", "wh.duckdb")
    assert [(d["endpoint"], d["version"], d["outcome"], d["verdict"], d["serving"], d["reason"], d["smoke_latency_ms"],
             d["try_number"]) for d in document["deployments"]] == [
        ("churn", "v3f2a9c01d4e5", "promoted", "passed", "v3f2a9c01d4e5", None, 12.3456, 2),
        ("churn", "v3f2a9c01d4e5", "rolled_back", "warning", "v0a1b2c3d4e5f", ROLLED_BACK, None, 1)]  # fmt: skip
    assert document["deployments"][0]["run_id"] == "manual__2026-03-01"
    assert document["deployments"][0]["created_at"] == "2026-03-01T00:02:00"
    assert _json(shop, "shop.aq.yaml", "--warehouse", "wh.duckdb", "--step", "orders")["deployments"] == []


@pytest.mark.slow
def test_a_when_verdict_is_found_by_its_step(shop):
    shown = cli("results", "shop.aq.yaml", "--warehouse", "wh.duckdb", "--step", "notify", cwd=shop)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "does not hold" in shown.stdout
    header, row = shown.stdout.split("checks (aq_check_results), newest first\n", 1)[1].splitlines()[:2]
    assert header.split()[:7] == ["logical_date", "run_id", "step", "name", "kind", "role", "outcome"]
    assert row.split()[3:8] == ["notify", "when", "when", "when", "skipped"]
    assert "metrics: nothing recorded yet for shop, step notify" in shown.stdout
    document = _json(shop, "shop.aq.yaml", "--warehouse", "wh.duckdb", "--step", "notify")
    assert [(c["step"], c["role"], c["kind"], c["outcome"]) for c in document["checks"]] == [
        ("notify", "when", "when", "skipped")]  # fmt: skip
    orders = _json(shop, "shop", "--warehouse", "wh.duckdb", "--schema", "aq", "--step", "orders")
    assert [c["step"] for c in orders["checks"]] == ["orders"]  # another step's verdict is not its own


@pytest.mark.slow
def test_a_table_of_an_earlier_version_reads_as_it_is(tmp_path):
    """Results tables made before `item_label` existed: an item is named by its map index alone,
    and reading migrates nothing (a reader may hold no write rights)."""
    with duckdb.connect(str(tmp_path / "old.duckdb")) as conn:
        conn.execute("CREATE SCHEMA aq")
        conn.execute(
            "CREATE TABLE aq.aq_metric_results (dag_id VARCHAR, run_id VARCHAR, step VARCHAR, name VARCHAR, "
            "kind VARCHAR, outcome VARCHAR, severity VARCHAR, message VARCHAR, value DOUBLE, expected VARCHAR, "
            "map_index INTEGER, try_number INTEGER, spec_hash VARCHAR, image VARCHAR, logical_date TIMESTAMP, "
            "created_at TIMESTAMP)"
        )
        conn.execute("INSERT INTO aq.aq_metric_results (dag_id, run_id, step, name, kind, outcome, severity, value, "
                     "map_index, logical_date, created_at) VALUES ('shop', 'r', 'evaluate', 'auc', 'max', 'passed', "
                     "'warning', 26500, 2, TIMESTAMP '2026-03-01', TIMESTAMP '2026-03-01')")  # fmt: skip
    shown = cli("results", "shop", "--warehouse", "old.duckdb", "--schema", "aq", cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "checks: nothing recorded yet (no aq_check_results table in schema aq)" in shown.stdout
    assert "deployments" not in shown.stdout  # no aq_deployments table: no section, nothing created
    (row,) = [line.split() for line in shown.stdout.splitlines() if " auc " in line]
    assert (row[3], row[8]) == ("evaluate[2]", "26500")
    document = _json(tmp_path, "shop", "--warehouse", "old.duckdb", "--schema", "aq")
    assert [(m["map_index"], m["item_label"]) for m in document["metrics"]] == [(2, None)]
    with duckdb.connect(str(tmp_path / "old.duckdb"), read_only=True) as conn:
        columns = [c[0] for c in conn.execute("DESCRIBE aq.aq_metric_results").fetchall()]
    assert "item_label" not in columns


@pytest.mark.parametrize(
    ("value", "text"),
    [(26500, "26500"), (26500.0, "26500"), (0.8476, "0.8476"), (1234567.5, "1234567.5"), (-3.25, "-3.25"),
     (0.1 + 0.2, "0.3"), (1 / 3, "0.3333333333"), (0.0, "0"), (-0.0, "0"), (1e-7, "1e-07"), (2.1e18, "2.1e+18"),
     (12345678901234567, "12345678901234567"), (float("nan"), "nan"), (float("inf"), "inf")],
)  # fmt: skip
def test_numbers_print_as_users_write_them(value, text):
    assert number(value) == text
