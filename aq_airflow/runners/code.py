"""A step's code package on the worker, for both runners: built from the step's code folder,
stored in the artifact store and pinned to the DAG run when its first task runs
(``artifacts.code_package``), and named to the step in ``AQ_CODE_URI``/``AQ_CODE_DIGEST``
(``runtime.contract``), so a pod and a local process run the same bytes.

One DAG run, one code version: a later task, or a retry, of the run reads the run's pin and uses
that package, without building one, even if the dags folder changed since; the next run builds
and pins the new code. ``code: image`` (no code folder in the plan) ships nothing.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import asdict

from aq_airflow.artifacts.root import artifacts_root
from aq_airflow.plan.model import RunPlan
from aq_airflow.runtime import contract

# what the operators say of the runtime's own exit codes (not the user code's failures)
FAILURE_REASONS = {
    contract.EXIT_CODE_PACKAGE: "its code package could not be fetched",
    contract.EXIT_MISSING_DEPENDENCY: "a Python package its code imports is missing",
}


class CodeUnavailable(Exception):
    """The step's code cannot be shipped: the folder is refused as a package, or the run's pinned
    package is gone from the store. The message says why and what to do (the operator names the
    step)."""


def code_root(dag_file: str | None) -> str | None:
    """The folder the plan's code folders are relative to: ``AQ_CODE_ROOT`` where the worker
    names one (``aq-airflow run``), else the folder of the file that built the DAG."""
    return os.environ.get(contract.CODE_ROOT) or (os.path.dirname(dag_file) if dag_file else None)


def run_folder(run: RunPlan, root: str, run_id: str) -> str:
    """The DAG run's folder in the store at ``root`` (where its pin, ``_code.json``, is kept)."""
    return posixpath.dirname(run.output.location(root, run_id).rstrip("/"))


def ship(run: RunPlan, folder_root: str | None, run_id: str) -> dict[str, str]:
    """The step's package variables for this run: the run's pinned package, or (the run's first
    task) the code folder (under ``folder_root``) built, uploaded to the step's artifact store
    and pinned. Empty for ``code: image``. Raises :class:`CodeUnavailable`."""
    if run.code_folder is None:
        return {}
    root = artifacts_root(run.artifacts)
    # pyarrow's filesystems: imported when a task runs, not when a local task process parses its DAG
    from aq_airflow.artifacts import code_package
    from aq_airflow.artifacts.code_package import PackageRefused, PinnedCode
    from aq_airflow.artifacts.provenance import git_state

    where = run_folder(run, root, run_id)
    try:
        code = code_package.read_pin(where, strict=True)  # a store's passing error is no "no pin"
    except code_package.PackageMismatch as error:
        raise CodeUnavailable(str(error)) from None
    recorded = code is not None
    if code is None:
        if folder_root is None:
            raise CodeUnavailable(f"no dags folder to find its code folder `{run.code_folder}` in")
        folder = os.path.normpath(os.path.join(folder_root, run.code_folder))
        if not os.path.isdir(folder):
            raise CodeUnavailable(f"its code folder {folder} is not on this worker: the dags folder must hold it")
        try:
            package = code_package.build(folder, run.code_max_size, exclude=_never_code(root))
        except PackageRefused as refused:
            raise CodeUnavailable(f"its code cannot be packaged: {refused}") from None
        uri = code_package.upload(package, root)
        git = git_state(folder)
        try:
            code = code_package.pin(where, PinnedCode(package.digest, uri, asdict(git) if git else None))
        except code_package.PackageMismatch as error:
            raise CodeUnavailable(str(error)) from None
    if code.uri != code_package.location(root, code.digest):  # a pin is followed into this store's `_code/` only
        raise CodeUnavailable(
            f"this run's code pin names {code.uri}, not {code_package.location(root, code.digest)} in the step's "
            "artifact store: the pin was not written for this store; start a new run"
        )
    if recorded and not _stored(code.uri):
        raise CodeUnavailable(
            f"this run's code package {code.digest} is no longer at {code.uri} (deleted from the "
            "artifact store?): start a new run, which packages the code folder again"
        )
    env = {contract.CODE_URI: code.uri, contract.CODE_DIGEST: code.digest}
    if code.git:
        env[contract.CODE_GIT] = json.dumps(code.git, sort_keys=True)
    return env


def _never_code(root: str) -> list[str]:
    """Folders that may sit in a code folder and are never code: the local artifact store, the
    worker's Airflow home (its logs, its metadata DB) and what ``AQ_CODE_EXCLUDE`` names."""
    named = [p for p in os.environ.get(contract.CODE_EXCLUDE, "").split(os.pathsep) if p]
    return [*named, *([root] if "://" not in root else []), *filter(None, [os.environ.get("AIRFLOW_HOME")])]


def _stored(uri: str) -> bool:
    import pyarrow.fs as pafs

    from aq_airflow.artifacts.store import filesystem

    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


def through_runtime(run: RunPlan) -> bool:
    """Whether the step's process is the aq runtime: a python step, or a command step whose code
    package is shipped (``--command``); a plain command step's exit codes are all its own."""
    return run.command.runs_runtime or run.code_folder is not None


def failure_reason(run: RunPlan, exit_code: int | None, last_line: str) -> str | None:
    """What a step's exit code says when the runtime, not the user's code, stopped it: only for a
    step that went through the runtime, and only when its last line (a pod's termination message)
    is the runtime's own (``contract.RUNTIME_MARKER``). A user command exiting 3 after the runtime
    exec'd it, or a python step's ``sys.exit(4)`` (the runtime reports that as exit code 1), is the
    step's own failure."""
    if exit_code not in FAILURE_REASONS or not through_runtime(run):
        return None
    return FAILURE_REASONS[exit_code] if last_line.startswith(contract.RUNTIME_MARKER) else None


def failure_message(run: RunPlan, exit_code: int | None, last_line: str) -> str | None:
    """The task's failure message for a step the runtime stopped (:func:`failure_reason`), with
    the exit code and the runtime's one-line reason; None for the user code's own failures (the
    operator's usual message)."""
    reason = failure_reason(run, exit_code, last_line)
    return f"step `{run.step}` failed: {reason} (exit code {exit_code}): {last_line}" if reason else None
