"""Pipelines run for several logical dates with ``dag.test()`` in one process, so a local
Airflow's quality pages have history without a scheduler:

    python -m aq_airflow.devstack.history RUNS_JSON [--skip-done]

``RUNS_JSON`` is a list of ``[dag_id, date, conf-or-null]``. Each run goes through
``aq_airflow.devstack.dagrun.dag_test`` as in ``aq-airflow run``, so each is recorded with its real
start and duration (not a start at its logical date): the DAG is serialized into the metadata
DB, the run and its task instances are recorded there, and the checks and metrics tasks write
the warehouse's results tables, as a scheduled run would. One process for all runs spares
Airflow's start-up per date; each run gets the DAG from a fresh parse of the folder, as
``airflow dags test`` would (with one DAG object for all runs, a conf given to one run's
``dag.test(run_conf=...)`` was still in the params of the later runs without one: seen on Airflow
3.3). ``--skip-done`` leaves out a date that already has a finished run (``demo-ui`` run twice
does not run it all again). Prints one line a run, starting with ``RESULT`` (Airflow's own
logging goes to the same stream).

:func:`run_history` starts that process in a home's environment and collects its lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence

from aq_airflow.devstack.home import AirflowHome, DevstackError
from aq_airflow.devstack.processes import tail

RESULT = "RESULT "
LOG = "history.log"


def run_history(
    home: AirflowHome,
    runs: Sequence[tuple[str, str, dict | None]],
    skip_done: bool = False,
    echo: Callable[[str], None] | None = None,
) -> list[str]:
    """Runs each (dag_id, date, conf) in ``home``'s Airflow (one process, this module); returns
    its result lines (each also passed to ``echo`` as it comes), the whole output kept in
    ``process-logs/history.log``."""
    command = home.command("python", "-m", "aq_airflow.devstack.history", json.dumps([list(r) for r in runs]))
    command += ["--skip-done"] if skip_done else []
    results = []
    with open(home.logs / LOG, "a") as log:
        process = subprocess.Popen(command, env=home.env, cwd=home.root, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            for line in process.stdout:
                log.write(line)
                if line.startswith(RESULT):
                    results.append(line[len(RESULT) :].rstrip("\n"))
                    if echo:
                        echo(results[-1])
        except BaseException:  # Ctrl-C or SIGTERM of the caller: no run left going on its own
            process.terminate()
            process.wait(30)
            raise
        code = process.wait()
    if code != 0 or len(results) != len(runs):
        raise DevstackError(f"the runs ended with exit code {code}:\n{tail(home.logs / LOG, 60)}")
    return results


def main(argv: list[str]) -> int:
    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.settings import DAGS_FOLDER
    from airflow.utils.session import create_session

    from aq_airflow.devstack.dagrun import dag_test

    runs = json.loads(argv[0])
    skip_done = "--skip-done" in argv[1:]
    for dag_id, date, conf in runs:
        bag = DagBag(dag_folder=DAGS_FOLDER)  # the plans are cached: a parse is a few ms a spec
        if bag.import_errors:
            print(f"import errors: {bag.import_errors}", file=sys.stderr)
            return 1
        if dag_id not in bag.dags:
            print(f"no DAG {dag_id} in {DAGS_FOLDER} (found: {', '.join(sorted(bag.dags))})", file=sys.stderr)
            return 1
        dag = bag.dags[dag_id]
        logical_date = pendulum.parse(date)
        if skip_done:
            with create_session() as session:
                done = session.query(DagRun).filter_by(dag_id=dag_id, logical_date=logical_date).first()
                if done is not None and done.state in ("success", "failed"):
                    print(f"{RESULT}{dag_id} {date}: {done.state} (already run: {done.run_id})", flush=True)
                    continue
        started = time.monotonic()
        run = dag_test(dag, logical_date, conf)  # recorded with its real start, as `aq-airflow run` does
        with create_session() as session:
            states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
        seconds = time.monotonic() - started
        counts = Counter(states.values())
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        unhappy = sorted(f"{task} {state}" for task, state in states.items() if state not in ("success", "skipped"))
        detail = f"; {', '.join(unhappy)}" if unhappy else ""
        print(f"{RESULT}{dag_id} {date}: {run.state} in {seconds:.1f}s, run {run.run_id} ({summary}{detail})",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
