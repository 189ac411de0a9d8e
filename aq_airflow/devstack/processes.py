"""The processes of a local Airflow: each in its own process group (so stopping it stops the
workers and task processes it started) with its own log file; health from the API server's
``/api/v2/monitor/health``; stopped in an order that lets each finish its work cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aq_airflow.devstack.home import AirflowHome, DevstackError
from aq_airflow.devstack.ports import LOOPBACK

API_SERVER, SCHEDULER, DAG_PROCESSOR, TRIGGERER, CELERY_WORKER = (
    "api-server", "scheduler", "dag-processor", "triggerer", "celery-worker",
)  # fmt: skip
# a deployment: everything; the quality pages over runs already recorded: the api-server alone
ALL = (API_SERVER, SCHEDULER, DAG_PROCESSOR, TRIGGERER)
# the scheduler first (it owns the LocalExecutor's workers), the API server last
_STOP_ORDER = {SCHEDULER: 0, CELERY_WORKER: 1, TRIGGERER: 2, DAG_PROCESSOR: 3, API_SERVER: 4}
# what /api/v2/monitor/health reports for each process
_HEALTH_PART = {SCHEDULER: "scheduler", DAG_PROCESSOR: "dag_processor", TRIGGERER: "triggerer"}


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])


def _transient() -> tuple[type[BaseException], ...]:
    """What a probe may raise while a server is still starting."""
    try:
        import httpx
    except ImportError:
        return (OSError,)
    return (OSError, httpx.HTTPError)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0, explain=None) -> Any:
    """Calls ``probe`` until it returns something truthy; raises :class:`DevstackError` with
    ``explain()`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    transient = _transient()
    while time.monotonic() < deadline:
        try:
            last = probe()
        except transient as error:
            last = error
        else:
            if last:
                return last
        time.sleep(every)
    detail = explain() if explain else ""
    raise DevstackError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{detail}")


class Process:
    """One long-running command in a process group of its own, its output in ``log``."""

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
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        # children that outlived their parent (a killed worker's task processes) share the group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        self.handle.close()


class AirflowProcesses:
    """The running processes of one :class:`AirflowHome`; ``stop()`` ends them all (idempotent)."""

    def __init__(self, home: AirflowHome):
        self.home = home
        self.processes: list[Process] = []

    def spawn(self, name: str, *args: str) -> Process:
        process = Process(name, self.home.command(*args), self.home.env, self.home.root,
                          self.home.logs / f"{name}.log")  # fmt: skip
        self.processes.append(process)
        return process

    def start(self, components: Iterable[str] = ALL) -> None:
        """Starts the named processes (:data:`ALL` by default; :data:`CELERY_WORKER` too under the
        CeleryExecutor) without waiting for them: :meth:`wait_healthy` does."""
        components = list(components)
        if self.home.executor == "CeleryExecutor" and SCHEDULER in components and CELERY_WORKER not in components:
            components.append(CELERY_WORKER)
        commands = {
            API_SERVER: ("airflow", "api-server", "--host", LOOPBACK, "--port", str(self.home.port)),
            SCHEDULER: ("airflow", "scheduler"),
            DAG_PROCESSOR: ("airflow", "dag-processor"),
            TRIGGERER: ("airflow", "triggerer"),
            CELERY_WORKER: ("airflow", "celery", "worker", "--concurrency", "4"),
        }
        for name in components:
            self.spawn(name, *commands[name])

    def names(self) -> list[str]:
        return [p.name for p in self.processes]

    def health(self) -> dict:
        import httpx

        response = httpx.get(f"{self.home.url}/api/v2/monitor/health", timeout=5)
        return response.json() if response.status_code == 200 else {}

    def wait_healthy(self, timeout: float = 180) -> None:
        """Until the API server answers, then until each started scheduler, dag processor,
        triggerer reports healthy and a Celery worker says it is ready."""
        names = self.names()
        if API_SERVER in names:
            wait_for("the API server", lambda: self.check_alive() or self.health(), timeout, explain=self.tails)
        if CELERY_WORKER in names:
            wait_for("the Celery worker", lambda: "ready" in tail(self.home.logs / "celery-worker.log", 200),
                     timeout, explain=self.tails)  # fmt: skip
        parts = [_HEALTH_PART[n] for n in names if n in _HEALTH_PART]
        if parts and API_SERVER in names:

            def components_healthy() -> bool:
                self.check_alive()
                health = self.health()
                return all(health.get(p, {}).get("status") == "healthy" for p in ("metadatabase", *parts))

            wait_for(f"a healthy {', '.join(parts)}", components_healthy, timeout,
                     explain=lambda: f"{self.health()}\n{self.tails()}")  # fmt: skip

    def check_alive(self) -> None:
        """Raises :class:`DevstackError` (with the logs' tails) if a started process has exited."""
        dead = [p for p in self.processes if p.popen.poll() is not None]
        if dead:
            names = ", ".join(f"{p.name} (exit {p.popen.returncode})" for p in dead)
            raise DevstackError(f"Airflow process(es) exited: {names}\n{self.tails()}")

    def tails(self, lines: int = 40) -> str:
        parts = []
        for process in self.processes:
            state = "running" if process.popen.poll() is None else f"exited {process.popen.returncode}"
            parts.append(f"----- {process.name} (pid {process.pid}, {state}): {process.log} -----")
            parts.append(tail(process.log, lines))
        return "\n".join(parts)

    def stop(self) -> None:
        for process in sorted(self.processes, key=lambda p: _STOP_ORDER.get(p.name, 9)):
            process.stop()
        self.processes.clear()
