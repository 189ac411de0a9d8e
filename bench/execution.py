"""`make bench` (execution): moving data between steps, SQL export, and a whole local run.

1. A 10M x 10 table passed from one step to the next through the artifact store (the runtime,
   as a pod runs it) vs pyarrow writing and reading the same Parquet directly. Both stream the
   same generated record batches; each side runs in its own process so its peak RSS is its own.
   The same again (1M rows) on an S3 emulator (moto's server on loopback) for both sides.
2. A `sql` step exporting 5M rows from DuckDB into the store vs DuckDB's own COPY ... TO parquet.
3. `aq-airflow run` of the example pipeline: wall time and the share spent outside user code.
4. What holding an output to its manifest costs (sha256 of every file, Parquet footers), in one
   process: writing through the hashing sink vs pyarrow writing the same stream, and a step's
   read with verification vs the same read of the manifest's files without, locally and on the
   S3 emulator.
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

REPO = Path(__file__).resolve().parent.parent
COLUMNS = 10

STEPS = """
import pyarrow as pa, numpy as np

def batches(rows, size=131072):
    rng = np.random.default_rng(1)
    for start in range(0, rows, size):
        n = min(size, rows - start)
        cols = {f"c{i}": (np.arange(start, start + n) if i == 0 else rng.random(n)) for i in range(10)}
        yield pa.record_batch(cols)

def produce(rows: int):
    return batches(rows)

def consume(table: "Iterator[pa.RecordBatch]"):
    rows = 0
    total = 0.0
    for batch in table:
        rows += batch.num_rows
        total += float(batch.column(1).to_numpy().sum())
    return {"rows": rows, "checksum": round(total, 3)}
"""

BASELINE = """
import sys, time, resource, json
import pyarrow.fs as pafs
import pyarrow.parquet as pq
sys.path.insert(0, sys.argv[1])
from bench_steps import batches
rows, uri = int(sys.argv[2]), sys.argv[3]
fs, path = pafs.FileSystem.from_uri(uri)
start = time.perf_counter()
first = next(batches(rows, 1))
writer = None
for batch in batches(rows):
    if writer is None:
        writer = pq.ParquetWriter(path, batch.schema, compression="zstd", filesystem=fs)
    writer.write_batch(batch, row_group_size=131072)
writer.close()
total = 0.0
count = 0
for batch in pq.ParquetFile(fs.open_input_file(path)).iter_batches(batch_size=131072):
    count += batch.num_rows
    total += float(batch.column(1).to_numpy().sum())
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rows": count, "peak_mib": peak}))
"""


def run(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of one command."""
    start = time.perf_counter()
    done = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def step_to_step(work: Path, rows: int, root: str, label: str = "") -> list[tuple]:
    """The handoff through the store at ``root`` (a folder or an s3:// URI), and the baseline
    writing and reading the same Parquet with pyarrow directly on the same filesystem."""
    from aq_airflow.artifacts.store import Location
    from aq_airflow.runtime import contract

    (work / "bench_steps.py").write_text(STEPS)
    base = {"PYTHONPATH": str(work), contract.CONTEXT: "{}"}
    # each side's own clock and peak RSS, as reported from inside its process (interpreter start excluded)
    producer_env = {contract.STEP: "big", contract.OUTPUT: f"{root}/big", contract.ARGS: json.dumps({"rows": rows})}
    _, out = run([sys.executable, "-m", "aq_airflow.runtime", "--function", "bench_steps:produce"],
                 {**base, **producer_env})  # fmt: skip
    producer = json.loads(out.strip().splitlines()[-1])
    consumer_env = {contract.STEP: "reader", contract.OUTPUT: f"{root}/reader",
                    contract.INPUTS: contract.encode_inputs(["table"], as_list=False),
                    contract.input_variable("table"): f"{root}/big"}  # fmt: skip
    _, out = run([sys.executable, "-m", "aq_airflow.runtime", "--function", "bench_steps:consume"],
                 {**base, **consumer_env})  # fmt: skip
    consumer = json.loads(out.strip().splitlines()[-1])
    assert producer["rows"] == rows and consumer["kind"] == "object"
    produce, consume = producer["seconds"], consumer["seconds"]
    produce_peak, consume_peak = producer["peak_rss_mib"], consumer["peak_rss_mib"]
    arrow_peaks = f"{producer['peak_arrow_mib']:.0f} / {consumer['peak_arrow_mib']:.0f} MiB"
    (work / "baseline.py").write_text(BASELINE)
    _, out = run([sys.executable, str(work / "baseline.py"), str(work), str(rows), f"{root}/direct.parquet"])
    baseline = json.loads(out)
    assert baseline["rows"] == rows
    size = Location.of(f"{root}/big").read_manifest()["bytes"]
    ours = produce + consume
    table_mib = rows * COLUMNS * 8 / 2**20
    return [
        (f"step -> step via the store{label} (write+read)", ours, f"{rows / ours / 1e6:.2f} M rows/s"),
        (f"pyarrow write+read directly{label} (baseline)", baseline["seconds"],
         f"{rows / baseline['seconds'] / 1e6:.2f} M rows/s"),
        (f"throughput ratio{label} (goal >= 0.8x)", baseline["seconds"] / ours, ""),
        (f"peak RSS producer / consumer{label} (MiB)", produce_peak, f"{consume_peak:.0f} MiB consumer"),
        (f"peak Arrow memory producer / consumer{label}", producer["peak_arrow_mib"], arrow_peaks),
        (f"peak RSS direct pyarrow{label} (MiB)", baseline["peak_mib"], f"in memory: {table_mib:.0f} MiB"),
        (f"parquet bytes{label} (MiB)", size / 2**20, ""),
    ]  # fmt: skip


