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
import re
import stat
import types
import typing
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pydantic
import yaml

from aq_airflow.pipeline_spec import conditions, foreach, models
from aq_airflow.pipeline_spec import types as spec_types
from aq_airflow.pipeline_spec.conditions import condition_problems, referenced_steps
from aq_airflow.pipeline_spec.errors import SpecError, SpecIssue, printable
from aq_airflow.pipeline_spec.foreach import too_many_items
from aq_airflow.pipeline_spec.operator_steps import operator_step_problems
from aq_airflow.pipeline_spec.reserved import reserved_env_problems, reserved_name_problems
from aq_airflow.pipeline_spec.secrets import secret_values
from aq_airflow.pipeline_spec.yamlpos import MAX_SPEC_BYTES, YAMLSpecError, compose, load_yaml_node, locate
from aq_airflow.runtime.param_limits import params_problems

SPEC_SUFFIXES = (".aq.yaml", ".aq.yml")
# Steps in one pipeline (each is up to four Airflow tasks); more is a sign to split it.
MAX_STEPS = 1000


def spec_paths(folder: str) -> list[str]:
    """Every spec path under ``folder``, sorted; hidden and dunder folders skipped.

    Folders named ``*.aq.yaml`` are listed too (and still searched): reading one is an error
    that names it, where skipping it would hide a mistake."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        names = [f for f in files if f.endswith(SPEC_SUFFIXES)] + [d for d in dirs if d.endswith(SPEC_SUFFIXES)]
        found += [os.path.join(root, name) for name in sorted(names)]
    return found


def file_dag_id(path: str) -> str:
    """The dag_id a spec's file name gives: the name without its ``.aq.yaml`` suffix (it may not
    be a valid dag_id; see :func:`file_name_problem`)."""
    name = os.path.basename(path)
    for suffix in SPEC_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


def file_name_problem(path: str) -> str | None:
    """Why the file name of a spec without ``pipeline:`` gives no valid dag_id, or None."""
    dag_id = file_dag_id(path)
    if spec_types.is_dag_id(dag_id):
        return None
    name = os.path.basename(path)
    why = "nothing" if not dag_id else f"`{dag_id}`, which is not one"
    return (
        f"the file name `{name}` gives the dag_id {why}: a dag_id has letters, digits, `_`, `.` and `-`, "
        f"does not start with `.` or `-`, has no `..` and at most {spec_types.DAG_ID_MAX_LENGTH} characters; "
        "rename the file, or set `pipeline:` to the dag_id"
    )


def placeholder_dag_id(path: str) -> str:
    """A valid dag_id for a spec whose file name gives none (``my pipe.aq.yaml``, ``.aq.yaml``),
    so its errors still show in the UI: ``aq_invalid__``, the name's letters and a hash of
    ``path`` (its path in the dags folder: stable across machines, and two names with the same
    letters, ``my pipe`` and ``my+pipe``, never share an id)."""
    words = re.sub(r"[^A-Za-z0-9_-]+", "_", file_dag_id(path)).strip("_-")
    digest = f"{zlib.crc32(path.replace(os.sep, '/').encode('utf-8', 'surrogateescape')):08x}"
    tail = f"{words[: spec_types.DAG_ID_MAX_LENGTH - 21]}_{digest}" if words else digest
    return f"aq_invalid__{tail}"


_PIPELINE_KEY = re.compile(r"^pipeline:[ \t]*(['\"]?)([A-Za-z0-9_.-]+)\1[ \t]*(#.*)?$", re.M)


def _read_problem(path: str, error: OSError) -> str:
    """What a user reads for a spec path that cannot be read, and how to fix it."""
    if isinstance(error, FileNotFoundError) and os.path.islink(path):
        target = os.readlink(path)
        return (
            f"cannot read the file: it is a symbolic link to `{target}`, which does not exist; fix or remove the link"
        )
    if isinstance(error, IsADirectoryError):
        return "this is a folder, not a spec file; rename it so its name does not end in .aq.yaml"
    if isinstance(error, PermissionError):
        return (
            f"cannot read the file: {error.strerror}; make it readable by the user Airflow runs as "
            "(for example `chmod a+r`)"
        )
    return f"cannot read the file: {error.strerror or error}"


def _decode(path: str, raw: bytes) -> str:
    """The file's text; a located error (with the bad byte's line, column and offset) when it is
    not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            message = "the file is UTF-16 text; aq-airflow reads specs as UTF-8: save it as UTF-8"
            raise SpecError([SpecIssue(path, 1, 1, message)]) from None
        start = raw.rfind(b"\n", 0, error.start) + 1
        line = raw.count(b"\n", 0, error.start) + 1
        col = len(raw[start : error.start].decode("utf-8")) + 1
        message = (
            f"the file is not UTF-8 text: byte 0x{raw[error.start]:02x} (offset {error.start} in the file) "
            "cannot be decoded; save the file as UTF-8"
        )
        raise SpecError([SpecIssue(path, line, col, message)]) from None


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
        """Read a spec file; raises :class:`SpecError` (never ``OSError`` or a decoding error)
        for a path that is no readable UTF-8 file within :data:`MAX_SPEC_BYTES`: a broken link,
        a folder, a FIFO or device (opened without blocking, never read), no permission, too
        large, not UTF-8."""
        path = str(path)
        if printable(path) != path:  # bytes that are not UTF-8 in its name (kept as surrogates)
            message = "the file's path is not UTF-8 text (the bytes shown as \ufffd); rename it"
            raise SpecError([SpecIssue(path, 1, 1, message)])
        try:
            # O_NONBLOCK: opening a FIFO named like a spec must not hang the dag-processor
            descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError as error:
            raise SpecError([SpecIssue(path, 1, 1, _read_problem(path, error))]) from None
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            os.close(descriptor)
            if stat.S_ISDIR(info.st_mode):
                raise SpecError([SpecIssue(path, 1, 1, _read_problem(path, IsADirectoryError()))])
            message = "this is not a regular file (a pipe, socket or device); a spec is a plain text file"
            raise SpecError([SpecIssue(path, 1, 1, message)])
        with open(descriptor, "rb") as handle:
            try:
                raw = handle.read(MAX_SPEC_BYTES + 1)
            except OSError as error:
                raise SpecError([SpecIssue(path, 1, 1, _read_problem(path, error))]) from None
        if len(raw) > MAX_SPEC_BYTES:
            message = (
                f"the file is {max(info.st_size, len(raw)):,} bytes, more than the limit of {MAX_SPEC_BYTES:,}; "
                "a spec describes a pipeline, not its data: move large values into a file the step reads, "
                "or split the pipeline"
            )
            raise SpecError([SpecIssue(path, 1, 1, message)])
        return cls(path, _decode(path, raw))

    @property
    def default_dag_id(self) -> str:
        """The file name without its ``.aq.yaml`` suffix (a valid dag_id only when
        :func:`file_name_problem` finds none)."""
        return file_dag_id(self.path)

    @property
    def declared_dag_id(self) -> str | None:
        """The dag_id the spec declares (a top-level ``pipeline:`` line) or its file name gives,
        found without parsing the YAML; None when neither is a valid dag_id. The loader and
        ``validate`` use it for specs that do not validate, to name their placeholder and to
        find duplicate dag_ids."""
        match = _PIPELINE_KEY.search(self.text)
        if match and spec_types.is_dag_id(match.group(2)):
            return match.group(2)
        return self.default_dag_id if spec_types.is_dag_id(self.default_dag_id) else None

    @cached_property
    def _tree(self) -> yaml.Node | None:
        try:
            return compose(self.text)
        except (yaml.YAMLError, UnicodeEncodeError):
            return None

    def issue(self, problem: Problem) -> SpecIssue:
        line, col = locate(self._tree, problem.path, want_key=problem.at_key)
        return SpecIssue(self.path, line, col, problem.message)

    def dag_id_issue(self, message: str) -> SpecIssue:
        """``message`` about the spec's dag_id, at its ``pipeline:`` value, or at 1:1 when the
        file name gives the id."""
        tree = self._tree
        if isinstance(tree, yaml.MappingNode) and any(
            isinstance(key, yaml.ScalarNode) and key.value == "pipeline" for key, _ in tree.value
        ):
            return self.issue(Problem(("pipeline",), message))
        return SpecIssue(self.path, 1, 1, message)

    def error(self, problems: list[Problem]) -> SpecError:
        return SpecError([self.issue(p) for p in problems])


