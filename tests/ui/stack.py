"""A real Airflow for the quality UI: pipelines run for several dates, then ``airflow api-server``.

One AIRFLOW_HOME (SQLite metadata DB, ``airflow db migrate``), a dags folder with the specs and
a local-run loader, a DuckDB warehouse. :meth:`QualityStack.run_history` runs the pipelines for
their dates with ``dag.test()`` (tests/ui/history.py, one process): the DAGs are serialized into
the metadata DB, their runs and task instances recorded, the results tables written by the real
checks and metrics tasks. Then :meth:`QualityStack.start` starts ``airflow api-server`` (the
React UI, the REST API, and our plugin ``aq_quality``, found through the installed package's
``airflow.plugins`` entry point) on a free loopback port. No scheduler and no dag
processor: nothing is left to schedule, and the DAGs are already serialized.

Auth is Airflow's simple auth manager (users and roles from ``[core] simple_auth_manager_users``,
passwords from a file of ours); the tests use tests/ui/auth_manager.py's subclass, which also
denies the configured ``user:dag_id`` pairs.

Also ``make demo-ui`` (``python -m tests.ui.stack demo``): the example pipeline for ten dates
into ``.demo``, then the api-server (the stock simple auth manager) in the foreground with a
login printed.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx

from tests.deployment.stack import Process, tail, wait_for
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SPECS = Path(__file__).resolve().parent / "specs"
AUTH_MANAGER = "tests.ui.auth_manager.DagDenyingAuthManager"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# what `aq-airflow run` writes: every spec of the folder on the local runner (processes, a local
# artifact folder), whatever cluster it names
LOADER = "from aq_airflow.live_dags import load_dags\n\nload_dags(globals(), local_run=True)\n"


class QualityStack:
    """An Airflow home with pipelines in it; ``start()`` runs the api-server, ``stop()`` ends it.

    ``users`` maps user name to simple-auth-manager role; ``denied`` lists (user, dag_id) pairs
    the auth manager refuses. Passwords are made once and kept in ``root/passwords.json``."""

    def __init__(
        self,
        root: Path,
        users: dict[str, str],
        denied: Iterable[tuple[str, str]] = (),
        port: int | None = None,
        warehouse: Path | None = None,
        artifacts: Path | None = None,
        pythonpath: Sequence[Path] = (),
        bin_dir: Path | None = None,
        auth_manager: str = AUTH_MANAGER,
    ):
        self.root = root.resolve()
        self.bin = bin_dir or Path(sys.executable).parent
        self.home = self.root / "airflow-home"
        self.dags = self.home / "dags"
        self.logs = self.root / "process-logs"
        self.warehouse = (warehouse or self.root / "warehouse.duckdb").resolve()
        self.artifacts = (artifacts or self.root / "artifacts").resolve()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.users = dict(users)
        self.passwords_file = self.root / "passwords.json"
        self.processes: list[Process] = []
        for folder in (self.home, self.dags, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.passwords = self._passwords()
        secrets_file = self.root / "secrets.json"  # the same keys across restarts (the demo's cookies)
        if not secrets_file.exists():
            keys = {"fernet": base64.urlsafe_b64encode(os.urandom(32)).decode(), "jwt": secrets.token_urlsafe(64),
                    "api": secrets.token_urlsafe(32)}  # fmt: skip
            secrets_file.write_text(json.dumps(keys))
        keys = json.loads(secrets_file.read_text())
        inherited = ("AIRFLOW", "AQ_", "PYTHON", "VIRTUAL_ENV")  # this Airflow's settings are all ours
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
        self.env.update(
            PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            # tests.ui.auth_manager for the api-server; the specs' own packages for their steps
            PYTHONPATH=os.pathsep.join(str(p) for p in (REPO, *pythonpath)),
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__FERNET_KEY=keys["fernet"],
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.home / 'airflow.db'}",
            AIRFLOW__CORE__AUTH_MANAGER=auth_manager,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{u}:{r}" for u, r in self.users.items()),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.passwords_file),
            AIRFLOW__AQ_TEST_AUTH__DENIED=",".join(f"{u}:{d}" for u, d in denied),
            AIRFLOW__API_AUTH__JWT_SECRET=keys["jwt"],
            AIRFLOW__API__SECRET_KEY=keys["api"],
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
            # the warehouse the pipelines write their results to, and the UI reads them from
            AIRFLOW_CONN_AQ_WAREHOUSE=json.dumps({"conn_type": "duckdb", "host": str(self.warehouse)}),
            AQ_ARTIFACTS=str(self.artifacts),
            AQ_AIRFLOW_CACHE=str(self.home / "aq-airflow-cache"),
        )

    def _passwords(self) -> dict[str, str]:
        known = json.loads(self.passwords_file.read_text()) if self.passwords_file.exists() else {}
        passwords = {user: known.get(user) or secrets.token_urlsafe(12) for user in self.users}
        self.passwords_file.write_text(json.dumps(passwords))
        return passwords

    # -- set-up --

    def run(self, *args: str, timeout: float = 600, log: str | None = None) -> subprocess.CompletedProcess:
        """A command of the venv in this Airflow's environment; its output kept in ``log``."""
        command = [str(self.bin / args[0]), *args[1:]] if (self.bin / args[0]).exists() else list(args)
        result = subprocess.run(command, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=timeout)
        if log:
            with open(self.logs / log, "a") as out:
                out.write(f"$ {' '.join(args)}\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            raise AssertionError(f"`{' '.join(args)}` exited with {result.returncode}:\n{result.stderr[-4000:]}")
        return result

    def prepare(self, specs: Iterable[Path]) -> None:
        """The dags folder (the specs and a local-run loader) and a migrated metadata DB."""
        for spec in specs:
            shutil.copy(spec, self.dags / spec.name)
            profiles = spec.parent / "aq-profiles.yaml"
            if profiles.exists():
                shutil.copy(profiles, self.dags / profiles.name)
        (self.dags / "aq_local_dags.py").write_text(LOADER)
        self.run("airflow", "db", "migrate", log="db-migrate.log")

    def run_history(
        self, runs: Sequence[tuple[str, str, dict | None]], skip_done: bool = False, echo=None
    ) -> list[str]:
        """Runs each (dag_id, date, conf) with dag.test() in one process (tests/ui/history.py);
        returns its result lines (each also passed to ``echo`` as it comes), the whole output
        kept in process-logs/history.log."""
        command = [str(self.bin / "python"), "-m", "tests.ui.history", json.dumps([list(r) for r in runs])]
        command += ["--skip-done"] if skip_done else []
        results = []
        with open(self.logs / "history.log", "a") as log:
            process = subprocess.Popen(command, env=self.env, cwd=self.root, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)  # fmt: skip
            for line in process.stdout:
                log.write(line)
                if line.startswith("RESULT "):
                    results.append(line[len("RESULT ") :].rstrip("\n"))
                    if echo:
                        echo(results[-1])
            code = process.wait()
        if code != 0 or len(results) != len(runs):
            raise AssertionError(f"the runs ended with exit code {code}:\n{tail(self.logs / 'history.log', 60)}")
        return results

    # -- the api-server --

    def start(self, wait: bool = True) -> None:
        """Starts ``airflow api-server``; with ``wait``, returns once it answers."""
        log = self.logs / "api-server.log"
        command = [str(self.bin / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(self.port)]
        self.processes.append(Process("api-server", command, self.env, self.root, log))
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout: float = 180) -> None:
        def healthy():
            self.check_alive()
            return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).status_code == 200

        wait_for("the API server", healthy, timeout, explain=self.tails)

    def check_alive(self) -> None:
        dead = [p for p in self.processes if p.popen.poll() is not None]
        if dead:
            raise AssertionError(f"api-server exited ({dead[0].popen.returncode}):\n{self.tails()}")

    def tails(self, lines: int = 60) -> str:
        return "\n".join(f"----- {p.name}: {p.log} -----\n{tail(p.log, lines)}" for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.processes.clear()

    # -- clients --

    def token(self, user: str) -> str:
        """A JWT from POST /auth/token, as an API client logs in."""
        response = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": self.passwords[user]})
        assert response.status_code == 201, response.text
        return response.json()["access_token"]

    def client(self, user: str | None = None, token: str | None = None) -> httpx.Client:
        """An HTTP client of the api-server: anonymous, or with ``user``'s (or a given) token."""
        headers = {}
        if user is not None:
            token = self.token(user)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


# --- make demo-ui ----------------------------------------------------------------------------------

DEMO_USER = "demo"


def _dates(first: str, count: int) -> list[str]:
    start = datetime.date.fromisoformat(first)
    return [(start + datetime.timedelta(days=i)).isoformat() for i in range(count)]


def demo(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ui.stack demo", description="make demo-ui")
    parser.add_argument("--spec", default="example_dags/churn_scoring.aq.yaml")
    parser.add_argument("--workdir", default=".demo")
    parser.add_argument("--first-date", default="2026-02-20")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--port", type=int, default=0, help="default: 8080 if free, else a free port")
    parser.add_argument(
        "--strict-date", default="2026-02-27",
        help="a date run with params min_rows=6000 (more customers than there are): its enough_rows check "
        "fails, so the UI has a failed date to show ('' for none)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    spec = Path(args.spec).resolve()
    workdir = Path(args.workdir).resolve()
    port = args.port or (8080 if _port_free(8080) else free_port())
    stack = QualityStack(
        workdir / "ui", users={DEMO_USER: "viewer"}, port=port, warehouse=workdir / "warehouse.duckdb",
        artifacts=workdir / "artifacts", pythonpath=[spec.parent], auth_manager=SIMPLE_AUTH_MANAGER,
    )  # fmt: skip
    from aq_airflow.plan import compile_spec

    dag_id = compile_spec(spec).dag_id
    dates = _dates(args.first_date, args.days)
    print(f"Airflow home {stack.home} (SQLite), warehouse {stack.warehouse}")
    stack.prepare([spec])
    strict = {"min_rows": 6000}
    runs = [(dag_id, date, strict if date == args.strict_date else None) for date in dates]
    print(f"running {dag_id} for {dates[0]} .. {dates[-1]} (dag.test in one process; dates already run are kept)")
    if args.strict_date in dates:
        print(f"{args.strict_date} runs with params {json.dumps(strict)}: its enough_rows check fails")
    stack.run_history(runs, skip_done=True, echo=lambda line: print(line, flush=True))
    stack.start()
    print(
        f"\nairflow api-server with the aq quality plugin: {stack.url}  (log: {stack.logs / 'api-server.log'})\n"
        f"log in as   user: {DEMO_USER}   password: {stack.passwords[DEMO_USER]}\n"
        f"pipeline quality page: {stack.url}/aq-quality/dags/{dag_id}\n"
        f"in Airflow's UI:       {stack.url}/dags/{dag_id}  (the Quality tab)\n"
        f"overview:              {stack.url}/aq-quality/\n"
        "Ctrl-C stops the server.",
        flush=True,
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as Ctrl-C does
    try:
        while True:
            stack.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping the api-server")
    finally:
        stack.stop()
    return 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    if sys.argv[1:2] != ["demo"]:
        sys.exit("usage: python -m tests.ui.stack demo [--spec S] [--workdir W] [--first-date D] [--days N]")
    sys.exit(demo(sys.argv[2:]))
