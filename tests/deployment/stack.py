"""A real Airflow deployment of the built wheel, as a platform engineer runs one.

The set-up is the product's (:mod:`aq_airflow.devstack`): a fresh Airflow home, a metadata
database of its own on the machine's PostgreSQL, ``airflow db migrate``, then ``api-server``,
``scheduler``, ``dag-processor``, ``triggerer`` (and a ``celery worker`` on Redis for the
CeleryExecutor) as separate processes of the production venv. What is the test's: the dags
folder written by ``aq-airflow init`` (the command under test) with the test specs, two DuckDB
warehouses, and the REST API used as one non-admin user (``tester``, role ``op``).
"""

from __future__ import annotations

import datetime
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aq_airflow.devstack.api import TERMINAL, RestApi
from aq_airflow.devstack.home import AirflowHome
from aq_airflow.devstack.postgres import create_database, drop_database, sqlalchemy_url, with_database
from aq_airflow.devstack.processes import AirflowProcesses, wait_for
from aq_airflow.devstack.redis import clean_redis, redis_command
from aq_airflow.warehouse import DuckDB
from tests.ports import redis_database

__all__ = ["TERMINAL", "Stack", "create_database", "drop_database", "redis_command", "timestamp", "wait_for",
           "with_database"]  # fmt: skip
USER, ROLE = "tester", "op"  # an operator: may trigger, clear and unpause; not an admin


def timestamp(value: str) -> datetime.datetime:
    """A timestamp of the API (ISO 8601; fractions of a second only when there are some)."""
    return datetime.datetime.fromisoformat(value)


class Stack:
    """One deployment; ``start()`` brings it up, ``stop()`` takes everything down (idempotent).
    ``env`` may be changed before ``start()``."""

    def __init__(self, venv: Path, executor: str, root: Path, database_dsn: str, redis: tuple[str, int] | None):
        self.executor = executor
        self.root = root
        self.warehouse = root / "warehouse.duckdb"
        self.examples_warehouse = root / "examples.duckdb"  # the example project's tables (aq_examples)
        self.redis = None
        broker = queue = None
        if executor == "CeleryExecutor":
            host, port = redis
            queue = f"aq_deploy_{secrets.token_hex(4)}"
            self.redis = (host, port, redis_database(), queue)  # the queue is unique too
            broker = f"redis://{host}:{port}/{self.redis[2]}"
        self.airflow = AirflowHome(
            root, executor=executor, database=sqlalchemy_url(database_dsn), users={USER: ROLE},
            bin_dir=venv / "bin", broker=broker, queue=queue, logging_level="INFO",
            connections={"aq_warehouse": DuckDB.connection_json(self.warehouse),
                         "aq_examples": DuckDB.connection_json(self.examples_warehouse)},
        )  # fmt: skip
        self.home, self.dags, self.logs = self.airflow.home, self.airflow.dags, self.airflow.logs
        self.env = self.airflow.env
        self.url = self.airflow.url
        self.processes = AirflowProcesses(self.airflow)
        self.rest: RestApi | None = None

    def start(self, specs: Iterable[Path] = ()) -> None:
        self.airflow.migrate()
        init = self.airflow.run("aq-airflow", "init", str(self.dags))
        assert list(self.dags.glob("*.py")), f"aq-airflow init wrote no loader: {init.stderr}"
        self.airflow.add_specs(specs)  # specs, and the files and packages their steps import
        self.processes.start()
        self.dag_processor_started = time.monotonic()
        self.processes.wait_healthy()
        self.rest = RestApi(self.airflow, USER, explain=self.tails)

    def stop(self) -> None:
        if self.rest is not None:
            self.rest.close()
        self.processes.stop()
        if self.redis is not None:
            clean_redis(*self.redis)

    # -- the processes and the REST API, as the tests call them --

    @property
    def client(self):
        return self.rest.http

    def tails(self, lines: int = 40) -> str:
        return self.processes.tails(lines)

    def check_alive(self) -> None:
        self.processes.check_alive()

    def api(self, method: str, path: str, expect: int | tuple[int, ...] = 200, **kwargs) -> Any:
        return self.rest.call(method, path, expect, **kwargs)

    def dags_visible(self, dag_ids: Iterable[str]) -> dict[str, dict]:
        listing = self.api("GET", "/dags", params={"limit": 100, "dag_id_pattern": "deploy"})
        found = {d["dag_id"]: d for d in listing["dags"]}
        return found if set(dag_ids) <= set(found) else {}

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        return self.rest.wait_run(dag_id, run_id, timeout, alive=self.check_alive)

    def import_errors(self) -> list[dict]:
        return self.rest.import_errors()

    def unpause(self, dag_id: str) -> None:
        self.rest.unpause(dag_id)

    def trigger(self, dag_id: str, run_id: str, logical_date: str, conf: dict | None = None) -> dict:
        return self.rest.trigger(dag_id, run_id, logical_date, conf)

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        return self.rest.task_instances(dag_id, run_id)

    def states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return self.rest.states(dag_id, run_id)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        return self.rest.task_log(dag_id, run_id, task_id, try_number)

    def explain_run(self, dag_id: str, run_id: str) -> str:
        return self.rest.explain_run(dag_id, run_id)
