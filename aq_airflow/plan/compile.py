"""Spec file -> Plan in one call, with the errors of every stage located in the file, and a
cache keyed by content hash (Airflow re-parses unchanged files every 30 seconds)."""

from __future__ import annotations

import dataclasses
import os

from aq_airflow.pipeline_spec import ProblemsFound, SpecFile, parse_spec
from aq_airflow.pipeline_spec.profiles import PROFILES_FILE, ProfileSpec, parse_profiles
from aq_airflow.pipeline_spec.salvage import KEPT_FIELDS, salvage
from aq_airflow.plan.model import CallbackRef, DagPlan, KeptSettings
from aq_airflow.plan.planner import plan_pipeline, planned_schedule
from aq_airflow.plan.store import PlanStore

_PLANS: dict[tuple[str, ...], DagPlan] = {}
_PROFILES: dict[str, dict[str, ProfileSpec]] = {}


def profiles_near(folder: str) -> tuple[str, dict[str, ProfileSpec]]:
    """The user profiles in ``folder/aq-profiles.yaml`` (none if absent) and their content hash;
    raises :class:`SpecError` pointing into that file when it is invalid."""
    path = os.path.join(folder, PROFILES_FILE)
    if not os.path.exists(path):
        return "", {}
    spec_file = SpecFile.read(path)
    if spec_file.sha256 not in _PROFILES:
        _PROFILES[spec_file.sha256] = parse_profiles(spec_file)
    return spec_file.sha256, _PROFILES[spec_file.sha256]


def compile_text(
    spec_file: SpecFile,
    profiles: tuple[str, dict[str, ProfileSpec]] = ("", {}),
    store: PlanStore | None = None,
    local_run: bool = False,
    source: str | None = None,
) -> DagPlan:
    """Validate and plan one spec; raises :class:`SpecError` (file:line:col issues).

    ``source`` is the spec's path in its dags folder (default: its file name): the DAG's docs
    name the spec by it, so a compiled file and the live DAG say the same.
    Plans are cached in memory, and in ``store`` when given, by the spec's and the profiles'
    content hashes. ``local_run`` plans for ``aq-airflow run`` (see :func:`plan_pipeline`).
    """
    source = source or os.path.basename(spec_file.path)
    key = (spec_file.path, spec_file.sha256, profiles[0], "local-run" if local_run else "", source)
    plan = _PLANS.get(key) or (store.get(*key) if store else None)
    if plan is None:
        pipeline = parse_spec(spec_file)
        try:
            plan = plan_pipeline(pipeline, spec_file, profiles[1], local_run, source)
        except ProblemsFound as found:
            raise spec_file.error(found.problems) from None
        if store:
            store.put(plan, *key)
    _PLANS[key] = plan
    return plan


def compile_spec(path: str | os.PathLike, dags_folder: str | None = None) -> DagPlan:
    """Read, validate and plan the spec at ``path`` as the loader would in ``dags_folder`` (by
    default the spec's own folder): with the profiles there, named by its path there."""
    folder = dags_folder or os.path.dirname(os.path.abspath(path))
    return compile_text(SpecFile.read(path), profiles_near(folder), source=os.path.relpath(path, folder))


def kept_settings(path: str, spec_file: SpecFile | None, store: PlanStore | None) -> KeptSettings | None:
    """What the placeholder of the broken spec at ``path`` keeps: each field the spec still
    states validly (``spec_file`` is None when it cannot be read), the others from the last plan
    ``store`` recorded for that path (read only when the spec does not state them all); None
    when neither says anything (an unscheduled placeholder)."""
    declared = (salvage(spec_file) if spec_file is not None else None) or {}
    last = store.last_kept(path) if store is not None and len(declared) < len(KEPT_FIELDS) else None
    if not declared and last is None:
        return None
    changes = {name: declared[name] for name in ("start_date", "end_date") if name in declared}
    if "schedule" in declared:
        changes["schedule"], changes["schedule_assets"] = planned_schedule(declared["schedule"])
    if "on_failure" in declared:
        changes["on_failure"] = CallbackRef(declared["on_failure"]) if declared["on_failure"] else None
    return dataclasses.replace(last or KeptSettings(), **changes)
