"""The environment contract between the task that starts a step and the step itself.

The runners write these variables (``runners.environment``) and the runtime reads them: every
name, and the runtime's own command line, is defined here and only here.
``command`` steps in any language read the same variables.
"""

from __future__ import annotations

import json

DAG_ID = "AQ_DAG_ID"
RUN_ID = "AQ_RUN_ID"
STEP = "AQ_STEP"
ARTIFACTS = "AQ_ARTIFACTS"  # the artifact store root
OUTPUT = "AQ_OUTPUT"  # where the step writes its output
INPUT_PREFIX = "AQ_INPUT_"  # AQ_INPUT_<NAME>: where an input's producer wrote its output
INPUTS = "AQ_INPUTS"  # JSON: the inputs' names as written in the spec, in order, and their form
ARGS = "AQ_ARGS"  # JSON: the step's `args:` (Airflow-templated)
CONTEXT = "AQ_CONTEXT"  # JSON: Airflow context values (run_id, ds, logical_date, params)
ITEM = "AQ_ITEM"  # JSON: a `foreach:` step's item (a python step's function gets it as `item`)
MAP_INDEX = "AQ_MAP_INDEX"  # the item's position in the step's items (its output is under `{step}/{index}/`)

FUNCTION_FLAG = "--function"  # python -m aq_airflow.runtime --function module:function


def runtime_command(python: str) -> list[str]:
    """The command of a python step: the aq runtime under ``python``."""
    return [python, "-m", "aq_airflow.runtime"]


def runtime_arguments(function: str) -> list[str]:
    """The runtime's arguments: the step's ``module:function``."""
    return [FUNCTION_FLAG, function]


def input_variable(name: str) -> str:
    """The variable holding an input's location (environment names are upper case)."""
    return INPUT_PREFIX + name.upper()


def encode_inputs(names: list[str], as_list: bool) -> str:
    """``AQ_INPUTS``: a list input (``inputs: [a, b]``) binds by name, then in order; a map
    (``inputs: {arg: step}``) binds by name only."""
    return json.dumps({"names": names, "form": "list" if as_list else "map"})


def encode_gathered(inputs: str, gathered: list[str]) -> str:
    """``AQ_INPUTS`` with the inputs that are fan-ins (every item's output of a mapped step: its
    ``AQ_INPUT_<NAME>`` is the step's folder, with ``_items.json`` and ``0/``, ``1/``, ...)."""
    return json.dumps({**json.loads(inputs), "gather": gathered}) if gathered else inputs


def decode_gathered(env: dict[str, str]) -> set[str]:
    """The names of the inputs that are fan-ins (see :func:`encode_gathered`)."""
    return set(json.loads(env.get(INPUTS) or "{}").get("gather", ()))


def decode_inputs(env: dict[str, str]) -> tuple[dict[str, str], bool]:
    """The inputs (exact name -> location, in spec order) and whether they were written as a list."""
    declared = json.loads(env.get(INPUTS) or '{"names": [], "form": "map"}')
    return {name: env[input_variable(name)] for name in declared["names"]}, declared["form"] == "list"
