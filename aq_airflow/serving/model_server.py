"""A real model server on loopback: MLServer, in a venv of its own.

MLServer 1.7.1 cannot share the Airflow venv (it needs FastAPI below 0.116, Airflow 3.1 at least
0.116): :func:`server_python` creates a venv from ``model-server.lock`` (every package pinned
with its hashes, installed in hash-checking mode)
(shipped in the wheel beside this module: MLServer 1.7.1 and its sklearn, xgboost, lightgbm and
mlflow runtimes, onnxruntime, and the Airflow venv's scikit-learn, so a step's pickle loads) the
first time it is needed, at a cache folder named by the lock's hash (``$AQ_MODEL_SERVER_VENV``
overrides it). A file lock keeps concurrent tasks and test workers from building it twice; the
folder is complete once its ``.installed`` stamp exists. Built on first use, it comes from the
network (the package index): production workers should have it built ahead (``make
model-server``, or a layer of their image); ``aq-airflow doctor`` says whether it is there.

:class:`ModelServer` serves version folders (``serving.layout``) from a temporary model repository
of one folder per endpoint, linking to its version's files, on free ports, and stops its process
group on exit. A server that exits or is not ready in time raises :class:`ModelServerError` with
the tail of its log.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aq_airflow.serving.oip import OipError, wait_ready

#: the model server venv's pinned requirements (``make lock`` compiles it from model-server.in)
LOCK = Path(__file__).with_name("model-server.lock")
#: a venv folder to use instead of the cache's: a venv with MLServer there is used as it is; a
#: folder that does not exist (or is empty) gets one created as in the cache; any other folder is
#: refused, never built over or removed
VENV_VARIABLE = "AQ_MODEL_SERVER_VENV"
#: the file whose presence says a venv folder is complete
STAMP = ".installed"
#: seconds each step of building the venv (create it, install the lock) may take
BUILD_TIMEOUT = 1200.0
#: seconds a server gets to load its models and answer ready
READY_TIMEOUT = 180.0
LOG_TAIL = 3000


class ModelServerError(Exception):
    """The model server could not be installed or started: the reason, with its output's tail."""


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]


def venv_folder() -> Path:
    """Where the model server venv is: ``$AQ_MODEL_SERVER_VENV``, else this user's cache folder
    named by the lock's hash (a new lock, a new venv; an old one stays until removed)."""
    override = os.environ.get(VENV_VARIABLE)
    if override:
        return Path(override).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "aq-airflow" / f"model-server-{lock_digest()}"


def made_here(venv: Path) -> Path:
    """The file beside ``venv`` that says this module created the folder (written before the venv
    is made): only such a folder, or the cache's, is ever removed to build it again."""
    return venv.with_name(f".{venv.name}.aq-airflow")


def is_built(venv: Path) -> bool:
    """Whether ``venv`` is a model server venv ready to use: one we built (its stamp), or the
    user's at ``$AQ_MODEL_SERVER_VENV`` with ``mlserver`` in it."""
    return (venv / STAMP).exists() or bool(os.environ.get(VENV_VARIABLE) and (venv / "bin" / "mlserver").exists())


def server_python() -> str:
    """The model server venv's python, the venv created first when it is not complete. A venv of
    the user's at ``$AQ_MODEL_SERVER_VENV`` (one with ``mlserver`` and no stamp of ours) is used as
    it is; a folder of the user's without ``mlserver`` is refused: never built over or removed."""
    venv = venv_folder()
    python = venv / "bin" / "python"
    if is_built(venv):
        return str(python)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait for it
        if not (venv / STAMP).exists():
            _build(venv)
    return str(python)


def _build(venv: Path) -> None:
    """A fresh venv at ``venv`` with the lock's packages: uv when there is one (seconds from its
    cache), else venv and pip. A folder there that is not ours (:func:`made_here`) is refused."""
    marker = made_here(venv)
    ours = not os.environ.get(VENV_VARIABLE) or marker.exists()
    if venv.exists() and not ours:
        if any(venv.iterdir()):
            raise ModelServerError(
                f"${VENV_VARIABLE}={venv} is a folder without mlserver: install the model server's packages into "
                f"it (`uv pip install --python {venv}/bin/python -r {LOCK}`), or unset {VENV_VARIABLE} to use a "
                "venv aq-airflow builds in its cache"
            )
        venv.rmdir()  # empty: the venv is made in its place
    marker.write_text("the model server venv beside this file was created by aq-airflow\n")
    shutil.rmtree(venv, ignore_errors=True)  # ours: a build cut short
    # minutes of silence otherwise (a task's log, `aq-airflow serve`): say what is happening, once
    print(f"building the model server's venv at {venv} (once per lock: MLServer and its runtimes, about 1.5 GB "
          "from the package index; `make model-server` builds it ahead) ...", file=sys.stderr, flush=True)  # fmt: skip
    uv = shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable))
    python = str(venv / "bin" / "python")
    if uv:
        steps = [
            [uv, "venv", "-q", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "-q", "--require-hashes", "--python", python, "-r", str(LOCK)],
        ]
    else:
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--require-hashes", "-r", str(LOCK)],
        ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT)
            failed = f"exited {done.returncode}" if done.returncode != 0 else ""
            output = (done.stdout + done.stderr)[-LOG_TAIL:]
        except subprocess.TimeoutExpired as timeout:
            failed = f"did not finish in {BUILD_TIMEOUT:.0f} s"
            output = ((timeout.stdout or b"") + (timeout.stderr or b"")).decode(errors="replace")[-LOG_TAIL:]
        if failed:
            shutil.rmtree(venv, ignore_errors=True)
            raise ModelServerError(
                f"could not create the model server venv at {venv} ({' '.join(step[:3])} {failed}):"
                f"\n{output}\nCheck the network access to the package index, or build it ahead (`make model-server`, "
                f"or an image layer), or point {VENV_VARIABLE} at a venv with the packages of {LOCK} installed"
            )
    (venv / STAMP).write_text(lock_digest() + "\n")


