"""`make bench` (ui): the quality pages' server time on a year of results.

A pipeline of 3 steps x 20 metrics and 3 steps x 10 checks, 365 logical dates (21,900 metric and
10,950 check rows), with 4 other pipelines of the same size in the same tables, in DuckDB and in
PostgreSQL (when one answers). Each page is requested through the real Airflow API app in this
process (``create_app``, the aq_quality plugin from its entry point, a serialized DAG in a SQLite
metadata DB, a JWT for a SimpleAuthManager user), so its time holds authentication, the
per-DAG access check, the serialized-DAG lookup, the warehouse queries and the rendering. The
baseline is a plain SELECT of the same rows the page shows (no latest-row dedupe, no rendering),
fetched with the same driver in the same run. Goal: the pipeline page under 1 s.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

HOME = tempfile.mkdtemp(prefix="aq-bench-ui-home-")
os.environ["AIRFLOW_HOME"] = HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(HOME, "dags")
os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "bench:viewer"
os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "False"
os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = uuid.uuid4().hex * 2
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
logging.disable(logging.WARNING)

import pyarrow as pa  # noqa: E402

from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore  # noqa: E402
from aq_airflow.results.rows import COLUMNS  # noqa: E402
from aq_airflow.warehouse import DuckDB, Warehouse  # noqa: E402
from bench.machine import settle  # noqa: E402

STEPS, METRICS, CHECKS, DAYS, OTHERS = 3, 20, 10, 365, 4
FIRST = datetime.datetime(2025, 1, 1)
ARROW = {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(),
         "TIMESTAMP": pa.timestamp("us")}  # fmt: skip


def rows_of(dag_id: str, days: int) -> dict[str, list[dict]]:
    """A year of results: each metric a noisy level with a learned band, a bad day now and then;
    each check mostly passing."""
    rng = random.Random(dag_id)
    checks, metrics = [], []
    for day in range(days):
        date = FIRST + datetime.timedelta(days=day)
        for s in range(STEPS):
            common = {"dag_id": dag_id, "run_id": f"scheduled__{date:%Y-%m-%d}", "step": f"s{s}", "map_index": -1,
                      "try_number": 1, "spec_hash": "bench", "image": None, "logical_date": date,
                      "created_at": date + datetime.timedelta(hours=1)}  # fmt: skip
            for m in range(METRICS):
                level = 100.0 * (m + 1)
                value = rng.gauss(level, level * 0.02) * (1.3 if rng.random() < 0.01 else 1.0)
                history = {"window": 14, "max_zscore": 3, "min_history": 7, "values": min(day, 14)}
                if day >= 7:
                    history.update(mean=level, stddev=level * 0.02, zscore=abs(value - level) / (level * 0.02))
                outcome = "failed" if day >= 7 and history["zscore"] > 3 else "passed"
                expected = json.dumps({"bounds": {"min": 0, "max": level * 2}, "history": history})
                metrics.append({**common, "name": f"metric_{m:02d}", "kind": "mean", "severity": "warning",
                                "outcome": outcome, "message": f"metric_{m:02d} = {value:.6g}", "value": value,
                                "expected": expected})  # fmt: skip
            for c in range(CHECKS):
                failing = 3 if rng.random() < 0.02 else 0
                sample = json.dumps([{"id": None, "v": k} for k in range(failing)]) if failing else None
                checks.append({**common, "name": f"check_{c:02d}", "kind": "not_null", "severity": "error",
                               "role": "check", "outcome": "failed" if failing else "passed", "failing_rows": failing,
                               "total_rows": 10_000, "message": f"{failing} of 10000 rows fail; expected at most 0",
                               "sample": sample, "observed": str(failing), "expected": "at most 0"})  # fmt: skip
    return {CHECKS_TABLE: checks, METRICS_TABLE: metrics}


def arrow_table(table: str, rows: list[dict]) -> pa.Table:
    return pa.table({name: pa.array([r.get(name) for r in rows], ARROW[kind]) for name, kind in COLUMNS[table]})


def seed_duckdb(path: Path, dag_ids: list[str], days: int) -> None:
    import duckdb

    store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(path))), "aq")
    store.ensure_tables()
    conn = duckdb.connect(str(path))
    for dag_id in dag_ids:
        for table, rows in rows_of(dag_id, days).items():
            data = arrow_table(table, rows)  # noqa: F841 - read by name below
            conn.execute(f"INSERT INTO aq.{table} SELECT * FROM data")
    conn.close()


def seed_postgres(dsn: str, schema: str, dag_ids: list[str], days: int) -> None:
    import psycopg2
    import pyarrow.csv as pacsv

    store = ResultsStore(Warehouse.for_dialect("postgres", lambda: psycopg2.connect(dsn)), schema)
    store.ensure_tables()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        for dag_id in dag_ids:
            for table, rows in rows_of(dag_id, days).items():
                buffer = io.BytesIO()
                pacsv.write_csv(arrow_table(table, rows), buffer, pacsv.WriteOptions(include_header=False))
                buffer.seek(0)
                names = ", ".join(n for n, _ in COLUMNS[table])
                cursor.copy_expert(f"COPY {schema}.{table} ({names}) FROM STDIN WITH (FORMAT csv)", buffer)
        cursor.execute(f"ANALYZE {schema}.{CHECKS_TABLE}; ANALYZE {schema}.{METRICS_TABLE}")


def spec(dag_id: str, conn_id: str, schema: str) -> str:
    steps = []
    for s in range(STEPS):
        metrics = ", ".join(f"{{name: metric_{m:02d}, mean: v}}" for m in range(METRICS))
        checks = ", ".join(f"{{name: check_{c:02d}, not_null: id}}" for c in range(CHECKS))
        steps.append(f"  s{s}:\n    table: raw.t{s}\n    checks: [{checks}]\n    metrics: [{metrics}]\n")
    head = f"pipeline: {dag_id}\nschedule: '@daily'\nstart_date: 2025-01-01\nwarehouse: {conn_id}\n"
    return head + f"results_schema: {schema}\nsteps:\n" + "".join(steps)


def airflow_app(pipelines: dict[str, tuple[str, str]], last: datetime.datetime):
    """The API app with the plugin, the pipelines serialized with a run on ``last``, and a
    token: (app, token)."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.utils import db

    from aq_airflow.cli.main import loader_files

    db.initdb()
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(parents=True, exist_ok=True)
    for name, source in loader_files(1).items():
        (dags / name).write_text(source)
    for dag_id, (conn_id, schema) in pipelines.items():
        (dags / f"{dag_id}.aq.yaml").write_text(spec(dag_id, conn_id, schema))
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(dags), bundle_path=dags, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    moment = last.replace(tzinfo=datetime.timezone.utc)
    with create_session() as session:
        for dag_id in pipelines:
            session.add(DagRun(dag_id=dag_id, run_id=f"scheduled__{last:%Y-%m-%d}", logical_date=moment,
                               run_after=moment, run_type="scheduled", state="success"))  # fmt: skip
    app = create_app(apps="core")
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="bench", role="viewer"))
    return app, token