def _spec_models() -> dict[str, type[pydantic.BaseModel]]:
    """Every spec model by class name (pipelines, steps, checks, conditions, foreach, profiles)."""
    found: dict[str, type[pydantic.BaseModel]] = {}
    pending = [models.Model, conditions.Condition.__base__, foreach.ForeachParam.__base__]
    while pending:
        model = pending.pop()
        pending += model.__subclasses__()
        found[model.__name__] = model
    return found


def _keys(model: type[pydantic.BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _vocabulary() -> list[str]:
    """Every key any spec model accepts, for hints where the model at a place is not known."""
    return sorted({key for model in _spec_models().values() for key in _keys(model)})


def _members(annotation: Any) -> list[Any]:
    """The types an annotation allows: ``Annotated`` metadata dropped, unions and optionals split."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _members(arg)]
    return [annotation]


def _models_at(root: type[pydantic.BaseModel] | None, loc: tuple) -> list[type[pydantic.BaseModel]]:
    """The spec models that may sit at a pydantic ``loc`` below ``root``, following fields, dict
    values, list items and union tags (a model's class name; other tags leave the place as is)."""
    here: list[Any] = [root] if root is not None else []
    for part in loc:
        there: list[Any] = []
        for kind in (t for annotation in here for t in _members(annotation)):
            origin, args = typing.get_origin(kind), typing.get_args(kind)
            if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
                if part == kind.__name__:
                    there.append(kind)
                there += [info.annotation for name, info in kind.model_fields.items() if part in (name, info.alias)]
            elif origin is dict and isinstance(part, str) and args:
                there.append(args[1])
            elif origin in (list, tuple) and isinstance(part, int) and args:
                there.append(args[min(part, len(args) - 1)] if origin is tuple else args[0])
            elif isinstance(part, str) and not part.isidentifier():  # a union tag such as `list[any]`
                there.append(kind)
        here = there
    return [
        t
        for annotation in here
        for t in _members(annotation)
        if isinstance(t, type) and issubclass(t, pydantic.BaseModel)
    ]


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


def _data_path(data: Any, error: dict) -> tuple:
    """The part of a pydantic ``loc`` that exists in the data (drops union member tags); an
    unknown or missing key is kept, to name it."""
    loc = error["loc"]
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
        elif isinstance(node, dict) and part == loc[-1] and (error["type"] in ("extra_forbidden", "missing")):
            path.append(part)
            break
        elif part == "[key]":
            path.append(part)
            break
    return tuple(path)


def _pattern_text(pattern: str) -> str:
    return _PATTERNS.get(pattern, f"text matching {pattern}")


# What a value of the wrong type should have been, by pydantic's error type, in a user's words.
_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _kind_of(value: Any) -> str:
    """What the YAML gave, in a user's words."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"the number `{value}`"
    if isinstance(value, str):
        return f"the text `{value}`" if len(value) <= 60 else "text"
    return {list: "a list", dict: "a mapping"}.get(type(value), "an empty value" if value is None else "this")


def _forms(model: type[pydantic.BaseModel]) -> str:
    """A model's mapping form from its required keys, such as `{step: ...}`."""
    required = [info.alias or name for name, info in model.model_fields.items() if info.is_required()]
    return "{" + ", ".join(f"{key}: ..." for key in required) + "}" if required else ""


def _foreach_hint(value: str, data: Any) -> str:
    """For `foreach: segments`: the param or step the user most likely meant."""
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    steps = data.get("steps") if isinstance(data.get("steps"), dict) else {}
    meant = [f"`{{{kind}: {value}}}` (`{value}` is a {kind} of this pipeline)" for kind, names in
             (("param", params), ("step", steps)) if value in names]  # fmt: skip
    if meant:
        return f"; write {' or '.join(meant)}"
    return f"; write a list (`[{value}]`), `{{param: name}}` or `{{step: name}}`"


_COMPARE = {"==": "equals", "=": "equals", ">": "above", "<": "below", ">=": "at_least", "<=": "at_most"}


def _condition_hint(value: Any, data: Any) -> str:
    """For `when: publish_enabled == true`: the condition written as a mapping."""
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    text = value.strip() if isinstance(value, str) else ""
    match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?)\s*(==|=|>=|<=|>|<)\s*(\S.*)", text)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) and text in params:
        return f"; write `{{param: {text}}}` (true when the param is)"
    if match and match.group(1) in params:
        return f"; write `{{param: {match.group(1)}, {_COMPARE[match.group(3)]}: {match.group(4)}}}`"
    if match and match.group(2):
        return f"; write `{{metric: {match.group(1)}, {_COMPARE[match.group(3)]}: {match.group(4)}}}`"
    return f": {conditions.FORMS}"


def _wrong_type(errors: list[dict], path: tuple, data: Any) -> str:
    """One message for a value of the wrong type, from the errors of every form it may take (the
    members of a union): what each form is, never a model's class name."""
    value = errors[0]["input"]
    wanted: list[str] = []
    mappings = [_spec_models().get(e.get("ctx", {}).get("class_name", "")) for e in errors]
    for error in errors:
        if error["type"] == "literal_error":
            wanted.append(error["ctx"]["expected"].replace("'", "`"))
        elif error["type"] in _EXPECTED:
            wanted.append(_EXPECTED[error["type"]])
    wanted = list(dict.fromkeys(w for w in wanted if not (w == "a whole number" and "a number" in wanted)))
    forms = [f"`{f}`" for f in (_forms(m) for m in mappings if m is not None) if f]
    if forms and "a mapping" in wanted:
        at = wanted.index("a mapping")
        wanted[at : at + 1] = forms if len(forms) > 1 else [f"a mapping, {forms[0]}"]
    expected = ", ".join(wanted[:-1]) + f" or {wanted[-1]}" if len(wanted) > 1 else (wanted or ["another value"])[0]
    message = f"expected {expected}, not {_kind_of(value)}"
    if any(m is conditions.Condition for m in mappings):
        message = f"a condition is a mapping, not {_kind_of(value)}" + _condition_hint(value, data)
    elif path[-1:] == ("foreach",) and isinstance(value, str):
        message += _foreach_hint(value, data)
    return message


def _value_at(data: Any, path: tuple) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _flow(value: Any) -> str:
    """A value as it would be written inline in YAML."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def _nested_hint(key: str, here: list[type[pydantic.BaseModel]], parent: Any) -> str | None:
    """For a key written beside the key it belongs under (a check's `freshness: d, max_age: 1d`,
    a metric's `window:` without `history:`): where it goes, in the nested form built from what
    was written (``freshness: {column: d, max_age: 1d}``); None when no field here takes it."""
    if not isinstance(parent, dict):
        return None
    homes = []
    for model in here:
        own = set(_keys(model))
        for name, info in model.model_fields.items():
            field_key = info.alias or name
            for sub in _members(info.annotation):
                if isinstance(sub, type) and issubclass(sub, pydantic.BaseModel) and key in _keys(sub):
                    homes.append((field_key in parent, field_key, sub, own))
    # the key it belongs under was written (`freshness: d`), or every key that one needs was
    # written beside it (`window:` and `max_zscore:`, `history:` left out)
    fits = [h for h in homes if h[0]] or [
        h for h in homes if all(k in parent for k, i in h[2].model_fields.items() if i.is_required())
    ]
    if len(fits) != 1:
        return None
    _, field_key, sub, own = fits[0]
    inner = {k: parent[k] for k in _keys(sub) if k in parent and k not in own}
    written = parent.get(field_key)
    if isinstance(written, dict):  # `freshness: {column: d}` with `max_age:` beside it
        inner = {**written, **inner}
    elif "column" in _keys(sub) and "column" not in inner and isinstance(written, str):
        inner = {"column": written, **inner}
    return f"`{key}` goes inside `{field_key}:`, not beside it: write `{field_key}: {_flow(inner)}`"


def _describe(error: dict, path: tuple, data: Any, wrong_type: list[dict], root: Any) -> tuple[str, bool]:
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
        here = _models_at(root, error["loc"][:-1])
        nested = _nested_hint(key, here, _value_at(data, path[:-1]))
        if nested:
            return nested, True
        words = sorted({k for model in here for k in _keys(model)}) or _vocabulary()
        close = difflib.get_close_matches(key, [w for w in words if w != key], n=1, cutoff=0.7)
        hint = f"; did you mean `{close[0]}`?" if close else "; remove it or check the spec reference"
        return f"unknown key `{key}`{hint}", True
    if kind == "missing":
        return f"missing required key `{path[-1]}`", False
    message = error["msg"].removeprefix("Value error, ")
    if wrong_type:
        message = _wrong_type(wrong_type, path, data)
    if kind == "too_long" and path and path[-1] == "foreach":  # a literal item list: why there is a limit
        message = too_many_items(error["ctx"]["actual_length"])
    if kind == "string_pattern_mismatch":
        pattern = error["ctx"]["pattern"]
        message = (
            f"`{error['input']}` is not allowed here; expected {_PATTERNS.get(pattern, 'text matching ' + pattern)}"
        )
    return (f"{where}: {message}" if where else message), False


def _is_type_error(error: dict) -> bool:
    return error["type"].endswith(_TYPE_ERRORS) or error["type"] in _TYPE_ERRORS


def validation_problems(data: Any, exc: pydantic.ValidationError) -> list[Problem]:
    """Turn pydantic errors into located problems, one per place, dropping the noise of
    union members that did not apply; a value of the wrong type gets one message that names
    every form it may take."""
    located = [(_data_path(data, e), e) for e in exc.errors(include_url=False)]
    kept: dict[tuple, dict] = {}
    for path, error in located:
        deeper = any(p != path and p[: len(path)] == path for p, _ in located)
        if _is_type_error(error) and (deeper or any(p == path and not _is_type_error(e) for p, e in located)):
            continue
        kept.setdefault(path, error)
    root = _spec_models().get(exc.title)
    problems = []
    for path, error in kept.items():
        wrong_type = [e for p, e in located if p == path and _is_type_error(e)] if _is_type_error(error) else []
        if not any(e["type"] in _EXPECTED or e["type"] == "literal_error" for e in wrong_type):
            wrong_type = []  # text that does not parse (a date of month 13): pydantic's message says why
        message, at_key = _describe(error, path, data, wrong_type, root)
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
        graph[name] |= step.upstream & set(pipeline.steps) - {name}  # with `foreach: {step: ...}` (implied)
        if step.when is not None:  # `when:` references: located under `when:`; their steps run first
            problems += [Problem(path, message) for path, message in condition_problems(pipeline, name, step.when)]
            graph[name] |= referenced_steps(step.when) & set(pipeline.steps) - {name}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as cycle:
        path = cycle.args[1]
        problems.append(Problem(("steps", path[0]), f"steps form a cycle: {' -> '.join(reversed(path))}"))
    return problems


def load_document(spec_file: SpecFile) -> Any:
    """The YAML of a spec (or profiles) file, read within the limits; raises :class:`SpecError`
    at the position of bad syntax or of what crossed a limit. Keeps the node tree for the
    positions of later errors."""
    try:
        data, tree = load_yaml_node(spec_file.text)
    except YAMLSpecError as exc:  # well-formed, but beyond a limit or not a spec's kind of value
        mark = exc.problem_mark
        raise SpecError([SpecIssue(spec_file.path, mark.line + 1, mark.column + 1, exc.problem)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        raise SpecError([SpecIssue(spec_file.path, line, col, f"YAML syntax: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(spec_file.path, 1, 1, f"YAML syntax: {exc}")]) from None
    spec_file.__dict__["_tree"] = tree  # the positions of any error below, without composing again
    return data


def parse_spec(spec_file: SpecFile) -> models.Pipeline:
    """Validate a spec file; raises :class:`SpecError` listing every problem with its position."""
    data = load_document(spec_file)
    if not isinstance(data, dict):
        raise SpecError([SpecIssue(spec_file.path, 1, 1, "a spec is a mapping with at least `steps:`")])
    steps = data.get("steps")
    if isinstance(steps, dict) and len(steps) > MAX_STEPS:
        message = f"{len(steps):,} steps, more than the limit of {MAX_STEPS:,} in one pipeline; split it into pipelines"
        raise spec_file.error([Problem(("steps",), message, at_key=True)])
    name_problem = file_name_problem(spec_file.path) if data.get("pipeline") is None else None
    name_issues = [SpecIssue(spec_file.path, 1, 1, name_problem)] if name_problem else []
    # credentials pasted as values, anywhere: reported with the model's own errors
    secrets = [Problem(path, message) for path, message in secret_values(data)]
    try:
        pipeline = models.Pipeline.model_validate(data)
    except pydantic.ValidationError as exc:
        raise SpecError(name_issues + spec_file.error(secrets + validation_problems(data, exc)).issues) from None
    if name_issues:
        raise SpecError(name_issues + spec_file.error(secrets).issues)
    problems = secrets + reference_problems(pipeline)
    problems += [Problem(path, message, at_key) for path, message, at_key in operator_step_problems(pipeline)]
    problems += [Problem(path, message, at_key) for path, message, at_key in reserved_name_problems(pipeline)]
    problems += [Problem(path, message, at_key) for path, message, at_key in reserved_env_problems(pipeline)]
    # a default past the limits of a run's params (runtime.param_limits) would fail the run's python steps
    problems += [Problem(("params", name), message) for name, message in params_problems(pipeline.params).items()]
    if problems:
        raise spec_file.error(problems)
    return pipeline
