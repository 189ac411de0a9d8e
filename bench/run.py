"""`make bench`: DAG parse cost of the aq loader against the same DAGs as compiled Python files
and as dag-factory YAML, and of building one DAG (parsing context) against all of them.

Every figure is a ratio against a baseline measured in this same process, imports excluded
(all modules are imported before timing). Times are the median of several rounds.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="aq-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator  # noqa: F401
from dagfactory import load_yaml_dags

from aq_airflow.live_dags import load_dags
from aq_airflow.plan import compile as plan_compile
from bench.workload import write_workload

logging.disable(logging.INFO)  # dag-factory logs a line per file
PARSING_CONTEXT = "_AIRFLOW_PARSING_CONTEXT_DAG_ID"


def _fresh_process():
    plan_compile._PLANS.clear()
    plan_compile._PROFILES.clear()


def aq_cold(folders):
    """A spec parsed for the first time (new or changed): nothing cached anywhere."""
    _fresh_process()
    empty = tempfile.mkdtemp(dir=folders["aq"].parent)  # the plans are still written: part of the cost
    return load_dags({"__file__": str(folders["aq"] / "aq_dags.py")}, cache_folder=empty)


def aq_disk(folders):
    """Airflow's steady state: a fresh parser process re-reading unchanged specs, plans from
    the on-disk content-hash store."""
    _fresh_process()
    return load_dags({"__file__": str(folders["aq"] / "aq_dags.py")}, cache_folder=str(folders["cache"]))


def aq_warm(folders):
    """A long-lived process re-reading unchanged specs: plans from the in-memory cache."""
    return load_dags({"__file__": str(folders["aq"] / "aq_dags.py")}, cache_folder=str(folders["cache"]))


def compiled(folders, _code={}):  # noqa: B006 - the bytecode cache, like __pycache__
    dags = []
    for path in sorted(folders["compiled"].glob("*.py")):
        code = _code.get(path) or _code.setdefault(path, compile(path.read_text(), str(path), "exec"))
        namespace = {"__file__": str(path), "__name__": path.stem}
        exec(code, namespace)
        dags.append(namespace["dag"])
    return dags


def dag_factory(folders):
    namespace = {}
    load_yaml_dags(namespace, dags_folder=str(folders["dag_factory"]))
    return [v for k, v in namespace.items() if not k.startswith("__")]


def timed(fn, folders, rounds):
    times = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        result = fn(folders)
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(result)


def peak_memory(fn, folders):
    gc.collect()
    tracemalloc.start()
    fn(folders)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipelines", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = parser.parse_args()
    out = Path(args.out)
    folders = write_workload(Path(tempfile.mkdtemp(prefix="aq-bench-")), args.pipelines)
    folders["cache"] = folders["aq"].parent / "plan-cache"

    for fn in (aq_cold, compiled, dag_factory):  # warm-up: first-call costs (imports, caches of Airflow)
        fn(folders)

    rows = {}
    aq_disk(folders)  # fill the store
    for name, fn in (("aq loader (cold)", aq_cold), ("aq loader (disk cache)", aq_disk),
                     ("aq loader (memory cache)", aq_warm), ("compiled .py files", compiled),
                     ("dag-factory 1.1.0", dag_factory)):  # fmt: skip
        seconds, count = timed(fn, folders, args.rounds)
        assert count == args.pipelines, (name, count)
        rows[name] = {"seconds": seconds, "peak_mib": peak_memory(fn, folders) / 2**20}

    os.environ[PARSING_CONTEXT] = "bench_100" if args.pipelines > 100 else "bench_000"
    one, count = timed(aq_cold, folders, args.rounds)
    assert count == 1
    del os.environ[PARSING_CONTEXT]

    cold, hand = rows["aq loader (cold)"]["seconds"], rows["compiled .py files"]["seconds"]
    ratios = [
        ("aq loader (cold) / compiled .py", cold / hand, "<= 1.2x"),
        ("aq loader (disk cache) / compiled .py", rows["aq loader (disk cache)"]["seconds"] / hand, "<= 1.2x"),
        ("aq loader (memory cache) / compiled .py", rows["aq loader (memory cache)"]["seconds"] / hand, "<= 1.2x"),
        ("peak memory aq (cold) / compiled .py",
         rows["aq loader (cold)"]["peak_mib"] / rows["compiled .py files"]["peak_mib"], "report"),
        ("dag-factory / aq loader (cold): speed-up", rows["dag-factory 1.1.0"]["seconds"] / cold, ">= 5x"),
        ("all DAGs / one DAG (parsing context)", cold / one, "report"),
    ]  # fmt: skip

    print(f"\nDAG parse benchmark: {args.pipelines} pipelines x 10 steps (3 checks + 2 metrics each), "
          f"median of {args.rounds} rounds, imports excluded\n")  # fmt: skip
    print(f"{'how the DAGs are built':34} {'seconds':>9} {'ms/DAG':>8} {'peak MiB':>9}")
    for name, row in rows.items():
        per = 1000 * row["seconds"] / args.pipelines
        print(f"{name:34} {row['seconds']:9.3f} {per:8.2f} {row['peak_mib']:9.1f}")
    print(f"{'aq loader, parsing context = 1 DAG':34} {one:9.3f}")
    print(f"\n{'ratio':44} {'value':>8}  goal")
    for name, value, goal in ratios:
        print(f"{name:44} {value:8.2f}  {goal}")
    out.mkdir(parents=True, exist_ok=True)
    report = {"pipelines": args.pipelines, "rows": rows, "one_dag_seconds": one, "ratios": {n: v for n, v, _ in ratios}}
    (out / "parse.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
