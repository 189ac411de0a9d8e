"""The dags-folder loader: every ``*.aq.yaml`` under a folder becomes a DAG in the loader
file's module namespace, which is how Airflow's DagBag finds them.

Parse-time rules (Airflow kills slow files, and one bad file must not hide the others):
no network, connections, Variables or warehouse; plans cached by content hash; when the
parsing context names a dag_id (a worker running one task), only that DAG is built; a broken
spec becomes a placeholder DAG carrying its errors.

A dags folder holds several loader files (``aq-airflow init`` writes them), each building the
specs whose path hashes into its shard: Airflow parses the shards in parallel processes, each
stays far below the parse timeout however many specs the folder holds, and a new spec is
picked up by its shard at the next parse with nothing to register.
"""

from __future__ import annotations

import logging
import os
import zlib
from typing import Any

from airflow.sdk import DAG, get_parsing_context

from aq_airflow.live_dags.dag import StepBuildError, build_dag
from aq_airflow.live_dags.import_errors import report_import_error
from aq_airflow.live_dags.placeholder import placeholder_dag
from aq_airflow.pipeline_spec import Problem, SpecError, SpecFile, SpecIssue, spec_paths
from aq_airflow.pipeline_spec.errors import printable
from aq_airflow.pipeline_spec.load import file_dag_id, placeholder_dag_id
from aq_airflow.pipeline_spec.types import DAG_ID_MAX_LENGTH, is_dag_id
from aq_airflow.plan.compile import compile_text, kept_settings, profiles_near
from aq_airflow.plan.store import PlanStore

log = logging.getLogger(__name__)
DUPLICATE_MARK = "__duplicate_"
INVALID_PREFIX = "aq_invalid__"


def declared_dag_id(spec_file: SpecFile | None, relative_path: str) -> str:
    """The dag_id a spec declares (``pipeline:``) or its file name gives, without validating the
    spec (``spec_file`` is None when it cannot be read); a derived ``aq_invalid__...`` id (stable:
    from its path in the dags folder) when neither is a valid dag_id."""
    if spec_file is not None:
        return spec_file.declared_dag_id or placeholder_dag_id(relative_path)
    return file_dag_id(relative_path) if is_dag_id(file_dag_id(relative_path)) else placeholder_dag_id(relative_path)


def duplicate_dag_id(dag_id: str, relative_path: str, attempt: int = 0) -> str:
    """The id a second spec with an existing dag_id is shown under: ``<id>__duplicate_<hash>``,
    stable for its path (the hash) and valid (cut to Airflow's 250 characters); ``attempt`` > 0
    when even that id is taken."""
    digest = zlib.crc32(relative_path.replace(os.sep, "/").encode("utf-8", "surrogateescape"))
    tail = f"{DUPLICATE_MARK}{digest:08x}" + (f"_{attempt}" if attempt else "")
    return dag_id[: DAG_ID_MAX_LENGTH - len(tail)] + tail


def shard_of(relative_path: str, shards: int) -> int:
    """The shard a spec belongs to: a stable hash of its path relative to the dags folder (so it
    never moves between parses, processes or machines)."""
    return zlib.crc32(relative_path.replace(os.sep, "/").encode("utf-8", "surrogateescape")) % shards


def _plan_or_errors(spec_file: SpecFile, profiles: Any, store: PlanStore, local_run: bool, source: str):
    """(plan, []) or (None, the ``file:line:col`` errors)."""
    try:
        if isinstance(profiles, SpecError):
            raise profiles
        return compile_text(spec_file, profiles, store, local_run, source=source), []
    except SpecError as error:
        log.error("aq-airflow: invalid spec %s\n%s", spec_file.path, error)
        return None, [str(i) for i in error.issues]
    except Exception as error:  # a bug of ours must not hide the folder's other pipelines
        log.exception("aq-airflow: could not plan %s", spec_file.path)
        return None, [str(SpecIssue(spec_file.path, 1, 1, f"internal error while planning this pipeline: {error!r}"))]


def _build(plan: Any, dag_id: str, errors: list[str], path: str, source: str, spec_file: SpecFile | None,
           store: PlanStore, loader_file: str) -> DAG:  # fmt: skip
    """The DAG of a plan, or the placeholder carrying ``errors``: on the schedule the spec still
    states or its last plan had, and reported as an import error of the spec's own file."""
    if plan is not None and spec_file is not None:
        try:
            return build_dag(plan)
        except StepBuildError as error:  # an `operator:` class that does not import here
            log.error("aq-airflow: could not build %s: %s", path, error.message)
            errors = [str(spec_file.issue(Problem(error.path, error.message)))]
        except Exception as error:  # a bug of ours must not hide the folder's other pipelines
            log.exception("aq-airflow: could not build %s", path)
            errors = [str(SpecIssue(path, 1, 1, f"internal error while building this pipeline: {error!r}"))]
    try:
        kept = kept_settings(path, spec_file, store)
    except Exception:  # a bug of ours: the placeholder still shows, unscheduled
        log.exception("aq-airflow: could not read what %s schedules", path)
        kept = None
    report_import_error(loader_file, path, errors, dag_id)
    return placeholder_dag(dag_id, errors, source, spec_file.text if spec_file else "", kept)


