"""Runs one ``python`` step: read its inputs, call the user's function, commit its output.

Everything arrives through the environment the compiler puts on the pod (or the local runner on
the process); :mod:`aq_airflow.runtime.contract` names every variable.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import resource
import sys
import time
import traceback
from typing import Any

import pyarrow as pa

from aq_airflow.artifacts.items import gather, read_item
from aq_airflow.artifacts.provenance import PROVENANCE
from aq_airflow.artifacts.store import Location, MissingArtifact
from aq_airflow.runtime import code, contract, record
from aq_airflow.runtime.engines import Engine
from aq_airflow.runtime.failures import StepFailed
from aq_airflow.runtime.imports import MissingModule
from aq_airflow.runtime.param_limits import FIX
from aq_airflow.runtime.which_engine import engine_for


def _import(path: str, env: dict[str, str]):
    """The step's function, from its code package when one is shipped (``runtime.code``: first on
    the path, its imports checked first), else from what this Python has installed."""
    module_name, _, attr = path.partition(":")
    folder = code.use_package(env)
    if folder:
        code.check_imports(folder, module_name, env)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except ModuleNotFoundError as error:
        lacking = None if error.name and error.name.partition(".")[0] == module_name.partition(".")[0] else error
        raise (lacking and _lacking(lacking, folder, env)) or StepFailed(
            f"cannot import `{path}`:\n{traceback.format_exc(limit=-4)}".rstrip()
        ) from None
    except (Exception, SystemExit):  # a module calling sys.exit(...) as it is imported: its own failure
        raise StepFailed(f"cannot import `{path}`:\n{traceback.format_exc(limit=-4)}".rstrip()) from None
    if not callable(target):
        raise StepFailed(f"`{path}` is a {type(target).__name__}, not a function")
    return target


def _lacking(error: ModuleNotFoundError, folder: str | None, env: dict[str, str]) -> code.MissingDependency | None:
    """A module this Python does not have (not the step's own module: that is the step's code
    missing, the user's error), imported by the step's code while it ran (an import
    the static check leaves to run time: in a function, under a condition), as the runtime's
    missing-dependency failure with the file and line of the import; None when the missing
    module is not an installable one (the package's own module misspelt: the user's traceback
    says more)."""
    top = (error.name or "").partition(".")[0]
    if not top or importlib.util.find_spec(top) is not None:
        return None
    if folder and (os.path.isdir(os.path.join(folder, top)) or os.path.isfile(os.path.join(folder, f"{top}.py"))):
        return None
    machinery = os.path.dirname(importlib.__file__)  # importlib's own frames are not where the import is
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith("<") and os.path.dirname(f.filename) != machinery
    ]
    if not frames:
        return None
    where = frames[-1]
    path = where.filename
    if folder and os.path.commonpath([os.path.abspath(path), folder]) == folder:
        path = os.path.relpath(path, folder).replace(os.sep, "/")
    return code.missing_dependency([MissingModule(top, path, where.lineno or 0)], env)


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _bind_inputs(
    function, parameters: dict, inputs: dict[str, str], as_list: bool, taken: set, takes_any: bool, step: str
) -> dict:
    """{parameter: input} for the step's inputs. By name first (exactly, then ignoring case when
    one parameter matches); a list input that names no parameter then takes the next parameter
    that nothing else fills (not an `args:` entry or a context value), in order; what is left
    goes to ``**kwargs`` or is an error."""
    named = [p for p, spec in parameters.items() if spec.kind not in (spec.VAR_KEYWORD, spec.VAR_POSITIONAL)]
    bound = {name: name for name in inputs if name in named}
    for name in [n for n in inputs if n not in bound]:  # `Prices` into `prices`: by name, whatever the case
        same = [p for p in named if p.lower() == name.lower() and p not in bound]
        if len(same) == 1:
            bound[same[0]] = name
    rest = [name for name in inputs if name not in bound.values()]
    if as_list:
        free = [p for p in named if p not in bound and p not in taken]
        for parameter, name in zip(free, list(rest), strict=False):
            bound[parameter] = name
            rest.remove(name)
    if rest and not takes_any:
        fix = ", ".join(f"{p}: {i}" for p, i in zip(named, inputs, strict=False)) or "..."
        raise StepFailed(
            f"step `{step}`: input(s) {', '.join(f'`{n}`' for n in rest)} match no parameter of "
            f"`{function.__qualname__}({', '.join(named)})`; its inputs are {', '.join(inputs)}. "
            f"Name the parameter each input goes to with the map form, e.g. `inputs: {{{fix}}}`"
        )
    bound.update({name: name for name in rest})  # into **kwargs
    return bound


def call_arguments(
    function, env: dict[str, str], step: str, digests: dict | None = None, engine: Engine | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``function`` from inputs, spec args and Airflow context values (and
    the ``engine``'s values, read as its inputs are: a spark step's DataFrames).
    ``digests`` gets each input's manifest digest as it is read (a fan-in's: None), for the
    output's provenance."""
    engine = engine or Engine()
    args = json.loads(env.get(contract.ARGS) or "{}")
    context = {**engine.values(), **json.loads(env.get(contract.CONTEXT) or "{}")}
    refused = context.pop(contract.REFUSED_PARAMS, None) or {}  # params past the limits, left out
    declared = contract.decode_inputs(env)
    inputs = declared.locations
    parameters = dict(inspect.signature(function).parameters)
    if contract.ITEM in env:  # a `foreach:` step: the item is the parameter `item`
        context[contract.ITEM_NAME] = json.loads(env[contract.ITEM])
    elif contract.ITEM_FROM in env:  # a large item, in the artifact store: read when a parameter takes it
        try:
            context[contract.ITEM_NAME] = (
                read_item(env[contract.ITEM_FROM], step) if contract.ITEM_NAME in parameters else None
            )
        except MissingArtifact as missing:
            raise StepFailed(f"step `{step}`: {missing}") from None
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    bound = _bind_inputs(function, parameters, inputs, declared.as_list, set(args) | set(context), takes_any, step)
    kwargs: dict[str, Any] = {}
    for parameter_name, input_name in bound.items():
        parameter = parameters.get(parameter_name)
        annotation = parameter.annotation if parameter is not None else None
        try:
            producer = declared.producers[input_name]
            read = gather if input_name in declared.gathered else engine.read_input
            location = Location.of(inputs[input_name])
            kwargs[parameter_name] = read(location, producer, annotation)
            if digests is not None:
                digests[input_name] = location.manifest_digest if input_name not in declared.gathered else None
        except MissingArtifact as missing:
            raise StepFailed(f"step `{step}`, input `{input_name}`: {missing}") from None
    for name, parameter in parameters.items():
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL) or name in kwargs:
            continue
        if name in args:
            kwargs[name] = args[name]
        elif name == "params" and refused:  # only a function that reads the params fails for them
            reasons = "; ".join(why.removesuffix(f"; {FIX}") for why in refused.values())
            raise StepFailed(
                f"step `{step}`: `{function.__qualname__}` takes `params`, and the run's params do not fit: "
                f"{reasons}; {FIX}"
            )
        elif name in context:
            kwargs[name] = context[name]
        elif parameter.default is parameter.empty:
            raise StepFailed(
                f"`{function.__qualname__}` needs `{name}`, which is not an input, an `args:` entry of step "
                f"`{step}` or a context value ({', '.join(sorted(context)) or 'none'})"
            )
    if takes_any:
        kwargs.update({k: v for k, v in args.items() if k not in kwargs})
    return kwargs


