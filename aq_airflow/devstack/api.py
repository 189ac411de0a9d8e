"""The REST API v2 of a local Airflow, used as a user would: a JWT from ``/auth/token`` for a
user of the simple auth manager, then the API as that user (trigger runs, wait for them, read
task states and logs)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aq_airflow.devstack.home import AirflowHome, DevstackError
from aq_airflow.devstack.processes import wait_for

TERMINAL = {"success", "failed"}


def token(home: AirflowHome, user: str) -> str:
    """A JWT for ``user`` from POST /auth/token, as an API client logs in."""
    import httpx

    response = httpx.post(f"{home.url}/auth/token", json={"username": user, "password": home.passwords[user]},
                          timeout=30)  # fmt: skip
    if response.status_code != 201:
        raise DevstackError(f"logging in as {user}: {response.status_code} {response.text[:500]}")
    return response.json()["access_token"]


def client(home: AirflowHome, user: str | None = None, bearer: str | None = None):
    """An ``httpx.Client`` of the API server: anonymous, or with ``user``'s (or a given) token."""
    import httpx

    if user is not None:
        bearer = token(home, user)
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.Client(base_url=home.url, headers=headers, timeout=30)


class RestApi:
    """The API as ``user``; ``explain`` (optional) adds the processes' log tails to errors."""

    def __init__(self, home: AirflowHome, user: str, explain=None):
        self.http = client(home, user)
        self.explain = explain or (lambda lines=25: "")

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, expect: int | tuple[int, ...] = 200, **kwargs) -> Any:
        response = self.http.request(method, f"/api/v2{path}", **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise DevstackError(f"{method} {path}: {response.status_code} {response.text[:2000]}")
        return response.json() if response.content else None

    def dag_ids(self, pattern: str | None = None) -> set[str]:
        params = {"limit": 100, **({"dag_id_pattern": pattern} if pattern else {})}
        return {d["dag_id"] for d in self.call("GET", "/dags", params=params)["dags"]}

    def wait_dags(self, dag_ids: Iterable[str], timeout: float = 300) -> None:
        """Until the dag processor has serialized every one of ``dag_ids``."""
        wanted = set(dag_ids)
        wait_for(f"the DAGs {sorted(wanted)}", lambda: wanted <= self.dag_ids(), timeout,
                 explain=lambda: f"import errors: {self.import_errors()}\n{self.explain()}")  # fmt: skip

    def import_errors(self) -> list[dict]:
        return self.call("GET", "/importErrors")["import_errors"]

    def unpause(self, dag_id: str) -> None:
        if self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})["is_paused"] is not False:
            raise DevstackError(f"{dag_id} stayed paused")

    def trigger(self, dag_id: str, run_id: str, logical_date: str, conf: dict | None = None) -> dict:
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}}
        return self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def run_state(self, dag_id: str, run_id: str) -> dict:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        listing = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        return {ti["task_id"]: ti for ti in listing["task_instances"]}

    def states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {task_id: ti["state"] for task_id, ti in self.task_instances(dag_id, run_id).items()}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The task's log as text (the API returns structured events)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.call("GET", path, params={"full_content": True}, headers={"Accept": "application/json"})
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
        """Task states, the logs of failed tasks, the processes' log tails: for error messages."""
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
        parts.append(self.explain(25))
        return "\n".join(parts)

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300, alive=None) -> dict:
        """Until the run is ``success`` or ``failed``; ``alive()`` is called each poll (a check
        that the processes still run)."""

        def finished():
            if alive:
                alive()
            run = self.run_state(dag_id, run_id)
            return run if run["state"] in TERMINAL else None

        return wait_for(f"run {dag_id}/{run_id} to finish", finished, timeout, every=2,
                        explain=lambda: self.explain_run(dag_id, run_id))  # fmt: skip