def timed(fn, rounds: int) -> tuple[tuple[float, float], object]:
    """((median, best) seconds, the last result): the best run is the one the machine's other
    work disturbed least, the median what a user would see on it."""
    result, times = None, []
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return (statistics.median(times), min(times)), result


def ratio(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] / b[0], a[1] / b[1]


def measure(
    name: str, client, dag_id: str, store: ResultsStore, rounds: int, last: datetime.datetime, days: int
) -> list[tuple]:
    """The pages of one warehouse's pipeline, and the plain SELECT of the rows they show."""
    from aq_airflow.results.history import ResultsHistory
    from aq_airflow.ui import pages
    from aq_airflow.ui.pipelines import Pipeline

    def page(url: str):
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.status_code, answer.text[:500])
        return answer

    p = store.placeholder
    table = lambda name: store.warehouse.render(store.statements.table(name))  # noqa: E731
    metrics_sql = (f"SELECT logical_date, step, map_index, name, value, outcome, message, expected FROM "
                   f"{table(METRICS_TABLE)} WHERE dag_id = {p} AND step = {p}")  # fmt: skip
    checks_sql = (f"SELECT logical_date, step, map_index, name, outcome, failing_rows, total_rows, message FROM "
                  f"{table(CHECKS_TABLE)} WHERE dag_id = {p} AND step IN ({p}, {p})")  # fmt: skip

    def baseline():
        with store.warehouse.reading() as session:  # a connection per query, as before
            rows = session.rows(metrics_sql, (dag_id, "s0"))
        with store.warehouse.reading() as session:
            return len(rows) + len(session.rows(checks_sql, (dag_id, "s0", "s1")))

    base, shown = timed(baseline, rounds)
    first, answer = timed(lambda: page(f"/aq-quality/dags/{dag_id}"), rounds)
    size = len(answer.content)
    charts = answer.text.count('class="chart"')
    strips = answer.text.count('class="strip"')
    filtered, _ = timed(lambda: page(f"/aq-quality/dags/{dag_id}?step=s2&start=2025-07-01"), rounds)
    run = f"scheduled__{last:%Y-%m-%d}"
    task, _ = timed(lambda: page(f"/aq-quality/dags/{dag_id}/runs/{run}/tasks/s0.metrics?map_index=-1"), rounds)
    api, _ = timed(lambda: page(f"/aq-quality/api/dags/{dag_id}/metrics?limit=20"), rounds)
    pipeline = Pipeline(dag_id, None, store.schema, steps=("s0", "s1", "s2"))
    history = ResultsHistory(store)
    read, view = timed(lambda: pages.load_pipeline(history, pipeline, pages.Window()), rounds)
    render, _ = timed(lambda: pages.render_pipeline(view, "/aq-quality", {}), rounds)
    return [
        (f"{name}: pipeline page, 20 charts + 20 strips x {days} dates", first,
         f"{charts} charts, {strips} strips, {size / 1024:.0f} KiB HTML"),
        (f"{name}: plain SELECT of the same rows (baseline)", base, f"{shown:,} rows"),
        (f"{name}: pipeline page / plain SELECT", ratio(first, base), "goal: page < 1 s"),
        (f"{name}:   of which the 3 reads (read model)", read, "steps, checks page, metrics page"),
        (f"{name}:   of which rendering (SVG + HTML)", render, ""),
        (f"{name}: pipeline page, step + date filter", filtered, "s2 from 2025-07-01"),
        (f"{name}: task instance page (metrics + history)", task, ""),
        (f"{name}: /api metrics, 20 series JSON", api, ""),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--others", type=int, default=OTHERS, help="other pipelines in the same tables")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--max-load", type=float, help="before each warehouse's pages, wait for this 1-minute load")
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for --max-load at most")
    parser.add_argument(
        "--postgres", default=os.environ.get("AQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aq-bench-ui-"))
    schema = f"aq_bench_ui_{uuid.uuid4().hex[:8]}"
    dsn = None
    try:
        import psycopg2

        psycopg2.connect(args.postgres, connect_timeout=3).close()
        dsn = args.postgres
    except Exception as error:
        print(f"PostgreSQL not measured: {args.postgres} did not answer ({type(error).__name__})", file=sys.stderr)
    results: list[tuple] = []
    try:
        started = time.perf_counter()
        duck = work / "warehouse.duckdb"
        seed_duckdb(duck, ["bench_duckdb", *[f"other_{i}" for i in range(args.others)]], args.days)
        os.environ["AIRFLOW_CONN_BENCH_DUCKDB"] = DuckDB.connection_json(duck)
        pipelines = {"bench_duckdb": ("bench_duckdb", "aq")}
        if dsn:
            seed_postgres(dsn, schema, ["bench_pg", *[f"other_{i}" for i in range(args.others)]], args.days)
            os.environ["AIRFLOW_CONN_BENCH_PG"] = dsn
            pipelines["bench_pg"] = ("bench_pg", schema)
        seeded = time.perf_counter() - started
        last = FIRST + datetime.timedelta(days=args.days - 1)
        app, token = airflow_app(pipelines, last)
        import duckdb
        from fastapi.testclient import TestClient

        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            client.get("/aq-quality/")  # warm: plugin, templates, first connections
            duck_store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(duck))), "aq")
            loads = [settle(args.max_load, args.max_wait)]
            results += measure("DuckDB", client, "bench_duckdb", duck_store, args.rounds, last, args.days)
            if dsn:
                pg_store = ResultsStore(Warehouse.for_dialect("postgres", lambda: psycopg2.connect(dsn)), schema)
                loads.append(settle(args.max_load, args.max_wait))
                results += measure("PostgreSQL", client, "bench_pg", pg_store, args.rounds, last, args.days)
            overview, _ = timed(lambda: client.get("/aq-quality/"), args.rounds)
            results.append(("overview (each pipeline's latest date, counts)", overview, f"{len(pipelines)} pipelines"))
    finally:
        if dsn:
            import psycopg2

            with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(HOME, ignore_errors=True)
    rows = 1 + args.others
    print(textwrap.dedent(f"""
        UI benchmark: {rows} pipelines x {STEPS} steps x ({METRICS} metrics + {CHECKS} checks) x {args.days} dates
        ({rows * STEPS * METRICS * args.days:,} metric rows, {rows * STEPS * CHECKS * args.days:,} check rows per
        warehouse; seeded in {seeded:.0f} s); each page through the Airflow API app with a JWT; {args.rounds} rounds;
        the machine's 1-minute load when each warehouse's pages started: {", ".join(f"{v:.1f}" for v in loads)}
    """))  # fmt: skip
    print(f"{'measure (seconds, or a ratio)':62} {'median':>8} {'best':>8}  note")
    for name, (median, best), note in results:
        print(f"{name:62} {median:8.3f} {best:8.3f}  {note}")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "ui.json").write_text(
        json.dumps([[n, {"median": v[0], "best": v[1]}, note] for n, v, note in results], indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
