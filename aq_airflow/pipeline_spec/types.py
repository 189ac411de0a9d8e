"""Constrained scalar types of the spec: names, durations, quantities, schedules.

Each is an ``Annotated`` pydantic type, so the same definition validates, documents itself in
the JSON schema (pattern, description) and produces the error message a user reads.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"

StepName = Annotated[
    str,
    Field(
        pattern=rf"^{IDENT}$",
        max_length=63,
        description="A name: letters, digits and underscores, not starting with a digit.",
    ),
]
Column = Annotated[
    str,
    Field(pattern=rf"^{IDENT}$", max_length=255, description="A column name (an SQL identifier)."),
]
TableName = Annotated[
    str,
    Field(
        pattern=rf"^{IDENT}(\.{IDENT}){{0,2}}$",
        description="`table`, `schema.table` or `db.schema.table`.",
    ),
]
# The one rule for a dag_id, whether `pipeline:` declares it or the file name gives it: what
# Airflow accepts (letters, digits, `_`, `.`, `-`; at most 250; no `..`, Airflow's path-traversal
# rule), ASCII only, and not starting with `.` or `-`, so that it is always one plain path segment
# (artifact folders are `{artifacts}/{dag_id}/...`).
DAG_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\.?$"
DAG_ID_MAX_LENGTH = 250
DagId = Annotated[
    str,
    Field(
        pattern=DAG_ID_PATTERN,
        max_length=DAG_ID_MAX_LENGTH,
        description="A dag_id: letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, no `..`.",
    ),
]


def is_dag_id(text: str) -> bool:
    """Whether ``text`` follows the dag_id rule (:data:`DagId`)."""
    return len(text) <= DAG_ID_MAX_LENGTH and re.fullmatch(DAG_ID_PATTERN, text) is not None


ConnId = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=250, description="An Airflow connection id."),
]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="An environment variable name.")]
KubeName = Annotated[
    str,
    Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253, description="A Kubernetes object name."),
]
CallablePath = Annotated[
    str,
    Field(
        pattern=rf"^{IDENT}(\.{IDENT})*:{IDENT}(\.{IDENT})*$",
        description="`package.module:function`, importable inside the step's image.",
    ),
]
OperatorClass = Annotated[
    str,
    Field(
        pattern=rf"^{IDENT}(\.{IDENT})+$",
        max_length=500,
        description="`package.module.Class`: an Airflow operator or sensor class, importable where Airflow runs.",
    ),
]
GpuType = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="A portable GPU type such as `t4`, `l4`, `a100-80gb`."),
]

_DURATION = re.compile(r"^([0-9]+)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Bounds: Airflow keeps retry delays and timeouts as timedeltas and adds them to "now", so a
# delay of 10**10 days overflows (OverflowError) when the DAG is built; a year is more than any
# task needs. Retention and freshness ages may be longer, but stay far from timedelta's limit.
TASK_DURATION_MAX = "365d"
DURATION_MAX = "3650d"


def duration_seconds(text: str) -> int:
    """Seconds in a validated duration such as ``30s``, ``5m``, ``2h``, ``1d``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"`{text}` is not a duration")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _bounded_duration(longest: str, what: str, shortest: int = 0):
    limit = duration_seconds(longest)

    def check(value: str) -> str:
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"`{value}` is not a duration: write a whole number and a unit, like 30s, 5m, 2h or 1d")
        if len(match.group(1)) > 12 or duration_seconds(value) > limit:
            raise ValueError(f"`{value}` is too long: {what} is at most {longest}")
        if duration_seconds(value) < shortest:
            raise ValueError(f"`{value}` is too short: {what} is at least {shortest}s")
        return value

    return check


def _duration_type(longest: str, what: str, shortest: int = 0) -> Any:
    low = f"at least {shortest}s, " if shortest else ""
    return Annotated[
        str,
        AfterValidator(_bounded_duration(longest, what, shortest)),
        Field(
            description="A duration: a whole number and a unit s, m, h or d (`30s`, `5m`, `2h`, `1d`); "
            f"{low}at most {longest}."
        ),
    ]


Duration = _duration_type(DURATION_MAX, "a duration")
RetryDelay = _duration_type(TASK_DURATION_MAX, "a retry delay")
# 0 would not mean "stop at once": Airflow reads a zero timedelta as no timeout at all
Timeout = _duration_type(TASK_DURATION_MAX, "a timeout", shortest=1)


def _to_text(value: Any) -> Any:
    """YAML reads `cpu: 2` as an int and `cpu: 0.5` as a float; quantities are kept as text
    (a whole number as written: `memory: 1073741824` is bytes, never `1.07374e+09`)."""
    if isinstance(value, bool):
        return value  # rejected by the str type with its own message
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, "g")
    return value


_CPU = re.compile(r"^(\d+(\.\d+)?|\.\d+)m?$")
_BYTES = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


def _check_cpu(value: str) -> str:
    if not _CPU.match(value) or float(value.rstrip("m")) <= 0:
        raise ValueError(f"`{value}` is not a CPU quantity: write cores (`2`, `0.5`) or millicores (`500m`)")
    return value


_BYTE_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_BYTE_UNITS.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60})


