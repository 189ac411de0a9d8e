"""`make bench` (ray steps): what running a function as a ``ray:`` step costs over running it as
`ray job submit` runs an entrypoint on a local Ray.

The function: the churn example's Ray Tune search (``churn.tune:search``, 8 trials) over a
generated features table (20,000 customers, already a committed step output). Each round runs,
in fresh processes, one after the other:

* ray step: ``python -m aq_airflow.runtime --function churn.tune:search`` with the environment
  contract, in a session of its own, as the local runner starts it (the runtime's Ray start, the
  input read, the output written and committed, its Ray stopped);
* direct: a plain script, as an entrypoint is written for `ray job submit`: ``ray.init()`` (the
  same size, no dashboard), the input read with pandas, the function called, its result written
  to Parquet, ``ray.shutdown()``.

Inside each process: ``ray.init`` (the start-up), the function, ``ray.shutdown`` (the ray step's
includes waiting for its tasks' last output to reach the log); the rest is the interpreter's start,
imports, reading the input and writing the output. The table gives the median of ``--rounds``
rounds and the ratio of the wall times' medians. Goal (issue 21): a ray step at most 1.15x the
direct run. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import settle  # noqa: E402

CUSTOMERS = 20_000
TRIALS = 8
FUNCTION = "churn.tune:search"

# the ray step: the runtime's own entry point, ray.init timed where the engine calls it
STEP = r"""
import json, sys, time
from aq_airflow.runtime import ray as engine, step

times = {}
def timed(name, method):
    def call(*args):
        began = time.perf_counter()
        try:
            return method(*args)
        finally:
            times[name] = time.perf_counter() - began
    return call
engine.RayEngine.start = timed("ray_init", engine.RayEngine.start)
engine.RayEngine.stop = timed("stop", engine.RayEngine.stop)
code = step.main(["--function", sys.argv[1]])
print("BENCH " + json.dumps(times))
sys.exit(code)
"""

# the direct run: what an entrypoint for `ray job submit` does, on a local Ray of the same size
DIRECT = r"""
import json, sys, time
import pandas as pd
import ray
from aq_airflow.runtime.machine import usable_cpus
from churn.tune import search

source, target, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
began = time.perf_counter()
ray.init(num_cpus=usable_cpus(), include_dashboard=False)
ray_init = time.perf_counter() - began
frame = pd.read_parquet(source)
began = time.perf_counter()
result = search(frame, trials=trials)
function = time.perf_counter() - began
result.to_parquet(target)
began = time.perf_counter()
ray.shutdown()
print("BENCH " + json.dumps({"ray_init": ray_init, "function": function, "stop": time.perf_counter() - began}))
"""


def features(work: Path) -> Path:
    """The input: a features table as the upstream step committed it; returns its folder."""
    import numpy as np
    import pyarrow as pa

    from aq_airflow.artifacts.store import Location, write_batches

    rng = np.random.default_rng(11)
    table = pa.table({
        "customer_id": np.arange(CUSTOMERS),
        "orders_90d": rng.poisson(3, CUSTOMERS),
        "spend_90d": rng.gamma(2.0, 40.0, CUSTOMERS).round(2),
        "days_since_last_order": rng.integers(0, 90, CUSTOMERS),
    })  # fmt: skip
    folder = work / "store" / "features"
    location = Location.of(str(folder))
    attempt = location.begin()
    location.commit(write_batches(location, attempt, table.schema, table.to_batches()))
    return folder


def run(command: list[str], env: dict[str, str]) -> dict:
    """One fresh process, in a session of its own (as the local runner starts a step): its wall
    time and what it reported."""
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, start_new_session=True, timeout=900)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    [line] = [line for line in lines if line.startswith("BENCH ")]
    reported = {"wall": wall, **json.loads(line.removeprefix("BENCH "))}
    manifests = [json.loads(line) for line in lines if line.startswith('{"kind"')]  # the step's, as it commits
    if manifests:
        reported["function"] = manifests[-1]["user_seconds"]
    return reported


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both runs (median)")
    parser.add_argument("--max-load", type=float, default=None, help="wait for the 1-minute load to fall to this")
    parser.add_argument("--max-wait", type=float, default=120.0, help="the longest wait for it, in seconds")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aq-bench-ray-"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_dags")]),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    try:
        source = features(work)
        from aq_airflow.runtime import contract

        step_env = {
            **env,
            contract.STEP: "search",
            contract.ENGINE: "ray",
            contract.ARGS: json.dumps({"trials": TRIALS}),
            contract.CONTEXT: json.dumps({"run_id": "bench", "ds": "2026-03-01", "params": {}}),
            contract.INPUTS: contract.encode_inputs({"features": "features"}, as_list=True),
            contract.input_variable("features"): str(source),
        }
        parquet = sorted(source.glob("*.parquet"))[0]
        results: dict[str, list[dict]] = {"ray step": [], "direct": []}
        loads = []
        for round_ in range(args.rounds):
            loads.append(settle(args.max_load, args.max_wait))
            step_env[contract.OUTPUT] = str(work / "store" / f"search-{round_}")
            results["ray step"].append(run([sys.executable, "-c", STEP, FUNCTION], step_env))
            target = str(work / f"direct-{round_}.parquet")
            results["direct"].append(run([sys.executable, "-c", DIRECT, str(parquet), target, str(TRIALS)], env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()}
    base = medians["direct"]
    print(f"\nray steps: {FUNCTION} ({TRIALS} trials) over {CUSTOMERS:,} customers on a local Ray of "
          f"{os.cpu_count()} CPUs; median of {args.rounds} rounds "
          f"(1-minute load {min(loads):.1f}-{max(loads):.1f})\n")  # fmt: skip
    print("| run | wall s | ray.init s | function s | ray.shutdown s | rest s | ratio (wall) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, m in medians.items():
        rest = m["wall"] - m["ray_init"] - m["function"] - m["stop"]
        print(f"| {name} | {m['wall']:.2f} | {m['ray_init']:.2f} | {m['function']:.2f} | {m['stop']:.2f} | "
              f"{rest:.2f} | {m['wall'] / base['wall']:.2f}x |")  # fmt: skip
    print(f"\ngoal: a ray step at most 1.15x the direct run: {medians['ray step']['wall'] / base['wall']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
