"""An ``operator:`` step's class, imported and held against its ``args``.

Imports happen only when called: by ``aq-airflow validate`` (:mod:`aq_airflow.pipeline_spec.deep`)
and by the DAG builder (``live_dags``), as Airflow imports the classes a Python DAG names. The
spec layer itself never imports Airflow: :func:`import_operator_class` does, lazily, to tell an
operator from any other class.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any

# Module names that end an Airflow provider's own path: `airflow.providers.apache.spark.operators...`
# is the provider `apache.spark`, installed as `apache-airflow-providers-apache-spark`.
_PROVIDER_PARTS = {"operators", "sensors", "hooks", "transfers", "triggers", "decorators", "notifications", "utils"}


class OperatorClassError(Exception):
    """An ``operator:`` class that cannot be used, with a message that names it and says what to do."""


def provider_package(class_path: str) -> str | None:
    """The distribution an ``airflow.providers.*`` class comes from, or None for other paths."""
    parts = class_path.split(".")
    if parts[:2] != ["airflow", "providers"]:
        return None
    name = []
    for part in parts[2:-1]:
        if part in _PROVIDER_PARTS:
            break
        name.append(part)
    return f"apache-airflow-providers-{'-'.join(name)}" if name else None


def _not_installed(class_path: str, missing: str) -> str:
    package = provider_package(class_path)
    fix = (
        f"install its provider, `pip install {package}`,"
        if package
        else "install the package that provides it (or fix the path)"
    )
    return (
        f"cannot import the operator class `{class_path}`: no module named `{missing}`; {fix} wherever "
        "Airflow parses and runs this pipeline (the dag-processor and the workers)"
    )


def import_operator_class(class_path: str) -> type:
    """The class at ``module.Class``; raises :class:`OperatorClassError` when the module does not
    import, has no such class, or the class is no Airflow operator or sensor."""
    module_name, _, class_name = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or module_name
        if module_name == missing or module_name.startswith(f"{missing}."):
            raise OperatorClassError(_not_installed(class_path, missing)) from None
        raise OperatorClassError(
            f"cannot import the operator class `{class_path}`: importing `{module_name}` needs `{missing}`, "
            "which is not installed; install it where Airflow runs"
        ) from None
    except Exception as error:  # the module itself fails: say how, never a traceback
        raise OperatorClassError(
            f"cannot import the operator class `{class_path}`: importing `{module_name}` failed: "
            f"{type(error).__name__}: {error}"
        ) from None
    found = getattr(module, class_name, None)
    if found is None:
        names = [n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_")]
        close = difflib.get_close_matches(class_name, names, n=1)
        hint = f"; did you mean `{module_name}.{close[0]}`?" if close else ""
        raise OperatorClassError(f"module `{module_name}` has no `{class_name}`{hint}")
    from airflow.sdk import BaseOperator  # the operator's module imported Airflow already

    if not (isinstance(found, type) and issubclass(found, BaseOperator)):
        what = f"class `{found.__name__}`" if isinstance(found, type) else f"a {type(found).__name__}"
        raise OperatorClassError(
            f"`{class_path}` is {what}, not an Airflow operator or sensor (a subclass of "
            "airflow.sdk.BaseOperator): name an operator or sensor class"
        )
    return found


def accepted_arguments(cls: type) -> tuple[list[str], list[str]] | None:
    """The keyword arguments ``cls(...)`` accepts and those it requires, or None when its
    constructor's signature cannot be read.

    Airflow operators pass what they do not take themselves on to their base class as
    ``**kwargs``, so the ``__init__`` of each class in the MRO adds its parameters until one
    takes no ``**kwargs`` or BaseOperator is reached (whose ``**kwargs`` are refused).
    Required are the parameters without a default of the constructor that runs first: a base
    class's required ones may be filled by the subclass itself."""
    from airflow.sdk import BaseOperator

    accepted: list[str] = []
    required: list[str] = []
    first = True
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        try:
            parameters = list(inspect.signature(init).parameters.values())[1:]  # not `self`
        except (TypeError, ValueError):
            return None
        named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        accepted += [p.name for p in named if p.name not in accepted]
        if first:
            required = [p.name for p in named if p.default is p.empty]
            first = False
        if klass is BaseOperator or not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return accepted, required


def argument_problems(cls: type, arguments: dict[str, Any], given_by_builder: set[str]) -> list[tuple[str | None, str]]:
    """``(argument or None, message)`` for each argument ``cls`` does not take (with a
    did-you-mean) and, with None, each required one that is missing."""
    signature = accepted_arguments(cls)
    if signature is None:
        return []
    accepted, required = signature
    problems: list[tuple[str | None, str]] = []
    for name in arguments:
        if name not in accepted:
            close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else "check its documentation for its arguments"
            problems.append((name, f"`{cls.__name__}` takes no argument `{name}`; {hint}"))
    missing = [name for name in required if name not in arguments and name not in given_by_builder]
    if missing:
        listed = ", ".join(f"`{name}`" for name in missing)
        problems.append((None, f"`{cls.__name__}` needs {listed}: add {'it' if len(missing) == 1 else 'them'} "
                         "under `args:`"))  # fmt: skip
    return problems
