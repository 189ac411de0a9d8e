"""Read a spec file into a validated :class:`Pipeline`, or a :class:`SpecError` whose every
issue names the file, line and column and says how to fix it.

The good path costs one C-YAML load and one pydantic validation; the node tree used to find
positions is built only when there is something to report.
"""

from __future__ import annotations

import difflib
import graphlib
import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pydantic
import yaml

from aq_airflow.spec import models
from aq_airflow.spec import types as spec_types
from aq_airflow.spec.errors import SpecError, SpecIssue
from aq_airflow.spec.secrets import secret_values
from aq_airflow.spec.yamlpos import compose, load_yaml, locate

SPEC_SUFFIXES = (".aq.yaml", ".aq.yml")


def spec_paths(folder: str) -> list[str]:
    """Every spec file under ``folder``, sorted; hidden and dunder folders skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        found += [os.path.join(root, f) for f in sorted(files) if f.endswith(SPEC_SUFFIXES)]
    return found


@dataclass(frozen=True)
class Problem:
    """An issue found by a later stage, located by its path in the YAML document."""

    path: tuple
    message: str
    at_key: bool = False


class ProblemsFound(Exception):
    """Raised by stages after parsing (reference checks, the planner) with located problems."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


@dataclass(frozen=True)
class SpecFile:
    """A spec file's text, its content hash, and (lazily) its node tree for error positions."""

    path: str
    text: str
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.text.encode()).hexdigest())

    @classmethod
    def read(cls, path: str | os.PathLike) -> SpecFile:
        with open(path, encoding="utf-8") as handle:
            return cls(str(path), handle.read())

    @property
    def default_dag_id(self) -> str:
        """The file name without its ``.aq.yaml`` suffix."""
        name = os.path.basename(self.path)
        for suffix in SPEC_SUFFIXES:
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return os.path.splitext(name)[0]

    @cached_property
    def _tree(self) -> yaml.Node | None:
        try:
            return compose(self.text)
        except yaml.YAMLError:
            return None

    def issue(self, problem: Problem) -> SpecIssue:
        line, col = locate(self._tree, problem.path, want_key=problem.at_key)
        return SpecIssue(self.path, line, col, problem.message)

    def error(self, problems: list[Problem]) -> SpecError:
        return SpecError([self.issue(p) for p in problems])


def _vocabulary() -> list[str]:
    """Every key any spec model accepts (pipelines, steps, checks, profiles), for hints."""
    words: set[str] = set()
    pending = [models.Model]
    while pending:
        model = pending.pop()
        pending += model.__subclasses__()
        words |= {info.alias or name for name, info in model.model_fields.items()}
    return sorted(words)


def _pattern_descriptions() -> dict[str, str]:
    """Pattern -> what it means in words, from the ``Annotated`` spec types."""
    found: dict[str, str] = {}
    for value in vars(spec_types).values():
        for meta in getattr(value, "__metadata__", ()):
            pattern = getattr(meta, "pattern", None) or next(
                (m.pattern for m in getattr(meta, "metadata", ()) if hasattr(m, "pattern")), None
            )
            if pattern and meta.description:
                found.setdefault(pattern, meta.description.rstrip(".")[0].lower() + meta.description.rstrip(".")[1:])
    return found


_PATTERNS = _pattern_descriptions()
_TYPE_ERRORS = ("_type", "_parsing", "literal_error", "union_tag_invalid")


def _data_path(data: Any, loc: tuple) -> tuple:
    """The part of a pydantic ``loc`` that exists in the data (drops union member tags)."""
    path: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and part == "schema_" and "schema" in node:
            node = node["schema"]
            path.append("schema")
        elif isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and len(loc) and part == loc[-1] and not isinstance(part, int):
            path.append(part)  # a missing or unknown key: keep it, to name it
            break
    return tuple(path)


def _pattern_text(pattern: str) -> str:
    return _PATTERNS.get(pattern, f"text matching {pattern}")


