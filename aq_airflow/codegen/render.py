"""Plan -> Python DAG file through the Jinja template in ``templates/``.

The output is deterministic (same plan, same bytes): no timestamps, stable ordering, and every
value written by :func:`py_literal`.
"""

from __future__ import annotations

import keyword
import re
from functools import cache
from importlib import resources

import jinja2

from aq_airflow import __version__
from aq_airflow.codegen.literals import docstring, plan_types, py_literal
from aq_airflow.operators.registry import AQ_OPERATORS, operator_arguments, operator_expansion, operator_import
from aq_airflow.plan import DagPlan
from aq_airflow.plan.model import PLAN_TYPES

# What the template itself names: a user's operator class is imported under another name than these.
_TEMPLATE_NAMES = {"datetime", "timedelta", "timezone", "DAG", "Asset", "TaskGroup", "dag", *PLAN_TYPES}

TEMPLATE = "dag.py.j2"


@cache
def _environment() -> jinja2.Environment:
    folder = resources.files("aq_airflow.templates")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (folder / name).read_text(encoding="utf-8")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - generates Python, not HTML; values go through py_literal
    )
    env.filters["py"] = py_literal
    return env


def _var(task_id: str) -> str:
    return task_id.replace(".", "__")


def _header(plan: DagPlan) -> str:
    """The module docstring. It names the spec's path, which any file name may be, so it goes
    through :func:`docstring`, never pasted into the source as it is."""
    return docstring(
        f"{plan.dag_id}: compiled by aq-airflow {__version__} from {plan.source}.\n\n"
        "Generated code: edit the spec and run `aq-airflow compile` again instead of editing this file.\n"
        f"spec sha256: {plan.spec_sha256}\n"
    )


def _identifier(name: str, what: str) -> str:
    """``name`` when it is a plain ASCII Python identifier (never a keyword), else ValueError: an
    ``operator:`` step's module, class and argument names are written into the source as code."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or keyword.iskeyword(name):
        raise ValueError(f"{what} {name!r} is not a Python identifier: it cannot be written as code")
    return name


def _user_imports(plan: DagPlan, taken: set[str]) -> dict[tuple[str, str], str]:
    """(module, class) of each ``operator:`` step's class -> the name the file imports it as:
    the class's own name, unless another class or a name of the file has it (then ``Name_2``, ...)."""
    aliases: dict[tuple[str, str], str] = {}
    for task in plan.tasks:
        module, name = operator_import(task)
        if module == AQ_OPERATORS or (module, name) in aliases:
            continue
        for part in module.split("."):
            _identifier(part, "module name")
        alias, count = _identifier(name, "class name"), 1
        while alias in taken:
            count += 1
            alias = f"{name}_{count}"
        taken.add(alias)
        aliases[module, name] = alias
    return aliases


def render_dag(plan: DagPlan) -> str:
    """The Python source of a DAG file that builds the same DAG as the loader does."""
    tasks_by_group: dict[str, list[dict]] = {g.group_id: [] for g in plan.groups}
    types: set[str] = set()
    aq_operators: set[str] = set()
    taken = _TEMPLATE_NAMES | {_var(t.task_id) for t in plan.tasks}
    taken |= {operator_import(t)[1] for t in plan.tasks if operator_import(t)[0] == AQ_OPERATORS}
    user_imports = _user_imports(plan, set(taken) | {"ImportedCallback"})
    for task in plan.tasks:
        short_id = task.task_id.removeprefix(f"{task.group}.")
        arguments = operator_arguments(task)
        for name in arguments:
            _identifier(name, "argument name")
        types |= plan_types(arguments)
        expand = {k: _var(over) for k, over in operator_expansion(task).items()}  # a `foreach:` step's task
        module, name = operator_import(task)
        if module == AQ_OPERATORS:
            aq_operators.add(name)
        tasks_by_group[task.group].append(
            {"var": _var(task.task_id), "short_id": short_id, "operator": user_imports.get((module, name), name),
             "arguments": arguments, "expand": expand}
        )  # fmt: skip
    edges = [(_var(up), _var(task.task_id)) for task in plan.tasks for up in task.upstream]
    operators = sorted(aq_operators)
    operators += ["ImportedCallback"] if plan.on_failure else []
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            header=_header(plan),
            plan=plan,
            version=__version__,
            operators=sorted(operators),
            user_imports=sorted((module, name, alias) for (module, name), alias in user_imports.items()),
            plan_types=sorted(types),
            tasks_by_group=tasks_by_group,
            edges=edges,
        )
    )