def run_step(function_path: str, env: dict[str, str]) -> dict:
    """Run the step; returns its committed manifest. Raises :class:`StepFailed`, or a
    ``runtime.code.CodeProblem`` when its code package or a module it imports is missing."""
    step = env.get(contract.STEP, "?")
    output = env.get(contract.OUTPUT)
    if not output:
        raise StepFailed(f"step `{step}`: {contract.OUTPUT} is not set; this command runs inside an aq-airflow task")
    started, began = time.perf_counter(), record.now()
    engine = engine_for(env)
    engine.prepare()
    function = _import(function_path, env)
    engine.start(env)
    try:
        return _run(function, function_path, env, step, output, engine, started, began)
    finally:
        engine.stop()


def _run(function, function_path: str, env: dict[str, str], step: str, output: str, engine: Engine,
         started: float, began: str) -> dict:  # fmt: skip
    digests: dict[str, str | None] = {}
    kwargs = call_arguments(function, env, step, digests, engine)
    location = Location.of(output)
    attempt = location.begin()
    user_started = time.perf_counter()
    try:
        value = function(**kwargs)
    except ModuleNotFoundError as error:  # an import the static check does not require (in a function)
        raise _lacking(error, code.package_folder(env), env) or StepFailed(
            f"step `{step}`: `{function_path}` raised an exception:\n{traceback.format_exc()}".rstrip()
        ) from None
    except SystemExit as exit:  # its own failure (exit code 1), never one of the runtime's (3, 4)
        raise StepFailed(
            f"step `{step}`: `{function_path}` called sys.exit({exit.code!r}) instead of returning"
        ) from None
    except Exception as error:
        raise StepFailed(
            f"step `{step}`: `{function_path}` raised an exception:\n{engine.failure(error)}".rstrip()
        ) from None
    user_seconds = time.perf_counter() - user_started
    try:
        stored = engine.write_output(location, attempt, value, step)
    except TypeError as error:
        raise StepFailed(f"step `{step}`: {error}") from None
    manifest = {
        **stored,
        "step": step,
        "function": function_path,
        "attempt": attempt,
        "uri": output,
        "seconds": round(time.perf_counter() - started, 3),
        "user_seconds": round(user_seconds, 3),
        "peak_rss_mib": _peak_rss_mib(),
        "peak_arrow_mib": round(pa.default_memory_pool().max_memory() / 2**20, 1),
        PROVENANCE: record.provenance(env, began, record.now(), digests=digests).to_json(),
    }
    return location.commit(manifest)


def main(argv: list[str]) -> int:
    if argv[:1] == [contract.SCRIPT_FLAG] and len(argv) >= 3 and argv[2] == "--":  # a Spark script
        from aq_airflow.runtime.spark import run_script

        return _reported(lambda: run_script(argv[1], argv[3:], dict(os.environ)))
    if len(argv) != 2 or argv[0] != contract.FUNCTION_FLAG:
        print(
            f"usage: python -m aq_airflow.runtime {contract.FUNCTION_FLAG} package.module:function\n"
            f"       python -m aq_airflow.runtime {contract.COMMAND_FLAG} -- command [args...]\n"
            f"       python -m aq_airflow.runtime {contract.SCRIPT_FLAG} script.py -- [args...]",
            file=sys.stderr,
        )
        return contract.EXIT_USAGE
    return _reported(lambda: run_step(argv[1], dict(os.environ)))


def _reported(run) -> int:
    """Run the step; its manifest on stdout, or its one-line failure (the runtime's marker) and
    exit code."""
    try:
        manifest = run()
    except StepFailed as failure:
        print(f"{contract.RUNTIME_MARKER}{failure}", file=sys.stderr)
        return contract.EXIT_STEP_FAILED
    except code.CodeProblem as problem:
        return code.report(problem)
    print(json.dumps(manifest))
    return 0
