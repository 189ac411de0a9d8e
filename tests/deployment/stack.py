"""A real Airflow deployment of the built wheel, as a platform engineer runs one.

A fresh AIRFLOW_HOME, a metadata database of its own on the machine's PostgreSQL, ``airflow db
migrate``, then ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` (and a ``celery
worker`` on Redis for the CeleryExecutor) as separate processes, each in its own process group
with its own log file. The REST API v2 is used the way a user would: a JWT from ``/auth/token``
for a non-admin user of the simple auth manager.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.ports import free_port, redis_database

USER, ROLE = "tester", "op"  # an operator: may trigger, clear and unpause; not an admin
TERMINAL = {"success", "failed"}


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])


def timestamp(value: str) -> datetime.datetime:
    """A timestamp of the API (ISO 8601; fractions of a second only when there are some)."""
    return datetime.datetime.fromisoformat(value)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0, explain=None) -> Any:
    """Calls ``probe`` until it returns something truthy; fails with ``explain()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (httpx.HTTPError, OSError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(every)
    detail = explain() if explain else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{detail}")


# --- services: PostgreSQL (a database per stack) and Redis ---------------------------------------


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _admin(admin_dsn: str, statement: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE cannot run in one)."""
    import psycopg2

    conn = psycopg2.connect(admin_dsn, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


def create_database(admin_dsn: str, name: str) -> None:
    _admin(admin_dsn, f'CREATE DATABASE "{name}"')


def drop_database(admin_dsn: str, name: str) -> None:
    _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _encode(*words: str) -> bytes:
    return f"*{len(words)}\r\n".encode() + b"".join(f"${len(w.encode())}\r\n{w}\r\n".encode() for w in words)


def _read_reply(stream) -> Any:
    """One RESP2 reply: simple strings, errors, integers, bulk strings, arrays."""
    line = stream.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise OSError(f"redis: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        return [_read_reply(stream) for _ in range(int(rest))]
    raise OSError(f"redis: unexpected reply {line!r}")


def redis_command(host: str, port: int, *args: str, db: int = 0, timeout: float = 3) -> Any:
    """One command on a fresh connection (no Redis client library needed in the test venv)."""
    with socket.create_connection((host, port), timeout=timeout) as sock, sock.makefile("rb") as stream:
        sock.sendall((_encode("SELECT", str(db)) if db else b"") + _encode(*args))
        if db:
            _read_reply(stream)
        return _read_reply(stream)


def clean_redis(host: str, port: int, db: int, queue: str) -> None:
    """Removes what the broker left for our queue (and kombu's shared key, once it is alone)."""
    ours = [k for k in redis_command(host, port, "KEYS", "*", db=db) if queue in k or k.startswith("unacked")]
    if ours:
        redis_command(host, port, "DEL", *ours, db=db)
    if redis_command(host, port, "KEYS", "*", db=db) == ["_kombu.binding_deadlines"]:
        redis_command(host, port, "DEL", "_kombu.binding_deadlines", db=db)


# --- processes --------------------------------------------------------------------------------------


class Process:
    def __init__(self, name: str, args: list[str], env: dict, cwd: Path, log: Path):
        self.name = name
        self.log = log
        self.handle = log.open("ab")
        self.popen = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, grace: float = 20) -> None:
        """SIGTERM to the process group (the process and its workers), then SIGKILL."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # children that outlived their parent (a killed worker's task processes) share the group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        self.handle.close()


class Stack:
    """One deployment; ``start()`` brings it up, ``stop()`` takes everything down (idempotent)."""

    def __init__(self, venv: Path, executor: str, root: Path, database_dsn: str, redis: tuple[str, int] | None):
        self.venv = venv
        self.bin = venv / "bin"
        self.executor = executor
        self.root = root
        self.home = root / "airflow-home"
        self.dags = root / "dags"
        self.logs = root / "process-logs"
        self.warehouse = root / "warehouse.duckdb"
        self.examples_warehouse = root / "examples.duckdb"  # the example project's tables (aq_examples)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        self.processes: list[Process] = []
        self.client: httpx.Client | None = None
        for folder in (self.home, self.dags, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        metadata = database_dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AQ_", "PYTHON", "VIRTUAL_ENV"))
        }
        self.env.update(
            PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR=executor,
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__FERNET_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata,
            # auth: the simple auth manager, one real user who is not an admin
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:{ROLE}",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(root / "passwords.json"),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
            AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(32),
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            # loopback ports of our own (the defaults may be taken by another Airflow here)
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="30",
            # the warehouse every task uses; the deployed example pipelines have their own
            AIRFLOW_CONN_AQ_WAREHOUSE=json.dumps({"conn_type": "duckdb", "host": str(self.warehouse)}),
            AIRFLOW_CONN_AQ_EXAMPLES=json.dumps({"conn_type": "duckdb", "host": str(self.examples_warehouse)}),
        )
        self.redis = None
        if executor == "CeleryExecutor":
            assert redis is not None
            host, port = redis
            queue = f"aq_deploy_{secrets.token_hex(4)}"
            self.redis = (host, port, redis_database(), queue)  # the queue is unique too
            self.env.update(
                AIRFLOW__CELERY__BROKER_URL=f"redis://{host}:{port}/{self.redis[2]}",
                AIRFLOW__CELERY__RESULT_BACKEND="db+" + database_dsn,
                AIRFLOW__CELERY__WORKER_CONCURRENCY="4",
                AIRFLOW__OPERATORS__DEFAULT_QUEUE=queue,
            )

    # -- commands and processes --

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"`{' '.join(args)}` exited with {result.returncode}:\n{result.stderr[-4000:]}")
        return result

    def spawn(self, name: str, *args: str) -> Process:
        process = Process(name, [str(self.bin / args[0]), *args[1:]], self.env, self.root, self.logs / f"{name}.log")
        self.processes.append(process)
        return process

    def tails(self, lines: int = 40) -> str:
        parts = []
        for process in self.processes:
            state = "running" if process.popen.poll() is None else f"exited {process.popen.returncode}"
            parts.append(f"----- {process.name} (pid {process.pid}, {state}): {process.log} -----")
            parts.append(tail(process.log, lines))
        return "\n".join(parts)

    def check_alive(self) -> None:
        dead = [p for p in self.processes if p.popen.poll() is not None]
        if dead:
            names = ", ".join(f"{p.name} (exit {p.popen.returncode})" for p in dead)
            raise AssertionError(f"Airflow process(es) died: {names}\n{self.tails()}")

    def start(self, specs: Iterable[Path] = ()) -> None:
        self.run("airflow", "db", "migrate")
        (self.root / "passwords.json").write_text(json.dumps({USER: self.password}))
        init = self.run("aq-airflow", "init", str(self.dags))
        assert list(self.dags.glob("*.py")), f"aq-airflow init wrote no loader: {init.stderr}"
        for spec in specs:  # specs, and the files and packages their steps import
            if spec.is_dir():
                shutil.copytree(spec, self.dags / spec.name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                (self.dags / spec.name).write_bytes(spec.read_bytes())
        self.spawn("api-server", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.port))
        self.spawn("scheduler", "airflow", "scheduler")
        self.spawn("dag-processor", "airflow", "dag-processor")
        self.dag_processor_started = time.monotonic()
        self.spawn("triggerer", "airflow", "triggerer")
        if self.executor == "CeleryExecutor":
            self.spawn("celery-worker", "airflow", "celery", "worker", "--concurrency", "4")
        self.client = httpx.Client(base_url=self.url, timeout=30)

        def healthy():
            self.check_alive()
            response = self.client.get("/api/v2/monitor/health")
            return response.status_code == 200 and response.json()

        wait_for("the API server", healthy, 180, explain=self.tails)
        self.login()
        if self.executor == "CeleryExecutor":
            wait_for("the Celery worker", lambda: "ready" in tail(self.logs / "celery-worker.log", 200), 120,
                     explain=self.tails)  # fmt: skip
        wait_for(
            "a healthy scheduler, dag processor and triggerer",
            lambda: self.check_alive() or self.components_healthy(),
            120,
            explain=lambda: f"{self.client.get('/api/v2/monitor/health').text}\n{self.tails()}",
        )

    def components_healthy(self) -> bool:
        health = self.client.get("/api/v2/monitor/health").json()
        return all(
            health.get(part, {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        # the scheduler first (it owns the LocalExecutor's workers), the API server last
        order = {"scheduler": 0, "celery-worker": 1, "triggerer": 2, "dag-processor": 3, "api-server": 4}
        for process in sorted(self.processes, key=lambda p: order.get(p.name, 9)):
            process.stop()
        if self.redis is not None:
            clean_redis(*self.redis)

    # -- the REST API --

    def login(self) -> None:
        response = self.client.post("/auth/token", json={"username": USER, "password": self.password})
        assert response.status_code == 201, response.text
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def api(self, method: str, path: str, expect: int | tuple[int, ...] = 200, **kwargs) -> Any:
        response = self.client.request(method, f"/api/v2{path}", **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, f"{method} {path}: {response.status_code} {response.text[:2000]}"
        return response.json() if response.content else None

    def dags_visible(self, dag_ids: Iterable[str]) -> dict[str, dict]:
        listing = self.api("GET", "/dags", params={"limit": 100, "dag_id_pattern": "deploy"})
        found = {d["dag_id"]: d for d in listing["dags"]}
        return found if set(dag_ids) <= set(found) else {}

    def import_errors(self) -> list[dict]:
        return self.api("GET", "/importErrors")["import_errors"]

    def unpause(self, dag_id: str) -> None:
        assert self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})["is_paused"] is False

    def trigger(self, dag_id: str, run_id: str, logical_date: str, conf: dict | None = None) -> dict:
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def run_state(self, dag_id: str, run_id: str) -> dict:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        listing = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        return {ti["task_id"]: ti for ti in listing["task_instances"]}

    def states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {task_id: ti["state"] for task_id, ti in self.task_instances(dag_id, run_id).items()}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The task's log as text (the API returns structured events)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.api("GET", path, params={"full_content": True}, headers={"Accept": "application/json"})
        lines = []
        for event in content.get("content", []):
            if not isinstance(event, dict):
                lines.append(str(event))
                continue
            line = f"{event.get('level', '')} {event.get('event', '')}"
            for error in event.get("error_detail") or []:  # the exception, without its frames
                line += f"\n    {error.get('exc_type')}: {error.get('exc_value')}"
            lines.append(line)
        return "\n".join(lines)

    def explain_run(self, dag_id: str, run_id: str) -> str:
        """Task states, the logs of failed tasks, the processes' log tails: for failure messages."""
        parts = []
        try:
            tis = self.task_instances(dag_id, run_id)
            parts.append(f"task states of {dag_id}/{run_id}: " + json.dumps({k: v["state"] for k, v in tis.items()}))
            for task_id, ti in tis.items():
                if ti["state"] in ("failed", "up_for_retry") and ti["try_number"]:
                    log = self.task_log(dag_id, run_id, task_id, ti["try_number"])
                    last = "\n".join(log.splitlines()[-40:])
                    parts.append(f"----- log of {task_id} try {ti['try_number']} -----\n{last}")
        except Exception as error:  # explaining must not hide the original failure
            parts.append(f"(could not read the run through the API: {error!r})")
        parts.append(self.tails(25))
        return "\n".join(parts)

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        def finished():
            self.check_alive()
            run = self.run_state(dag_id, run_id)
            return run if run["state"] in TERMINAL else None

        return wait_for(f"run {dag_id}/{run_id} to finish", finished, timeout, every=2,
                        explain=lambda: self.explain_run(dag_id, run_id))  # fmt: skip
