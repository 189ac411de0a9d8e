"""A ray step's engine: Ray connected in the step's process before its function runs.

On Kubernetes the step's process is a KubeRay RayJob's entrypoint on the head, where KubeRay sets
``RAY_ADDRESS``: the engine connects (the RayJob owns the cluster) with the step's ``runtime_env``
and its code package, which Ray ships to the workers on the other pods (:func:`with_code`).
Anywhere else (the local runner, a laptop) it starts a Ray of its own in the step's process,
sized to the machine (``runtime.machine``), and stops it when the step ends.
The function's inputs and output are a python step's (:class:`~aq_airflow.runtime.engines.Engine`'s
defaults): it gets DataFrames and values, calls Ray as it likes, and returns what a python step
returns.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

from aq_airflow.artifacts.store import Location
from aq_airflow.runtime import code, contract, engines, machine, ray_reaper
from aq_airflow.runtime.engines import Engine
from aq_airflow.runtime.failures import StepFailed

ADDRESS = "RAY_ADDRESS"  # set by KubeRay on a RayJob's entrypoint (and by `ray job submit`)
# Ray's token authentication: its mode, the token, a file holding it
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # a terminal's colour codes (Ray colours a task's name)


def _temp_root() -> str | None:
    """Where the step's Ray folder goes: where Ray's own would (``RAY_TMPDIR``, else ``/tmp``).
    Not ``$TMPDIR``: Ray puts Unix sockets in the folder, whose paths may not exceed 107 bytes,
    and a macOS ``$TMPDIR`` alone takes 50."""
    shared = "/tmp"  # noqa: S108 - mkdtemp makes a folder of its own there, readable by this user only
    return os.environ.get("RAY_TMPDIR") or (shared if os.path.isdir(shared) else None)


class RayEngine(Engine):
    """Ray for the step's function: the RayJob's cluster, else a private local one."""

    name = "ray"

    def __init__(self) -> None:
        self._temp_dir: str | None = None  # set only while a Ray this engine started runs
        self._reaper: _Reaper | None = None
        self._connected = False  # to a cluster's Ray (RAY_ADDRESS)
        self._sigterm: Any = None  # the process's SIGTERM handler before Ray's start replaced it

    def prepare(self) -> None:
        """Every line a task prints reaches the task log as printed: Ray's driver by default folds a
        line that another worker printed in the last 5 s, numbers aside, into one
        ``[repeated Nx across cluster]`` (``RAY_DEDUP_LOGS``, read as Ray is imported), so
        ``trial 3: auc 0.81`` from a second worker would never show. A worker's own setting wins."""
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")

    def start(self, env: dict[str, str]) -> None:
        import ray

        step = env.get(contract.STEP, "?")
        if ray.is_initialized():  # started as the step's modules were imported
            raise StepFailed(
                f"step `{step}`: its code started Ray itself as it was imported (`ray.init()` at a module's top "
                "level): remove the call; the runtime starts a local Ray (or connects to the RayJob's) before the "
                "function runs"
            )
        runtime_env = engines.engine_conf(env)
        # ray.init sets a SIGTERM handler of its own (on the main thread only): put back at stop
        self._sigterm = signal.getsignal(signal.SIGTERM) if _on_main_thread() else None
        address = env.get(ADDRESS)
        if address:  # a RayJob's entrypoint: the cluster is KubeRay's
            cluster_env = with_code(runtime_env, code.package_folder(env))  # the package: fetched already
            try:
                with _job_runtime_env_overridden():
                    ray.init(address=address, runtime_env=cluster_env or None, log_to_driver=True)
            except Exception as error:
                self._restore_sigterm()
                raise StepFailed(
                    f"step `{step}`: cannot connect to the Ray cluster at {ADDRESS}={address}: "
                    f"{type(error).__name__}: {error}"
                ) from None
            self._connected = True
            return
        # Ray's own folder (sessions, logs, sockets, the address a later `ray.init()` would find) is
        # this step's: two steps running at once on one worker never find or share each other's Ray
        self._temp_dir = tempfile.mkdtemp(prefix="aq-ray-", dir=_temp_root())
        # A local Ray checks a token on every connection to its processes, by default one per user
        # written to ~/.ray on first use (a race between two first steps, a home that may be
        # read-only): unless the worker's environment says otherwise, this Ray gets a fresh token
        # of its own, in the environment its processes inherit (Ray turns its token mode on when
        # it finds the token, and notes that it did: not on every step, for this Ray of its own)
        if not any(name in os.environ for name in AUTH_VARIABLES):
            os.environ[AUTH_VARIABLES[1]] = secrets.token_hex(32)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a step does not report to Ray's servers
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # the tasks' lines in a log file, not a terminal
        try:
            self._reaper = _start_reaper(self._temp_dir)
            settings = {
                "address": "local",  # never a cluster found on the machine (`ray start`'s, RAY_ADDRESS aside)
                "num_cpus": machine.usable_cpus(),
                "include_dashboard": False,
                "log_to_driver": True,  # the tasks' prints in the step's output: the task log
                "runtime_env": runtime_env or None,
                "job_config": _job_config(env),
                "_temp_dir": self._temp_dir,
            }
            with _no_token_note():
                try:
                    ray.init(**settings)
                except Exception as error:
                    # Ray gives its raylet a fixed 30 s to register (not configurable); on a worker
                    # busy with other steps that can pass: once more before the step fails
                    if "timed out during startup" not in str(error):
                        raise
                    ray.shutdown()
                    ray.init(**settings)
            # Killed (SIGTERM), the step says so and goes, and its reaper stops the Ray; with no
            # reaper (the process's group is not its own), the handler the process had before
            if self._reaper is not None and self._sigterm is not None:
                signal.signal(signal.SIGTERM, _terminated)
            else:
                self._restore_sigterm()
        except Exception as error:
            self.stop()
            raise StepFailed(f"step `{step}`: the local Ray did not start: {type(error).__name__}: {error}") from None
        except BaseException:
            self.stop()
            raise

    def write_output(self, location: Location, attempt: str, value: Any, step: str) -> dict:
        """As a python step's, but a Ray handle (an ObjectRef, an actor, a Dataset), also inside a
        list or a dict, is refused: pickled, it names objects in this Ray's object store, which is
        gone when the step ends, and the next step would unpickle nothing it can read."""
        handle = ray_handle(value)
        if handle is not None:
            raise TypeError(
                f"its function returned {handle}, a handle to data in Ray's object store, which ends with the "
                "step: return the data itself (`ray.get(ref)`; a Dataset's `.to_pandas()` or "
                "`pyarrow.concat_tables(ray.get(dataset.to_arrow_refs()))`)"
            )
        return super().write_output(location, attempt, value, step)

    def failure(self, error: BaseException) -> str:
        """The function's exception without Ray's own frames (``ray.get`` and its wrappers in the
        step's process; the failed task's traceback, which Ray carries in the message, keeps the
        user's frames) and without the colour codes Ray puts around a task's name for a terminal
        (a task log shows them as ``\\x1b[36m``)."""
        import ray

        folder = os.path.dirname(ray.__file__) + os.sep
        shaped = traceback.TracebackException.from_exception(error)
        for part in _chain(shaped):
            part.stack = traceback.StackSummary.from_list([f for f in part.stack if not f.filename.startswith(folder)])
        return _COLOUR.sub("", "".join(shaped.format()))

    def stop(self) -> None:
        self._restore_sigterm()
        if not self._connected and self._temp_dir is None:
            return
        import ray

        if self._connected:  # the RayJob's cluster goes on (KubeRay stops it): this process only leaves
            self._connected = False
            ray.shutdown()
            return
        try:
            _await_task_output(self._temp_dir)
            ray.shutdown()
        finally:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
            if self._reaper is not None:
                self._reaper.stand_down()
                self._reaper = None

    def _restore_sigterm(self) -> None:
        if self._sigterm is not None and _on_main_thread():
            signal.signal(signal.SIGTERM, self._sigterm)


