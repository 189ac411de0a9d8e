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

from aq_airflow.plan.model import RunPlan
from aq_airflow.runtime import contract

log = logging.getLogger(__name__)

_SHRINK = {
    contract.ARGS: "make its `args:` smaller (a param templated into them counts: keep large data in a file or "
    "table and pass its path or name)",
    contract.ITEM: "make its items smaller (pass a path or a key as the item, and read the data in the step)",
}


def oversized_variable(env: dict[str, str]) -> str | None:
    """Why a process with ``env`` would not start (the first variable over :data:`contract.MAX_ENV_STRING`,
    its size and what to shrink), or None."""
    for name, value in env.items():
        size = contract.env_string_bytes(name, value)
        if size > contract.MAX_ENV_STRING:
            shrink = _SHRINK.get(name, "make the value smaller")
            return (
                f"its environment variable {name} is {size:,} bytes, and Linux starts no process with one over "
                f"{contract.MAX_ENV_STRING:,} (Argument list too long): {shrink}"
            )
    return None


def command(run: RunPlan) -> list[str]:
    """The step's argv as a pod would run it: the aq runtime calling its function, or the user's
    command (through the runtime, which fetches the code package first, when one is shipped;
    Airflow renders templates in it before :func:`executable`)."""
    if run.command.script is not None:
        return contract.runtime_command("python") + contract.script_arguments(
            run.command.script, list(run.command.argv)
        )
    if run.command.runs_runtime:
        return contract.runtime_command("python") + contract.runtime_arguments(run.command.function)
    if run.code_folder is not None:
        return contract.runtime_command("python") + contract.command_arguments(list(run.command.argv))
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
        self.last_line = next((line.strip() for line in reversed(tail) if line.strip()), "")
        super().__init__(f"the step's process {how}" + (f": {self.last_line}" if self.last_line else ""))


class StartRefused(Exception):
    """The operating system refused to start the step's process (its message says why and what
    to do)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.tail: list[str] = []  # the process never ran: no output


def _arg_max() -> int | None:
    """ARG_MAX: what a command line and its environment may take together (None: unknown)."""
    try:
        value = os.sysconf("SC_ARG_MAX")
    except (AttributeError, ValueError, OSError):
        return None
    return value if value > 0 else None


def environment_too_large(env: dict[str, str], argv: list[str] = ()) -> str:
    """Why ``execve`` said ``Argument list too long`` (E2BIG), which has two causes: one variable
    over :data:`contract.MAX_ENV_STRING`, or the arguments and environment together over ARG_MAX. Says
    which, with the largest variables and which value of the spec or the run each carries."""
    sizes = sorted(((contract.env_string_bytes(k, v), k) for k, v in env.items()), reverse=True)
    largest = ", ".join(f"{name} ({size / 1024:.1f} KiB)" for size, name in sizes[:3])
    total = sum(size for size, _ in sizes) + sum(len(a.encode("utf-8", "surrogatepass")) + 1 for a in argv)
    limit = _arg_max()
    if sizes and sizes[0][0] > contract.MAX_ENV_STRING:
        why = f"{sizes[0][1]} is over the {contract.MAX_ENV_STRING // 1024} KiB Linux takes in one variable"
    else:
        of = f" of the {limit / 2**20:.1f} MiB" if limit else ""
        why = (
            f"its variables and arguments together take {total / 2**20:.1f} MiB{of} Linux takes for both "
            "(ARG_MAX, a quarter of the stack limit, `ulimit -s`)"
        )
    hint = ""
    if any(name == contract.CONTEXT for _, name in sizes[:3]):
        hint = (
            f"; {contract.CONTEXT} holds the run's params: pass large data as a step's output (`inputs:`), "
            f"not as a param"
        )
    return (
        f"the operating system refused to start the step's process: its environment is too large "
        f"([Errno 7] Argument list too long: {why}): the largest variables are {largest}{hint}"
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
                # a session (and process group) of its own: kill() signals the step and whatever it
                # started, and a ray step's runtime knows its group is its own to clean up
                start_new_session=True,
            )
        except OSError as error:
            if error.errno != errno.E2BIG:
                raise
            raise StartRefused(environment_too_large(self.env, self.command)) from None
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