def _wanted_here(wanted: str, dag_id: str, spec_file: SpecFile | None) -> bool:
    """Whether a spec may build the DAG the parsing context names. Cheap and never wrong the
    other way: a spec is skipped only when neither its declared id nor its text can be that
    DAG's; placeholders under derived ids (duplicates, invalid names) build the whole shard."""
    if dag_id == wanted or DUPLICATE_MARK in wanted or wanted.startswith(INVALID_PREFIX):
        return True
    return spec_file is not None and wanted in spec_file.text


def load_dags(
    namespace: dict,
    folder: str | None = None,
    cache_folder: str | None = None,
    local_run: bool = False,
    shard: tuple[int, int] | None = None,
) -> list[DAG]:
    """Build the DAGs of every spec under ``folder`` (default: the calling file's folder) into
    ``namespace`` (the loader file's ``globals()``). Plans are cached on disk in
    ``cache_folder`` (default: ``$AQ_AIRFLOW_CACHE`` or ``$AIRFLOW_HOME/aq-airflow-cache``).
    ``shard=(index, count)`` builds only the specs of that shard (see :func:`shard_of`).
    ``local_run`` runs every spec on this machine (``aq-airflow run``): local profile, local
    artifacts, no retries.

    Every spec path gives exactly one DAG, whatever is wrong with it: an unreadable or
    non-UTF-8 file, an invalid spec or file name becomes a placeholder (tag ``aq:invalid``). Two
    specs of one dag_id cannot both be DAGs: the first (in path order) keeps the id, the next
    becomes a placeholder ``<id>__duplicate_<hash>`` whose error names both files. Only the specs
    of this shard are seen (reading every file in every shard would cost each shard the whole
    folder), so a duplicate in another shard is found by ``aq-airflow validate DAGS_FOLDER``."""
    folder = folder or os.path.dirname(os.path.abspath(namespace["__file__"]))
    store = PlanStore(cache_folder)
    wanted = get_parsing_context().dag_id
    try:
        profiles: Any = profiles_near(folder)
    except SpecError as error:
        profiles = error
    built: list[DAG] = []
    seen: dict[str, str] = {}
    for path in spec_paths(folder):
        # spec_paths joins onto `folder`, so slicing is the relative path (relpath costs ~5 µs a
        # spec, and every shard looks at every spec)
        relative = path[len(folder) :].lstrip(os.sep)
        if shard and shard_of(relative, shard[1]) != shard[0]:
            continue
        try:
            spec_file: SpecFile | None = SpecFile.read(path)
        except SpecError as error:  # unreadable, a folder, not UTF-8, too large
            log.error("aq-airflow: unreadable spec %s\n%s", path, error)
            spec_file, plan, errors = None, None, [str(i) for i in error.issues]
        dag_id = declared_dag_id(spec_file, relative)
        if wanted and not _wanted_here(wanted, dag_id, spec_file):
            continue
        if spec_file is not None:
            plan, errors = _plan_or_errors(spec_file, profiles, store, local_run, relative)
        dag_id = plan.dag_id if plan is not None else dag_id
        if dag_id in seen:
            first, attempt = seen[dag_id], 0
            while (shown := duplicate_dag_id(dag_id, relative, attempt)) in seen:
                attempt += 1  # a spec that declares this very id: never two DAGs of one id
            message = (
                f"dag_id `{dag_id}` is already the dag_id of {first}, so this spec is shown as `{shown}`: "
                "give one of them another `pipeline:` (or file name)"
            )
            log.error("aq-airflow: %s declares dag_id %s, already used by %s", path, dag_id, first)
            issue = spec_file.dag_id_issue(message) if spec_file else SpecIssue(path, 1, 1, message)
            errors = [str(issue), *errors]
            plan, dag_id = None, shown
        dag = _build(plan, dag_id, errors, path, printable(relative), spec_file, store, namespace.get("__file__", ""))
        seen[dag.dag_id] = path
        namespace[f"aq_dag__{dag.dag_id}"] = dag
        built.append(dag)
    return built