def _chain(shaped: traceback.TracebackException) -> list[traceback.TracebackException]:
    """An exception's formatted parts: it and the exceptions it was raised from or while handling."""
    parts, seen = [], set()
    while shaped is not None and id(shaped) not in seen:
        seen.add(id(shaped))
        parts.append(shaped)
        shaped = shaped.__cause__ or (None if shaped.__suppress_context__ else shaped.__context__)
    return parts


# Ray's note, on every start of a Ray that finds a token with no RAY_AUTH_MODE, that it turned
# token authentication on (`ray._private.authentication.authentication_token_setup`)
TOKEN_NOTE = ("ray._private.authentication.authentication_token_setup", "Token authentication is enabled")


@contextlib.contextmanager
def _no_token_note():
    """Ray's token note dropped while the step's own Ray starts (never when connecting to a cluster,
    whose authentication is the cluster's)."""
    logger = logging.getLogger(TOKEN_NOTE[0])

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TOKEN_NOTE[1])

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _on_main_thread() -> bool:
    """Whether this is the main thread, the only one that may set a signal handler."""
    return threading.current_thread() is threading.main_thread()


def with_code(runtime_env: dict[str, Any], folder: str | None) -> dict[str, Any]:
    """The step's ``runtime_env`` with its code package (the extracted ``folder``) for a cluster's
    workers: the processes on the other pods have the image's Python, not this process's import
    path, and a task or Tune trainable defined in the package is pickled by module name. Ray
    uploads the folder to the cluster as the job's ``working_dir`` (on every task's import path);
    where the step's ``runtime_env`` has a working directory of its own, as ``py_modules`` (the
    package's top-level modules and packages) instead."""
    if not folder:
        return dict(runtime_env)
    if "working_dir" not in runtime_env:
        return {**runtime_env, "working_dir": folder}
    entries = sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if not name.startswith(".") and (name.endswith(".py") or os.path.isdir(os.path.join(folder, name)))
    )
    return {**runtime_env, "py_modules": [*runtime_env.get("py_modules", []), *entries]}