def _check_bytes(value: str) -> str:
    if not _BYTES.match(value):
        raise ValueError(f"`{value}` is not a memory quantity: write a number and a unit, like `512Mi` or `8Gi`")
    return value


def memory_bytes(value: str) -> int:
    """The bytes a :data:`ByteQuantity` names (``8Gi``: 8 * 2**30; ``1500M``: 1,500,000,000)."""
    match = _BYTES.match(value)
    if match is None:
        raise ValueError(value)
    number, _, unit = match.groups()
    scale = 1024 ** " KMGTPE".index(unit[0]) if unit and unit.endswith("i") else 1000 ** " kMGTPE".index(unit or " ")
    return int(float(number) * scale)


def _quantity_schema(pattern: re.Pattern, description: str, number: dict) -> WithJsonSchema:
    """What editors check: the text form, or the plain number YAML gives for `cpu: 2`."""
    forms = [{"type": "string", "pattern": pattern.pattern}, {"type": "number", **number}]
    return WithJsonSchema({"anyOf": forms, "description": description})


CpuQuantity = Annotated[
    str,
    BeforeValidator(_to_text),
    AfterValidator(_check_cpu),
    _quantity_schema(_CPU, "Kubernetes CPU quantity: `2`, `0.5`, `500m`.", {"exclusiveMinimum": 0}),
]
ByteQuantity = Annotated[
    str,
    BeforeValidator(_to_text),
    AfterValidator(_check_bytes),
    _quantity_schema(_BYTES, "Kubernetes memory quantity: `512Mi`, `8Gi` (a plain number is bytes).", {"minimum": 0}),
]

# A file size: a number of bytes, with an SI (`100MB`, `100M`) or binary (`200Mi`, `200MiB`) unit.
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)(?:([kKMG])|([KMG])i)?B?$")
SIZE_MAX = 2**30  # a code package is held in memory where it is built and fetched


def byte_count(text: str) -> int:
    """The bytes a :data:`SizeQuantity` names (``100MB``: 100,000,000; ``200Mi``: 200 * 2**20)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(text)
    number, si, binary = match.groups()
    scale = 1000 ** " KMG".index(si.upper()) if si else 1024 ** " KMG".index(binary) if binary else 1
    return int(float(number) * scale)


def _check_size(value: str) -> str:
    if not _SIZE.match(value):
        raise ValueError(f"`{value}` is not a size: write a number of bytes and a unit, like `100MB` or `200Mi`")
    if not 0 < byte_count(value) <= SIZE_MAX:
        raise ValueError(f"`{value}` is out of range: a size from 1 byte to 1Gi")
    return value


SizeQuantity = Annotated[
    str,
    BeforeValidator(_to_text),
    AfterValidator(_check_size),
    _quantity_schema(_SIZE, "A size in bytes: `100MB`, `200Mi` (a plain number is bytes).", {"minimum": 1}),
]

# A date, or a date and time, as YAML text (the loader keeps YAML timestamps as text): the one
# form the loader and the JSON schema both accept. Numbers are refused: pydantic would read
# `start_date: 20260101` as seconds since 1970.
_DATE = r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?)?$"
_DATE_HELP = (
    "a date, `2026-01-01`, or a date and time, `2026-01-01T06:00:00` (UTC unless it ends in `Z` or an "
    "offset such as `+02:00`)"
)


def _date_text(value: Any) -> Any:
    if isinstance(value, str) and re.match(_DATE, value):
        return value
    shown = f"`{value}`" if isinstance(value, str | int | float) else "this"
    raise ValueError(f"{shown} is not a date: write {_DATE_HELP}")


Timestamp = Annotated[
    datetime.datetime,
    BeforeValidator(_date_text),
    Field(strict=False),
    WithJsonSchema({"type": "string", "pattern": _DATE, "description": f"A date: {_DATE_HELP}."}),
]

SCHEDULE_PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


def _check_schedule(value: str) -> str:
    if value in SCHEDULE_PRESETS:
        return value
    if value.startswith("@"):
        raise ValueError(f"`{value}` is not a schedule preset; use one of {', '.join(SCHEDULE_PRESETS)}")
    from croniter import croniter  # imported here: only specs with cron strings pay for it

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(
            f'`{value}` is not a cron expression: five fields "minute hour day month weekday", like "0 6 * * *"'
        )
    return value


CronOrPreset = Annotated[
    str,
    AfterValidator(_check_schedule),
    Field(description='A cron expression (`"0 6 * * *"`) or a preset (`@daily`).'),
]


def _not_blank(what: str):
    def check(value: str) -> str:
        if not value.strip():
            raise ValueError(f"must not be blank: write {what}")
        return value

    return check


def _text(what: str) -> Any:
    """Text that must say something: an empty ``sql: ''`` or ``command: ''`` fails at run time
    (or worse, runs nothing and succeeds), so it is a validation error."""
    return Annotated[str, AfterValidator(_not_blank(what)), Field(json_schema_extra={"pattern": r"\S"})]


SqlQuery = _text("an SQL query")
SqlExpression = _text("an SQL expression")
SqlCondition = _text("an SQL condition")
CommandText = _text("the command to run")
Text = _text("a value")
