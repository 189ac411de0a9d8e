"""`make bench` (quality): the fused check/metric evaluation against the alternatives.

A table of N rows (default 10M) in DuckDB and as Parquet, 12 checks and 6 metrics:
- our fused evaluation vs one hand-written DuckDB query computing the same aggregates (goal <= 1.5x);
- vs Great Expectations Core running the equivalent expectations on the same data (goal >= 10x);
- vs common-sql's SQLColumnCheckOperator + SQLTableCheckOperator (one scan per check), on DuckDB
  and on PostgreSQL (a row store, where a scan per check costs most; default 2M rows in a schema
  of its own, dropped after), both through the real hooks (goal >= 3x on each);
- publish of 1M rows vs DbApiHook.insert_rows on DuckDB and PostgreSQL (report).
All in one process; each figure a ratio against a baseline measured in the same run. Without a
PostgreSQL server the PostgreSQL column says so, and the run fails only under AQ_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import pathlib
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="aq-bench-home-"))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # the operators log every query
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
logging.disable(logging.WARNING)

import duckdb  # noqa: E402

from aq_airflow.artifacts.store import Location  # noqa: E402
from aq_airflow.pipeline_spec.models import Check, Metric  # noqa: E402
from aq_airflow.plan.model import QualitySource, SourceKind  # noqa: E402
from aq_airflow.plan.planner import compile_check, compile_metric  # noqa: E402
from aq_airflow.quality.engine import Dataset, run_checks, run_metrics  # noqa: E402
from aq_airflow.quality.evaluate import PASSED, check_outcome, metric_outcome  # noqa: E402
from aq_airflow.quality.suite import Suite  # noqa: E402
from aq_airflow.warehouse import Warehouse  # noqa: E402

# the set the checks bench measures (a data file: tests and bench import nothing of each other)
_SET = yaml.safe_load(pathlib.Path(__file__).resolve().with_name("quality_checks.yaml").read_text(encoding="utf-8"))
CHECKS, METRICS = _SET["checks"], _SET["metrics"]
CHECK_PLANS = tuple(compile_check(Check.model_validate(c)) for c in CHECKS)
METRIC_PLANS = tuple(compile_metric(Metric.model_validate(m)) for m in METRICS)
HAND_WRITTEN = """
SELECT count(*) - count(c0), count(*) - count(c1), count(c0) - count(DISTINCT c0),
       count(*) FILTER (WHERE c1 < 0 OR c1 > 1), count(*) FILTER (WHERE c2 < 0 OR c2 > 1),
       count(*) FILTER (WHERE cat NOT IN ('a', 'b', 'c')), count(*), max(ts),
       count(*) FILTER (WHERE NOT coalesce(c1 + c2 < 2, false)), count(*) FILTER (WHERE NOT coalesce(c3 >= 0, false)),
       count(*) FILTER (WHERE c4 IS NULL OR c5 IS NULL), count(*) FILTER (WHERE c6 < 0 OR c6 > 1),
       avg(c1), min(c2), max(c3), stddev_samp(c4), count(*) FILTER (WHERE c5 IS NULL)::DOUBLE / count(*)
