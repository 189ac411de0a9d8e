"""A real Airflow for the quality UI tests: pipelines run for several dates, then ``airflow
api-server``, set up by the product's :mod:`aq_airflow.devstack` (what ``aq-airflow demo-ui``
runs): one Airflow home (SQLite metadata DB, ``airflow db migrate``), a dags folder with the
specs and the local-run loader, a DuckDB warehouse. :meth:`QualityStack.run_history` runs the
pipelines for their dates with ``dag.test()`` (``aq_airflow.devstack.history``, one process):
the DAGs are serialized into the metadata DB, their runs and task instances recorded, the
results tables written by the real checks and metrics tasks. Then :meth:`QualityStack.start`
starts ``airflow api-server`` (the React UI, the REST API, and our plugin ``aq_quality``, found
through the installed package's ``airflow.plugins`` entry point) on a free loopback port. No
scheduler and no dag processor: nothing is left to schedule, and the DAGs are already serialized.

What is the tests': the auth manager, tests/ui/auth_manager.py's subclass of Airflow's simple
auth manager, which also denies the configured ``user:dag_id`` pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx

from aq_airflow.devstack import api
from aq_airflow.devstack.history import run_history
from aq_airflow.devstack.home import AirflowHome
from aq_airflow.devstack.processes import API_SERVER, AirflowProcesses
from aq_airflow.warehouse import DuckDB

REPO = Path(__file__).resolve().parents[2]
SPECS = Path(__file__).resolve().parent / "specs"
AUTH_MANAGER = "tests.ui.auth_manager.DagDenyingAuthManager"


class QualityStack:
    """An Airflow home with pipelines in it; ``start()`` runs the api-server, ``stop()`` ends it.

    ``users`` maps user name to simple-auth-manager role; ``denied`` lists (user, dag_id) pairs
    the auth manager refuses."""

    def __init__(self, root: Path, users: dict[str, str], denied: Iterable[tuple[str, str]] = ()):
        self.root = root.resolve()
        self.warehouse = self.root / "warehouse.duckdb"
        self.airflow = AirflowHome(
            self.root, users=users, artifacts=self.root / "artifacts", pythonpath=[REPO], auth_manager=AUTH_MANAGER,
            connections={"aq_warehouse": DuckDB.connection_json(self.warehouse)},
        )  # fmt: skip
        self.airflow.env["AIRFLOW__AQ_TEST_AUTH__DENIED"] = ",".join(f"{u}:{d}" for u, d in denied)
        self.url = self.airflow.url
        self.passwords = self.airflow.passwords
        self.processes = AirflowProcesses(self.airflow)

    def prepare(self, specs: Iterable[Path]) -> None:
        """The dags folder (the specs and the local-run loader) and a migrated metadata DB."""
        self.airflow.add_specs(specs)
        self.airflow.write_local_loader()
        self.airflow.migrate()

    def run_history(self, runs: Sequence[tuple[str, str, dict | None]]) -> list[str]:
        """Runs each (dag_id, date, conf) with dag.test() in one process; its result lines."""
        return run_history(self.airflow, runs)

    def start(self, wait: bool = True) -> None:
        """Starts ``airflow api-server``; with ``wait``, returns once it answers."""
        self.processes.start([API_SERVER])
        if wait:
            self.wait_healthy()

    def wait_healthy(self) -> None:
        self.processes.wait_healthy()

    def tails(self, lines: int = 60) -> str:
        return self.processes.tails(lines)

    def stop(self) -> None:
        self.processes.stop()

    def token(self, user: str) -> str:
        """A JWT from POST /auth/token, as an API client logs in."""
        return api.token(self.airflow, user)

    def client(self, user: str | None = None, token: str | None = None) -> httpx.Client:
        """An HTTP client of the api-server: anonymous, or with ``user``'s (or a given) token."""
        return api.client(self.airflow, user, token)