def _link_version(version: Path, folder: Path) -> None:
    """``folder`` in the model repository serving the version folder ``version``: links to its
    files (a custom runtime's module among them, which MLServer imports from the folder of
    ``model-settings.json``), and its ``model-settings.json`` with the model's ``uri`` made the
    version's own absolute path (MLflow refuses a model reached through a link)."""
    settings_file = version / "model-settings.json"
    try:
        settings = json.loads(settings_file.read_text())
    except (OSError, ValueError) as error:
        raise ModelServerError(f"{version} is not a model version folder ({settings_file}: {error})") from None
    folder.mkdir()
    for item in version.iterdir():
        if item.name != settings_file.name:
            (folder / item.name).symlink_to(item)
    parameters = settings.setdefault("parameters", {})
    parameters["uri"] = str((version / parameters.get("uri", ".")).resolve())
    (folder / settings_file.name).write_text(json.dumps(settings))


def server_environment() -> dict[str, str]:
    """This process's environment for the model server venv's python, without what would put
    another environment's packages before its own (``PYTHONPATH``: a task's, the Airflow venv's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "PYTHONNOUSERSITE": "1"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class ModelServer:
    """MLServer serving ``models`` (endpoint -> a local version folder), as a context manager:
    ``url`` answers once ``__enter__`` returns, every model loaded and ready."""

    def __init__(
        self, models: dict[str, str], *, host: str = "127.0.0.1", port: int | None = None,
        timeout: float = READY_TIMEOUT,
    ) -> None:  # fmt: skip
        if not models:
            raise ValueError("a model server needs at least one model")
        self.models = {endpoint: str(Path(folder).absolute()) for endpoint, folder in models.items()}
        self.host = host
        self.port = port
        self.timeout = timeout
        self.url = ""
        self.process: subprocess.Popen | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ModelServer:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self) -> None:
        python = server_python()
        repository = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="aq-model-server-")))
        for endpoint, folder in self.models.items():
            _link_version(Path(folder).resolve(), repository / endpoint)
        port = self.port or free_port(self.host)
        settings = {
            "host": self.host,
            "http_port": port,
            "grpc_port": free_port(self.host),
            "metrics_port": free_port(self.host),
            "metrics_endpoint": None,  # no metrics server: one port fewer to find free
            "parallel_workers": 0,  # models load in the server's process: one process to stop
            "debug": False,
            "model_repository_root": str(repository),
            "load_models_at_startup": True,
        }
        (repository / "settings.json").write_text(json.dumps(settings))
        self.log_path = repository / "server.log"
        log = self._stack.enter_context(open(self.log_path, "wb"))
        mlserver = str(Path(python).with_name("mlserver"))
        self.process = subprocess.Popen(
            [mlserver, "start", str(repository)], cwd=repository, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, env=server_environment(),
        )  # fmt: skip
        url = f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '::', '') else self.host}:{port}"  # noqa: S104
        deadline = time.monotonic() + self.timeout
        for endpoint in self.models:
            try:
                wait_ready(url, endpoint, max(deadline - time.monotonic(), 0.1), alive=self.alive)
            except OipError as error:
                raise ModelServerError(
                    f"the model server did not serve `{endpoint}`: {error}\n{self.log_tail()}"
                ) from None
        self.url = url

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (AttributeError, OSError):
            return "(no server log)"
        return f"the server's log ends:\n{text[-LOG_TAIL:]}"

    def wait(self) -> int:
        """Until the server exits (``aq-airflow serve`` in the foreground): its exit code."""
        assert self.process is not None
        return self.process.wait()

    def stop(self) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL after 10 s) and remove its folder."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._stack.close()
