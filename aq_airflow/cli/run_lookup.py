"""Which pipeline, store and run ``aq-airflow show`` and ``diff`` read: a spec file or a dag_id,
the artifact store that holds its runs, and a run by its id or as ``latest`` / ``latest~N``.

The store: ``--artifacts`` when given; else ``--workdir``'s ``artifacts/`` (as ``aq-airflow run
--workdir`` lays it out); else the spec's ``artifacts:``; else ``$AQ_ARTIFACTS`` (as workers have it);
else ``.aq-run/artifacts``, where ``aq-airflow run`` keeps its outputs, or, when the pipeline has no
runs there, the deployed default a worker writes to (``$AIRFLOW_HOME/aq-artifacts``, the store
``aq-airflow package --upload`` uses too). When the spec's store is remote (``s3://...``), those two
local folders are looked at first: a spec's remote store is often not reachable from the machine
that ran ``aq-airflow run`` (which writes locally whatever the spec says), and asking it costs
seconds before it fails; a note on stderr says which store was read instead.
Every failure is a :class:`LookupFailed` whose message names what exists and the fix, an
unreachable or failing store too (one line, never a traceback).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

import pyarrow as pa

from aq_airflow.artifacts.root import ARTIFACTS, artifacts_root
from aq_airflow.client.outputs import Pipeline, Run, Store

WAREHOUSE_FILE = "warehouse.duckdb"  # `aq-airflow run --workdir DIR` keeps DIR/artifacts and DIR/warehouse.duckdb
LOCAL_ARTIFACTS = os.path.join(".aq-run", "artifacts")  # `aq-airflow run`'s default (--workdir .aq-run)
_LATEST = re.compile(r"latest(?:~([0-9]{1,6}))?")
_LISTED = 8  # runs named in a message


class LookupFailed(Exception):
    """No such pipeline, store or run: the message says what exists and the fix."""


@dataclass(frozen=True)
class Target:
    """A pipeline as the command line names it: its dag_id, its store and where that came from."""

    dag_id: str
    root: str
    spec: str | None  # the spec file named, if one was
    where: str = "--artifacts"  # where the store came from, as messages say it

    @property
    def pipeline(self) -> Pipeline:
        return Store(self.root).pipeline(self.dag_id)


def is_spec(target: str) -> bool:
    return target.endswith((".yaml", ".yml")) or os.path.isfile(target)


# what a store's file system raises when it cannot be reached or read: OSError (unreachable,
# denied), ArrowInvalid (a ValueError: a URI it cannot use), ArrowException (Azure's credential chain)
STORE_ERRORS = (OSError, ValueError, pa.ArrowException)
RUN_FIX = "for an `aq-airflow run` pass --workdir DIR or --artifacts DIR/artifacts"


def resolve(target: str, artifacts: str | None, workdir: str | None = None, runs: bool = True) -> Target:
    """The pipeline ``target`` names (a spec file, or a dag_id) and the store holding its runs.
    ``workdir``: an ``aq-airflow run --workdir`` folder, whose ``artifacts/`` is the store.
    ``runs=False``: the store need not hold runs of it (``aq-airflow serve``: the promoted models
    outlive the runs that made them, which ``aq-airflow gc`` deletes)."""
    spec_root = None
    spec = None
    if is_spec(target):
        from aq_airflow.pipeline_spec import SpecError
        from aq_airflow.plan import compile_spec

        try:
            plan = compile_spec(target)
        except SpecError as error:  # located problems, an unreadable file too
            raise LookupFailed(str(error)) from None
        dag_id, spec_root, spec = plan.dag_id, plan.artifacts, target
    else:
        dag_id = target
    where = "--artifacts" if artifacts else "--workdir" if workdir else None
    artifacts = artifacts or (os.path.join(workdir, "artifacts") if workdir else None)
    deployed = None if os.environ.get(ARTIFACTS) else artifacts_root(None)  # $AIRFLOW_HOME/aq-artifacts
    local = (os.path.abspath(LOCAL_ARTIFACTS), deployed)
    if artifacts:
        root = artifacts_root(artifacts)
    elif spec_root and "://" in spec_root and (here := _with_runs(dag_id, spec, local)):
        print(f"reading the runs in {here}, where `aq-airflow run` put them (the spec's store {spec_root} "
              f"not asked: pass --artifacts {spec_root} for it)", file=sys.stderr)  # fmt: skip
        return Target(dag_id, here, spec, "the folder `aq-airflow run` writes to")
    elif spec_root or os.environ.get(ARTIFACTS):
        root = artifacts_root(spec_root)
    else:  # `aq-airflow run`'s outputs here, else a deployed Airflow's (the workers' default)
        root = _with_runs(dag_id, spec, local) or local[0]
    where = where or _where(None, spec_root)
    found = Target(dag_id, root, spec, where)
    if runs and not _runs(found):
        raise LookupFailed(
            f"pipeline `{dag_id}` has no runs in {root}/{dag_id} (the store from {where}): pass --artifacts ROOT, the "
            "store its runs wrote to" + (", or the spec file instead of the dag_id" if spec is None else "")
            + " (for an `aq-airflow run`: --workdir DIR)"
        )  # fmt: skip
    return found


def _with_runs(dag_id: str, spec: str | None, roots: tuple[str | None, ...]) -> str | None:
    """The first of the local ``roots`` holding runs of the pipeline (a folder that cannot be read
    holds none)."""
    for root in roots:
        try:
            if root and Target(dag_id, root, spec).pipeline.runs():
                return root
        except STORE_ERRORS:
            continue
    return None


def _runs(target: Target) -> list[Run]:
    """The pipeline's runs; a store that cannot be reached or read is one line naming it and the fix."""
    try:
        return target.pipeline.runs()
    except STORE_ERRORS as error:
        raise LookupFailed(store_failed(target.root, target.where, error)) from None


