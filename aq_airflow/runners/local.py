"""The local runner: a step's command as a process on the Airflow worker, with the same
environment a pod would get (artifact locations become local paths)."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
from collections import deque

from aq_airflow.plan.model import ArtifactRef, RunPlan
from aq_airflow.runtime import contract

log = logging.getLogger(__name__)

# Linux starts no process with an environment string ("NAME=value") longer than this (its
# MAX_ARG_STRLEN, 32 pages): exec fails with E2BIG, "Argument list too long".
MAX_ENV_STRING = 128 * 1024
_SHRINK = {
    contract.ARGS: "make its `args:` smaller (a param templated into them counts: keep large data in a file or "
    "table and pass its path or name)",
    contract.ITEM: "make its items smaller (pass a path or a key as the item, and read the data in the step)",
}


def oversized_variable(env: dict[str, str]) -> str | None:
    """Why a process with ``env`` would not start (the first variable over :data:`MAX_ENV_STRING`,
    its size and what to shrink), or None."""
    for name, value in env.items():
        size = len(name.encode()) + 1 + len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_ENV_STRING:
            shrink = _SHRINK.get(name, "make the value smaller")
            return (
                f"its environment variable {name} is {size:,} bytes, and Linux starts no process with one over "
                f"{MAX_ENV_STRING:,} (Argument list too long): {shrink}"
            )
    return None


def artifacts_root(artifacts: str | None) -> str:
    """The artifact store root: the spec's URI, else ``$AQ_ARTIFACTS``, else a folder in
    ``$AIRFLOW_HOME``; a local path is made absolute (steps run in their own working folder)."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    root = artifacts or os.environ.get(contract.ARTIFACTS) or os.path.join(home, "aq-artifacts")
    return root if "://" in root else os.path.abspath(root)


def artifact_uri(artifacts: str | None, ref: ArtifactRef, run_id: str) -> str:
    """An output's location for one run: the store root (see :func:`artifacts_root`) plus its path."""
    return ref.location(artifacts_root(artifacts), run_id)


def command(run: RunPlan) -> list[str]:
    """The step's argv as a pod would run it: the aq runtime calling its function, or the user's
    command (Airflow renders templates in it before :func:`executable`)."""
    if run.command.runs_runtime:
        return contract.runtime_command("python") + contract.runtime_arguments(run.command.function)
    return list(run.command.argv)


def executable(argv: list[str]) -> list[str]:
    """The argv to start here: a pod's ``python`` is this worker's interpreter."""
    return [sys.executable, *argv[1:]] if argv and argv[0] == "python" else list(argv)


class ProcessFailed(Exception):
    """The step's process failed. The message is one line (its output is already in the task
    log, line by line); ``tail`` keeps the last lines for callers that show no log."""

    def __init__(self, returncode: int, tail: list[str]):
        self.returncode = returncode
        self.tail = tail
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        last = next((line.strip() for line in reversed(tail) if line.strip()), "")
        super().__init__(f"the step's process {how}" + (f": {last}" if last else ""))


class StartRefused(Exception):
    """The operating system refused to start the step's process (its message says why and what
    to do)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.tail: list[str] = []  # the process never ran: no output


# Linux: one environment string (NAME=value) may be at most 32 pages (MAX_ARG_STRLEN)
MAX_VARIABLE_BYTES = 128 * 1024


def environment_too_large(env: dict[str, str]) -> str:
    """Why ``execve`` said ``Argument list too long``: the largest variables, and which value of
    the spec or the run each one carries."""
    sizes = sorted(((len(k) + len(v.encode()) + 2, k) for k, v in env.items()), reverse=True)[:3]
    largest = ", ".join(f"{name} ({size / 1024:.1f} KiB)" for size, name in sizes)
    hint = ""
    if any(name == contract.CONTEXT for _, name in sizes):
        hint = (
            f"; {contract.CONTEXT} holds the run's params: pass large data as a step's output (`inputs:`), "
            f"not as a param"
        )
    return (
        f"the operating system refused to start the step's process: its environment is too large "
        f"([Errno 7] Argument list too long; Linux takes at most {MAX_VARIABLE_BYTES // 1024} KiB per variable): "
        f"the largest variables are {largest}{hint}"
    )


class LocalProcess:
    """Runs a command, streaming its output to the task log line by line."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: str | None = None):
        self.command = command
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    def run(self, tail_lines: int = 40) -> list[str]:
        tail: deque[str] = deque(maxlen=tail_lines)
        try:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        except OSError as error:
            if error.errno != errno.E2BIG:
                raise
            raise StartRefused(environment_too_large(self.env)) from None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            log.info("%s", line)
        returncode = self.process.wait()
        if returncode != 0:
            raise ProcessFailed(returncode, list(tail))
        return list(tail)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
