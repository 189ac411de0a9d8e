"""`expect:` checks against Great Expectations' own registry, without loading any data.

At run time an ``expect: expect_column_values_to_not_be_null`` check becomes the GX Core class
of that name in CamelCase (``great_expectations.expectations.ExpectColumnValuesToNotBeNull``),
built with the check's ``kwargs`` (:func:`aq_airflow.quality.extra.expectation_class`). Here the
same lookup finds unknown names (with the closest known ones), and the class's fields find
unknown and missing ``kwargs``.

Importing GX takes seconds, so only ``aq-airflow validate`` does it, and only for specs with
``expect:`` checks; the dags-folder loader never does. It is imported without its optional Spark
support (:func:`registry`): with pyspark installed, GX imports pyspark's SQL and ML packages (most
of GX's import time, and pyspark's pandas FutureWarning on every validate), and names and fields
are all this check reads.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
import warnings

from aq_airflow.pipeline_spec.load import Problem
from aq_airflow.pipeline_spec.models import Pipeline


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@functools.cache
def registry() -> dict[str, type]:
    """GX Core's expectations by their snake_case name (``expect_column_values_to_be_between``)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    # pyspark blocked while GX is imported (GX then takes Spark for not installed), unless this
    # process had imported it already; the GX this process keeps has no Spark support, which
    # validate never needs (a step's checks run in the step's own process)
    blocked = "pyspark" not in sys.modules
    if blocked:
        sys.modules["pyspark"] = None  # type: ignore[assignment] - `import pyspark` raises ImportError
    try:
        with warnings.catch_warnings():  # a library's notice on import is not a finding of validate
            warnings.simplefilter("ignore", FutureWarning)
            import great_expectations.expectations as gx_expectations
    finally:
        if blocked and "pyspark" in sys.modules and sys.modules["pyspark"] is None:
            del sys.modules["pyspark"]

    return {
        _snake(name): kind
        for name in dir(gx_expectations)
        if name.startswith("Expect") and isinstance(kind := getattr(gx_expectations, name), type)
    }


def _fields(kind: type) -> dict[str, bool]:
    """The expectation's arguments, name -> required (GX Core models are pydantic v1)."""
    fields = getattr(kind, "__fields__", None) or {}
    return {name: bool(getattr(field, "required", False)) for name, field in fields.items()}


def expectation_problems(pipeline: Pipeline) -> list[Problem]:
    """Located problems of every `expect:` check: unknown expectations, unknown or missing kwargs."""
    problems: list[Problem] = []
    for name, step in pipeline.steps.items():
        for i, check in enumerate(step.checks):
            if check.expect is None:
                continue
            at = ("steps", name, "checks", i)
            where = ".".join(str(p) for p in at)
            known = registry()
            kind = known.get(check.expect)
            # the run-time lookup (CamelCase of the name) must find the same class
            if kind is None or kind.__name__ != _camel(check.expect):
                close = difflib.get_close_matches(check.expect, list(known), n=1, cutoff=0.8)
                hint = f"; did you mean `{close[0]}`?" if close else "; see the Great Expectations gallery"
                problems.append(
                    Problem((*at, "expect"), f"{where}.expect: Great Expectations has no `{check.expect}`{hint}")
                )
                continue
            fields = _fields(kind)
            kwargs = check.kwargs or {}
            for key in kwargs:
                if fields and key not in fields:
                    close = difflib.get_close_matches(str(key), list(fields), n=1)
                    hint = f"; did you mean `{close[0]}`?" if close else ""
                    problems.append(
                        Problem((*at, "kwargs", key), f"{where}.kwargs: `{check.expect}` takes no `{key}`{hint}", True)
                    )
            missing = [f for f, required in fields.items() if required and f not in kwargs]
            if missing:
                path = (*at, "kwargs") if check.kwargs is not None else (*at, "expect")
                names = ", ".join(f"`{m}`" for m in missing)
                problems.append(Problem(path, f"{where}: `{check.expect}` needs kwargs {names}"))
    return problems