def store_failed(root: str, where: str, error: BaseException) -> str:
    """One line for a store that failed: which store, from where, its first line of error, the fix."""
    text = " ".join(str(error).split())
    text = text if len(text) <= 300 else text[:300] + "..."
    return f"cannot read the artifact store {root} (the store from {where}): {type(error).__name__}: {text}; {RUN_FIX}"


def _where(artifacts: str | None, spec_root: str | None) -> str:
    """Where the store in a message came from (the order :func:`resolve` takes them in)."""
    if artifacts:
        return "--artifacts"
    if spec_root:
        return "the spec's `artifacts:`"
    if os.environ.get(ARTIFACTS):
        return f"${ARTIFACTS}"
    return (
        f"{LOCAL_ARTIFACTS}, where `aq-airflow run` keeps them, nor in {artifacts_root(None)}, where a deployed "
        "Airflow's workers keep them"
    )


def find_run(target: Target, name: str) -> Run:
    """Run ``name`` of the pipeline: a run id, ``latest`` (the newest run) or ``latest~N`` (N
    runs before it)."""
    runs = _runs(target)  # newest first
    latest = _LATEST.fullmatch(name)
    if latest:
        back = int(latest.group(1) or 0)
        if back < len(runs):
            return runs[back]
        raise LookupFailed(
            f"{name}: pipeline `{target.dag_id}` has {len(runs)} run(s) in {target.root}, so there is no run {back} "
            f"before the latest{_listed(runs)}"
        )
    for run in runs:
        if run.run_id == name:
            return run
    close = [run for run in runs if run.run_id.startswith(name)] if name else []
    if len(close) == 1:
        return close[0]
    hint = f" ({len(close)} runs start with it: name one whole)" if len(close) > 1 else ""
    raise LookupFailed(f"pipeline `{target.dag_id}` has no run `{name}` in {target.pipeline.uri}{hint}{_listed(runs)}; "
                       "name a run id, `latest` or `latest~1`")  # fmt: skip


def _listed(runs: list[Run]) -> str:
    shown = ", ".join(run.run_id for run in runs[:_LISTED])
    return f" (runs, newest first: {shown}{', ...' if len(runs) > _LISTED else ''})" if runs else ""
