"""The checks only ``aq-airflow validate`` makes, on a spec that already validates and plans:
its SQL parsed with sqlglot (:mod:`aq_airflow.pipeline_spec.sql`) and its ``expect:`` checks looked up in
Great Expectations (:mod:`aq_airflow.pipeline_spec.expectations`).

They need the ``airflow`` extra's sqlglot and GX, and GX takes seconds to import, so the
dags-folder loader never runs them; without those packages they are skipped with a note.
"""

from __future__ import annotations

import importlib.util

from aq_airflow.pipeline_spec.errors import SpecIssue
from aq_airflow.pipeline_spec.load import Problem, SpecFile, parse_spec

_EXTRA = "install aq-airflow[airflow] to check it"


def deep_issues(spec_file: SpecFile, notes: set[str] | None = None) -> list[SpecIssue]:
    """Located issues of ``spec_file``'s SQL and `expect:` checks; what was skipped for want of
    a package is added to ``notes``."""
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
    return sorted((spec_file.issue(p) for p in problems), key=lambda i: (i.line, i.col, i.message))