@contextlib.contextmanager
def _job_runtime_env_overridden():
    """A submitted job's process (KubeRay's RayJob: ``ray job submit``) has the job's runtime env
    from its submitter, and ``ray.init`` refuses one of the driver's that names any of its fields
    again, unless ``RAY_OVERRIDE_JOB_RUNTIME_ENV`` says the driver's wins: it does here, the driver's
    being the step's (the job's own) with the code package added."""
    name = "RAY_OVERRIDE_JOB_RUNTIME_ENV"
    before = os.environ.get(name)
    os.environ[name] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def ray_handle(value: Any, depth: int = 0) -> str | None:
    """What Ray handle ``value`` is or holds (in lists, tuples, sets and dicts, a few levels
    deep), named for the message (``a ray.ObjectRef``, ``a list holding a ray.ObjectRef``), or None."""
    import ray
    from ray.actor import ActorHandle

    handles = (ray.ObjectRef, ray.ObjectRefGenerator, ActorHandle)
    dataset = _dataset_type()
    if isinstance(value, handles) or (dataset is not None and isinstance(value, dataset)):
        return f"a {type(value).__module__.split('.')[0]}.{type(value).__qualname__}"
    if depth >= 3:
        return None
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        return None
    for item in items[:10_000]:
        inner = ray_handle(item, depth + 1)
        if inner is not None:
            return f"a {type(value).__name__} holding {inner}"
    return None


def _dataset_type():
    """Ray Data's Dataset class when Ray Data is imported (a step that never used it returns none)."""
    module = sys.modules.get("ray.data")
    return getattr(module, "Dataset", None) if module is not None else None


def _job_config(env: dict[str, str]):
    """The step's code package on the import path of Ray's task workers, as it is on the step's
    own (``runtime.code``): Ray gives its workers the driver's script folder and working
    directory, not its ``sys.path``, and a task defined in the package is imported by module.
    (A local Ray's workers are on this machine: its folder is theirs, with no upload.)"""
    from ray.job_config import JobConfig

    folder = code.package_folder(env)  # already fetched and extracted as the function was imported
    return JobConfig(code_search_path=[folder]) if folder else None


def _await_task_output(folder: str, quiet: float = 0.5, longest: float = 10.0) -> None:
    """Until the tasks' output files (where Ray's workers write what they print) have not grown
    for ``quiet`` seconds: Ray's log monitor reads them every 0.1 s and sends the lines on to this
    process, which prints them to the step's log; disconnected sooner, the last lines (a
    traceback, a task's final prints) never reach the log."""
    logs = os.path.join(folder, "session_latest", "logs")  # Ray's documented layout

    def sizes() -> dict[str, int]:
        found = {}
        for path in glob.glob(os.path.join(logs, "worker*.out")) + glob.glob(os.path.join(logs, "worker*.err")):
            try:
                found[path] = os.path.getsize(path)
            except OSError:  # gone meanwhile
                pass
        return found

    began = last_change = time.monotonic()
    seen = sizes()
    while time.monotonic() - last_change < quiet and time.monotonic() - began < longest:
        time.sleep(0.1)
        now = sizes()
        if now != seen:
            seen, last_change = now, time.monotonic()


def _terminated(signum: int, frame: Any) -> None:
    """The task was killed or timed out (the local runner signals the step's process group).
    Ray's own handler raises SystemExit in the user's code, which would read as the function
    calling sys.exit; instead: say so, and go (the reaper then stops what is left of the Ray)."""
    print(
        f"{contract.RUNTIME_MARKER}stopped by signal {signal.Signals(signum).name} (the task was killed or "
        f"timed out); the step's local Ray stops with it",
        file=sys.stderr,
        flush=True,
    )
    os._exit(128 + signum)


class _Reaper:
    """The :mod:`~aq_airflow.runtime.ray_reaper` watching this process: told to stand down when
    the step stops its Ray itself."""

    def __init__(self, process: subprocess.Popen, pipe: int) -> None:
        self.process, self.pipe = process, pipe

    def stand_down(self) -> None:
        os.write(self.pipe, ray_reaper.STAND_DOWN)
        os.close(self.pipe)
        self.process.wait()


def _start_reaper(folder: str) -> _Reaper | None:
    """A reaper watching this process, when its process group is its own alone: a session of its
    own, as the local runner starts every step (``runners.local``: a new session) and a
    container starts its first process. Ray's processes are then in that group, and the reaper
    may kill the group. None anywhere else: a step started from a terminal or a script shares
    its group with its parent's job, which the reaper must not kill, and which a Ctrl-C must
    still reach (the process's group is never changed here)."""
    if os.getsid(0) != os.getpid():
        return None
    read, write = os.pipe()  # neither end inherited by Ray's processes (Python's pipes are close-on-exec)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", ray_reaper.__name__, str(os.getpgrp()), folder],
            stdin=read,
            start_new_session=True,
        )
    finally:
        os.close(read)
    return _Reaper(process, write)
