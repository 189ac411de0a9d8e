"""Runs one ``python`` step: read its inputs, call the user's function, commit its output.

Everything arrives through environment variables the compiler puts on the pod (or the local
runner on the process): ``AQ_OUTPUT``, ``AQ_INPUT_<ARG>``, ``AQ_ARGS`` (JSON, Airflow-templated),
``AQ_CONTEXT`` (JSON: ``ds``, ``run_id``, ``params``, ...).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import resource
import sys
import time
import traceback
from typing import Any

import pyarrow as pa

from aq_airflow.runtime.artifacts import Location, MissingArtifact
from aq_airflow.runtime.values import read_input, write_output


class StepFailed(Exception):
    """A user-facing failure: the message says which step, which function, which input."""


def _import(path: str):
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception:
        raise StepFailed(f"cannot import `{path}`:\n{traceback.format_exc(limit=-4)}".rstrip()) from None
    if not callable(target):
        raise StepFailed(f"`{path}` is a {type(target).__name__}, not a function")
    return target


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def call_arguments(function, env: dict[str, str], step: str) -> dict[str, Any]:
    """Keyword arguments for ``function`` from inputs, spec args and Airflow context values."""
    args = json.loads(env.get("AQ_ARGS") or "{}")
    context = json.loads(env.get("AQ_CONTEXT") or "{}")
    inputs = {k.removeprefix("AQ_INPUT_").lower(): v for k, v in env.items() if k.startswith("AQ_INPUT_")}
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(set(inputs) - set(parameters)) if not takes_any else []
    if unknown:
        raise StepFailed(
            f"step `{step}` has input(s) {', '.join(unknown)} but `{function.__qualname__}` has no such parameter"
        )
    kwargs: dict[str, Any] = {}
    for name, parameter in parameters.items():
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if name in inputs:
            try:
                producer = inputs[name].rstrip("/").rsplit("/", 1)[-1]  # outputs live in a folder per step
                kwargs[name] = read_input(Location.of(inputs[name]), producer, parameter.annotation)
            except MissingArtifact as missing:
                raise StepFailed(f"step `{step}`, input `{name}`: {missing}") from None
        elif name in args:
            kwargs[name] = args[name]
        elif name in context:
            kwargs[name] = context[name]
        elif parameter.default is parameter.empty:
            raise StepFailed(
                f"`{function.__qualname__}` needs `{name}`, which is not an input, an `args:` entry of step "
                f"`{step}` or a context value ({', '.join(sorted(context)) or 'none'})"
            )
    if takes_any:
        kwargs.update({k: v for k, v in args.items() if k not in kwargs})
        for name, uri in inputs.items():
            if name not in kwargs:
                kwargs[name] = read_input(Location.of(uri), name, None)
    return kwargs


def run_step(function_path: str, env: dict[str, str]) -> dict:
    """Run the step; returns its committed manifest. Raises :class:`StepFailed`."""
    step = env.get("AQ_STEP", "?")
    output = env.get("AQ_OUTPUT")
    if not output:
        raise StepFailed(f"step `{step}`: AQ_OUTPUT is not set; this command runs inside an aq-airflow task")
    started = time.perf_counter()
    function = _import(function_path)
    kwargs = call_arguments(function, env, step)
    location = Location.of(output)
    attempt = location.begin()
    user_started = time.perf_counter()
    try:
        value = function(**kwargs)
    except Exception:
        raise StepFailed(
            f"step `{step}`: `{function_path}` raised an exception:\n{traceback.format_exc()}".rstrip()
        ) from None
    user_seconds = time.perf_counter() - user_started
    try:
        stored = write_output(location, attempt, value)
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
    }
    location.commit(manifest)
    return manifest


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--function":
        print("usage: python -m aq_airflow.runtime --function package.module:function", file=sys.stderr)
        return 2
    try:
        manifest = run_step(argv[1], dict(os.environ))
    except StepFailed as failure:
        print(f"aq-airflow: {failure}", file=sys.stderr)
        return 1
    print(json.dumps(manifest))
    return 0
