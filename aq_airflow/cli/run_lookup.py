"""Which pipeline, store and run ``aq-airflow show`` and ``diff`` read: a spec file or a dag_id,
the artifact store that holds its runs, and a run by its id or as ``latest`` / ``latest~N``.

The store: ``--artifacts`` when given; else the spec's ``artifacts:``; else ``$AQ_ARTIFACTS`` (as
workers have it); else ``.aq-run/artifacts``, where ``aq-airflow run`` keeps its outputs, or, when
the pipeline has no runs there, the deployed default a worker writes to (``$AIRFLOW_HOME/aq-artifacts``,
the store ``aq-airflow package --upload`` uses too).
Every failure is a :class:`LookupFailed` whose message names what exists and the fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from aq_airflow.artifacts.root import ARTIFACTS, artifacts_root
from aq_airflow.client.outputs import Pipeline, Run, Store

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

    @property
    def pipeline(self) -> Pipeline:
        return Store(self.root).pipeline(self.dag_id)


def is_spec(target: str) -> bool:
    return target.endswith((".yaml", ".yml")) or os.path.isfile(target)


def resolve(target: str, artifacts: str | None) -> Target:
    """The pipeline ``target`` names (a spec file, or a dag_id) and the store holding its runs."""
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
    if artifacts:
        root = artifacts_root(artifacts)
    elif spec_root or os.environ.get(ARTIFACTS):
        root = artifacts_root(spec_root)
    else:  # `aq-airflow run`'s outputs here, else a deployed Airflow's (the workers' default)
        local, deployed = os.path.abspath(LOCAL_ARTIFACTS), artifacts_root(None)
        root = next((r for r in (local, deployed) if Target(dag_id, r, spec).pipeline.runs()), local)
    found = Target(dag_id, root, spec)
    if not found.pipeline.runs():
        where = _where(artifacts, spec_root)
        raise LookupFailed(
            f"pipeline `{dag_id}` has no runs in {root}/{dag_id} (the store from {where}): pass --artifacts ROOT, the "
            "store its runs wrote to" + (", or the spec file instead of the dag_id" if spec is None else "")
        )  # fmt: skip
    return found


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
    runs = target.pipeline.runs()  # newest first
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
