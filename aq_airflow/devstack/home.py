"""An Airflow home for a local Airflow: its settings (environment variables, no airflow.cfg to
keep in step), the dags folder, the metadata database, the simple auth manager's users.

Everything a process of this Airflow needs is in :attr:`AirflowHome.env`: the caller's own
``AIRFLOW*``, ``AQ_*`` and ``PYTHON*`` variables are left out, so another Airflow's settings on
this machine never leak in. The keys (Fernet, JWT, API secret) and passwords are made once and
kept in the root folder: a home built again over the same root (``demo-ui`` run twice) keeps
its metadata DB readable and its logins.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from aq_airflow.devstack.loader_file import write_local_loader
from aq_airflow.devstack.ports import LOOPBACK, free_port

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
EXECUTORS = ("LocalExecutor", "CeleryExecutor")
_INHERITED = ("AIRFLOW", "AQ_", "PYTHON", "VIRTUAL_ENV")  # this Airflow's settings are all ours


class DevstackError(RuntimeError):
    """A local Airflow could not be set up, started or used; the message says which command or
    process and ends with the tail of its log."""


def core_settings(home: Path, dags: Path, database: str | None = None) -> dict[str, str]:
    """The settings every local Airflow has: its home, dags folder, no example DAGs, and its
    metadata DB (a SQLAlchemy URL; None: SQLite in the home)."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database or f"sqlite:///{home / 'airflow.db'}",
    }


def connection_variable(conn_id: str) -> str:
    """The environment variable Airflow reads connection ``conn_id`` from."""
    return "AIRFLOW_CONN_" + conn_id.upper().replace("-", "_").replace(".", "_")


def _kept_json(path: Path, make) -> dict:
    """The JSON object in ``path``, made by ``make(known)`` and written back (keys and passwords
    outlive one run)."""
    known = json.loads(path.read_text()) if path.exists() else {}
    value = make(known)
    if value != known:
        path.write_text(json.dumps(value))
        path.chmod(0o600)
    return value


def _checkout_of_this_package() -> list[Path]:
    """The folder ``aq_airflow`` was imported from, when that is a source checkout (not
    site-packages, which the interpreter finds by itself)."""
    root = Path(__file__).resolve().parents[2]
    return [] if root.name in ("site-packages", "dist-packages") else [root]


def _new_keys() -> dict[str, str]:
    """The Fernet key (connections in the metadata DB), the JWT secret and the API's secret key."""
    return {
        "fernet": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "jwt": secrets.token_urlsafe(64),
        "api": secrets.token_urlsafe(32),
    }


