"""`make bench` (foreach): an N-item `foreach:` (default 1,000, a trivial function) against the
same DAG written by hand with `expand()`, through `dag.test()` and through a real scheduler; and
what happens past Airflow's `[core] max_map_length`.

The DAGs (one dags folder, used by both modes):

* `aq_foreach` (ours): a spec whose step `square` has `foreach:` a literal list of N items (0..N-1)
  and `python: fe_bench_funcs:square` (returns item * item), built by the aq loader (local
  runner): a `square.items` task, then `square.run` mapped over its output. Per item,
  AqLocalStepOperator renders the step's environment (Airflow templates, the item label),
  starts a process `python -m aq_airflow.runtime` that imports the function, calls it and
  writes its value and a manifest into the artifact store, then reads the manifest back and
  returns it (XCom).
* `hand_foreach` (baseline, trivial): the same DAG by hand: an `items` @task returning the same
  list, a @task `square` calling the same function in the task process, `.expand(item=items())`.
* `hand_foreach_labelled` (baseline, trivial, labelled): the same, with the item as its label in
  the grid (`map_index_template`), as aq labels items. Airflow renders a label before
  `execute()` and sends it in a call of its own (one more execution-API request per item).
* `hand_foreach_subprocess` (baseline, same work): the same hand-written DAG, each item doing
  aq's per-item work by hand: the same `python -m aq_airflow.runtime` process with the same
  contract environment, the manifest read back and returned.

Definitions (the quantity the goal is about is the overhead):

* wall: dag.test(): the seconds of the `dag.test()` call (the DAG already parsed, the in-process
  execution API already started by a one-task DAG; SQLite metadata DB, tasks one at a time).
  Scheduler: from just before the REST trigger to the run's end_date (api-server + scheduler +
  dag-processor + triggerer from aq_airflow.devstack, LocalExecutor, a fresh PostgreSQL
  database; `[core] parallelism` = `--parallelism` for all DAGs).
* work: the seconds inside each task's `execute()` (Airflow's `_run_execute_callable`, timed by
  an airflow_local_settings.py in AIRFLOW_HOME, the same for every DAG), summed over the run.
* overhead per item = (wall - work / P) / N, P the task slots (1 in dag.test(); the
  parallelism under the scheduler): the time a slot spends per item outside `execute()`:
  scheduling and queuing the task instance, starting the task process and parsing the DAG file
  in it, rendering templates and the map index label, XCom, state updates, scheduler latency.

Past max_map_length: `aq-airflow validate` on a literal list of 1,025 items, and a run whose conf
overrides a `foreach: {param: items}` to 1,100 items (the items task must fail with its count
before any item runs), next to the hand-written DAG's items task returning 1,100 items.

The tables are printed as markdown and written to bench/out/foreach_N.json. Nothing here
asserts a time; the exit status is 1 when a run does not end as expected.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.machine import settle  # noqa: E402

BIN = Path(sys.executable).parent
VENV = BIN.parent
GOAL = 1.1
LIMIT_ITEMS = 1100  # a run-time list past max_map_length (1,024 by default)
VALIDATE_ITEMS = 1025  # a literal list one past it
POSTGRES = os.environ.get("AQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
LOGICAL_DATE = "2026-03-01T00:00:00+00:00"
RESULT_MARK = "AQ-BENCH-RESULT "

AQ, HAND, HAND_SUB = "aq_foreach", "hand_foreach", "hand_foreach_subprocess"
HAND_LABEL = "hand_foreach_labelled"
TIMED = (HAND, HAND_LABEL, AQ, HAND_SUB)  # the order of the timed runs
AQ_LIMIT, HAND_LIMIT = "aq_foreach_limit", "hand_foreach_limit"
WARM_UP = "foreach_warmup"
MAPPED = {AQ: "square.run", HAND: "square", HAND_LABEL: "square", HAND_SUB: "square"}
LABELS = {
    AQ: "aq `foreach:` (local runner: a runtime process per item, artifact + manifest)",
    HAND: "hand-written `expand()`, trivial (the function in the task process)",
    HAND_LABEL: "hand-written `expand()`, trivial, items labelled in the grid as aq's are (`map_index_template`)",
    HAND_SUB: "hand-written `expand()`, same work (the same runtime process per item)",
}

FUNCTIONS = '''\
"""The step function of the foreach benchmark (a module beside the DAG files)."""


def square(item):
    return item * item
'''

SPEC = """\
# bench/foreach.py: a foreach over {count} literal items, a trivial function per item
pipeline: aq_foreach
schedule: null
start_date: 2026-01-01
cluster: local
steps:
  square:
    python: fe_bench_funcs:square
    foreach: [{items}]
