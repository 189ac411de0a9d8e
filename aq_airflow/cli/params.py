"""``aq-airflow run --param NAME=VALUE``: the text read as the param its spec declares.

A spec declares a param by its default value (``params: {min_rows: 1000, segments: [low, mid]}``),
so the default's type is the param's type: a value that does not fit is refused when the command
is read, with the declaration's place, rather than failing (or passing as text) deep in the run.

What each type takes: :data:`HELP` (``aq-airflow run --help`` prints it).

The spec's ``params:`` take plain defaults only (no Airflow ``Param`` schema), so there is no
JSON schema to validate against beyond the type.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from aq_airflow.runtime.param_limits import FIX, TOO_DEEP, params_problems, past_limit, text_depth_beyond

# ASCII digits only: int() and float() also read fullwidth and other Unicode digits
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_WHOLE = re.compile(r"[+-]?\d+", re.ASCII)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
NOT_FINITE = '{0} is not a JSON number (JSON has no NaN or infinity); write a number, or "{0}" in quotes as text'
TOO_LARGE = "{0} is too large for a number"
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
# what an item of a list of each kind is, and what a param of each kind is, in a refusal
_ITEM = {"boolean": "true or false", "integer": "a whole number", "number": "a number", "date": "a date, YYYY-MM-DD",
         "string": "text", "any": "text", "object": "an object or a list"}  # fmt: skip
_WHAT = {**_ITEM, "boolean": "true or false (also yes/no, 1/0)", "object": "an object, as JSON"}
_ITEMS = {"boolean": "true/false values", "integer": "whole numbers", "number": "numbers", "date": "dates"}
_LIST_EXAMPLE = {"boolean": "true,false", "integer": "1,2", "number": "0.5,2", "date": "2026-01-01,2026-01-02"}
# Python reads no integer of more digits (sys.get_int_max_str_digits(); the conversion is quadratic)
TOO_MANY_DIGITS = (
    f"a number of more than {sys.get_int_max_str_digits():,} digits, more than Python reads; "
    "a param that large is data: pass it as text, or in a file a step reads"
)
MAX_SHOWN = 40  # characters of a default shown in a refusal
MAX_GOT = 80  # characters of the value given shown in a refusal
HELP = """--param NAME=VALUE is read as the type of NAME's default in the spec's `params:`; a
value that does not fit is refused (exit 2, nothing runs) with the param's declaration, file:line:col.
  default      example                    takes
  true         publish=no                 true/false, yes/no, 1/0 (any case)
  1000         min_rows=5000              a whole number
  0.5          ratio=0.75                 a number
  2026-01-01   day=2026-03-01             a date, YYYY-MM-DD
  eu           region=123                 text, as given (here the text "123")
  [low, mid]   segments=low,mid           a list, comma-separated (nothing after `=`: no items)
               segments='["low","mid"]'   or as JSON; items typed as the default's (sizes=1,2)
  {k: v}       limits='{"eu": 5}'         an object, as JSON
  ~ (null)     note='[1, 2]'              JSON if it reads as JSON, else the text
A param is at most 64 levels deep and 64 KiB as JSON; a run's params together at most 96 KiB."""


class Refused(ValueError):
    """A value that does not fit its param: ``detail`` says what was wrong beyond the type."""

    def __init__(self, detail: str = ""):
        super().__init__(detail)
        self.detail = detail


def kind(default: Any) -> str:
    """The param's type, from its declared default."""
    if default is None:
        return "any"
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, int):
        return "integer"
    if isinstance(default, float):
        return "number"
    if isinstance(default, str):
        return "date" if _is_date(default) else "string"
    if isinstance(default, list):
        return "list"
    return "object"


def item_kind(default: list) -> str:
    """The type of a list param's items: the one its default's items share ("any" when they
    share none, or there are none); whole numbers among numbers are numbers."""
    kinds = {"object" if kind(item) in ("list", "object") else kind(item) for item in default}
    if kinds == {"integer", "number"}:
        return "number"
    return kinds.pop() if len(kinds) == 1 else "any"


def what(default: Any) -> str:
    """What a param with this default takes, as a refusal says it."""
    declared = kind(default)
    if declared != "list":
        return _WHAT[declared]
    items = item_kind(default)
    if items == "object":
        return "a list of objects, as JSON"
    of = f" of {_ITEMS[items]}" if items in _ITEMS else ""
    example = _LIST_EXAMPLE.get(items, "a,b")
    return f"a list{of}, as JSON or comma-separated ({example})"


def parse(text: str, default: Any) -> Any:
    """``text`` as the value of a param declared with ``default``, within the limits of
    ``runtime.param_limits`` (depth and size); raises :class:`Refused`."""
    value = _typed(text, default)
    limit = past_limit(value)
    if limit:
        raise Refused(f"{limit}; {FIX}")
    return value


def _typed(text: str, default: Any) -> Any:
    declared = kind(default)
    if declared == "string":
        return text
    if declared == "any":
        _not_too_deep(text)
        try:
            return _loads(text)
        except _NotFinite as error:
            raise Refused(str(error)) from None
        except json.JSONDecodeError:
            return text
        except ValueError:  # JSON, but a number past Python's digit limit
            raise Refused(TOO_MANY_DIGITS) from None
    if declared == "object":
        value = _json(text)
        if not isinstance(value, dict):
            raise Refused(f"a JSON {_json_kind(value)}, not an object")
        return value
    if declared == "list":
        return _list(text, item_kind(default))
    return _scalar(text, declared)