class AirflowHome:
    """One Airflow home under ``root``: ``airflow-home/`` (config, metadata DB on SQLite, logs),
    ``dags/``, ``process-logs/``.

    ``executor``: ``LocalExecutor`` or ``CeleryExecutor`` (then ``broker``, a Redis URL, and
    ``queue``). ``database``: a SQLAlchemy URL (PostgreSQL) or None for SQLite. ``users`` maps a
    user name to a simple-auth-manager role (``viewer``, ``user``, ``op``, ``admin``).
    ``connections`` maps a connection id to its URI or JSON. ``pythonpath``: folders the
    processes import from (the specs' step code). ``bin_dir``: the venv's ``bin`` whose
    ``airflow`` runs (default: this Python's)."""

    def __init__(
        self,
        root: Path,
        *,
        executor: str = "LocalExecutor",
        database: str | None = None,
        users: Mapping[str, str] | None = None,
        port: int | None = None,
        connections: Mapping[str, str] | None = None,
        artifacts: Path | str | None = None,
        pythonpath: Sequence[Path | str] = (),
        bin_dir: Path | None = None,
        auth_manager: str = SIMPLE_AUTH_MANAGER,
        broker: str | None = None,
        queue: str | None = None,
        logging_level: str = "WARNING",
    ):
        if executor not in EXECUTORS:
            raise DevstackError(f"executor {executor!r}: use one of {', '.join(EXECUTORS)}")
        if executor == "CeleryExecutor" and not broker:
            raise DevstackError("the CeleryExecutor needs a broker (a redis:// URL)")
        self.root = Path(root).resolve()
        self.home = self.root / "airflow-home"
        self.dags = self.root / "dags"
        self.logs = self.root / "process-logs"
        for folder in (self.home, self.dags, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.bin = bin_dir or Path(sys.executable).parent
        self.executor = executor
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.users = dict(users or {})
        self.passwords_file = self.root / "passwords.json"
        self.passwords = _kept_json(
            self.passwords_file, lambda known: {u: known.get(u) or secrets.token_urlsafe(12) for u in self.users}
        )
        keys = _kept_json(self.root / "secrets.json", lambda known: known or _new_keys())
        self.settings: dict[str, str] = {
            **core_settings(self.home, self.dags, database),
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet"],
            "AIRFLOW__CORE__AUTH_MANAGER": auth_manager,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in self.users.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt"],
            "AIRFLOW__API__SECRET_KEY": keys["api"],
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            # loopback ports of our own (the defaults may be taken by another Airflow here)
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": logging_level,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AQ_AIRFLOW_CACHE": str(self.home / "aq-airflow-cache"),
        }
        if artifacts is not None:
            self.settings["AQ_ARTIFACTS"] = str(artifacts)
        for conn_id, value in (connections or {}).items():
            self.settings[connection_variable(conn_id)] = value
        if executor == "CeleryExecutor":
            self.settings.update(
                AIRFLOW__CELERY__BROKER_URL=broker,
                AIRFLOW__CELERY__WORKER_CONCURRENCY="4",
                **({"AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue} if queue else {}),
            )
            if database:  # task results beside the metadata (Celery's own SQLAlchemy URL form)
                plain = database.replace("+psycopg2", "", 1)
                self.settings["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + plain
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED)}
        self.env.update(self.settings, PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")
        if bin_dir is None:  # this interpreter: its processes import the aq_airflow this one did (a checkout too)
            pythonpath = [*pythonpath, *_checkout_of_this_package()]
        if pythonpath:
            self.env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)

    def add_connection(self, conn_id: str, value: str) -> None:
        """Airflow connection ``conn_id`` (a URI or JSON) for every process started from now."""
        self.settings[connection_variable(conn_id)] = value
        self.env[connection_variable(conn_id)] = value

    # -- the dags folder --

    def add_specs(self, paths: Iterable[Path]) -> None:
        """Copies spec files (and ``aq-profiles.yaml`` beside one), or whole folders (step code,
        specs in subfolders), into the dags folder."""
        for path in map(Path, paths):
            if path.is_dir():
                shutil.copytree(path, self.dags / path.name, ignore=shutil.ignore_patterns("__pycache__"),
                                dirs_exist_ok=True)  # fmt: skip
                continue
            shutil.copy(path, self.dags / path.name)
            profiles = path.parent / "aq-profiles.yaml"
            if profiles.exists() and path.name.endswith(".aq.yaml"):
                shutil.copy(profiles, self.dags / profiles.name)

    def write_local_loader(self) -> Path:
        """The loader that runs every step as a local process (``aq-airflow run``'s)."""
        return write_local_loader(self.dags)

    # -- commands --

    def command(self, *args: str) -> list[str]:
        """``args`` with its program from the venv's ``bin`` when it is there."""
        program = self.bin / args[0]
        return [str(program), *args[1:]] if program.exists() else list(args)

    def run(self, *args: str, timeout: float = 600, check: bool = True, log: str | None = None):
        """A command of the venv in this Airflow's environment (``subprocess.CompletedProcess``);
        its output also appended to ``process-logs/<log>``."""
        try:
            result = subprocess.run(self.command(*args), env=self.env, cwd=self.root, capture_output=True, text=True,
                                    timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise DevstackError(f"`{' '.join(args)}` did not finish in {timeout:.0f}s") from None
        if log:
            with open(self.logs / log, "a") as out:
                out.write(f"$ {' '.join(args)}\n{result.stdout}{result.stderr}\n")
        if check and result.returncode != 0:
            raise DevstackError(f"`{' '.join(args)}` exited with {result.returncode}:\n{result.stderr[-4000:]}")
        return result

    def migrate(self) -> None:
        """``airflow db migrate``: creates or upgrades the metadata DB."""
        self.run("airflow", "db", "migrate", log="db-migrate.log")
