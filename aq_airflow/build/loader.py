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
import re
import zlib
from typing import Any

from airflow.sdk import DAG, get_parsing_context

from aq_airflow.build.dag import build_dag
from aq_airflow.build.placeholder import placeholder_dag, safe_dag_id
from aq_airflow.plan.compile import compile_text, profiles_near
from aq_airflow.plan.store import PlanStore
from aq_airflow.spec import SpecError, SpecFile, spec_paths

log = logging.getLogger(__name__)
_PIPELINE_KEY = re.compile(r"^pipeline:[ \t]*['\"]?([A-Za-z0-9_.-]+)['\"]?[ \t]*(#.*)?$", re.M)


def declared_dag_id(spec_file: SpecFile) -> str:
    """The dag_id a spec declares (``pipeline:``) or its file name gives, without validating it."""
    match = _PIPELINE_KEY.search(spec_file.text)
    return match.group(1) if match else spec_file.default_dag_id


def shard_of(relative_path: str, shards: int) -> int:
    """The shard a spec belongs to: a stable hash of its path relative to the dags folder (so it
    never moves between parses, processes or machines)."""
    return zlib.crc32(relative_path.replace(os.sep, "/").encode()) % shards


def _build_one(spec_file: SpecFile, source: str, profiles: Any, store: PlanStore, local_run: bool) -> DAG:
    """``source`` is the spec's path in the dags folder."""
    try:
        if isinstance(profiles, SpecError):
            raise profiles
        return build_dag(compile_text(spec_file, profiles, store, local_run, source=source))
    except SpecError as error:
        log.error("aq-airflow: invalid spec %s\n%s", spec_file.path, error)
        return placeholder_dag(
            safe_dag_id(declared_dag_id(spec_file)), [str(i) for i in error.issues], source, spec_file.text
        )
    except Exception as error:  # a bug of ours must not hide the folder's other pipelines
        log.exception("aq-airflow: could not build %s", spec_file.path)
        message = f"{spec_file.path}:1:1: internal error while building this pipeline: {error!r}"
        return placeholder_dag(safe_dag_id(declared_dag_id(spec_file)), [message], source, spec_file.text)


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
    artifacts, no retries."""
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
        spec_file = SpecFile.read(path)
        dag_id = declared_dag_id(spec_file)
        if wanted and dag_id != wanted:
            continue
        if dag_id in seen:
            log.error("aq-airflow: %s declares dag_id %s, already used by %s; skipped", path, dag_id, seen[dag_id])
            continue
        seen[dag_id] = path
        dag = _build_one(spec_file, relative, profiles, store, local_run)
        namespace[f"aq_dag__{dag.dag_id}"] = dag
        built.append(dag)
    return built
