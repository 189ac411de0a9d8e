"""Names a python step's `args:` and inputs may not take: the ones its function already gets.

The runtime (``runtime.step.call_arguments``) passes a python step's function its inputs, its
`args:` and the run's context values (``run_id``, ``ds``, ``logical_date``, ``params``; in a
`foreach:` step also the ``item``) by name, inputs first, then args, then context. An arg or
input of one of those names silently replaces the value: ``args: {item: hello}`` on a `foreach:`
step gives every item ``hello``, ``inputs: {ds: orders}`` hides the run's date. Each is a located
error at the key, with the rename. Inputs bind to parameters ignoring case, so they are compared
ignoring case; args bind exactly.

Only python steps: a command step reads its args (``AQ_ARGS``), inputs (``AQ_INPUT_<NAME>``),
context (``AQ_CONTEXT``) and item (``AQ_ITEM``) from separate variables, and an ``operator:``
step's args are its operator's keyword arguments.

Every step's ``env:`` (and ``defaults: env:``) may not name a variable starting with ``AQ_``:
those are aq-airflow's (``runtime.contract``), set for the step, and a value of the user's would
replace one or stand beside it (``AQ_ITEM`` beside a large item's ``AQ_ITEM_FROM`` is read first).
"""

from __future__ import annotations

from aq_airflow.artifacts.model_repository import MODELS_FOLDER
from aq_airflow.artifacts.root import CODE_FOLDER
from aq_airflow.pipeline_spec.models import Pipeline, Step
from aq_airflow.runtime.contract import CONTEXT_NAMES, ITEM, ITEM_FROM, ITEM_NAME

_CONTEXT = ", ".join(f"`{n}`" for n in CONTEXT_NAMES)


def reserved_names(step: Step) -> tuple[str, ...]:
    """The names a python step's function gets from the runtime (none for other kinds)."""
    if step.kind != "python":
        return ()
    return (*CONTEXT_NAMES, ITEM_NAME) if step.foreach is not None else CONTEXT_NAMES


def _clash(what: str, name: str) -> str:
    """What ``what`` (an arg or input, as written) called ``name`` (a reserved name) would do."""
    if name == ITEM_NAME:
        return f"{what} would replace every item of this `foreach:` step (its function gets its item as `{name}`)"
    return (
        f"{what} would hide the run's `{name}` from the function (a python step's function gets {_CONTEXT} "
        "from the run by name)"
    )


def _renamed(step: Step, clashes: set[str]) -> str:
    """The step's inputs in the map form, each clashing argument renamed."""
    inputs = step.input_map
    return "{" + ", ".join(f"{f'{a}_input' if a in clashes else a}: {p}" for a, p in inputs.items()) + "}"


def reserved_name_problems(pipeline: Pipeline) -> list[tuple[tuple, str, bool]]:
    """(path, message, at_key) for each `args:` key or input of a python step named after a value
    the runtime passes its function."""
    problems: list[tuple[tuple, str, bool]] = []
    for name, step in pipeline.steps.items():
        reserved = reserved_names(step)
        if not reserved:
            continue
        for key in step.args or {}:
            if key == ITEM_NAME and key in reserved:
                message = (
                    "arg `item` would replace every item of this `foreach:` step: rename the arg; a foreach step "
                    "gets its item as `item`"
                )
                problems.append((("steps", name, "args", key), message, True))
            elif key in reserved:
                message = f"{_clash(f'arg `{key}`', key)}: rename the arg, e.g. `{key}_value`, and the parameter"
                problems.append((("steps", name, "args", key), message, True))
        lowered = {r.lower(): r for r in reserved}
        clashes = {a: lowered[a.lower()] for a in step.input_map if a.lower() in lowered}
        if not clashes:
            continue
        fix = f"`inputs: {_renamed(step, set(clashes))}`"
        if isinstance(step.inputs, dict):
            for argument, taken in clashes.items():
                message = f"{_clash(f'input `{argument}`', taken)}: give the input another name, {fix}"
                problems.append((("steps", name, "inputs", argument), message, True))
        else:
            for index, producer in enumerate(step.inputs or []):
                if producer in clashes:
                    what = f"input `{producer}` (the list form names an input after its step)"
                    message = f"{_clash(what, clashes[producer])}: name its argument with the map form, {fix}"
                    problems.append((("steps", name, "inputs", index), message, False))
    return problems


RESERVED_ENV_PREFIX = "AQ_"  # every name in runtime.contract starts so


def _env_message(variable: str) -> str:
    why = {
        ITEM: f"{ITEM} is a `foreach:` step's item, read before a large item's {ITEM_FROM}",
        ITEM_FROM: f"{ITEM_FROM} names the file of a `foreach:` step's large item",
    }.get(variable, "aq-airflow sets them for every step")
    return (
        f"env `{variable}`: `{RESERVED_ENV_PREFIX}` names are aq-airflow's own ({why}): a value here would replace "
        f"or contradict it; rename the variable, e.g. `MY_{variable.removeprefix(RESERVED_ENV_PREFIX)}`"
    )


def reserved_env_problems(pipeline: Pipeline) -> list[tuple[tuple, str, bool]]:
    """(path, message, at_key) for each `env:` variable, in `defaults:` or a step, named like one
    of aq-airflow's own (``AQ_...``)."""
    places = [(("defaults", "env"), pipeline.defaults.env)]
    places += [(("steps", name, "env"), step.env) for name, step in pipeline.steps.items()]
    return [
        ((*where, variable), _env_message(variable), True)
        for where, env in places
        for variable in env or {}
        if variable.startswith(RESERVED_ENV_PREFIX)
    ]


def reserved_dag_id(dag_id: str) -> str | None:
    """Why a pipeline may not have this dag_id, or None: its folder in the artifact store,
    ``<root>/<dag_id>/``, would be the folder of the code packages (``<root>/_code/``) or of the
    served models (``<root>/_models/``)."""
    what = {CODE_FOLDER: "code packages", MODELS_FOLDER: "served models"}.get(dag_id)
    if what is None:
        return None
    return (
        f"`{dag_id}` is the name of the artifact store's folder of {what} (`<artifacts>/{dag_id}/`), "
        "which no pipeline's outputs may share: give the pipeline another name (`pipeline:` or the file name)"
    )
