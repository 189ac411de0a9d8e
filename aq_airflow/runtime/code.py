"""The step's code package where the step runs: fetched, checked and extracted
(``artifacts.code_package.fetch``), put first on the import path, its imports checked against
this Python before any of the user's code runs; and a ``command`` step started in a fresh working
copy of it.

The task that starts a step names the package in ``AQ_CODE_URI`` and ``AQ_CODE_DIGEST``
(``runners.code``); without them (``code: image``) the step runs the code its image (or, on the
local runner, the worker's Python) already has, and nothing here does anything. The failures
here are not the user code's: each has its own exit code (``runtime.contract``) and one line
saying what is wrong, which the runtime also writes to the container's termination-message file
where Kubernetes gives it one, so the pod's status carries it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile

from aq_airflow.runtime import contract
from aq_airflow.runtime.imports import MissingModule, missing_modules

TERMINATION_LOG = "/dev/termination-log"  # Kubernetes' default terminationMessagePath


class CodeProblem(Exception):
    """The step cannot run its code, for a reason that is not the code's: ``exit_code`` says which."""

    exit_code = contract.EXIT_STEP_FAILED


class PackageUnavailable(CodeProblem):
    """The package cannot be fetched, or is not the bytes its digest names."""

    exit_code = contract.EXIT_CODE_PACKAGE


class MissingDependency(CodeProblem):
    """The step's code imports a module this Python (the image's) does not have."""

    exit_code = contract.EXIT_MISSING_DEPENDENCY


def package_folder(env: dict[str, str]) -> str | None:
    """The extracted folder of the step's package (fetched once per digest into ``AQ_CODE_CACHE``,
    default ``artifacts.code_package.default_cache()``), or None when no package is shipped."""
    digest, uri = env.get(contract.CODE_DIGEST), env.get(contract.CODE_URI)
    if not digest:
        return None
    step = env.get(contract.STEP, "?")
    if not uri:
        raise PackageUnavailable(f"step `{step}`: {contract.CODE_DIGEST} is set without {contract.CODE_URI}")
    from aq_airflow.artifacts import code_package  # pyarrow's filesystems: only when a package is shipped

    try:
        return code_package.fetch(uri, digest, env.get(contract.CODE_CACHE) or None)
    except Exception as error:  # any failure to fetch is this one failure, in one line
        why = " ".join(str(error).split()) or type(error).__name__
        raise PackageUnavailable(f"step `{step}`: cannot fetch its code package {digest} from {uri}: {why}") from None


def use_package(env: dict[str, str]) -> str | None:
    """:func:`package_folder`, put first on ``sys.path`` (the package's modules win over any
    other copy on the path, the image's included)."""
    folder = package_folder(env)
    if folder and (not sys.path or sys.path[0] != folder):
        sys.path.insert(0, folder)
    return folder


def package_zip(folder: str) -> str:
    """The extracted package ``folder`` as a zip beside it (``<digest>.zip``, made once per digest
    and machine, written to a temporary name and renamed into place), for an engine whose Python
    workers are other processes, on other machines, that import the step's code from it (Spark's
    ``addPyFile``). Its path is the same for every step of the digest: Spark refuses a second file
    of the same name from another path. (The package's files are dated 1970, for reproducible
    bytes; zip's dates start in 1980, so they are stored as 1980.)"""
    path = f"{folder}.zip"
    if os.path.isfile(path) and not os.path.islink(path):
        return path
    handle, staging = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(folder))
    try:
        with (
            os.fdopen(handle, "wb") as raw,
            zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, strict_timestamps=False) as archive,
        ):
            for root, folders, files in os.walk(folder):
                folders.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    archive.write(full, os.path.relpath(full, folder))
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise
    return path


def check_imports(folder: str, module: str, env: dict[str, str]) -> None:
    """Raise :class:`MissingDependency` naming each module ``module`` (transitively, within the
    package) imports that this Python cannot find, the image (``AQ_IMAGE``) or the worker's
    interpreter, and the file and line importing it."""
    missing = missing_modules(folder, module)
    if missing:
        raise missing_dependency(missing, env)