def verification(root: str, rows: int, label: str = "", rounds: int = 5) -> list[tuple]:
    """Verified vs unverified, in this process, the median of ``rounds``: writing a table through
    the runtime's TableWriter (hashing while it writes) vs pyarrow's ParquetWriter on the same
    filesystem, and reading it as a step does (``read_input``: the digest, the footers, then the
    table) vs the same table from the manifest's files without verification."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aq_airflow.artifacts.store import ROW_GROUP_ROWS, Location, open_dataset, write_batches
    from aq_airflow.artifacts.values import read_input

    rng = np.random.default_rng(1)
    table = pa.table({f"c{i}": (np.arange(rows) if i == 0 else rng.random(rows)) for i in range(COLUMNS)})
    batches = table.to_batches(max_chunksize=ROW_GROUP_ROWS)
    location = Location.of(f"{root}/verified")
    plain = Location.of(f"{root}/plain")
    plain.fs.create_dir(plain.path, recursive=True)

    def hashed() -> None:
        location.commit(write_batches(location, location.begin(), table.schema, iter(batches)))

    def unhashed() -> None:
        with plain.fs.open_output_stream(plain.join("part.parquet")) as stream:
            with pq.ParquetWriter(stream, table.schema, compression="zstd") as writer:
                for batch in batches:
                    writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)

    def verified() -> None:
        assert read_input(location, "verified", None).num_rows == rows

    def unverified() -> None:
        assert open_dataset(location, location.read_manifest("verified")).to_table().num_rows == rows

    def medians(*fns) -> list[float]:
        """Each function's median time, the functions taking turns (drift hits both alike)."""
        times = [[] for _ in fns]
        for _ in range(rounds):
            for fn, spent in zip(fns, times, strict=True):
                start = time.perf_counter()
                fn()
                spent.append(time.perf_counter() - start)
        return [statistics.median(spent) for spent in times]

    write_plain, write_hashed = medians(unhashed, hashed)
    read_plain, read_verified = medians(unverified, verified)
    mib = location.read_manifest()["bytes"] / 2**20
    return [
        (f"write, hashing while writing{label}", write_hashed, f"{mib:.0f} MiB Parquet"),
        (f"write, pyarrow alone{label} (baseline)", write_plain, ""),
        (f"write time ratio, hashed / plain{label}", write_hashed / write_plain, ""),
        (f"read, verified (sha256 + footers){label}", read_verified, ""),
        (f"read, unverified{label} (baseline)", read_plain, ""),
        (f"read time ratio, verified / unverified{label}", read_verified / read_plain, "the digest re-reads the file"),
    ]  # fmt: skip