"""

LIMIT_SPEC = """\
# bench/foreach.py: a run's conf may give this param more items than Airflow maps
pipeline: aq_foreach_limit
schedule: null
start_date: 2026-01-01
cluster: local
params: {items: [0, 1, 2]}
steps:
  square:
    python: fe_bench_funcs:square
    foreach: {param: items}
"""

# The baselines, as a user writes them (the runtime's environment names from its contract module).
HAND_DAGS = '''\
"""bench/foreach.py: the aq foreach DAG written by hand with expand() (Airflow DAGs)."""

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime

from airflow.sdk import DAG, get_current_context, task

import fe_bench_funcs
from aq_airflow.runtime import contract

COUNT = {count}


@task
def items():
    return list(range(COUNT))


@task
def square(item):
    return fe_bench_funcs.square(item)


@task(task_id="square")
def square_subprocess(item):
    """aq's per-item work by hand: the runtime in a process with the contract's environment."""
    context = get_current_context()
    run_id, map_index = context["run_id"], context["ti"].map_index
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    root = os.path.abspath(os.environ.get(contract.ARTIFACTS) or os.path.join(home, "aq-artifacts"))
    output = os.path.join(root, context["dag"].dag_id, run_id, "square", str(map_index))
    when = context["logical_date"]
    env = {{
        **os.environ,
        contract.DAG_ID: context["dag"].dag_id,
        contract.RUN_ID: run_id,
        contract.STEP: "square",
        contract.CONTEXT: json.dumps({{"run_id": run_id, "ds": when.strftime("%Y-%m-%d"),
                                      "logical_date": str(when), "params": dict(context["params"])}}),
        contract.ARTIFACTS: root,
        contract.OUTPUT: output,
        contract.ITEM: json.dumps(item),
        contract.MAP_INDEX: str(map_index),
        "PYTHONPATH": os.pathsep.join(p for p in (os.path.dirname(__file__), os.environ.get("PYTHONPATH")) if p),
    }}
    argv = [sys.executable, *contract.runtime_command("python")[1:]]
    argv += contract.runtime_arguments("fe_bench_funcs:square")
    with tempfile.TemporaryDirectory(prefix="hand-square-") as workdir:
        done = subprocess.run(argv, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in done.stdout.splitlines():
        print(line)
    done.check_returncode()
    with open(os.path.join(output, "_manifest.json")) as manifest:
        return json.load(manifest)


@task(task_id="square", map_index_template="{{{{ task.op_kwargs['item'] }}}}")
def square_labelled(item):
    return fe_bench_funcs.square(item)


@task(task_id="items")
def too_many():
    return list(range({limit}))


@task
def warm_up_items():
    return list(range({warm_up_items}))


with DAG("hand_foreach", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    square.expand(item=items())

with DAG("hand_foreach_labelled", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    square_labelled.expand(item=items())

with DAG("hand_foreach_subprocess", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    square_subprocess.expand(item=items())

with DAG("hand_foreach_limit", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    square.expand(item=too_many())

with DAG("{warm_up}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    square.expand(item=warm_up_items())
'''

# Times every task's execute() in every Airflow process of the benchmark (dag.test() and the
# LocalExecutor's task processes alike), one JSON line per call in $AQ_BENCH_TIMINGS.
LOCAL_SETTINGS = '''\
"""bench/foreach.py: time each task's execute() (the per-item work), whatever the DAG."""

import json
import os
import time

from airflow.sdk.execution_time import task_runner

_execute = task_runner._run_execute_callable


