"""Plan -> Python DAG file through the Jinja template in ``templates/``.

The output is deterministic (same plan, same bytes): no timestamps, stable ordering, and every
value written by :func:`py_literal`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import jinja2

from aq_airflow import __version__
from aq_airflow.codegen.literals import docstring, plan_types, py_literal
from aq_airflow.operators.registry import operator_arguments, operator_expansion, operator_name
from aq_airflow.plan import DagPlan

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


def render_dag(plan: DagPlan) -> str:
    """The Python source of a DAG file that builds the same DAG as the loader does."""
    tasks_by_group: dict[str, list[dict]] = {g.group_id: [] for g in plan.groups}
    types: set[str] = set()
    for task in plan.tasks:
        short_id = task.task_id.removeprefix(f"{task.group}.")
        arguments = operator_arguments(task)
        types |= plan_types(arguments)
        expand = {k: _var(over) for k, over in operator_expansion(task).items()}  # a `foreach:` step's task
        tasks_by_group[task.group].append(
            {"var": _var(task.task_id), "short_id": short_id, "operator": operator_name(task), "arguments": arguments,
             "expand": expand}
        )  # fmt: skip
    edges = [(_var(up), _var(task.task_id)) for task in plan.tasks for up in task.upstream]
    operators = sorted({t["operator"] for ts in tasks_by_group.values() for t in ts})
    operators += ["ImportedCallback"] if plan.on_failure else []
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            header=_header(plan),
            plan=plan,
            version=__version__,
            operators=sorted(operators),
            plan_types=sorted(types),
            tasks_by_group=tasks_by_group,
            edges=edges,
        )
    )
