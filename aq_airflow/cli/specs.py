"""Spec files as ``validate``, ``compile``, ``dagbag`` and ``doctor`` see them: each planned as
the loader would in its dags folder, or the located issues that stop it (duplicate dag_ids across
the files given, step code not beside its spec, and validate's slow SQL, expectation and
``operator:`` checks).

Nothing of Airflow is imported here: ``validate`` and ``compile`` run without it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aq_airflow.pipeline_spec import SpecError, SpecFile, SpecIssue, spec_paths


def written_by_init(path: str) -> bool:
    """Whether a file is a loader this command wrote (now or in an earlier version)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(400)
    except OSError:  # unreadable, or a folder of that name
        return False
    return "written by `aq-airflow init`" in head


def dags_folder_of(spec: str) -> str | None:
    """The dags folder a spec file sits in: the nearest folder above it (its own included) that
    holds a loader `aq-airflow init` wrote, or None. A spec given alone (a pre-commit hook over
    changed files) is then checked as the loader sees it: with the profiles and the step code at
    that folder's root."""
    folder = os.path.dirname(os.path.abspath(spec))
    while True:
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        loaders = [n for n in names if n.startswith("aq_dags") and n.endswith(".py")]
        if any(written_by_init(os.path.join(folder, n)) for n in loaders):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _spec_files(paths: Sequence[str]) -> list[tuple[str, str | None]]:
    """(spec file, the dags folder it belongs to): a folder given is a dags folder, whose
    profiles and paths hold for the specs in its subfolders too, as they do for the loader; a
    file given belongs to the dags folder above it (:func:`dags_folder_of`), else to its own
    folder. A file given twice (itself and in its folder) is checked once."""
    files: list[tuple[str, str | None]] = []
    for path in paths:
        files += [(spec, path) for spec in spec_paths(path)] if os.path.isdir(path) else [(path, dags_folder_of(path))]
    seen: set[str] = set()
    return [(f, d) for f, d in files if not (os.path.abspath(f) in seen or seen.add(os.path.abspath(f)))]


@dataclass
class Compiled:
    """One spec as validate and compile see it: its plan, or the issues that stop it."""

    path: str
    folder: str  # the dags folder it is planned in (the plan's paths are relative to it)
    plan: Any = None
    issues: list[SpecIssue] = field(default_factory=list)
    spec_file: SpecFile | None = None


def _plan_one(path: str, dags_folder: str | None) -> Compiled:
    """Plan one spec file as the loader would in ``dags_folder`` (by default the spec's own
    folder), or the located issues that stop it: unreadable files and limits included; a bug of
    ours is an issue too, never a traceback."""
    from aq_airflow.plan.compile import compile_text, profiles_near

    folder = dags_folder or os.path.dirname(os.path.abspath(path))
    result = Compiled(path, folder)
    try:
        result.spec_file = SpecFile.read(path)
        result.plan = compile_text(result.spec_file, profiles_near(folder), source=os.path.relpath(path, folder))
    except SpecError as error:
        result.issues = error.issues
    except Exception as error:  # a bug of ours: a located issue, not a traceback
        message = f"internal error while checking this spec (please report it): {error!r}"
        result.issues = [SpecIssue(path, 1, 1, message)]
    return result


def _duplicates(compiled: list[Compiled]) -> None:
    """Adds to each spec whose dag_id another spec of ``compiled`` has an issue naming the others
    (at each one's ``pipeline:``, or 1:1 when its file name gives the id). The dag_id is the
    plan's, or for a spec that does not validate the one it declares (its placeholder DAG takes
    that id in Airflow)."""
    by_id: dict[str, list[Compiled]] = {}
    for spec in compiled:
        dag_id = spec.plan.dag_id if spec.plan is not None else spec.spec_file and spec.spec_file.declared_dag_id
        if dag_id:
            by_id.setdefault(dag_id, []).append(spec)
    for dag_id, specs in by_id.items():
        if len(specs) < 2:
            continue
        places = [spec.spec_file.dag_id_issue("") for spec in specs]
        for spec, place in zip(specs, places, strict=True):
            others = ", ".join(f"{p.file}:{p.line}:{p.col}" for p in places if p is not place)
            message = (
                f"dag_id `{dag_id}` is also the dag_id of {others}: Airflow shows one DAG per dag_id; "
                "give each pipeline its own `pipeline:` (or file name)"
            )
            spec.issues = sorted([*spec.issues, SpecIssue(place.file, place.line, place.col, message)],
                                 key=lambda i: (i.line, i.col))  # fmt: skip


def check(paths: Sequence[str]) -> list[Compiled]:
    compiled = [_plan_one(path, folder) for path, folder in _spec_files(paths)]
    _duplicates(compiled)
    return compiled


def code_check(compiled: list[Compiled]) -> None:
    """Each local-runner python step's module looked up beside its spec (``plan.code``), and
    the refusal its code package would meet (``cli.package_issues``), on each spec that plans:
    validate and dagbag, never the loader."""
    from aq_airflow.cli.package_issues import package_check
    from aq_airflow.plan.code import code_problems

    package_check(compiled)
    for spec in compiled:
        if spec.plan is not None and spec.spec_file is not None:
            try:
                spec.issues += [spec.spec_file.issue(p) for p in code_problems(spec.plan, spec.folder)]
            except Exception as error:  # a bug of ours: said where it happened, the other files still checked
                spec.issues.append(
                    SpecIssue(spec.spec_file.path, 1, 1, f"internal error looking up step code: {error!r}")
                )


def deep_check(compiled: list[Compiled]) -> None:
    """What only validate checks, on each spec that plans: its step code looked up beside it, its
    SQL parsed with sqlglot and its `expect:` checks looked up in Great Expectations (slow imports
    the loader never pays for)."""
    from aq_airflow.pipeline_spec.deep import deep_issues

    code_check(compiled)
    notes: set[str] = set()
    for spec in compiled:
        if spec.plan is not None and spec.spec_file is not None:
            try:
                spec.issues += deep_issues(spec.spec_file, notes, spec.folder)
            except Exception as error:  # a bug of ours: said where it happened, the other files still checked
                message = f"internal error in validate's SQL and expectation checks: {error!r}"
                spec.issues.append(SpecIssue(spec.spec_file.path, 1, 1, message))
    for note in sorted(notes):
        print(f"note: {note}", file=sys.stderr)