def step_to_step_s3(work: Path, rows: int) -> list[tuple]:
    """The handoff on an S3 emulator: moto's server on loopback, reached through AWS_ENDPOINT_URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"})  # fmt: skip
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bench")
        rows_out = step_to_step(work, rows, "s3://bench/aq", " on S3 emulator")
        return rows_out + verification("s3://bench/verify", rows, " on S3 emulator")
    finally:
        server.stop()
        for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
            os.environ.pop(key, None)


def sql_export(work: Path, rows: int) -> list[tuple]:
    import duckdb

    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow"))
    from airflow.providers.duckdb.hooks.duckdb import DuckDBHook

    from aq_airflow.artifacts.store import Location
    from aq_airflow.warehouse.transfer import export_query

    path = work / "export.duckdb"
    with duckdb.connect(str(path)) as conn:
        columns = ", ".join(f"random() AS c{i}" for i in range(1, COLUMNS))
        conn.execute(f"CREATE TABLE big AS SELECT range AS c0, {columns} FROM range({rows})")
    os.environ["AIRFLOW_CONN_BENCH_DUCK"] = json.dumps({"conn_type": "duckdb", "host": str(path)})
    start = time.perf_counter()
    hook = DuckDBHook(duckdb_conn_id="bench_duck")
    manifest = export_query(hook, "SELECT * FROM big", Location.of(str(work / "out")))
    ours = time.perf_counter() - start
    assert manifest["rows"] == rows
    start = time.perf_counter()
    with duckdb.connect(str(path)) as conn:
        conn.execute(f"COPY (SELECT * FROM big) TO '{work / 'copy.parquet'}' (FORMAT parquet, COMPRESSION zstd)")
    copy = time.perf_counter() - start
    return [
        ("sql step export to the store", ours, f"{rows / ours / 1e6:.2f} M rows/s"),
        ("DuckDB COPY TO parquet (baseline)", copy, f"{rows / copy / 1e6:.2f} M rows/s"),
        ("export time / COPY time", ours / copy, "report"),
    ]


def local_run(work: Path) -> list[tuple]:
    spec = REPO / "bench" / "specs" / "churn_steps.aq.yaml"
    shutil.copytree(REPO / "example_dags" / "churn", work / "spec" / "churn")
    shutil.copy(spec, work / "spec" / spec.name)
    seed = REPO / "example_dags" / "seed_warehouse.py"
    subprocess.run([sys.executable, str(seed), str(work / "run" / "warehouse.duckdb")], check=True, capture_output=True)
    cli = [sys.executable, "-m", "aq_airflow.cli", "run", str(work / "spec" / spec.name), "--date", "2026-03-01"]
    wall, out = run([*cli, "--workdir", str(work / "run")])
    manifests = [json.loads(p.read_text()) for p in (work / "run" / "artifacts").rglob("_manifest.json")]
    user = sum(m.get("user_seconds", 0) for m in manifests)
    assert "churn_steps: success" in out, out
    return [
        ("aq-airflow run, example pipeline (wall)", wall, f"{len(manifests)} step outputs"),
        ("  of which user code (python steps)", user, ""),
        ("  share outside user code", 1 - user / wall, "Airflow start-up, DB, scheduling, I/O"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--sql-rows", type=int, default=5_000_000)
    parser.add_argument("--s3-rows", type=int, default=1_000_000)
    parser.add_argument("--verify-rows", type=int, default=3_000_000)
    parser.add_argument("--only-verification", action="store_true", help="just the verification rows (4.)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aq-bench-exec-"))
    if args.only_verification:
        try:
            rows = verification(str(work / "store"), args.verify_rows)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for name, value, note in rows:
            print(f"{name:56} {value:10.3f}  {note}")
        return 0
    try:
        rows = step_to_step(work, args.rows, str(work / "store"))
        rows += verification(str(work / "store"), args.verify_rows)
        rows += step_to_step_s3(work, args.s3_rows)
        rows += sql_export(work, args.sql_rows) + local_run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nExecution benchmark: {args.rows:,} x {COLUMNS} step to step ({args.s3_rows:,} on the S3 emulator), "
          f"{args.sql_rows:,} rows SQL export\n")  # fmt: skip
    print(f"{'measure':56} {'value':>10}  note")
    for name, value, note in rows:
        print(f"{name:56} {value:10.3f}  {note}")
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "execution.json").write_text(json.dumps([list(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
