"""``aq-airflow doctor DAGS_FOLDER``: a preflight for what parse time never touches.

Parsing a spec does no I/O (docs/architecture.md), so a connection that does not exist or does
not answer, or an artifact root workers cannot write, shows only when a task runs. ``doctor``
checks them before that, from the machine it runs on:

- every Airflow connection the folder's valid specs name (the warehouse of their sql steps,
  checks, metrics, publish and `when:` results; the cluster profile's ``kubernetes_conn_id`` of
  their pod steps) is looked up as ``airflow connections get`` looks it up (the configured
  secrets backend, ``AIRFLOW_CONN_*`` variables, the metadata database) and asked something
  trivial: ``SELECT 1`` through the warehouse adapter, the API server's ``/version``;
- each spec's artifact root (its ``artifacts:``, else ``$AQ_ARTIFACTS``, else
  ``$AIRFLOW_HOME/aq-artifacts``): a local folder must be writable, an object store must answer
  a list call;
- where a spec's `serve:` needs the model server venv on this machine (the local serve task's
  smoke test, an mlflow layout), whether it is built (else the first serve task builds it from
  the package index);
- specs that do not validate are listed (``aq-airflow validate`` says more).

Run it where the workers run, with their environment: what it checks is what they would see.
Secrets are never printed (passwords and secret extras are masked in every line, drivers' error
messages included). Exit codes: 0 all good; 1 something missing, unreachable or invalid; 2 the
arguments name no dags folder with specs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

OK, MISSING, UNREACHABLE, UNUSABLE, INVALID = "ok", "MISSING", "UNREACHABLE", "UNUSABLE", "INVALID"
DEFAULT_TIMEOUT = 10.0
_ORDER = ("warehouse", "kubernetes", "artifacts", "model-server")  # the order findings are printed in
T = TypeVar("T")


@dataclass
class _Named:
    """A connection id (or artifact root) and the places in the specs that name it."""

    kind: str  # "warehouse", "kubernetes", "artifacts" or "model-server"
    name: str
    places: list[str] = field(default_factory=list)
    defaulted: bool = False  # an artifact root some spec gets by default (it names none)


class _NoAnswer(Exception):
    pass


def _within(seconds: float, call: Callable[[], T]) -> T:
    """``call()`` on a daemon thread, waited for at most ``seconds``: a host that drops packets
    costs the preflight the timeout, never the driver's own minutes (the thread is left behind
    and dies with the process)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller
            outcome["error"] = error

    thread = threading.Thread(target=target, name="aq-doctor-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise _NoAnswer(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _key_place(spec_file: Any, key: str) -> tuple[str, str] | None:
    """``file:line:col`` of a top-level key of the spec and its value, None when the spec leaves
    it out."""
    from yaml import MappingNode, ScalarNode

    from aq_airflow.pipeline_spec.yamlpos import compose

    tree = compose(spec_file.text)
    for key_node, value in tree.value if isinstance(tree, MappingNode) else ():
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            mark = key_node.start_mark
            return f"{spec_file.path}:{mark.line + 1}:{mark.column + 1}", str(value.value)
    return None


def _connections(plan: Any) -> dict[str, str]:
    """The connection ids a plan's tasks open at run time -> "warehouse" or "kubernetes"."""
    from aq_airflow.plan.model import PublishPlan, QualityPlan, RunPlan, WhenPlan

    found: dict[str, str] = {}
    for task in plan.tasks:
        body = task.body
        if isinstance(body, RunPlan) and body.warehouse:
            found[body.warehouse] = "warehouse"
        if isinstance(body, RunPlan) and body.pod is not None:
            found[body.pod.kubernetes_conn_id] = "kubernetes"
        if isinstance(body, QualityPlan | PublishPlan) or (isinstance(body, WhenPlan) and body.reads_results):
            found[body.warehouse] = "warehouse"
    return found


def _collect(compiled: list[Any]) -> tuple[list[Any], dict[tuple[str, str], _Named]]:
    """The issues of the specs that do not validate, and every connection and artifact root the
    others name, with where."""
    from aq_airflow.artifacts.root import artifacts_root
    from aq_airflow.serving.model_server import venv_folder

    issues: list[Any] = []
    named: dict[tuple[str, str], _Named] = {}
    for spec in compiled:
        if spec.issues or spec.plan is None:
            issues += spec.issues
            continue
        for conn_id, kind in sorted(_connections(spec.plan).items()):
            key = "warehouse" if kind == "warehouse" else "cluster"
            found = _key_place(spec.spec_file, key)
            where = f"{found[0]} ({key}: {found[1]})" if found else f"{spec.path} (the default {key})"
            named.setdefault((kind, conn_id), _Named(kind, conn_id)).places.append(where)
        root = artifacts_root(spec.plan.artifacts)
        item = named.setdefault(("artifacts", root), _Named("artifacts", root))
        found = _key_place(spec.spec_file, "artifacts")
        item.places.append(found[0] if found else spec.path)
        item.defaulted |= spec.plan.artifacts is None
        if any(_needs_model_server(task.body) for task in spec.plan.tasks):
            venv = str(venv_folder())
            named.setdefault(("model-server", venv), _Named("model-server", venv)).places.append(str(spec.path))
    return issues, named


def _needs_model_server(body: Any) -> bool:
    """A serve task that runs the model server venv on the worker: the local smoke test, or
    MLflow writing an mlflow layout."""
    from aq_airflow.plan.model import ModelFormat, Runner, ServePlan

    return isinstance(body, ServePlan) and (body.runner == Runner.LOCAL or body.format == ModelFormat.MLFLOW)


def _check_model_server(venv: str) -> tuple[str, str]:
    from aq_airflow.serving.model_server import is_built

    if is_built(Path(venv)):
        return OK, "the model server venv is built"
    return MISSING, (
        "the model server venv is not built: the first serve task would build it from the package index (minutes); "
        "build it ahead with `make model-server` (or in the workers' image)"
    )


def _lookup(conn_id: str) -> Any:
    """The connection as tasks look it up (``BaseHook.get_connection``), None when no secrets
    backend has it; its secrets masked in everything printed from now on.

    Outside a task Airflow's lookup leaves out the metadata database unless the process says it
    is a server, as ``airflow connections get`` does (``_AIRFLOW_PROCESS_CONTEXT``); the
    providers' hooks (Kubernetes) then look up the same way."""
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from aq_airflow.cli.connection import also_mask
    from aq_airflow.warehouse.secrets import connection_secrets

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    for secret in connection_secrets(conn):
        also_mask(secret)
    return conn


def _probe_warehouse(conn: Any, timeout: float) -> tuple[str, str]:
    """Open a read session through the warehouse adapter and run ``SELECT 1``."""
    from aq_airflow.warehouse import Warehouse
    from aq_airflow.warehouse.secrets import error_line

    try:
        with warnings.catch_warnings():  # a metadata-DB connection's get_hook warns of Airflow's own internals
            warnings.simplefilter("ignore", FutureWarning)
            warehouse = Warehouse.from_connection(conn)
    except Exception as error:  # an unknown type (its provider not installed), extras the hook refuses
        return UNUSABLE, f"Airflow makes no hook of it: {error_line(error)}"
    if conn.conn_type == "duckdb":
        database = warehouse.hook.get_database()
        if database == ":memory:":
            return UNUSABLE, (
                "names no DuckDB file, so every task would get its own empty in-memory database: put the file's "
                "path in the connection's host (duckdb://%2Fpath%2Fto%2Fwarehouse.duckdb, or JSON "
                '{"conn_type": "duckdb", "host": "/path/to/warehouse.duckdb"}), not in its schema'
            )
        if not database.startswith("md:") and not os.path.exists(database):
            folder = os.path.dirname(os.path.abspath(database)) or "."
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                return UNREACHABLE, f"the DuckDB file {database} does not exist and its folder is not writable"
            return OK, f"duckdb: the file {database} does not exist yet (the first task creates it)"

    def select_one() -> None:
        with warehouse.reading(wait=timeout) as session:
            session.fetch("SELECT 1")

    _within(timeout, select_one)
    return OK, f"{conn.conn_type}: SELECT 1 answered"


def _probe_kubernetes(conn_id: str, timeout: float) -> tuple[str, str]:
    """Ask the API server for its version through the provider's hook."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client import VersionApi

    def version() -> str:
        info = VersionApi(KubernetesHook(conn_id=conn_id).api_client).get_code(_request_timeout=timeout)
        return info.git_version

    return OK, f"kubernetes: API server {_within(timeout, version)} answered"


def _check_connection(named: _Named, timeout: float) -> tuple[str, str]:
    from aq_airflow.warehouse.secrets import error_line

    try:
        conn = _lookup(named.name)
    except Exception as error:  # a variable that is no URI or JSON, a secrets backend refusing
        return UNUSABLE, f"Airflow cannot read it: {error_line(error)}"
    variable = f"AIRFLOW_CONN_{named.name.upper()}"
    if conn is None and os.environ.get(variable):  # Airflow skips a variable it cannot read
        return UNUSABLE, f"{variable} is set, but is no connection URI or JSON: {_unreadable(os.environ[variable])}"
    default_k8s = named.kind == "kubernetes" and named.name == "kubernetes_default"
    if conn is None and not default_k8s:
        return MISSING, (
            f"Airflow has no connection `{named.name}` (looked up as `airflow connections get` does: the secrets "
            f"backend, AIRFLOW_CONN_{named.name.upper()}, the metadata database)"
        )
    # the provider's own fallback for its default id, when it is not defined
    fallback = " (not defined, so the provider uses the in-cluster config or ~/.kube/config)" if conn is None else ""
    try:
        if named.kind == "kubernetes":
            state, detail = _probe_kubernetes(named.name, timeout)
            return state, detail + fallback
        return _probe_warehouse(conn, timeout)
    except Exception as error:
        kind = getattr(conn, "conn_type", None) or named.kind
        return UNREACHABLE, f"{kind}: {error_line(error)}{fallback}"


def _unreadable(value: str) -> str:
    """Why Airflow cannot read an ``AIRFLOW_CONN_*`` value (its secrets masked)."""
    from airflow.sdk import Connection

    from aq_airflow.warehouse.secrets import error_line, secrets_of

    try:
        if value.strip().startswith("{"):
            Connection.from_json(value, conn_id="unread")
        else:
            Connection.from_uri(value, conn_id="unread")
    except Exception as error:
        return error_line(error, secrets_of(value))
    return "Airflow's lookup skipped it"


def _check_artifacts(root: str, timeout: float) -> tuple[str, str]:
    """A local root: writable (or creatable); an object store: answers a list call."""
    from aq_airflow.warehouse.secrets import error_line

    if "://" not in root:
        if os.path.isdir(root):
            try:
                with tempfile.NamedTemporaryFile(dir=root, prefix=".aq-doctor-"):
                    pass
            except OSError as error:
                return UNREACHABLE, f"local folder, not writable here: {error_line(error)}"
            return OK, "local folder, writable"
        parent = os.path.dirname(root)
        while parent and not os.path.isdir(parent) and parent != os.path.dirname(parent):
            parent = os.path.dirname(parent)
        if os.access(parent, os.W_OK | os.X_OK):
            return OK, f"local folder, does not exist yet (the first step creates it under {parent})"
        return UNREACHABLE, f"local folder, does not exist and {parent} is not writable here"
    import pyarrow.fs as pafs

    from aq_airflow.artifacts.store import filesystem

    def list_root() -> bool:
        """Whether the bucket (container) is there, having listed the root in it."""
        fs, path = filesystem(root)
        if fs.get_file_info(path.split("/")[0]).type == pafs.FileType.NotFound:
            return False
        fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return True

    try:
        found = _within(timeout, list_root)
    except Exception as error:
        return UNREACHABLE, f"object store: {error_line(error)}"
    if not found:
        return UNREACHABLE, "object store: its bucket does not exist, or these credentials cannot see it"
    return OK, "object store, listed"


def _root_source() -> str:
    from aq_airflow.runtime import contract

    if os.environ.get(contract.ARTIFACTS):
        return f"${contract.ARTIFACTS}"
    return "the default, $AIRFLOW_HOME/aq-artifacts"


def _line(state: str, subject: str, detail: str, verb: str, places: list[str]) -> str:
    """One finding: state, what, why; then (at most three of) the places that name it."""
    shown = ", ".join(places[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
    return f"{state:11} {subject}: {detail}; {verb} {shown}"


def diagnose(dags_folder: str, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Check a dags folder's specs, connections and artifact roots; print one line each."""
    from aq_airflow.cli.connection import masked_output
    from aq_airflow.cli.specs import check  # the specs as validate and the loader see them

    if not os.path.isdir(dags_folder):
        print(f"{dags_folder}: not a folder (give the dags folder, e.g. $AIRFLOW_HOME/dags)", file=sys.stderr)
        return 2
    compiled = check([dags_folder])
    if not compiled:
        print(f"no *.aq.yaml files found in {dags_folder}", file=sys.stderr)
        return 2
    if "airflow" not in sys.modules:  # Airflow's and the hooks' INFO lines are no findings
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    issues, named = _collect(compiled)
    counts = dict.fromkeys((OK, MISSING, UNREACHABLE, UNUSABLE), 0)
    with masked_output():
        out = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):  # whatever else prints (Airflow's logs) goes to stderr
            for issue in issues:
                print(f"{INVALID:11} {issue} (run `aq-airflow validate {dags_folder}`)", file=out)
            for (kind, name), item in sorted(named.items(), key=lambda k: (_ORDER.index(k[0][0]), k[0][1])):
                if kind == "model-server":
                    state, detail = _check_model_server(name)
                    print(_line(state, f"model-server {name}", detail, "needed by", item.places), file=out)
                elif kind == "artifacts":
                    state, detail = _check_artifacts(name, timeout)
                    subject = f"artifacts {name}" + (f" ({_root_source()})" if item.defaulted else "")
                    print(_line(state, subject, detail, "used by", item.places), file=out)
                else:
                    state, detail = _check_connection(item, timeout)
                    print(_line(state, f"{kind} {name}", detail, "named by", item.places), file=out)
                counts[state] += 1
    bad_specs = len({issue.file for issue in issues})
    print(
        f"{len(compiled)} spec(s), {bad_specs} invalid; {counts[OK]} ok, {counts[MISSING]} missing, "
        f"{counts[UNREACHABLE] + counts[UNUSABLE]} unreachable or unusable",
        file=sys.stderr,
    )
    return 1 if issues or counts[OK] < len(named) else 0
