"""`make bench`: the real `airflow dag-processor` parsing N specs (default 10,000), and a worker's
start-up cost of one aq DAG.

Part 1 - parsing. Three dags folders of the same N pipelines (bench/workload.py's spec: 10 python
steps, a third on GPUs, 3 checks + 2 metrics each):

* compiled .py (baseline): `aq-airflow compile` output, one .py file per pipeline;
* aq shards, cold: the specs plus the loader shards of `aq-airflow init --shards S`, plan cache
  empty (the first parse after an upgrade);
* aq shards, warm: the same folder, plan cache filled by the cold run.

Each run gets a fresh AIRFLOW_HOME and a fresh metadata DB (`airflow db migrate`; SQLite file by
default, `--db postgres` for a throwaway PostgreSQL database created and dropped here), then
`airflow dag-processor` is started with AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES=2 and
AIRFLOW__CORE__LOAD_EXAMPLES=False (every other setting is Airflow's default: 50 s file parse
timeout, 30 s re-parse interval). Measured: seconds from starting the process until N distinct
dag_ids are in `serialized_dag` (polled), and each file's parse time as Airflow records it
(`dag.last_parse_duration`: the manager's DagFileStat.last_duration of the parse that wrote the
DAG, the "Last Duration" of its stats table; the first value seen for each file is kept, so a
later re-parse does not overwrite a cold figure). Import errors come from `import_error` and must
be none. The dag-processor (its process group) is stopped by PID when done, on failure, on
timeout (`--timeout` per run, default 25 min) and on Ctrl-C. The compiled baseline is the slow one
(each .py file is a forked parse process importing the aq operator modules, ~1 s on 2 cores, so
10,000 files take ~2 h): when it runs out of time, its pace so far gives a linear estimate and the
ratios are printed against it (and, as a bound, against the time it ran). Results are written to
bench/out/dag_processor_N.json; the exit status is 1 on import errors or an aq run not finishing.

Part 2 - worker start-up, each figure the median of 5 fresh Python processes: importing
airflow.sdk + the KubernetesPodOperator and common.sql operator modules (the base classes of the
aq operators), then the extra time a worker spends to get its one DAG: import aq_airflow.live_dags and
run the loader shard holding the DAG with _AIRFLOW_PARSING_CONTEXT_DAG_ID set (plan cache filled,
and empty), against running that DAG's compiled .py file. Files are loaded the way Airflow's
DagBag loads them (SourceFileLoader, so __pycache__ is used as in a steady state).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aq_airflow.cli.main import DEFAULT_SHARDS  # noqa: E402
from aq_airflow.live_dags.loader import shard_of  # noqa: E402  (imports Airflow: only for the shard hash)
from bench.workload import spec_text  # noqa: E402

BIN = Path(sys.executable).parent
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PARSING_CONTEXT = "_AIRFLOW_PARSING_CONTEXT_DAG_ID"
GOAL_RATIO, GOAL_FILE_SECONDS, GOAL_WORKER_SECONDS = 1.2, 10.0, 0.3


def _env(**extra: str) -> dict[str, str]:
    """This environment without any Airflow setting of the caller, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AQ_AIRFLOW", "_AIRFLOW"))}
    env.update(AIRFLOW__CORE__LOAD_EXAMPLES="False", **extra)
    return env


