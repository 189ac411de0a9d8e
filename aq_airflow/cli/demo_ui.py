"""``aq-airflow demo-ui``: the quality pages on your own pipelines, on this machine.

The specs run for several dates in a local Airflow (:mod:`aq_airflow.devstack`: a kept Airflow
home under the workdir, SQLite, every step a local process, ``dag.test()`` per date; dates
already run are skipped on a second start), their checks and metrics written to the warehouse;
then ``airflow api-server`` with the aq plugin on 127.0.0.1. Prints the URL and a login, and
stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import time
from pathlib import Path

from aq_airflow.cli.terminal import visible

DEMO_USER = "demo"
DEFAULT_PORT = 8080


def _dates(first: datetime.date, count: int) -> list[str]:
    return [(first + datetime.timedelta(days=i)).isoformat() for i in range(count)]


def parse_confs(items: list[str]) -> dict[str, dict] | str:
    """``--conf DATE=JSON`` values as {date: conf}, or why one is refused."""
    confs = {}
    for item in items:
        date, sep, text = item.partition("=")
        try:
            datetime.date.fromisoformat(date)
            conf = json.loads(text) if sep else None
        except ValueError:
            conf = None
        if not isinstance(conf, dict):
            return f"--conf {item}: write it as YYYY-MM-DD='{{\"param\": value}}' (a date, =, a JSON object)"
        confs[date] = conf
    return confs


def demo_ui(
    specs: list[Path], warehouse: str | None, workdir: Path, port: int, first_date: str | None, days: int,
    confs: list[str],
) -> int:  # fmt: skip
    from aq_airflow.cli.connection import masked_output

    with masked_output(warehouse):
        return _demo_ui(specs, warehouse, workdir, port, first_date, days, confs)


def _demo_ui(
    specs: list[Path], warehouse: str | None, workdir: Path, port: int, first_date: str | None, days: int,
    confs_given: list[str],
) -> int:  # fmt: skip
    from aq_airflow.cli.connection import WarehouseError, connection
    from aq_airflow.devstack.history import run_history
    from aq_airflow.devstack.home import AirflowHome, DevstackError
    from aq_airflow.devstack.ports import port_or_free
    from aq_airflow.devstack.processes import API_SERVER, AirflowProcesses
    from aq_airflow.pipeline_spec import SpecError
    from aq_airflow.plan import compile_spec
    from aq_airflow.warehouse import DuckDB

    confs = parse_confs(confs_given)
    if isinstance(confs, str):
        print(confs, file=sys.stderr)
        return 2
    if days < 1:
        print("--days must be at least 1", file=sys.stderr)
        return 2
    try:
        first = datetime.date.fromisoformat(first_date) if first_date else None
    except ValueError:
        print(f"--first-date {first_date}: not a date: use YYYY-MM-DD", file=sys.stderr)
        return 2
    plans = []
    for spec in specs:
        if not spec.is_file():
            print(f"{spec}: no such spec file", file=sys.stderr)
            return 2
        try:
            plans.append(compile_spec(spec))
        except SpecError as error:
            print(visible(str(error), newlines=True), file=sys.stderr)
            return 1
    dag_ids = [plan.dag_id for plan in plans]
    if len(set(dag_ids)) != len(dag_ids):
        print(f"two specs name the same pipeline: {', '.join(dag_ids)}", file=sys.stderr)
        return 2
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    home = AirflowHome(
        workdir / "ui", users={DEMO_USER: "viewer"}, port=port_or_free(port or DEFAULT_PORT),
        artifacts=workdir / "artifacts", pythonpath=sorted({str(s.resolve().parent) for s in specs}),
    )  # fmt: skip
    os.environ.update(home.settings)  # reading a --warehouse URI imports Airflow: this home's, not ~/airflow
    try:
        conn = (
            connection(warehouse, must_exist=False)
            if warehouse
            else DuckDB.connection_json(workdir / "warehouse.duckdb")
        )
    except WarehouseError as error:
        print(error, file=sys.stderr)
        return 2
    for plan in plans:
        home.add_connection(plan.warehouse, conn)
    first = first or datetime.date.today() - datetime.timedelta(days=days)
    dates = _dates(first, days)
    runs = [(dag_id, date, confs.get(date)) for dag_id in dag_ids for date in dates]
    processes = AirflowProcesses(home)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it all as Ctrl-C does
    try:
        print(f"Airflow home {home.home} (SQLite); logs in {home.logs}", flush=True)
        home.add_specs(specs)
        home.write_local_loader()
        home.migrate()
        processes.start([API_SERVER])  # it boots while the pipelines run
        print(f"running {', '.join(dag_ids)} for {dates[0]} .. {dates[-1]} (dates already run are kept)", flush=True)
        for date, conf in confs.items():
            print(f"{date} runs with params {json.dumps(conf)}", flush=True)
        run_history(home, runs, skip_done=True, echo=lambda line: print(visible(line), flush=True))
        processes.wait_healthy()
        pages = "\n".join(f"  {home.url}/aq-quality/dags/{dag_id}" for dag_id in dag_ids)
        print(
            f"\nthe quality pages: {home.url}/aq-quality/\n"
            f"log in as user: {DEMO_USER} password: {home.passwords[DEMO_USER]}\n"
            f"each pipeline's page (also the Quality tab of {home.url}/dags/<pipeline>):\n{pages}\n"
            "Ctrl-C stops the server.",
            flush=True,
        )
        while True:
            processes.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping Airflow", flush=True)
        return 0
    except DevstackError as error:
        print(f"aq-airflow demo-ui: {error}", file=sys.stderr)
        return 1
    finally:
        processes.stop()
