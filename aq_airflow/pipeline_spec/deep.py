"""The checks only ``aq-airflow validate`` makes, on a spec that already validates and plans:
its SQL parsed with sqlglot (:mod:`aq_airflow.pipeline_spec.sql`), its ``expect:`` checks looked up in
Great Expectations (:mod:`aq_airflow.pipeline_spec.expectations`) and its ``operator:`` classes
imported and held against their ``args`` (:mod:`aq_airflow.pipeline_spec.operator_classes`).

They need the ``airflow`` extra's sqlglot, GX and Airflow (with the providers the operators
come from), and GX takes seconds to import, so the dags-folder loader never runs them; without
sqlglot, GX or Airflow they are skipped with a note. A provider missing where Airflow is
installed is an error: the DAG would not build there either.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from aq_airflow.pipeline_spec.errors import SpecIssue
from aq_airflow.pipeline_spec.load import Problem, SpecFile, parse_spec
from aq_airflow.pipeline_spec.models import Pipeline
from aq_airflow.pipeline_spec.operator_steps import BUILDER_ARGUMENTS

_EXTRA = "install aq-airflow[airflow] to check it"


def deep_issues(spec_file: SpecFile, notes: set[str] | None = None, dags_folder: str | None = None) -> list[SpecIssue]:
    """Located issues of ``spec_file``'s SQL, `expect:` checks and `operator:` classes (imported as
    the loader imports them in ``dags_folder``, by default the spec's own folder); what was
    skipped for want of a package is added to ``notes``."""
    notes = notes if notes is not None else set()
    pipeline = parse_spec(spec_file)
    problems: list[Problem] = []
    if importlib.util.find_spec("sqlglot") is None:
        notes.add(f"sqlglot is not installed: SQL was not parsed ({_EXTRA})")
    else:
        from aq_airflow.pipeline_spec.sql import sql_problems

        problems += sql_problems(pipeline)
    if any(c.expect for s in pipeline.steps.values() for c in s.checks):
        if importlib.util.find_spec("great_expectations") is None:
            notes.add(f"great_expectations is not installed: `expect:` checks were not looked up ({_EXTRA})")
        else:
            from aq_airflow.pipeline_spec.expectations import expectation_problems

            problems += expectation_problems(pipeline)
    if any(s.operator for s in pipeline.steps.values()):
        if importlib.util.find_spec("airflow") is None:
            notes.add(f"Airflow is not installed: `operator:` classes were not imported and checked ({_EXTRA})")
        else:
            problems += operator_problems(pipeline, dags_folder or os.path.dirname(os.path.abspath(spec_file.path)))
    return sorted((spec_file.issue(p) for p in problems), key=lambda i: (i.line, i.col, i.message))


def operator_problems(pipeline: Pipeline, folder: str) -> list[Problem]:
    """Each ``operator:`` class imported with the dags folder's root importable, as the
    dag-processor imports it for the loader (and as under ``aq-airflow run``, whose dags folder
    is the spec's), and its ``args`` held against its constructor: an import that fails at
    the ``operator:`` line, an argument it does not take at that key, a required one missing at
    the step."""
    from aq_airflow.pipeline_spec.operator_classes import OperatorClassError, argument_problems, import_operator_class

    problems: list[Problem] = []
    sys.path.insert(0, folder)
    try:
        for name, step in pipeline.steps.items():
            if step.operator is None:
                continue
            try:
                cls = import_operator_class(step.operator)
            except OperatorClassError as error:
                problems.append(Problem(("steps", name, "operator"), str(error)))
                continue
            for argument, message in argument_problems(cls, step.args or {}, set(BUILDER_ARGUMENTS)):
                where = ("steps", name, "args", argument) if argument else ("steps", name)
                problems.append(Problem(where, message, at_key=True))
    finally:
        sys.path.remove(folder)
    return problems
