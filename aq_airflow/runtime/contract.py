"""The environment contract between the task that starts a step and the step itself.

The runners write these variables (``runners.environment``) and the runtime reads them: every
name, and the runtime's own command line, is defined here and only here.
``command`` steps in any language read the same variables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aq_airflow.artifacts.root import ARTIFACTS  # noqa: F401  (the artifact store root, named where it is resolved)

DAG_ID = "AQ_DAG_ID"
RUN_ID = "AQ_RUN_ID"
STEP = "AQ_STEP"
OUTPUT = "AQ_OUTPUT"  # where the step writes its output
INPUT_PREFIX = "AQ_INPUT_"  # AQ_INPUT_<NAME>: where an input's producer wrote its output
INPUTS = "AQ_INPUTS"  # JSON: the inputs' names as written in the spec, in order, and their form
ARGS = "AQ_ARGS"  # JSON: the step's `args:` (Airflow-templated)
CONTEXT = "AQ_CONTEXT"  # JSON: Airflow context values (run_id, ds, logical_date, params)
# In AQ_CONTEXT: {param: why} for the run's params left out of `params` (past runtime.param_limits)
REFUSED_PARAMS = "refused_params"
ITEM = "AQ_ITEM"  # JSON: a `foreach:` step's item (a python step's function gets it as `item`)
# instead of AQ_ITEM for an item too large for the environment (`artifacts.item_refs`): the location
# (a path or URI in the artifact store, as AQ_OUTPUT) of a file holding the item's JSON
ITEM_FROM = "AQ_ITEM_FROM"
MAP_INDEX = "AQ_MAP_INDEX"  # the item's position in the step's items (its output is under `{step}/{index}/`)
# The folder a plan's code folders are relative to (`RunPlan.code_folder`), in the worker's own
# environment: by default the dags folder, the loader file's. `aq-airflow run` runs a spec from a
# temporary dags folder and names the spec's real folder here, so its code is packaged from there.
CODE_ROOT = "AQ_CODE_ROOT"
# Folders (os.pathsep-separated) the worker never puts in a code package, whatever the ignore
# files say: `aq-airflow run` names its workdir (outputs, warehouse) here, which may sit in the
# spec's folder. The worker's local artifact store and Airflow home are never packaged either.
CODE_EXCLUDE = "AQ_CODE_EXCLUDE"
# The step's code package (``artifacts.code_package``), set by the task that starts the step
# (``runners.code``), in a pod and in a local process alike: where it is in the artifact store and
# its digest (``sha256:<hex>``, pinned once per DAG run: every task and retry of the run gets the
# same). The runtime (``runtime.code``) fetches it, checks the digest, extracts it once per digest
# under CODE_CACHE and puts that folder first on the import path before a python step's function
# is imported; a command step runs through ``--command`` (COMMAND_FLAG) in a fresh copy of that
# folder of its own (its working directory, first on PYTHONPATH; removed when the command exits).
# Unset (`code: image`): nothing is shipped, and the step runs the code its image (on the local
# runner, the worker's Python) has installed.
CODE_URI = "AQ_CODE_URI"
CODE_DIGEST = "AQ_CODE_DIGEST"
# Where packages are extracted, one folder per digest, shared by the steps on one machine or node
# (default: ``aq-airflow-code`` in the temporary folder); read from the step's own environment
# (the worker's, for a local process; the image's or the node's, for a pod)
CODE_CACHE = "AQ_CODE_CACHE"
# JSON {"commit": sha, "dirty": bool, "remote": url or null} of the code folder's git checkout where it is one
# (provenance; `remote` without credentials, absent in pins of a release before it)
CODE_GIT = "AQ_CODE_GIT"
# A spark or ray step: the engine the runtime starts before the step's code runs (`runtime.engines`),
# and its settings as JSON (Spark's `spark_conf`, Ray's `runtime_env`); unset for a python step
ENGINE = "AQ_ENGINE"
ENGINE_CONF = "AQ_ENGINE_CONF"
IMAGE = "AQ_IMAGE"  # the image as the spec names it (a local step: unset)
SPEC_HASH = "AQ_SPEC_HASH"  # the sha256 of the spec's text (provenance)
TRY_NUMBER = "AQ_TRY_NUMBER"  # Airflow's try number of the task that started the step

# The runtime's exit codes: the step's own failure, and the two that are not the user code's: a
# package that cannot be fetched or is not what its digest says, and a module the step's code
# imports that the image does not have (named before the user's code runs, with the file and line
# importing it). The operators turn 3 and 4 into their own failure reasons (``runners.code``)
# when the runtime said so (RUNTIME_MARKER).
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_CODE_PACKAGE = 3
EXIT_MISSING_DEPENDENCY = 4
# How the runtime's own failure lines start (its last line, and a pod's termination message): the
# operators take exit codes 3 and 4 for the runtime's only with it, as a user command (exec'd by
# `--command`) or a plain command step may exit 3 or 4 for reasons of its own
RUNTIME_MARKER = "aq-airflow: "

# The names a python step's function gets by name besides its inputs and `args:` (runtime.step):
# the run's context values (AQ_CONTEXT; runners.environment.CONTEXT_TEMPLATE renders exactly these)
# and, in a `foreach:` step, the item. An input or arg of the same name would replace the value
# (inputs > args > context), so the spec refuses them there (pipeline_spec.reserved).
CONTEXT_NAMES = ("run_id", "ds", "logical_date", "params")
ITEM_NAME = "item"

FUNCTION_FLAG = "--function"  # python -m aq_airflow.runtime --function module:function
# python -m aq_airflow.runtime --command -- argv...: a command step with a code package, run in
# the package's extracted folder once it is fetched
COMMAND_FLAG = "--command"
# python -m aq_airflow.runtime --script FILE -- args...: a spark step's `{file: ...}` (relative to the
# code package, else to the working directory), run as spark-submit runs a script, its output committed
SCRIPT_FLAG = "--script"

# Linux starts no process with one environment string ("NAME=value" and its terminating NUL)
# longer than this: MAX_ARG_STRLEN, 32 pages; exec fails with E2BIG, "Argument list too long".
# The same in a pod's container. (All of them together, with the arguments, have a limit too:
# ARG_MAX, a quarter of the stack limit, 2 MiB by default.)
MAX_ENV_STRING = 128 * 1024


def env_string_bytes(name: str, value: str) -> int:
    """The bytes one variable takes of :data:`MAX_ENV_STRING` (and of ARG_MAX): ``NAME=value``
    in UTF-8 and its NUL."""
    return len(name.encode("utf-8", "surrogatepass")) + 1 + len(value.encode("utf-8", "surrogatepass")) + 1


def runtime_command(python: str) -> list[str]:
    """The command of a python step: the aq runtime under ``python``."""
    return [python, "-m", "aq_airflow.runtime"]


def runtime_arguments(function: str) -> list[str]:
    """The runtime's arguments: the step's ``module:function``."""
    return [FUNCTION_FLAG, function]


def script_arguments(script: str, argv: list[str]) -> list[str]:
    """The runtime's arguments for a Spark script and its own arguments."""
    return [SCRIPT_FLAG, script, "--", *argv]