def _timed_execute(context, execute, task):
    start = time.perf_counter()
    try:
        return _execute(context, execute, task)
    finally:
        seconds = time.perf_counter() - start
        path = os.environ.get("AQ_BENCH_TIMINGS")
        if path:
            ti = context["ti"]
            line = json.dumps({"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id,
                               "map_index": ti.map_index, "seconds": seconds})
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\\n").encode())
            finally:
                os.close(fd)


task_runner._run_execute_callable = _timed_execute
'''


def _env(**extra: str) -> dict[str, str]:
    """This environment without any Airflow or aq setting of the caller, plus ``extra``."""
    drop = ("AIRFLOW", "AQ_", "_AIRFLOW", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(AIRFLOW__CORE__LOAD_EXAMPLES="False", **extra)
    return env


def write_files(folder: Path, items: int) -> list[Path]:
    """The specs, the hand-written DAG file and the step function module, in ``folder``."""
    from aq_airflow.artifacts.store import MANIFEST

    assert MANIFEST == "_manifest.json", MANIFEST  # the hand-written DAG reads it by name
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "aq_foreach.aq.yaml": SPEC.format(count=items, items=", ".join(str(i) for i in range(items))),
        "aq_foreach_limit.aq.yaml": LIMIT_SPEC,
        "hand_foreach.py": HAND_DAGS.format(
            count=items, limit=LIMIT_ITEMS, warm_up=WARM_UP, warm_up_items=min(items, 100)
        ),
        "fe_bench_funcs.py": FUNCTIONS,
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    return [folder / name for name in files]


def read_timings(path: Path, dag_id: str, run_id: str | None = None) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["dag_id"] == dag_id and (run_id is None or r["run_id"] == run_id)]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def figures(dag_id: str, wall: float, timings: list[dict], items: int, slots: int, **extra) -> dict:
    mapped = [r["seconds"] for r in timings if r["task_id"] == MAPPED[dag_id] and r["map_index"] >= 0]
    if len(mapped) != items:
        raise SystemExit(f"{dag_id}: {len(mapped)} mapped task instances timed, expected {items}")
    work = sum(r["seconds"] for r in timings)
    return {
        "dag_id": dag_id,
        "wall": wall,
        "work": work,
        "work_per_item_median": median(mapped),
        "overhead_per_item": (wall - work / slots) / items,
        "slots": slots,
        "tasks_timed": len(timings),
        "load_end": os.getloadavg()[0],  # the machine's 1-minute load as the run ended (others' work included)
        **extra,
    }


def mapped_instances(rest, dag_id: str, run_id: str) -> list[dict]:
    """Every mapped task instance of the run, as the REST API lists them (pages of 100)."""
    found: list[dict] = []
    while True:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{MAPPED[dag_id]}/listMapped"
        page = rest.call("GET", path, params={"limit": 100, "offset": len(found)})["task_instances"]
        found += page
        if len(page) < 100:
            return found


def phases(instances: list[dict], slots: int, timestamp) -> dict:
    """Where a slot's time per item goes under the scheduler, from the mapped instances' own
    timestamps: the slot's cycle per item (from the first instance's start to the last one's end,
    times the slots, per item), the mean running -> ended (the task process once Airflow marks it
    running: DAG parse, render, execute(), XCom), and the rest: the slot's time outside a running
    instance (the executor taking the next instance, the supervisor and the task process
    starting, the state reported, the scheduler queuing the next one)."""
    spans = [(timestamp(ti["start_date"]), timestamp(ti["end_date"])) for ti in instances
             if ti.get("start_date") and ti.get("end_date")]  # fmt: skip
    if not spans:
        raise SystemExit("no mapped instance has a start and an end date")
    window = (max(end for _, end in spans) - min(start for start, _ in spans)).total_seconds()
    cycle = window * slots / len(spans)
    run = statistics.fmean((end - start).total_seconds() for start, end in spans)
    labelled = sum(1 for ti in instances if ti.get("rendered_map_index"))
    return {"cycle": cycle, "running_to_ended": run, "outside_running": cycle - run, "labelled": labelled}


def task_parse_ms(logs: Path, dag_id: str, run_id: str) -> list[float]:
    """Each task process's parse of the DAG file, as its log says ("Worker startup parse complete")."""
    found = []
    for log in (logs / f"dag_id={dag_id}" / f"run_id={run_id}").rglob("*.log"):
        match = re.search(r'"dag_file_parse_ms":\s*(\d+)', log.read_text(errors="replace"))
        if match:
            found.append(float(match.group(1)))
    return found


# -- max_map_length ---------------------------------------------------------------------------


def validate_past_limit(work: Path, pythonpath: str | None) -> dict:
    """What `aq-airflow validate` says for a literal list one past max_map_length."""
    folder = work / "validate"
    folder.mkdir()
    spec = folder / "too_many.aq.yaml"
    spec.write_text(
        SPEC.replace("pipeline: aq_foreach", "pipeline: too_many").format(
            count=VALIDATE_ITEMS, items=", ".join(str(i) for i in range(VALIDATE_ITEMS))
        )
    )
    env = _env(**({"PYTHONPATH": pythonpath} if pythonpath else {}))
    done = subprocess.run([BIN / "aq-airflow", "validate", spec], capture_output=True, text=True, env=env)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    first = next((line for line in lines if "too_many.aq.yaml:" in line), "")
    line_no = next((n for n, text in enumerate(spec.read_text().splitlines(), 1) if "foreach:" in text), None)
    return {"exit": done.returncode, "output": lines, "error": first, "foreach_line": line_no}


def limit_message(log: str, dag_id: str) -> str:
    """The line of a task log that says why the items task failed."""
    keys = ("max_map_length", "UnmappableXComLengthPushed", "unmappable", "map_length")
    for line in log.splitlines():
        if any(k.lower() in line.lower() for k in keys) and "Traceback" not in line:
            return re.sub(r"\s+", " ", line).strip()[:400]
    return f"(no line about the length in the {dag_id} items task log)"


# -- mode (a): dag.test() ------------------------------------------------------------------------


def child_dag_test(dag_id: str, conf: str | None) -> int:
    """In a fresh process (env prepared by the parent): parse the dags folder, dag.test() one DAG."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise SystemExit(f"import errors: {bag.import_errors}")
    dag = bag.dags[dag_id]
    # the first task run in a process starts Airflow's in-process execution API (10-20 s, once):
    # the warm-up DAG takes it, so the timed run holds per-item costs only
    bag.dags[WARM_UP].test(logical_date=pendulum.parse(LOGICAL_DATE))
    start = time.perf_counter()
    dag_run = dag.test(logical_date=pendulum.parse(LOGICAL_DATE), run_conf=json.loads(conf) if conf else None)
    wall = time.perf_counter() - start
    with create_session() as session:
        states: dict[str, dict[str, int]] = {}
        for ti in dag_run.get_task_instances(session=session):
            per = states.setdefault(ti.task_id, {})
            per[str(ti.state)] = per.get(str(ti.state), 0) + 1
    result = {"dag_id": dag_id, "run_id": dag_run.run_id, "state": str(dag_run.state), "wall": wall, "states": states}
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


def dag_test_mode(work: Path, items: int, quiet, pythonpath: str | None) -> dict:
    home, dags = work / "dag-test-home", work / "dag-test-home" / "dags"
    (home / "config").mkdir(parents=True)
    (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
    write_files(dags, items)
    timings = home / "timings.jsonl"
    path = os.pathsep.join(p for p in (pythonpath, str(dags)) if p)
    env = _env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(dags), AQ_ARTIFACTS=str(home / "artifacts"),
               AQ_BENCH_TIMINGS=str(timings), PYTHONPATH=path)  # fmt: skip
    subprocess.run([BIN / "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([BIN / "aq-airflow", "init", dags, "--shards", "1"], env=env, check=True, capture_output=True)

    def run(dag_id: str, conf: dict | None = None) -> tuple[dict, str]:
        log = work / f"dag-test-{dag_id}.log"
        cmd = [sys.executable, __file__, "--child-dag-test", dag_id]
        if conf is not None:
            cmd += ["--conf", json.dumps(conf)]
        print(f"dag.test(): {dag_id} ...", file=sys.stderr, flush=True)
        with log.open("w") as out:
            subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
        text = log.read_text(errors="replace")
        found = [line for line in text.splitlines() if line.startswith(RESULT_MARK)]
        if not found:
            raise SystemExit(f"dag.test() of {dag_id} gave no result; its log {log}:\n{text[-3000:]}")
        return json.loads(found[-1][len(RESULT_MARK) :]), text

    rows = []
    for dag_id in TIMED:
        load = quiet()
        result, text = run(dag_id)
        if result["state"] != "success":
            raise SystemExit(f"dag.test() of {dag_id}: {result}\n{text[-3000:]}")
        rows.append(figures(dag_id, result["wall"], read_timings(timings, dag_id), items, slots=1, load_start=load))
        print(f"  {dag_id}: {result['wall']:.1f} s", file=sys.stderr, flush=True)
    limits = {}
    for dag_id, conf in ((AQ_LIMIT, {"items": list(range(LIMIT_ITEMS))}), (HAND_LIMIT, None)):
        result, text = run(dag_id, conf)
        ran = [r for r in read_timings(timings, dag_id) if r["map_index"] >= 0]
        limits[dag_id] = {"state": result["state"], "states": result["states"], "items_ran": len(ran),
                          "message": limit_message(text, dag_id)}  # fmt: skip
    return {"rows": rows, "limits": limits}


# -- mode (b): a real scheduler ------------------------------------------------------------------


def scheduler_mode(work: Path, items: int, parallelism: int, timeout: float, quiet, pythonpath: str | None) -> dict:
    from aq_airflow.devstack.api import RestApi
    from aq_airflow.devstack.home import AirflowHome
    from aq_airflow.devstack.postgres import create_database, drop_database, sqlalchemy_url, with_database
    from aq_airflow.devstack.processes import AirflowProcesses
    from aq_airflow.warehouse import DuckDB

    timestamp = datetime.datetime.fromisoformat
    admin = with_database(POSTGRES, "postgres")
    database = f"aq_bench_foreach_{secrets.token_hex(4)}"
    create_database(admin, database)
    root = work / "stack"
    processes = rest = None
    try:
        timings = root / "timings.jsonl"
        home = AirflowHome(
            root, database=sqlalchemy_url(with_database(POSTGRES, database)), users={"bench": "op"},
            bin_dir=VENV / "bin", artifacts=root / "artifacts", logging_level="INFO",
            connections={"aq_warehouse": DuckDB.connection_json(root / "warehouse.duckdb")},
        )  # fmt: skip
        home.env.update(AIRFLOW__CORE__PARALLELISM=str(parallelism), AQ_BENCH_TIMINGS=str(timings))
        if pythonpath:
            home.env["PYTHONPATH"] = pythonpath
        (home.home / "config").mkdir(parents=True, exist_ok=True)
        (home.home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
        print(f"scheduler: starting the stack (PostgreSQL database {database}) ...", file=sys.stderr, flush=True)
        home.migrate()
        home.run("aq-airflow", "init", str(home.dags))
        home.add_specs(write_files(work / "stack-files", items))
        processes = AirflowProcesses(home)
        processes.start()
        processes.wait_healthy()
        rest = RestApi(home, "bench", explain=processes.tails)
        rest.wait_dags({*TIMED, AQ_LIMIT, HAND_LIMIT, WARM_UP})
        errors = rest.import_errors()
        if errors:
            raise SystemExit(f"import errors: {errors}")

        def run(dag_id: str, conf: dict | None = None) -> tuple[dict, float]:
            rest.unpause(dag_id)
            run_id = f"bench_{secrets.token_hex(3)}"
            print(f"scheduler: {dag_id} ...", file=sys.stderr, flush=True)
            triggered = datetime.datetime.now(datetime.timezone.utc)
            rest.trigger(dag_id, run_id, LOGICAL_DATE.replace("+00:00", "Z"), conf)
            final = rest.wait_run(dag_id, run_id, timeout=timeout, alive=processes.check_alive)
            wall = (timestamp(final["end_date"]) - triggered).total_seconds()
            print(f"  {dag_id}: {final['state']} after {wall:.1f} s", file=sys.stderr, flush=True)
            return final, wall

        # the stack's first mapped run pays for its start (the dag-processor's first parses, cold
        # imports, a fresh database's first rows: at 100 items the first timed DAG took 94-104 s,
        # the same DAG second 73 s): a 100-item warm-up DAG takes that, not the first timed DAG
        if run(WARM_UP)[0]["state"] != "success":
            raise SystemExit(f"{WARM_UP} did not succeed")
        rows = []
        for dag_id in TIMED:
            load = quiet()
            final, wall = run(dag_id)
            if final["state"] != "success":
                raise SystemExit(f"{dag_id}: {final['state']}\n{rest.explain_run(dag_id, final['dag_run_id'])}")
            timed = read_timings(timings, dag_id, final["dag_run_id"])
            parses = task_parse_ms(home.home / "logs", dag_id, final["dag_run_id"])
            split = phases(mapped_instances(rest, dag_id, final["dag_run_id"]), parallelism, timestamp)
            rows.append(figures(dag_id, wall, timed, items, slots=parallelism, load_start=load,
                                task_parse_ms_median=median(parses), phases=split))  # fmt: skip
        limits = {}
        for dag_id, conf in ((AQ_LIMIT, {"items": list(range(LIMIT_ITEMS))}), (HAND_LIMIT, None)):
            final, _ = run(dag_id, conf)
            run_id = final["dag_run_id"]
            states = rest.states(dag_id, run_id)
            items_task = "square.items" if dag_id == AQ_LIMIT else "items"
            log = rest.task_log(dag_id, run_id, items_task, 1)
            ran = [r for r in read_timings(timings, dag_id, run_id) if r["map_index"] >= 0]
            limits[dag_id] = {"state": final["state"], "states": states, "items_ran": len(ran),
                              "message": limit_message(log, dag_id)}  # fmt: skip
        return {"rows": rows, "limits": limits, "parallelism": parallelism, "database": database}
    finally:
        if rest is not None:
            rest.close()
        if processes is not None:
            processes.stop()
        drop_database(admin, database)


# -- the report -----------------------------------------------------------------------------------


def print_mode(title: str, mode: dict, items: int) -> None:
    rows = {r["dag_id"]: r for r in mode["rows"]}
    aq = rows[AQ]["overhead_per_item"]
    print(f"\n### {title}\n")
    parse = "task_parse_ms_median" in rows[AQ]
    print("| DAG | wall s | wall / item ms | work / item ms (median) | work s (sum) | overhead / item ms "
          "| aq overhead / this |" + (" DAG parse per task process ms (median) |" if parse else "")
          + " load (1 min) start / end |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if parse else "") + "---:|")
    for dag_id in (AQ, HAND, HAND_LABEL, HAND_SUB):
        r = rows[dag_id]
        ratio = "" if dag_id == AQ else f"{aq / r['overhead_per_item']:.2f}x"
        print(f"| {LABELS[dag_id]} | {r['wall']:.1f} | {1000 * r['wall'] / items:.1f} "
              f"| {1000 * r['work_per_item_median']:.1f} | {r['work']:.1f} | {1000 * r['overhead_per_item']:.1f} "
              f"| {ratio} |" + (f" {r['task_parse_ms_median']:.0f} |" if parse else "")
              + f" {r['load_start']:.1f} / {r['load_end']:.1f} |")  # fmt: skip
    if "phases" in rows[AQ]:
        print("\nA slot's time per item under the scheduler (means, from the mapped instances' timestamps):\n")
        print("| DAG | slot cycle / item ms | running -> ended ms | outside a running instance ms "
              "| items with a label |")  # fmt: skip
        print("|---|---:|---:|---:|---:|")
        for dag_id in (AQ, HAND, HAND_LABEL, HAND_SUB):
            p = rows[dag_id]["phases"]
            print(f"| {dag_id} | {1000 * p['cycle']:.0f} | {1000 * p['running_to_ended']:.0f} "
                  f"| {1000 * p['outside_running']:.0f} | {p['labelled']} |")  # fmt: skip
    print(f"\nwall aq / hand-written: {rows[AQ]['wall'] / rows[HAND]['wall']:.2f}x (trivial), "
          f"{rows[AQ]['wall'] / rows[HAND_LABEL]['wall']:.2f}x (trivial, labelled), "
          f"{rows[AQ]['wall'] / rows[HAND_SUB]['wall']:.2f}x (same work); "
          f"goal: aq overhead / item <= {GOAL}x the hand-written DAG's")  # fmt: skip


def print_limits(report: dict) -> None:
    valid = report["validate"]
    print("\n### Past `[core] max_map_length` (Airflow's default 1,024)\n")
    print(f"- `aq-airflow validate` on a literal list of {VALIDATE_ITEMS:,} items (`foreach:` at line "
          f"{valid['foreach_line']}): exit {valid['exit']}, `{valid['error']}`")  # fmt: skip
    for mode_name, mode in (("dag.test()", report.get("dag_test")), ("scheduler", report.get("scheduler"))):
        if not mode:
            continue
        aq, hand = mode["limits"][AQ_LIMIT], mode["limits"][HAND_LIMIT]
        print(f"- {mode_name}, aq, conf overriding `foreach: {{param: items}}` to {LIMIT_ITEMS:,} items: run "
              f"{aq['state']}, tasks {json.dumps(aq['states'])}, items run: {aq['items_ran']}; "
              f"`{aq['message']}`")  # fmt: skip
        print(f"- {mode_name}, hand-written, items task returning {LIMIT_ITEMS:,}: run {hand['state']}, tasks "
              f"{json.dumps(hand['states'])}, items run: {hand['items_ran']}; `{hand['message']}`")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--mode", choices=("all", "dag-test", "scheduler"), default="all")
    parser.add_argument("--parallelism", type=int, default=2, help="[core] parallelism of the scheduler mode")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run under the scheduler")
    parser.add_argument("--max-load", type=float, help="before each timed run, wait for this 1-minute load")
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for --max-load at most")
    parser.add_argument("--pythonpath", help="aq-airflow from this folder (e.g. a git worktree of an earlier "
                        "commit, for a before/after) in every Airflow process and task")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, homes)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--child-dag-test", help=argparse.SUPPRESS)
    parser.add_argument("--conf", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_dag_test:
        return child_dag_test(args.child_dag_test, args.conf)
    if not 1 <= args.items <= 1024:
        parser.error("--items: 1 to 1,024 (Airflow's max_map_length)")

    started = time.monotonic()

    def quiet() -> float:
        return settle(args.max_load, args.max_wait)

    work = Path(tempfile.mkdtemp(prefix="aq-bench-foreach-"))
    report: dict = {"items": args.items}
    try:
        report["validate"] = validate_past_limit(work, args.pythonpath)
        if args.mode in ("all", "dag-test"):
            report["dag_test"] = dag_test_mode(work, args.items, quiet, args.pythonpath)
        if args.mode in ("all", "scheduler"):
            report["scheduler"] = scheduler_mode(work, args.items, args.parallelism, args.timeout, quiet,
                                                 args.pythonpath)  # fmt: skip
    finally:
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["bench_seconds"] = time.monotonic() - started

    print(f"\n## foreach benchmark: {args.items:,} items, a trivial function per item\n")
    print(textwrap.dedent("""\
        overhead / item = (wall - work / P) / items; work = seconds inside each task's execute() (all
        tasks of the run), P = task slots (1 in dag.test(), [core] parallelism under the scheduler).
        aq per item: rendered env + `python -m aq_airflow.runtime` process (imports the function,
        writes the value and a manifest to the artifact store) + manifest read back as XCom."""))  # fmt: skip
    if "dag_test" in report:
        print_mode("dag.test() (one process, SQLite, tasks one at a time)", report["dag_test"], args.items)
    if "scheduler" in report:
        mode = report["scheduler"]
        print_mode(f"real scheduler (LocalExecutor, parallelism {mode['parallelism']}, PostgreSQL, trigger through "
                   "the REST API -> run end_date)", mode, args.items)  # fmt: skip
    print_limits(report)
    print(f"\nbenchmark wall time: {report['bench_seconds']:.0f} s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"foreach_{args.items}.json").write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