def missing_dependency(missing: list[MissingModule], env: dict[str, str]) -> MissingDependency:
    """The one message of a module the step's Python lacks: which Python (the image, or the
    worker's interpreter), which module, the file and line importing it, and the fix."""
    image = env.get(contract.IMAGE)
    python = f"image {image}" if image else f"this worker's Python ({sys.executable})"
    first, *more = missing
    message = f"{python} has no Python package `{first.name}` (imported by {first.path} line {first.line})"
    if more:
        others = ", ".join(f"`{m.name}` ({m.path} line {m.line})" for m in more)
        message += f"; nor {others}"
    fix = "add it to the image" if image else "install it into the worker's environment"
    return MissingDependency(f"{message}: {fix}, or stop importing it")


def report(problem: CodeProblem) -> int:
    """Print ``problem`` as the step's last line (and into the termination-message file where
    the container has one); the runtime's exit code for it."""
    line = f"{contract.RUNTIME_MARKER}{problem}"
    print(line, file=sys.stderr, flush=True)
    if os.path.isfile(TERMINATION_LOG) and os.access(TERMINATION_LOG, os.W_OK):
        try:
            with open(TERMINATION_LOG, "w", encoding="utf-8") as handle:
                handle.write(line[:4096])  # Kubernetes keeps at most 4 KiB of it
        except OSError:
            pass
    return problem.exit_code


# what the runtime passes on to the command it runs (a pod's SIGTERM reaches PID 1, this, alone)
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def working_copy(folder: str, step: str) -> str:
    """A fresh copy of the extracted package, the command's own: what it writes where it runs
    (dbt's ``target/`` and ``logs/``) never changes the shared cache, which every later step of
    the digest on this machine extracts from, nor another step running at the same time."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in step)[:60]
    copy = os.path.join(tempfile.mkdtemp(prefix=f"aq-{safe}-"), "code")
    shutil.copytree(folder, copy, symlinks=True)
    return copy


def run_command(argv: list[str]) -> int:
    """``python -m aq_airflow.runtime --command -- argv...``: fetch the package, then run ``argv``
    in a fresh working copy of it (:func:`working_copy`), which is also first on ``PYTHONPATH`` (a
    ``python -m pkg`` finds the package's modules), and remove the copy when it exits. ``argv`` is
    a child process, not exec'd, so the copy can be removed: the runtime forwards the signals it
    gets to it and exits with its exit code (or its signal). ``python`` is the Python running this.
    (If the runtime itself is killed with SIGKILL, the copy is left to the temporary folder's
    cleaning.) Without a package, ``argv`` is exec'd where the step started."""
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(f"usage: python -m aq_airflow.runtime {contract.COMMAND_FLAG} -- command [args...]", file=sys.stderr)
        return contract.EXIT_USAGE
    env = dict(os.environ)
    step = env.get(contract.STEP, "?")
    try:
        folder = package_folder(env)
        copy = working_copy(folder, step) if folder else None
    except CodeProblem as problem:
        return report(problem)
    except OSError as error:
        return report(PackageUnavailable(f"step `{step}`: cannot copy its code package to a working folder: {error}"))
    if argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    if copy is None:
        try:
            os.execvpe(argv[0], argv, env)  # noqa: S606  the step's own command, as the spec gives it
        except OSError as error:
            print(f"{contract.RUNTIME_MARKER}step `{step}`: cannot start {argv[0]}: {error}", file=sys.stderr)
            return 127
    env["PYTHONPATH"] = os.pathsep.join(p for p in (copy, env.get("PYTHONPATH")) if p)
    try:
        return _run_child(argv, env, copy, step)
    finally:
        shutil.rmtree(os.path.dirname(copy), ignore_errors=True)


def _run_child(argv: list[str], env: dict[str, str], cwd: str, step: str) -> int:
    """``argv`` as a child in ``cwd``, the signals this process gets forwarded to it; its exit
    code, or (killed by a signal) this process killed by the same signal once the copy is gone."""
    try:
        child = subprocess.Popen(argv, env=env, cwd=cwd)
    except OSError as error:
        print(f"{contract.RUNTIME_MARKER}step `{step}`: cannot start {argv[0]}: {error}", file=sys.stderr)
        return 127
    for number in FORWARDED:
        signal.signal(number, lambda received, _frame: child.send_signal(received))
    returncode = child.wait()
    if returncode >= 0:
        return returncode
    shutil.rmtree(os.path.dirname(cwd), ignore_errors=True)
    signal.signal(-returncode, signal.SIG_DFL)
    os.kill(os.getpid(), -returncode)
    return 128 - returncode  # a signal that does not end this process: the shell's convention
