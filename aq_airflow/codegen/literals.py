"""Plan values as Python source literals.

Spec text only ever reaches generated code through ``repr`` of a ``str`` (an inert literal,
whatever it contains); the only calls this emits are the constructors of the plan's marker
types (``timedelta``, ``datetime``, ``Asset``, ``ImportedCallback``) and ``float("inf")``.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from aq_airflow.plan import AssetRef, CallbackRef, Seconds

_WIDTH = 100


def _scalar(value: Any) -> str | None:
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


def py_literal(value: Any, indent: int = 0) -> str:
    """Python source for ``value``: on one line when it fits, else one item per line."""
    scalar = _scalar(value)
    if scalar is not None:
        return scalar
    if isinstance(value, dict):
        items = [f"{py_literal(k)}: {py_literal(v, indent + 4)}" for k, v in value.items()]
        open_, close = "{", "}"
    elif isinstance(value, list | tuple):
        items = [py_literal(v, indent + 4) for v in value]
        open_, close = "[", "]"
    else:
        raise TypeError(f"no Python literal for {type(value).__name__}")
    flat = open_ + ", ".join(items) + close
    if len(flat) + indent <= _WIDTH and "\n" not in flat:
        return flat
    pad = " " * (indent + 4)
    return open_ + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + close