def command_arguments(argv: list[str]) -> list[str]:
    """The runtime's arguments for a command step whose code package is shipped: fetch it, then
    run ``argv`` in a fresh copy of its folder."""
    return [COMMAND_FLAG, "--", *argv]


def input_variable(name: str) -> str:
    """The variable holding an input's location (environment names are upper case)."""
    return INPUT_PREFIX + name.upper()


def encode_inputs(producers: dict[str, str], as_list: bool, gathered: list[str] = ()) -> str:
    """``AQ_INPUTS``: the inputs' names in spec order, the step that produced each (named in the
    runtime's errors), their form and which are fan-ins. A list input (``inputs: [a, b]``) binds
    by name, then in order; a map (``inputs: {arg: step}``) binds by name only. A fan-in's
    ``AQ_INPUT_<NAME>`` is the mapped step's folder, with ``_items.json`` and ``0/``, ``1/``, ..."""
    declared = {"names": list(producers), "producers": producers, "form": "list" if as_list else "map"}
    return json.dumps({**declared, "gather": list(gathered)} if gathered else declared)


@dataclass(frozen=True)
class DeclaredInputs:
    """``AQ_INPUTS`` read back, with each input's location from its ``AQ_INPUT_<NAME>``."""

    locations: dict[str, str]  # exact name -> location, in spec order
    producers: dict[str, str]  # exact name -> the step whose output it is
    as_list: bool
    gathered: frozenset[str]


def decode_inputs(env: dict[str, str]) -> DeclaredInputs:
    """The step's inputs as :func:`encode_inputs` wrote them."""
    declared = json.loads(env.get(INPUTS) or '{"names": [], "form": "map"}')
    return DeclaredInputs(
        locations={name: env[input_variable(name)] for name in declared["names"]},
        producers=declared.get("producers", {}),
        as_list=declared["form"] == "list",
        gathered=frozenset(declared.get("gather", ())),
    )
