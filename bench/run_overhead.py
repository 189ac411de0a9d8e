"""`make bench`: where the wall time of `aq-airflow run` goes, in named phases, on the demo
pipeline and a `foreach:` pipeline.

Each run is a fresh process running ``aq-airflow run``'s own entry point (``cli.main.main``) with
timestamps taken around the functions each phase is made of (wrappers installed before the run).
The table gives each phase's median over the rounds, its share of the run's wall time, and the
run's overhead: wall time over the time the steps' own processes took (the baseline of the same
run). Per-task phases are summed over the run's task instances (Σ).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPECS = {"demo": ROOT / "example_dags/churn_scoring.aq.yaml", "foreach": ROOT / "example_dags/region_training.aq.yaml"}
DATE = "2026-03-02"  # a Monday: region_training runs weekly on Mondays

# (phase, module, attribute): the function whose calls make the phase; "" as the attribute of a
# class-valued module path names a method ("module:Class.method")
PHASES = [
    ("spec load and plan", "aq_airflow.plan", "compile_spec"),
    ("Airflow home and DB set-up", "aq_airflow.cli.run", "_prepare"),
    ("Airflow home and DB set-up", "airflow.utils.db", "initdb"),
    ("DAG build (DagBag)", "airflow.dag_processing.dagbag", "DagBag"),
    ("scheduling loop (whole run)", "aq_airflow.devstack.dagrun", "dag_test"),
    ("Σ task: whole instance", "airflow.sdk.definitions.dag", "_run_task"),
    ("Σ task: operator execute", "airflow.sdk.execution_time.task_runner", "_execute_task"),
    ("Σ task: user process", "aq_airflow.runners.local", "LocalProcess.run"),
    ("Σ task: quality engine", "aq_airflow.operators.quality", "run_checks"),
    ("Σ task: quality engine", "aq_airflow.operators.quality", "run_metrics"),
    ("Σ task: GX expectations", "aq_airflow.quality.extra", "gx_outcomes"),
    ("Σ task: results write", "aq_airflow.results.store", "ResultsStore.replace"),
    ("summary and results report", "aq_airflow.cli.run", "_summary"),
]
AIRFLOW_IMPORTING = {"aq_airflow.operators.quality"}
ORDER = [
    "CLI import",
    "spec load and plan",
    "Airflow home and DB set-up",
    "DAG build (DagBag)",
    "run set-up (to first task)",
    "scheduling loop (whole run)",
    "Σ task: whole instance",
    "Σ task: start (to execute)",
    "Σ task: operator execute",
    "Σ task: user process",
    "Σ task: quality engine",
    "Σ task: GX expectations",
    "Σ task: results write",
    "Σ task: finish (after execute)",
    "summary and results report",
    "wall (process)",
]


# --- inside one measured run (a child process of the bench) -------------------------------


def _instrument(marks: str) -> None:
    """Wrap every phase's function: each call appends one JSON line (phase, task instance,
    start, end) to ``marks``; forked task processes inherit the wrappers and append too."""
    import functools
    import importlib

    current = {"ti": None}

    def record(phase: str, start: float, end: float) -> None:
        line = json.dumps({"phase": phase, "ti": current["ti"], "start": start, "end": end, "pid": os.getpid()})
        fd = os.open(marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def wrap(phase: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if phase == "Σ task: whole instance":
                ti = kwargs["ti"]
                current["ti"] = f"{ti.task_id}[{ti.map_index}]"
            start = time.time()
            try:
                return fn(*args, **kwargs)
            finally:
                record(phase, start, time.time())

        return timed

    def install(phases) -> None:
        for phase, module_name, attribute in phases:
            patch(phase, importlib.import_module(module_name), attribute)

    def patch(phase, module, attribute) -> None:
        if "." in attribute:  # a method
            cls_name, method = attribute.split(".")
            cls = getattr(module, cls_name)
            setattr(cls, method, wrap(phase, getattr(cls, method)))
        elif isinstance(getattr(module, attribute, None), type):  # a class: time its construction
            cls = getattr(module, attribute)
            setattr(module, attribute, type(cls.__name__, (cls,), {"__init__": wrap(phase, cls.__init__)}))
        else:
            setattr(module, attribute, wrap(phase, getattr(module, attribute)))

    # Airflow reads its configuration (AIRFLOW_HOME, the dags folder) as it is first imported:
    # what imports Airflow is wrapped once the run has set up its home, as the CLI imports it then
    early = [p for p in PHASES if p[1].startswith("aq_airflow") and p[1] not in AIRFLOW_IMPORTING]
    late = [p for p in PHASES if p not in early]
    install(early)
    from aq_airflow.cli import run

    prepare = run._prepare

    def prepared(*args, **kwargs):
        dags = prepare(*args, **kwargs)
        install(late)
        return dags

    run._prepare = prepared


def _measured_run(spec: str, workdir: str, marks: str) -> int:
    started = time.time()
    from aq_airflow.cli import main as cli_main  # the CLI's own imports: what `aq-airflow` pays first

    imported = time.time()
    _instrument(marks)
    with open(marks, "a") as out:
        out.write(json.dumps({"phase": "CLI import", "ti": None, "start": started, "end": imported}) + "\n")
    argv = ["run", spec, "--date", DATE, "--workdir", workdir]
    return cli_main.main(argv)


# --- the bench ------------------------------------------------------------------------------


def _seed(folder: Path) -> Path:
    warehouse = folder / "warehouse.duckdb"
    subprocess.run([sys.executable, str(ROOT / "example_dags/seed_warehouse.py"), str(warehouse)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return warehouse


def _one(spec: Path, folder: Path) -> dict[str, float]:
    """One run of ``spec`` in a fresh process; each phase's seconds."""
    workdir = Path(tempfile.mkdtemp(dir=folder, prefix="work-"))
    (workdir / "warehouse.duckdb").write_bytes((folder / "warehouse.duckdb").read_bytes())
    marks = workdir / "marks.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    began = time.time()
    result = subprocess.run(
        [sys.executable, __file__, "--measure", str(spec), str(workdir), str(marks)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.time() - began
    if result.returncode != 0:
        sys.exit(f"{spec.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return _phases([json.loads(line) for line in marks.read_text().splitlines()], wall)


def _phases(marks: list[dict], wall: float) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    by_ti: dict[str, dict[str, dict]] = defaultdict(dict)
    for mark in marks:
        seconds[mark["phase"]] += mark["end"] - mark["start"]
        if mark["ti"] and mark["phase"] in ("Σ task: whole instance", "Σ task: operator execute"):
            by_ti[mark["ti"]][mark["phase"]] = mark
    for phases in by_ti.values():
        whole, execute = phases.get("Σ task: whole instance"), phases.get("Σ task: operator execute")
        if whole and execute:
            seconds["Σ task: start (to execute)"] += execute["start"] - whole["start"]
            seconds["Σ task: finish (after execute)"] += whole["end"] - execute["end"]
    loop = [m for m in marks if m["phase"] == "scheduling loop (whole run)"]
    first = min((m["start"] for m in marks if m["phase"] == "Σ task: whole instance"), default=None)
    if loop and first is not None:
        seconds["run set-up (to first task)"] = first - loop[0]["start"]
    seconds["wall (process)"] = wall
    return seconds


def _table(title: str, rounds: list[dict[str, float]]) -> None:
    print(f"\n{title}: median of {len(rounds)} runs, seconds; share = phase / wall of the same run")
    header = f"{'phase':34}{'seconds':>10}{'share':>8}"
    print(header)
    print("-" * len(header))
    for phase in ORDER:
        median = statistics.median(r.get(phase, 0.0) for r in rounds)
        share = statistics.median(r.get(phase, 0.0) / r["wall (process)"] for r in rounds)
        if median:
            print(f"{phase:34}{median:10.2f}{share:8.2f}")
    user = "Σ task: user process"
    overhead = statistics.median(r["wall (process)"] / r[user] for r in rounds if r.get(user))
    label = "overhead: wall / steps' processes"
    print(f"{label:34}{overhead:10.2f}x")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        spec, workdir, marks = sys.argv[2:5]
        return _measured_run(spec, workdir, marks)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per spec (default 3)")
    parser.add_argument("--specs", default="demo,foreach", help="which of: demo, foreach")
    args = parser.parse_args()
    print(f"aq-airflow run overhead: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="aq-bench-run-") as tmp:
        folder = Path(tmp)
        _seed(folder)
        for name in args.specs.split(","):
            rounds = [_one(SPECS[name], folder) for _ in range(args.rounds)]
            _table(f"{name} ({SPECS[name].name})", rounds)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
