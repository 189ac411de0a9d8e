"""`make bench` (spark steps): what running a Spark function as an aq-airflow `spark:` step costs
against submitting it as a plain PySpark job, both in local mode on this machine.

The function is the example's (``churn.spark_features:build``: per-customer features over
``raw.order_events``), on the example's data (``example_dags/seed_warehouse.py``, 5,000,000 order
events by default), committed once as a table step's output (one Parquet file, as a table step
exports it). Then, each in a fresh process, rounds interleaved:

* **aq step**: ``python -m aq_airflow.runtime --function churn.spark_features:build`` with the
  step's environment contract, as the local runner starts it: the input's manifest read and its
  file verified (sha256, footer), a local-mode session sized by ``runtime.spark_session``, the
  DataFrame written by Spark and committed (parts renamed, footers read, hashed);
* **spark-submit**: pyspark's ``bin/spark-submit`` of a script that reads the same Parquet file,
  calls the same function and writes Parquet, with the same master, driver memory and settings.

Start-up is the same two paths with a trivial job (a one-row DataFrame, no input): the JVM, the
session, the imports and (aq) the commit. Wall seconds are the processes' own, start to exit:
the median and the best of ``--rounds`` (on a machine shared with other work the best is the
steadier), and every round's. The goal of issue 21: the aq step at most 1.15x spark-submit.
Nothing here asserts a time.
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

EXAMPLES = ROOT / "example_dags"
FUNCTION = "churn.spark_features:build"
AS_OF = "2026-03-01"
SHUFFLE = {"spark.sql.shuffle.partitions": 64}  # the example spec's spark_conf

SUBMITTED = """
import sys
from pyspark.sql import SparkSession
from churn.spark_features import build

source, target, as_of = sys.argv[1:4]
spark = SparkSession.builder.appName("bench").getOrCreate()
build(spark, spark.read.parquet(source), as_of).write.mode("overwrite").parquet(target)
spark.stop()
"""
SUBMITTED_EMPTY = """
import sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("bench").getOrCreate()
spark.range(1).write.mode("overwrite").parquet(sys.argv[2])
spark.stop()
"""
EMPTY_STEP = "def one_row(spark):\n    return spark.range(1)\n"


def prepare(work: Path, rows: int) -> Path:
    """The example warehouse's ``raw.order_events`` as a committed table output; its location."""
    import duckdb

    from aq_airflow.artifacts.store import Location, write_batches

    warehouse = work / "warehouse.duckdb"
    subprocess.run(
        [sys.executable, str(EXAMPLES / "seed_warehouse.py"), str(warehouse), "--order-events", str(rows)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    location = Location.of(str(work / "artifacts" / "order_events"))
    attempt = location.begin()
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        reader = conn.sql("SELECT * FROM raw.order_events").to_arrow_reader(128 * 1024)
        location.commit({**write_batches(location, attempt, reader.schema, reader), "step": "order_events"})
    return location


def step_env(work: Path, source, function: str, out: str) -> dict[str, str]:
    from aq_airflow.runtime import contract

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work / "code"), str(EXAMPLES), str(ROOT)])}
    env.update({
        contract.ENGINE: "spark",
        contract.ENGINE_CONF: json.dumps(SHUFFLE),
        contract.DAG_ID: "bench",
        contract.STEP: "features",
        contract.OUTPUT: str(work / "artifacts" / out),
        contract.CONTEXT: json.dumps({"ds": AS_OF, "run_id": "bench", "logical_date": AS_OF, "params": {}}),
    })  # fmt: skip
    if source is not None:
        env[contract.INPUTS] = contract.encode_inputs({"order_events": "order_events"}, as_list=True)
        env[contract.input_variable("order_events")] = source.uri
        env[contract.ARGS] = json.dumps({"as_of": AS_OF})
    return env


def submit_command(work: Path, script: Path, source: str, out: str) -> tuple[list[str], dict[str, str]]:
    """spark-submit with the settings the aq step's session gets (``local_settings``)."""
    from aq_airflow.runtime import contract
    from aq_airflow.runtime.spark_session import local_settings

    master, conf = local_settings({contract.ENGINE_CONF: json.dumps(SHUFFLE)})
    submit = Path(sys.executable).parent / "spark-submit"
    command = [str(submit), "--master", master, "--driver-memory", conf.pop("spark.driver.memory")]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")])}
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return [*command, str(script), source, str(work / "submitted" / out), AS_OF], env


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="order events (default 5,000,000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-load", type=float, default=None, help="wait for the 1-minute load to fall to this")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aq-bench-spark-"))
    try:
        source = prepare(work, options.rows)
        (work / "code").mkdir()
        (work / "code" / "bench_empty_step.py").write_text(EMPTY_STEP)
        (work / "submitted.py").write_text(SUBMITTED)
        (work / "submitted_empty.py").write_text(SUBMITTED_EMPTY)
        (source_file,) = source.read_manifest()["files"]
        source_path = source.join(source_file)
        runtime = [sys.executable, "-m", "aq_airflow.runtime", "--function"]
        runs = {
            "aq step": lambda: timed([*runtime, FUNCTION], step_env(work, source, FUNCTION, "features")),
            "spark-submit": lambda: timed(*submit_command(work, work / "submitted.py", source_path, "features")),
            "aq step start-up": lambda: timed(
                [*runtime, "bench_empty_step:one_row"], step_env(work, None, "bench_empty_step:one_row", "empty")
            ),
            "spark-submit start-up": lambda: timed(
                *submit_command(work, work / "submitted_empty.py", source_path, "empty")
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        load = settle(options.max_load, 300)
        for _ in range(options.rounds):
            for name, run in runs.items():
                times[name].append(run())
        median = {name: statistics.median(values) for name, values in times.items()}
        best = {name: min(values) for name, values in times.items()}
        rows = json.loads((work / "artifacts" / "features" / "_manifest.json").read_text())["rows"]
        print(f"\nspark step vs spark-submit, local mode: {options.rows:,} order events -> {rows:,} customers, "
              f"{options.rounds} rounds, {os.cpu_count()} CPUs, load {load:.1f} at the start\n")  # fmt: skip
        print(f"| {'path':<14} | {'wall s (median)':>15} | {'wall s (best)':>13} | {'start-up s (median)':>19} | "
              f"{'ratio (median)':>14} | {'ratio (best)':>12} |")  # fmt: skip
        print(f"|{'-' * 16}|{'-' * 17}|{'-' * 15}|{'-' * 21}|{'-' * 16}|{'-' * 14}|")
        for name in ("aq step", "spark-submit"):
            ratio, best_ratio = median[name] / median["spark-submit"], best[name] / best["spark-submit"]
            print(f"| {name:<14} | {median[name]:15.1f} | {best[name]:13.1f} | {median[f'{name} start-up']:19.1f} | "
                  f"{ratio:13.2f}x | {best_ratio:11.2f}x |")  # fmt: skip
        print("\nevery round (s): " + "; ".join(f"{n}: {', '.join(f'{v:.1f}' for v in times[n])}" for n in times))
        ratio = median["aq step"] / median["spark-submit"]
        verdict = "within" if ratio <= 1.15 else "over"
        print(f"aq step / spark-submit: {ratio:.2f}x median ({verdict} the 1.15x goal), "
              f"{best['aq step'] / best['spark-submit']:.2f}x best")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