FROM t
"""
NOW = datetime.datetime(2026, 3, 2, tzinfo=datetime.timezone.utc)


def timed(fn, rounds=3):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], result


def make_data(work: Path, rows: int) -> Path:
    path = work / "bench.duckdb"
    with duckdb.connect(str(path)) as conn:
        randoms = ", ".join(f"random() AS c{i}" for i in range(1, 7))
        conn.execute(f"""
            CREATE TABLE t AS SELECT range AS c0, {randoms}, ['a', 'b', 'c'][1 + (range % 3)::INT] AS cat,
                   TIMESTAMP '2026-03-01' - to_minutes((range % 1000)::BIGINT) AS ts
            FROM range({rows})""")
        conn.execute(f"COPY t TO '{work / 'bench.parquet'}' (FORMAT parquet)")
    return path


def fused_all(dataset: Dataset):
    """All 12 checks and 6 metrics in one query: the fused engine, one scan."""
    suite = Suite(dataset.relation, dataset.dialect)
    checks = [suite.add_check(c) for c in CHECK_PLANS]
    metrics = [suite.add_metric(m) for m in METRIC_PLANS]
    with dataset.warehouse.reading() as session:
        names, rows = session.fetch(suite.query())
    values = {name.lower(): value for name, value in zip(names, rows[0], strict=True)}
    outcomes = [check_outcome(c, values, NOW) for c in checks] + [metric_outcome(m, values, []) for m in metrics]
    return _all_passed(outcomes)


def checks_task(dataset: Dataset):
    """The checks task: the 12 checks through the engine, one query (what common-sql covers)."""
    return _all_passed(run_checks(dataset, CHECK_PLANS, set(), NOW))


def as_tasks(dataset: Dataset):
    """As a DAG runs them: the checks task and the metrics task, one scan each."""
    return checks_task(dataset) + _all_passed(run_metrics(dataset, METRIC_PLANS, lambda spec: []))


def _all_passed(outcomes):
    assert all(o.outcome == PASSED for o in outcomes), [o.message for o in outcomes if o.outcome != PASSED]
    return outcomes


def gx_equivalent(frame):
    from aq_airflow.quality.extra import gx_outcomes

    kw = {
        "expect_column_values_to_not_be_null": [{"column": c} for c in ("c0", "c1", "c4", "c5")],
        "expect_column_values_to_be_unique": [{"column": "c0"}],
        "expect_column_values_to_be_between": [
            {"column": c, "min_value": 0, "max_value": 1} for c in ("c1", "c2", "c6")
        ],
        "expect_column_values_to_be_in_set": [{"column": "cat", "value_set": ["a", "b", "c"]}],
        "expect_table_row_count_to_be_between": [{"min_value": 1000}],
        "expect_column_max_to_be_between": [{"column": "ts", "min_value": "2026-02-28"}, {"column": "c3"}],
        "expect_column_values_to_be_between#2": [{"column": "c3", "min_value": 0, "mostly": 0.99}],
        "expect_column_mean_to_be_between": [{"column": "c1"}],
        "expect_column_min_to_be_between": [{"column": "c2"}],
        "expect_column_stdev_to_be_between": [{"column": "c4"}],
    }  # fmt: skip
    specs = [
        compile_check(
            Check.model_validate(
                {"name": f"{name.replace('#', '_')}_{i}", "expect": name.split("#")[0], "kwargs": kwargs}
            )
        )
        for name, many in kw.items()
        for i, kwargs in enumerate(many)
    ]
    outcomes = gx_outcomes(specs, frame, set())
    assert all(o.outcome != "error" for o in outcomes), [o.message for o in outcomes if o.outcome == "error"]
    return outcomes


def common_sql(conn_id: str, table_name: str):
    """The same 12 checks as common-sql's operators run them: a subquery (one scan) per check."""
    from airflow.providers.common.sql.operators.sql import SQLColumnCheckOperator, SQLTableCheckOperator

    column = SQLColumnCheckOperator(
        task_id="columns",
        conn_id=conn_id,
        table=table_name,
        column_mapping={
            "c0": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}},
            "c1": {"null_check": {"equal_to": 0}, "min": {"geq_to": 0}, "max": {"leq_to": 1}},
            "c2": {"min": {"geq_to": 0}, "max": {"leq_to": 1}},
            "c4": {"null_check": {"equal_to": 0}},
            "c5": {"null_check": {"equal_to": 0}},
            "c6": {"min": {"geq_to": 0}, "max": {"leq_to": 1}},
        },
    )
    table = SQLTableCheckOperator(
        task_id="table",
        conn_id=conn_id,
        table=table_name,
        checks={
            "rows": {"check_statement": "COUNT(*) >= 1000"},
            "cat_values": {"check_statement": "SUM(CASE WHEN cat NOT IN ('a', 'b', 'c') THEN 1 ELSE 0 END) = 0"},
            "fresh": {"check_statement": "MAX(ts) >= TIMESTAMP '2026-02-28'"},
            "sum_below_2": {"check_statement": "SUM(CASE WHEN c1 + c2 < 2 THEN 0 ELSE 1 END) = 0"},
            "c3_positive": {"check_statement": "SUM(CASE WHEN c3 >= 0 THEN 0 ELSE 1 END) <= 0.01 * COUNT(*)"},
        },
    )
    for operator in (column, table):  # each raises when a check fails
        execute_as_task_runner(operator)


def execute_as_task_runner(operator) -> None:
    """``operator.execute()`` the way Airflow's task runner calls it (its ExecutorSafeguard told,
    in a copy of the context variables), without a scheduler's bookkeeping around it."""
    import contextvars

    from airflow.sdk.bases.operator import ExecutorSafeguard

    context = contextvars.copy_context()
    context.run(ExecutorSafeguard.tracker.set, operator)
    context.run(operator.execute, context={})


