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


def great_expectations():
    """The ``great_expectations`` package, imported without its optional Spark support: pyspark
    is blocked while GX is imported (GX then takes Spark for not installed), or, where this
    process has imported it already, its Connect package. With pyspark installed, GX imports
    pyspark's SQL, Connect and ML packages: seconds of every validate and checks task, pyspark's
    pandas FutureWarning in their output, and in a process whose ``__main__`` has no file
    (``python -c``, a pytest-xdist worker) pyspark's Connect check ends the process
    (``sys.exit(0)``, "Skipping doctests"). aq-airflow runs expectations on pandas frames only
    (``quality.extra``), so Spark support is never needed."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no usage reporting
    # pyspark's Connect package too when this process has pyspark already (a spark step's
    # process; a test worker that ran one): its import is the one that may end the process
    blocked = [] if "great_expectations" in sys.modules else [m for m in _SPARK_MODULES if m not in sys.modules]
    for module in blocked:
        sys.modules[module] = None  # type: ignore[assignment] - importing it raises ImportError
    try:
        with warnings.catch_warnings():  # a library's notice on import is not a finding of ours
            warnings.simplefilter("ignore", FutureWarning)
            import great_expectations as gx
            import great_expectations.expectations  # the expectation classes, as `gx.expectations`
    finally:
        for module in blocked:
            if module in sys.modules and sys.modules[module] is None:
                del sys.modules[module]
    return gx


_SPARK_MODULES = ("pyspark", "pyspark.sql.connect")


@functools.cache
def registry() -> dict[str, type]:
    """GX Core's expectations by their snake_case name (``expect_column_values_to_be_between``)."""
    gx_expectations = great_expectations().expectations
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
