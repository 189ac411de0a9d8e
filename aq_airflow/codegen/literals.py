"""Plan values as Python source literals.

Spec text only ever reaches generated code through ``repr`` of a ``str`` (an inert literal,
whatever it contains); the only calls this emits are the constructors of the plan's own types
(``RunPlan(...)``, ``CheckPlan(...)``, ... with keyword arguments), the marker types
(``timedelta``, ``datetime``, ``Asset``, ``ImportedCallback``) and ``float("inf")``.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
from collections.abc import Iterator
from typing import Any

from aq_airflow.plan.model import PLAN_TYPES, AssetRef, CallbackRef, Seconds

_WIDTH = 100


def _scalar(value: Any) -> str | None:
    if isinstance(value, enum.Enum):  # before `str`: the plan's enums are strings too
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"  # repr gives `inf` / `nan`, which are no Python names
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    if isinstance(value, Seconds):
        return f"timedelta(seconds={value.value!r})"
    if isinstance(value, AssetRef):
        return f"Asset(name={value.name!r}, uri={value.uri!r})"
    if isinstance(value, CallbackRef):
        return f"ImportedCallback({value.path!r})"
    if isinstance(value, datetime.datetime):
        if value.utcoffset() != datetime.timedelta(0):
            raise ValueError(f"dates are planned in UTC, got {value!r}")
        parts = [value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond]
        while len(parts) > 3 and parts[-1] == 0:  # datetime(2026, 1, 1) rather than trailing zeros
            parts.pop()
        fields = ", ".join(str(v) for v in parts)
        return f"datetime({fields}, tzinfo=timezone.utc)"
    return None


def _docstring_char(char: str) -> str:
    if char == "\n" or (char.isascii() and char.isprintable() and char not in '\\"'):
        return char
    if char in '\\"':
        return "\\" + char
    return char.encode("unicode_escape").decode("ascii")  # \xNN, \uNNNN: nothing unprintable


def docstring(text: str) -> str:
    """A triple-quoted docstring of ``text`` that no text can close early: every quote and
    backslash is escaped, every character that is not printable ASCII written as an escape."""
    return '"""' + "".join(_docstring_char(c) for c in text) + '"""'


def _set_fields(value: Any) -> Iterator[tuple[str, Any]]:
    """A plan object's fields that differ from their defaults (the constructor fills in the rest)."""
    for f in dataclasses.fields(value):
        current = getattr(value, f.name)
        if f.default is not dataclasses.MISSING and current == f.default:
            continue
        if f.default_factory is not dataclasses.MISSING and current == f.default_factory():
            continue
        yield f.name, current


def plan_types(value: Any) -> set[str]:
    """The plan classes a literal of ``value`` calls (the generated file imports them)."""
    if isinstance(value, enum.Enum) or (dataclasses.is_dataclass(value) and type(value).__name__ in PLAN_TYPES):
        names = {type(value).__name__}
        if dataclasses.is_dataclass(value) and not isinstance(value, Seconds | AssetRef | CallbackRef):
            names |= {n for _, v in _set_fields(value) for n in plan_types(v)}
        return names - {"Seconds", "AssetRef", "CallbackRef"}
    if isinstance(value, dict):
        return {n for v in value.values() for n in plan_types(v)}
    if isinstance(value, list | tuple):
        return {n for v in value for n in plan_types(v)}
    return set()


def py_literal(value: Any, indent: int = 0) -> str:
    """Python source for ``value``: on one line when it fits, else one item per line."""
    scalar = _scalar(value)
    if scalar is not None:
        return scalar
    if dataclasses.is_dataclass(value) and type(value).__name__ in PLAN_TYPES:
        items = [f"{name}={py_literal(v, indent + 4)}" for name, v in _set_fields(value)]
        open_, close = f"{type(value).__name__}(", ")"
    elif isinstance(value, dict):
        items = [f"{py_literal(k)}: {py_literal(v, indent + 4)}" for k, v in value.items()]
        open_, close = "{", "}"
    elif isinstance(value, tuple):
        items = [py_literal(v, indent + 4) for v in value]
        open_, close = "(", ",)" if len(items) == 1 else ")"
    elif isinstance(value, list):
        items = [py_literal(v, indent + 4) for v in value]
        open_, close = "[", "]"
    else:
        raise TypeError(f"no Python literal for {type(value).__name__}")
    flat = open_ + ", ".join(items) + close
    if len(flat) + indent <= _WIDTH and "\n" not in flat:
        return flat
    pad = " " * (indent + 4)
    return open_ + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + close.lstrip(",")