def _run(cmd: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


# -- the workload -------------------------------------------------------------------------------


def write_workload(root: Path, specs: int, shards: int) -> dict[str, Path]:
    """The specs + `aq-airflow init` loader shards in root/aq, `aq-airflow compile` output in
    root/compiled (two compile processes, one per core)."""
    aq, compiled = root / "aq", root / "compiled"
    aq.mkdir(parents=True)
    names = []
    for index in range(specs):
        names.append(aq / f"bench_{index:03d}.aq.yaml")
        names[-1].write_text(spec_text(index))
    _run([BIN / "aq-airflow", "init", aq, "--shards", shards], timeout=120)
    halves = [names[: specs // 2], names[specs // 2 :]]
    procs = [
        subprocess.Popen([BIN / "aq-airflow", "compile", *part, "--out", compiled], stderr=subprocess.DEVNULL)
        for part in halves
        if part
    ]
    for proc in procs:
        if proc.wait(timeout=1800):
            raise RuntimeError("aq-airflow compile failed")
    count = len(list(compiled.glob("*.py")))
    assert count == specs, f"compiled {count} of {specs}"
    return {"aq": aq, "compiled": compiled}


# -- metadata databases -------------------------------------------------------------------------


class SqliteDb:
    kind = "sqlite"

    def __init__(self, home: Path):
        self.path = home / "airflow.db"
        self.url = f"sqlite:///{self.path}"
        self._conn = None

    def create(self) -> None:
        pass  # `airflow db migrate` creates the file

    def query(self, sql: str) -> list[tuple]:
        if self._conn is None:  # read-only, autocommit: no lock held between polls
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10, isolation_level=None)
        return self._conn.execute(sql).fetchall()

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresDb:
    kind = "postgres"

    def __init__(self, home: Path):
        self.name = f"aq_bench_{os.getpid()}_{int(time.time() * 1000)}"
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.name}"
        self._conn = None

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create(self) -> None:
        self._admin(f'CREATE DATABASE "{self.name}"')

    def query(self, sql: str) -> list[tuple]:
        import psycopg

        if self._conn is None:
            self._conn = psycopg.connect(PG_DSN.replace("dbname=postgres", f"dbname={self.name}"), autocommit=True)
        return self._conn.execute(sql).fetchall()

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# -- one dag-processor run ----------------------------------------------------------------------


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the dag-processor's process group (it and its parse processes), SIGKILL after 30 s."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _cpu_seconds(pid: int) -> float | None:
    """user + system CPU seconds of one process (the dag-processor manager), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


_STATS_ROW = re.compile(r"^\S+\s+(\S+\.py)\s.*?(\d+\.\d+)s\s+\d{4}-\d\d-\d\dT\S+\s*$", re.M)


def _log_durations(log_path: Path) -> dict[str, float]:
    """Each file's first "Last Duration" in the dag-processor's periodic stats tables (every 30 s)."""
    found: dict[str, float] = {}
    for file, seconds in _STATS_ROW.findall(log_path.read_text(errors="replace")):
        found.setdefault(file, float(seconds))
    return found


def run_dag_processor(name: str, dags_folder: Path, expected: int, work: Path, args, cache: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"home-{name}-", dir=work))
    db = (PostgresDb if args.db == "postgres" else SqliteDb)(home)
    env = _env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db.url,
        AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="2",
        AQ_AIRFLOW_CACHE=str(cache),
    )
    files = len(list(dags_folder.glob("*.py")))
    row = {"name": name, "files": files, "expected_dags": expected, "db": db.kind, "loadavg_before": os.getloadavg()}
    proc = None
    try:
        db.create()
        _run([BIN / "airflow", "db", "migrate"], timeout=600, env=env)
        log_path = home / "dag-processor.log"
        first_duration: dict[str, float] = {}  # file -> first recorded parse seconds
        timeline: list[tuple[float, int]] = []
        serialized = errors = 0
        outcome = "timeout"
        with open(log_path, "w") as log:
            start = time.monotonic()
            proc = subprocess.Popen(
                [BIN / "airflow", "dag-processor"], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            last_progress = start
            while True:
                time.sleep(args.poll)
                now = time.monotonic() - start
                try:
                    count = db.query("SELECT count(DISTINCT dag_id) FROM serialized_dag")[0][0]
                    errors = db.query("SELECT count(*) FROM import_error")[0][0]
                except Exception as error:  # tables not there yet, or a lock: try again
                    if now > args.timeout:
                        raise RuntimeError(f"metadata DB unreadable: {error}") from error
                    continue
                if count != serialized:
                    serialized, last_progress = count, time.monotonic()
                    timeline.append((round(now, 2), count))
                    for file, seconds in db.query(
                        "SELECT relative_fileloc, max(last_parse_duration) FROM dag GROUP BY relative_fileloc"
                    ):
                        if seconds is not None:
                            first_duration.setdefault(file, seconds)
                if serialized >= expected:
                    outcome = "ok"
                    break
                if proc.poll() is not None:
                    outcome = f"dag-processor exited ({proc.returncode})"
                    break
                if errors and time.monotonic() - last_progress > 120:
                    outcome = "import errors, no progress for 120 s"
                    break
                if now > args.timeout:
                    break
            row["manager_cpu_seconds"] = _cpu_seconds(proc.pid)
            row["loadavg_after"] = os.getloadavg()  # other work on the machine distorts the figures
            _stop(proc)
        row.update(outcome=outcome, seconds=round(now, 2), serialized=serialized, timeline=timeline)
        if outcome != "ok" and serialized:  # a linear estimate from the pace so far (the first DAG excluded)
            t_first, n_first = timeline[0]
            t_last, n_last = timeline[-1]
            if n_last > n_first:
                row["estimated_seconds"] = round(
                    t_first + (expected - n_first) * (t_last - t_first) / (n_last - n_first)
                )
        for file, seconds in _log_durations(log_path).items():  # files without DAGs are not in the dag table
            first_duration.setdefault(file, seconds)
        durations = sorted(first_duration.values())
        row["files_parsed"] = len(durations)
        row["max_file_seconds"] = round(durations[-1], 2) if durations else None
        row["median_file_seconds"] = round(statistics.median(durations), 3) if durations else None
        row["sum_file_seconds"] = round(sum(durations), 1)
        row["slowest_files"] = sorted(first_duration.items(), key=lambda kv: -kv[1])[:3]
        row["import_errors"] = [
            (f, (t or "").strip().splitlines()[-1:])
            for f, t in db.query("SELECT filename, stacktrace FROM import_error")
        ]
        row["log"] = str(log_path)
        return row
    finally:
        if proc is not None:
            _stop(proc)
        db.drop()


# -- worker start-up ----------------------------------------------------------------------------

PROBE = r"""
import importlib.machinery, importlib.util, json, sys, time
t0 = time.perf_counter()
import airflow.sdk
import airflow.providers.cncf.kubernetes.operators.pod
import airflow.providers.common.sql.operators.sql
t1 = time.perf_counter()
mode, path, dag_id = sys.argv[1:4]
if mode == "aq":
    import aq_airflow.live_dags
t2 = time.perf_counter()
loader = importlib.machinery.SourceFileLoader("probe_dag_file", path)  # as DagBag loads a file
module = importlib.util.module_from_spec(importlib.util.spec_from_loader("probe_dag_file", loader))
loader.exec_module(module)
t3 = time.perf_counter()
dags = [v for v in vars(module).values() if isinstance(v, airflow.sdk.DAG)]
assert [d.dag_id for d in dags] == [dag_id], [d.dag_id for d in dags]
print(json.dumps({"base": t1 - t0, "import_build": t2 - t1, "build": t3 - t2, "tasks": len(dags[0].tasks)}))
"""


def _probe(mode: str, path: Path, dag_id: str, home: Path, cache: Path) -> dict:
    env = _env(AIRFLOW_HOME=str(home), AQ_AIRFLOW_CACHE=str(cache), **{PARSING_CONTEXT: dag_id})
    out = _run([sys.executable, "-c", PROBE, mode, path, dag_id], timeout=300, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def worker_startup(folders: dict[str, Path], specs: int, shards: int, work: Path, filled_cache: Path, rounds=5):
    index = specs // 2
    dag_id = f"bench_{index:03d}"
    shard = shard_of(f"{dag_id}.aq.yaml", shards)
    width = len(str(shards - 1))
    loader = folders["aq"] / f"aq_dags_{shard:0{width}d}.py"
    compiled = folders["compiled"] / f"{dag_id}.py"
    home = Path(tempfile.mkdtemp(prefix="home-worker-", dir=work))
    cases = {
        "aq shard, plan cache filled": ("aq", loader, lambda: filled_cache),
        "aq shard, plan cache empty": ("aq", loader, lambda: Path(tempfile.mkdtemp(prefix="cache-", dir=work))),
        "compiled .py": ("compiled", compiled, lambda: filled_cache),
    }
    for mode, path, cache in cases.values():  # __pycache__ and the OS page cache, as on a running worker
        _probe(mode, path, dag_id, home, cache())
    samples: dict[str, list[dict]] = {name: [] for name in cases}
    for _ in range(rounds):  # interleaved, so drifting machine load hits every case alike
        for name, (mode, path, cache) in cases.items():
            samples[name].append(_probe(mode, path, dag_id, home, cache()))

    def med(name, key):
        return statistics.median(s[key] for s in samples[name])

    base = statistics.median(s["base"] for runs in samples.values() for s in runs)
    rows = {
        name: {
            "base": med(name, "base"),
            "import_build": med(name, "import_build"),
            "build": med(name, "build"),
            "extra": statistics.median(s["import_build"] + s["build"] for s in samples[name]),
            "tasks": samples[name][0]["tasks"],
        }
        for name in cases
    }
    return {"dag_id": dag_id, "loader": loader.name, "specs_in_shard": _specs_in_shard(folders["aq"], shard, shards),
            "base_imports": base, "rows": rows, "rounds": rounds}  # fmt: skip


def _specs_in_shard(folder: Path, shard: int, shards: int) -> int:
    return sum(1 for p in folder.glob("*.aq.yaml") if shard_of(p.name, shards) == shard)


# -- report -------------------------------------------------------------------------------------


def print_parse_table(rows: list[dict], specs: int, args) -> None:
    base = next((r for r in rows if r["name"] == "compiled"), None)
    labels = {"compiled": "compiled .py (baseline)", "aq-cold": "aq shards, cold", "aq-warm": "aq shards, warm"}
    print(f"\nairflow dag-processor, {specs} pipelines, parsing_processes=2, metadata DB {args.db}, "
          f"{args.shards} aq loader shards\n")  # fmt: skip
    head = f"{'dags folder':26} {'s to all serialized':>20} {'vs compiled':>18} {'max s/file':>11} {'files':>6}"
    print(head + f" {'import errors':>14}  outcome")
    for r in rows:
        seconds = f"{r['seconds']:.1f}"
        if r["outcome"] != "ok":
            seconds = f">{r['seconds']:.0f} ({r['serialized']}/{specs}"
            seconds += f", ~{r['estimated_seconds']} est.)" if r.get("estimated_seconds") else ")"
        ratio = ""
        if base and base is not r and base["outcome"] == "ok" and r["outcome"] == "ok":
            ratio = f"{r['seconds'] / base['seconds']:.2f}x"
        elif base and base is not r and r["outcome"] == "ok" and base.get("estimated_seconds"):
            # the baseline did not finish: the ratio to its linear estimate, and its upper bound
            ratio = f"~{r['seconds'] / base['estimated_seconds']:.2f}x (<{r['seconds'] / base['seconds']:.2f}x)"
        max_file = f"{r['max_file_seconds']:.2f}" if r["max_file_seconds"] is not None else "-"
        print(f"{labels[r['name']]:26} {seconds:>20} {ratio:>18} {max_file:>11} {r['files']:>6} "
              f"{len(r['import_errors']):>14}  {r['outcome']}")  # fmt: skip
    print(f"\ngoals: aq <= {GOAL_RATIO}x compiled; every file Airflow parses <= {GOAL_FILE_SECONDS:.0f} s cold\n")
    head = f"{'where the time goes':26} {'median s/file':>14} {'sum s/file':>11} {'manager CPU s':>14}"
    print(head + f" {'load 1-min':>11}  slowest files")
    for r in rows:
        cpu = f"{r['manager_cpu_seconds']:.1f}" if r.get("manager_cpu_seconds") is not None else "-"
        slow = ", ".join(f"{f} {s:.1f}s" for f, s in r["slowest_files"])
        median = r["median_file_seconds"] or 0
        load = f"{r['loadavg_before'][0]:.1f}-{r.get('loadavg_after', [0])[0]:.1f}"  # other work distorts
        print(f"{labels[r['name']]:26} {median:>14.3f} {r['sum_file_seconds']:>11.1f} {cpu:>14} {load:>11}  {slow}")
    for r in rows:
        for file, last in r["import_errors"][:5]:
            print(f"IMPORT ERROR ({labels[r['name']]}): {file}: {' '.join(last)}")


def print_worker_table(report: dict) -> None:
    print(f"\nworker start-up: DAG {report['dag_id']} ({report['rows']['compiled .py']['tasks']} tasks), "
          f"median of {report['rounds']} fresh processes; loader {report['loader']} holds "
          f"{report['specs_in_shard']} specs\n")  # fmt: skip
    print(f"base imports (airflow.sdk + cncf.kubernetes pod + common.sql operators): {report['base_imports']:.3f} s\n")
    print(f"{'how the worker gets its DAG':30} {'import aq_airflow.live_dags':>24} {'build / exec file':>18} "
          f"{'over base':>10}")  # fmt: skip
    for name, r in report["rows"].items():
        imp = f"{r['import_build']:.3f}" if name.startswith("aq") else "-"
        print(f"{name:30} {imp:>24} {r['build']:>18.3f} {r['extra']:>10.3f}")
    print(f"\ngoal: aq over base <= {GOAL_WORKER_SECONDS} s")


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=DEFAULT_SHARDS)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runs", default="compiled,aq-cold,aq-warm,worker",
                        help="comma-separated subset of compiled,aq-cold,aq-warm,worker")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1500, help="seconds per dag-processor run")
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--work", help="folder for the workload and homes (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workload and homes")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = parser.parse_args()
    runs = args.runs.split(",")
    unknown = set(runs) - {"compiled", "aq-cold", "aq-warm", "worker"}
    if unknown:
        parser.error(f"unknown runs: {', '.join(sorted(unknown))}")

    work = Path(args.work or tempfile.mkdtemp(prefix="aq-bench-dp-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"specs": args.specs, "shards": args.shards, "db": args.db, "runs": []}
    try:
        start = time.monotonic()
        folders = write_workload(work / "dags", args.specs, args.shards)
        print(f"workload: {args.specs} specs + {args.shards} loader shards, {args.specs} compiled .py files "
              f"in {work} ({time.monotonic() - start:.0f} s)", file=sys.stderr)  # fmt: skip
        cache = work / "plan-cache"  # outside every AIRFLOW_HOME: the warm run reuses what the cold run wrote
        cache.mkdir()
        plan = [("compiled", folders["compiled"]), ("aq-cold", folders["aq"]), ("aq-warm", folders["aq"])]
        for name, folder in plan:
            if name not in runs:
                continue
            if name == "aq-warm" and "aq-cold" not in runs:
                print("aq-warm needs aq-cold (it fills the plan cache); skipped", file=sys.stderr)
                continue
            print(f"{name}: airflow dag-processor on {folder} ...", file=sys.stderr)
            row = run_dag_processor(name, folder, args.specs, work, args, cache)
            print(f"{name}: {row['outcome']} after {row['seconds']} s, {row['serialized']} DAGs serialized, "
                  f"max {row['max_file_seconds']} s per file", file=sys.stderr)  # fmt: skip
            report["runs"].append(row)
        if report["runs"]:
            print_parse_table(report["runs"], args.specs, args)
        if "worker" in runs:
            filled = cache if any(cache.iterdir()) else Path(tempfile.mkdtemp(prefix="cache-", dir=work))
            report["worker"] = worker_startup(folders, args.specs, args.shards, work, filled)
            print_worker_table(report["worker"])
    finally:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"dag_processor_{args.specs}.json").write_text(json.dumps(report, indent=2, default=str))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    # the compiled baseline may run out of --timeout (10,000 files take ~2 h on 2 cores): its pace
    # gives the estimate; anything else unfinished, or any import error, fails the run
    baseline_timeout = lambda r: r["name"] == "compiled" and r["outcome"] == "timeout" and r["serialized"]  # noqa: E731
    ok = all((r["outcome"] == "ok" or baseline_timeout(r)) and not r["import_errors"] for r in report["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
