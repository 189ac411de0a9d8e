"""Where a python, spark or ray step's module (or a Spark script) is looked for, checked before
it runs (``validate``, ``dagbag``).

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
    package or module is not where the step will import it from: its code folder (under
    ``dags_folder``, the folder the plan's paths are relative to), which is shipped as its code
    package; with ``code: image``, the dags folder's root (the worker's path); or installed."""
    problems = []
    for task in plan.tasks:
        run = task.body
        if not isinstance(run, RunPlan) or run.runner != Runner.LOCAL or run.command is None:
            continue
        if not run.command.runs_runtime:
            continue
        if run.command.script is not None:  # a Spark script: a file of the code folder
            folder = os.path.join(dags_folder, run.code_folder or ".")
            if not os.path.isfile(os.path.join(folder, run.command.script)):
                where = "the code folder" if run.code_folder is not None else "the dags folder's root (`code: image`)"
                problems.append(
                    Problem(
                        ("steps", run.step, "spark", "file"),
                        f"no `{run.command.script}` in {where}, {os.path.normpath(folder)}: the script is "
                        "relative to it; fix the path",
                    )
                )
            continue
        top = run.command.function.partition(":")[0].split(".")[0]
        shipped = run.code_folder is not None
        searched = [os.path.normpath(os.path.join(dags_folder, run.code_folder if shipped else "."))]
        if importlib.machinery.PathFinder.find_spec(top, searched) is not None or _installed(top):
            continue
        if shipped:
            why = (
                f"module `{top}` of `{run.command.function}` is not beside this spec: no `{top}/` package or "
                f"`{top}.py` in {searched[0]}, and it is not installed here. The steps import their code from the "
                f"spec's folder (or the folder `code:` names), shipped as its code package: put `{top}/` there, or "
                "fix the module path"
            )
        else:
            why = (
                f"module `{top}` of `{run.command.function}` is not installed here, nor at the dags folder's root "
                f"{searched[0]}: with `code: image` a local step imports what the worker's Python has; install it, "
                "or drop `code: image` to ship the spec's folder"
            )
        problems.append(Problem(("steps", run.step, str(run.kind)), why))
    return problems