def publish_vs_insert_rows(work: Path, rows: int, postgres_dsn: str | None) -> list[tuple]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from airflow.providers.duckdb.hooks.duckdb import DuckDBHook

    from aq_airflow.warehouse.transfer import publish

    data = pa.table({"id": pa.array(range(rows), pa.int64()), "score": [i / rows for i in range(rows)],
                     "label": [f"row{i % 97}" for i in range(rows)]})  # fmt: skip
    pq.write_table(data, work / "publish.parquet")
    files = [str(work / "publish.parquet")]
    results = []
    targets = [("duckdb", DuckDBHook, json.dumps({"conn_type": "duckdb", "host": str(work / "pub.duckdb")}))]
    if postgres_dsn:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        targets.append(("postgres", PostgresHook, postgres_dsn.replace("postgresql://", "postgres://")))
    tuples = [tuple(r.values()) for r in data.to_pylist()]
    # insert_rows into DuckDB runs at ~1,300 rows/s here: it gets a 20k-row sample, compared by rows/s
    samples = {"duckdb": min(rows, 20_000), "postgres": rows}
    for name, hook_class, conn in targets:
        os.environ[f"AIRFLOW_CONN_BENCH_{name.upper()}"] = conn
        hook = hook_class(**{hook_class.conn_name_attr: f"bench_{name}"})
        ours, _ = timed(lambda hook=hook: publish(hook, files, "aq_bench_pub.ours", "replace", []), rounds=1)
        hook.run("CREATE SCHEMA IF NOT EXISTS aq_bench_pub")
        hook.run("DROP TABLE IF EXISTS aq_bench_pub.baseline")
        hook.run("CREATE TABLE aq_bench_pub.baseline (id BIGINT, score DOUBLE PRECISION, label TEXT)")
        sample = tuples[: samples[name]]
        baseline, _ = timed(lambda hook=hook, sample=sample: hook.insert_rows("aq_bench_pub.baseline", sample,
                                                               target_fields=["id", "score", "label"],
                                                               commit_every=10000), rounds=1)  # fmt: skip
        hook.run("DROP SCHEMA aq_bench_pub CASCADE")
        ours_rate, base_rate = rows / ours, len(sample) / baseline
        results += [
            (f"publish, {name} (rows/s)", ours_rate, f"{rows:,} rows in {ours:.2f}s"),
            (f"DbApiHook.insert_rows, {name} (rows/s)", base_rate, f"{len(sample):,} rows in {baseline:.2f}s"),
            (f"publish / insert_rows throughput, {name}", ours_rate / base_rate, "report"),
        ]
    return results


def postgres_table(dsn: str, rows: int) -> str:
    """The bench table in a schema unique to this run (dropped by ``drop_postgres``), with the
    DuckDB table's columns and value distributions, vacuumed and analyzed as a settled table is."""
    import psycopg2

    schema = f"aq_bench_q_{uuid.uuid4().hex[:8]}"
    randoms = ", ".join(f"random() AS c{i}" for i in range(1, 7))
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {schema}")
            cursor.execute(f"""
                CREATE TABLE {schema}.t AS SELECT i AS c0, {randoms}, (ARRAY['a', 'b', 'c'])[1 + i % 3] AS cat,
                       TIMESTAMP '2026-03-01' - make_interval(mins => (i % 1000)::int) AS ts
                FROM generate_series(0::bigint, {int(rows) - 1}) AS i""")  # fmt: skip
            cursor.execute(f"VACUUM ANALYZE {schema}.t")
    finally:
        conn.close()
    return schema


def drop_postgres(dsn: str, schema: str) -> None:
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    conn.close()


def versus_common_sql(conn_id: str, table_name: str) -> dict[str, float]:
    """Seconds of the fused engine (checks task; all 18 in one query) and of common-sql's column
    and table check operators on one warehouse table, both through the connection's real hook."""
    warehouse = Warehouse.from_conn_id(conn_id)
    dataset = Dataset.warehouse_data(QualitySource(SourceKind.TABLE, table=table_name), warehouse)
    checks_task(dataset)  # a warm-up: both sides then read a table in the server's cache
    return in_turns(
        {"checks": lambda: checks_task(dataset), "fused": lambda: fused_all(dataset),
         "common": lambda: common_sql(conn_id, table_name)}
    )  # fmt: skip