def _list(text: str, items: str) -> list:
    if text.strip().startswith("["):
        value = _json(text)
        if not isinstance(value, list):
            raise Refused(f"a JSON {_json_kind(value)}, not a list")
        for index, item in enumerate(value, 1):
            if not _fits(item, items):
                raise Refused(f"item {index}, {_cut(json.dumps(item))}, is not {_ITEM[items]}")
        return value
    if items == "object":
        raise Refused("not JSON: write the list as JSON, e.g. [{...}, {...}]")
    if not text.strip():
        return []
    parsed = []
    for index, item in enumerate(text.split(","), 1):
        item = item.strip()
        if not item:
            raise Refused(f"item {index} is empty")
        try:
            parsed.append(item if items in ("string", "any") else _scalar(item, items))
        except Refused:
            raise Refused(f"item {index}, {_cut(json.dumps(item))}, is not {_ITEM[items]}") from None
    return parsed


def _scalar(text: str, declared: str) -> Any:
    """A boolean, whole number, number or date from its text: ASCII digits, no blanks around it
    (as ``--date``; a list's items are stripped before they get here)."""
    value = text
    if declared == "boolean" and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    if declared == "integer" and _WHOLE.fullmatch(value):
        try:
            return int(value)
        except ValueError:  # beyond Python's digit limit for int()
            raise Refused(TOO_MANY_DIGITS) from None
    if declared == "number" and _NUMBER.fullmatch(value):
        number = float(value)
        if math.isfinite(number):
            return number
        raise Refused("too large for a number")
    if declared == "date" and _is_date(value):
        return value
    if value != value.strip():
        raise Refused(f"no blanks around it: write {json.dumps(value.strip(), ensure_ascii=False)}")
    if any(c.isdigit() and not c.isascii() for c in value):
        raise Refused("ASCII digits 0-9 only")
    raise Refused()


def _fits(value: Any, declared: str) -> bool:
    """Whether an item of a JSON list is of the list's item type."""
    if declared == "any":
        return True
    if declared == "object":
        return isinstance(value, dict | list)
    if declared == "string":
        return isinstance(value, str)
    if declared == "date":
        return isinstance(value, str) and _is_date(value)
    if isinstance(value, bool):
        return declared == "boolean"
    if declared == "integer":
        return isinstance(value, int)
    return declared == "number" and isinstance(value, int | float) and math.isfinite(value)


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:  # a day the month has not
        return False
    return True


def _not_too_deep(text: str) -> None:
    """Refuse JSON text nested past the limit before reading it (the reader recurses per level:
    50,000 levels were a RecursionError)."""
    if text_depth_beyond(text):
        raise Refused(f"{TOO_DEEP}; {FIX}")


class _NotFinite(ValueError):
    """NaN, Infinity or a number too large for a float in JSON text: Python's reader takes them,
    but no JSON consumer does (the run's conf turned them into null, silently)."""


def _constant(token: str) -> float:
    raise _NotFinite(NOT_FINITE.format(token))


def _finite(token: str) -> float:
    number = float(token)
    if not math.isfinite(number):  # 1e999
        raise _NotFinite(TOO_LARGE.format(_cut(token)))
    return number


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_constant, parse_float=_finite)


def _json(text: str) -> Any:
    _not_too_deep(text)
    try:
        return _loads(text)
    except _NotFinite as error:
        raise Refused(str(error)) from None
    except json.JSONDecodeError as error:
        raise Refused(f"not JSON: {error.msg} at character {error.pos + 1}") from None
    except ValueError:  # a number beyond Python's digit limit
        raise Refused(TOO_MANY_DIGITS) from None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "list", str: "string"}.get(type(value), "null")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_GOT else text[: MAX_GOT - 3] + "..."


def shown(default: Any) -> str:
    """A declared default as a refusal shows it: JSON, cut short when long."""
    text = json.dumps(default, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def refusal(name: str, text: str, default: Any, place: str, refused: Refused) -> str:
    """``--param min_rows=ten: min_rows is a whole number (declared 1000 at spec.aq.yaml:7:13);
    got "ten"``: the param, what it takes, where it is declared, what was given and why not."""
    detail = f" ({refused.detail})" if refused.detail else ""
    text = text if len(text) <= MAX_GOT else text[: MAX_GOT - 3] + "..."
    got = json.dumps(text, ensure_ascii=False)
    return f"--param {name}={text}: {name} is {what(default)} (declared {shown(default)} at {place}); got {got}{detail}"


def typed_params(spec: Path, declared: dict, given: dict[str, str]) -> tuple[dict, list[str]]:
    """The ``--param`` texts (declared keys only) as their params' values, and one line per value
    refused, located at its declaration in ``spec`` (read only when one is refused)."""
    from aq_airflow.pipeline_spec import Problem, SpecFile

    values, refusals = {}, []
    for name, text in given.items():
        try:
            values[name] = parse(text, declared[name])
        except Refused as refused:
            refusals.append((name, text, refused))
    if not refusals:  # each fits: the run's params together must too (they share the step's AQ_CONTEXT)
        together = params_problems({**declared, **values})
        return values, [f"--param {name}: {why}" if name in given else why for name, why in together.items()]
    spec_file = SpecFile.read(spec)
    lines = []
    for name, text, refused in refusals:
        issue = spec_file.issue(Problem(("params", name), ""))
        lines.append(refusal(name, text, declared[name], f"{issue.file}:{issue.line}:{issue.col}", refused))
    return values, lines