def _describe(error: dict, path: tuple) -> tuple[str, bool]:
    if error["loc"] and error["loc"][-1] == "[key]":
        pattern = error.get("ctx", {}).get("pattern", "")
        return (
            f"`{error['input']}` is not a valid name here; expected {_pattern_text(pattern)}",
            True,
        )
    where = ".".join(str(p) for p in path)
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(path[-1])
        close = difflib.get_close_matches(key, _vocabulary(), n=1, cutoff=0.7)
        hint = f"; did you mean `{close[0]}`?" if close else "; remove it or check the spec reference"
        return f"unknown key `{key}`{hint}", True
    if kind == "missing":
        return f"missing required key `{path[-1]}`", False
    message = error["msg"].removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        pattern = error["ctx"]["pattern"]
        message = (
            f"`{error['input']}` is not allowed here; expected {_PATTERNS.get(pattern, 'text matching ' + pattern)}"
        )
    return (f"{where}: {message}" if where else message), False


def validation_problems(data: Any, exc: pydantic.ValidationError) -> list[Problem]:
    """Turn pydantic errors into located problems, one per place, dropping the noise of
    union members that did not apply."""
    located = [(_data_path(data, e["loc"]), e) for e in exc.errors(include_url=False)]
    kept: dict[tuple, dict] = {}
    for path, error in located:
        is_type = error["type"].endswith(_TYPE_ERRORS) or error["type"] in _TYPE_ERRORS
        deeper = any(p != path and p[: len(path)] == path for p, _ in located)
        if is_type and (deeper or any(p == path and not e["type"].endswith(_TYPE_ERRORS) for p, e in located)):
            continue
        kept.setdefault(path, error)
    problems = []
    for path, error in kept.items():
        message, at_key = _describe(error, path)
        if error["type"] == "missing":
            path = path[:-1]
        problems.append(Problem(path, message, at_key))
    return problems


def reference_problems(pipeline: models.Pipeline) -> list[Problem]:
    """Step references that name no step, and cycles (with the cycle's path)."""
    names = list(pipeline.steps)
    problems: list[Problem] = []
    graph: dict[str, set[str]] = {}
    for name, step in pipeline.steps.items():
        refs: list[tuple[tuple, str]] = []
        if isinstance(step.inputs, dict):
            refs += [(("steps", name, "inputs", arg), producer) for arg, producer in step.inputs.items()]
        else:
            refs += [(("steps", name, "inputs", i), producer) for i, producer in enumerate(step.inputs or [])]
        refs += [(("steps", name, "depends_on", i), other) for i, other in enumerate(step.depends_on)]
        graph[name] = set()
        for path, other in refs:
            if other == name:
                problems.append(Problem(path, f"step `{name}` cannot depend on itself"))
            elif other not in pipeline.steps:
                close = difflib.get_close_matches(other, names, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else f"; steps are: {', '.join(names)}"
                problems.append(Problem(path, f"`{other}` is not a step of this pipeline{hint}"))
            else:
                graph[name].add(other)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as cycle:
        path = cycle.args[1]
        problems.append(Problem(("steps", path[0]), f"steps form a cycle: {' -> '.join(reversed(path))}"))
    return problems


def parse_spec(spec_file: SpecFile) -> models.Pipeline:
    """Validate a spec file; raises :class:`SpecError` listing every problem with its position."""
    try:
        data = load_yaml(spec_file.text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        raise SpecError([SpecIssue(spec_file.path, line, col, f"YAML syntax: {reason}")]) from None
    except yaml.reader.ReaderError as exc:
        before = spec_file.text[: exc.position]
        line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        message = f"YAML syntax: character {exc.character!r} is not allowed in YAML; remove it or write it escaped"
        raise SpecError([SpecIssue(spec_file.path, line, col, message)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(spec_file.path, 1, 1, f"YAML syntax: {exc}")]) from None
    if not isinstance(data, dict):
        raise SpecError([SpecIssue(spec_file.path, 1, 1, "a spec is a mapping with at least `steps:`")])
    # credentials pasted as values, anywhere: reported with the model's own errors
    secrets = [Problem(path, message) for path, message in secret_values(data)]
    try:
        pipeline = models.Pipeline.model_validate(data)
    except pydantic.ValidationError as exc:
        raise spec_file.error(secrets + validation_problems(data, exc)) from None
    problems = secrets + reference_problems(pipeline)
    if problems:
        raise spec_file.error(problems)
    return pipeline
