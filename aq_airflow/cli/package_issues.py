"""What ``validate`` and ``dagbag`` say of a spec's code package: a package that would be
refused (a credential file, over the size limit, a symbolic link out of the folder) is a located
problem at the spec's ``code:`` (or ``defaults.code``; the spec's first line when the code folder
is the default, the spec's own folder). Only specs with python or command steps and a code
folder (not ``code: image``) have a package.

Nothing of Airflow is imported here, nor pyarrow (``validate`` stays light): the check is the
build cache's (``artifacts.code_cache.check``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aq_airflow.artifacts.code_cache import check
from aq_airflow.artifacts.code_files import PackageRefused
from aq_airflow.pipeline_spec import Problem, SpecIssue
from aq_airflow.pipeline_spec.load import load_document
from aq_airflow.plan.model import DagPlan, RunPlan

if TYPE_CHECKING:
    from aq_airflow.cli.specs import Compiled


@dataclass(frozen=True)
class CodeFolder:
    """The code folder of a planned spec whose steps get a package: where it is (absolute) and
    the size limit its spec sets (None: the default)."""

    path: str
    size_limit: int | None


def code_folder(plan: DagPlan, dags_folder: str) -> CodeFolder | None:
    """The folder packaged for the plan's python and command steps, or None when it has none
    (no such step, or ``code: image``)."""
    for task in plan.tasks:
        run = task.body
        if isinstance(run, RunPlan) and run.command is not None and run.code_folder is not None:
            return CodeFolder(os.path.normpath(os.path.join(dags_folder, run.code_folder)), run.code_max_size)
    return None


def _code_key(spec: Compiled) -> tuple[str, ...]:
    """Where the spec names its code folder: ``code``, ``defaults.code``, or () (the default)."""
    try:
        data = load_document(spec.spec_file)
    except Exception:  # it planned, so it parses; but never a traceback here
        return ()
    if isinstance(data, dict) and "code" in data:
        return ("code",)
    if isinstance(data, dict) and isinstance(data.get("defaults"), dict) and "code" in data["defaults"]:
        return ("defaults", "code")
    return ()


def refusal_issue(spec: Compiled, refused: PackageRefused) -> SpecIssue:
    """A refused package as an issue located in the spec."""
    message = f"the code package cannot be built: {refused}"
    key = _code_key(spec)
    if not key:
        return SpecIssue(spec.spec_file.path, 1, 1, message)
    return spec.spec_file.issue(Problem(key, message))


def package_check(compiled: list[Compiled]) -> None:
    """Adds to each spec that plans the refusal its code package would meet, if any (each code
    folder checked once, whatever the number of specs sharing it)."""
    seen: dict[tuple[str, int | None], PackageRefused | None] = {}
    for spec in compiled:
        if spec.plan is None or spec.spec_file is None:
            continue
        folder = code_folder(spec.plan, spec.folder)
        if folder is None:
            continue
        key = (os.path.realpath(folder.path), folder.size_limit)
        if key not in seen:
            try:
                check(folder.path, folder.size_limit)
                seen[key] = None
            except PackageRefused as refused:
                seen[key] = refused
            except OSError as error:  # unreadable folder: said, not a traceback
                seen[key] = PackageRefused(folder.path, None, f"cannot be read ({error})")
        if seen[key] is not None:
            spec.issues.append(refusal_issue(spec, seen[key]))