def in_turns(runs: dict, rounds: int = 3) -> dict[str, float]:
    """The median seconds of each run, the runs taking turns (a, b, c, a, b, c, ...), so that
    the load of a busy machine falls on each alike and their ratio holds."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(seconds)[len(seconds) // 2] for name, seconds in times.items()}


def reachable(dsn: str) -> str | None:
    """None when PostgreSQL answers at ``dsn``; else why not."""
    try:
        import psycopg2

        psycopg2.connect(dsn, connect_timeout=3).close()
    except Exception as error:
        return f"{type(error).__name__}: {str(error).strip()}"
    return None


def side_by_side(results: dict[str, dict | str], rows: dict[str, int]) -> list[tuple]:
    """The common-sql comparison, one column per warehouse."""
    names = list(results)
    lines = [("rows", *(f"{rows[n]:,}" if isinstance(results[n], dict) else "-" for n in names))]
    measures = [
        ("fused checks task: 12 checks, one query (s)", lambda r: f"{r['checks']:.3f}"),
        ("common-sql column + table operators, same 12 checks (s)", lambda r: f"{r['common']:.3f}"),
        ("common-sql / fused checks task (goal >= 3x)", lambda r: f"{r['common'] / r['checks']:.2f}x"),
        ("fused: 12 checks + 6 metrics, one query (s)", lambda r: f"{r['fused']:.3f}"),
        ("common-sql / fused 18 (ours also computes 6 metrics)", lambda r: f"{r['common'] / r['fused']:.2f}x"),
    ]
    for label, show in measures:
        lines.append((label, *(show(results[n]) if isinstance(results[n], dict) else "-" for n in names)))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--postgres-rows", type=int, default=2_000_000)
    parser.add_argument("--publish-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres", default=os.environ.get("AQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    unreachable = reachable(args.postgres)
    work = Path(tempfile.mkdtemp(prefix="aq-bench-quality-"))
    versus: dict[str, dict | str] = {}
    try:
        db = make_data(work, args.rows)
        os.environ["AIRFLOW_CONN_BENCH_Q"] = json.dumps({"conn_type": "duckdb", "host": str(db)})
        table = Dataset.warehouse_data(QualitySource(SourceKind.TABLE, table="t"), Warehouse.from_conn_id("bench_q"))
        files = [str(work / "bench.parquet")]
        schema = [["c0", "int64"]]
        manifest = {"files": [os.path.basename(files[0])], "schema": schema}
        parquet = Dataset.artifact(Location.of(str(work)), manifest, "t")
        hand, _ = timed(lambda: duckdb.connect(str(db), read_only=True).execute(HAND_WRITTEN).fetchall())
        hand_parquet, _ = timed(
            lambda: (
                duckdb.connect().execute(HAND_WRITTEN.replace("FROM t", f"FROM read_parquet('{files[0]}')")).fetchall()
            )
        )
        fused, _ = timed(lambda: fused_all(table))
        fused_parquet, _ = timed(lambda: fused_all(parquet))
        tasks, _ = timed(lambda: as_tasks(table))
        versus["DuckDB"] = versus_common_sql("bench_q", "t")
        if unreachable is None:
            pg_schema = postgres_table(args.postgres, args.postgres_rows)
            os.environ["AIRFLOW_CONN_BENCH_PG"] = args.postgres.replace("postgresql://", "postgres://")
            try:
                versus["PostgreSQL"] = versus_common_sql("bench_pg", f"{pg_schema}.t")
            finally:
                drop_postgres(args.postgres, pg_schema)
        else:
            versus["PostgreSQL"] = unreachable
        import pyarrow.parquet as pq

        frame = pq.read_table(files[0]).to_pandas()
        gx, _ = timed(lambda: gx_equivalent(frame), rounds=1)
        publishing = publish_vs_insert_rows(work, args.publish_rows, None if unreachable else args.postgres)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        ("fused: 12 checks + 6 metrics, one query (DuckDB table)", fused, ""),
        ("hand-written single query (DuckDB table)", hand, ""),
        ("fused / hand-written (goal <= 1.5x)", fused / hand, ""),
        ("fused over Parquet / hand-written over Parquet", fused_parquet / hand_parquet,
         f"{fused_parquet:.3f}s vs {hand_parquet:.3f}s"),
        ("as a DAG runs them: checks task + metrics task", tasks, "two scans"),
        ("Great Expectations Core (pandas), equivalent suite", gx, "data already in memory"),
        ("GX / fused speed-up (goal >= 10x)", gx / fused, ""),
        *publishing,
    ]  # fmt: skip
    print(f"\nQuality benchmark: {args.rows:,} rows, 12 checks + 6 metrics; median of 3 (GX: 1 run)\n")
    print(f"{'measure':58} {'value':>11}  note")
    for name, value, note in rows:
        print(f"{name:58} {value:11.3f}  {note}")
    table_rows = side_by_side(versus, {"DuckDB": args.rows, "PostgreSQL": args.postgres_rows})
    print("\nFused engine vs common-sql's SQLColumnCheckOperator + SQLTableCheckOperator; median of 3\n")
    print(f"{'measure':58} " + " ".join(f"{name:>12}" for name in versus))
    for label, *cells in table_rows:
        print(f"{label:58} " + " ".join(f"{cell:>12}" for cell in cells))
    if unreachable:
        print(f"\nPostgreSQL: not measured, no server at {args.postgres} ({unreachable})")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "quality.json").write_text(
        json.dumps({"quality": [list(r) for r in rows], "versus_common_sql": versus}, indent=2)
    )
    if unreachable and os.environ.get("AQ_REQUIRE_SERVICES") == "1":
        print("PostgreSQL is required here (AQ_REQUIRE_SERVICES=1)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
