"""Where a python step's module is looked for, checked before it runs (``validate``, ``dagbag``).

The local runner imports a step's function from the run's package of the step's code folder (its
spec's folder) first, then the dags folder's root (``runners.code``, ``runtime.code``). A module
found in neither fails only at run time (``ModuleNotFoundError``), so validate looks for its
top-level package or module there, on the filesystem only: user code is never imported here.
Steps on Kubernetes get the same package, but may import modules their image installs, which
validate cannot see: not checked.

Not run by the loader (it costs file lookups per step at every parse).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os

from aq_airflow.pipeline_spec import Problem
from aq_airflow.plan.model import DagPlan, Runner, RunPlan


def _installed(name: str) -> bool:
    """Whether ``name`` is importable here without the dags folder (an installed package, which
    the worker has as well). A top-level lookup consults finders only: nothing is imported."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def code_problems(plan: DagPlan, dags_folder: str) -> list[Problem]:
    """A problem at the ``python:`` value of each local-runner step whose module's top-level
    package or module is neither in the step's code folder (under ``dags_folder``, the folder
    the plan's paths are relative to), nor at the dags folder's root, nor installed."""
    problems = []
    for task in plan.tasks:
        run = task.body
        if not isinstance(run, RunPlan) or run.runner != Runner.LOCAL or run.command is None:
            continue
        if not run.command.runs_runtime or run.code_folder is None:
            continue
        top = run.command.function.partition(":")[0].split(".")[0]
        code = os.path.normpath(os.path.join(dags_folder, run.code_folder))
        searched = list(dict.fromkeys([code, os.path.normpath(dags_folder)]))
        if importlib.machinery.PathFinder.find_spec(top, searched) is not None or _installed(top):
            continue
        where = " or ".join(searched)
        problems.append(
            Problem(
                ("steps", run.step, "python"),
                f"module `{top}` of `{run.command.function}` is not beside this spec: no `{top}/` package or "
                f"`{top}.py` in {where}, and it is not installed here. The local runner imports step code from "
                f"the spec's folder: put `{top}/` beside the spec, or fix the module path",
            )
        )
    return problems
