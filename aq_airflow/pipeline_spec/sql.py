"""The SQL a spec holds, parsed with sqlglot at validate time: what would otherwise fail only when
the task runs.

Checked: a `sql` step's query and a raw `sql` check (one query), a check's `expression` and a
metric's (one SQL expression), and their `where` (one condition), with the same rules the quality
engine applies at run time (:func:`aq_airflow.quality.sql.user_expression`).

Dialect: the checks of a ``python`` or ``command`` step run in DuckDB over the step's Parquet
output, so they are parsed as DuckDB. A ``sql`` step's query and the checks of ``sql`` and
``table`` steps run in the warehouse, whose dialect is an Airflow connection's and is not known
until run time: they pass if DuckDB, PostgreSQL, Snowflake or sqlglot's generic dialect parses
them (the warehouses aq-airflow supports), so SQL valid in the team's warehouse is never refused.

Airflow templates: ``{{ ... }}`` is replaced by a placeholder name (or number) before parsing;
text with ``{% ... %}`` blocks is skipped, as what it renders to is known only at run time.

Only ``aq-airflow validate`` runs this (sqlglot is part of the ``airflow`` extra); the dags-folder
loader does not, so a parse never costs Airflow's parsing time.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aq_airflow.pipeline_spec.load import Problem
from aq_airflow.pipeline_spec.models import PROCESS_KINDS, Pipeline

WAREHOUSE_DIALECTS = ("duckdb", "postgres", "snowflake", "")  # "" is sqlglot's generic dialect
ARTIFACT_DIALECTS = ("duckdb",)
_NAMES = {"duckdb": "DuckDB", "postgres": "PostgreSQL", "snowflake": "Snowflake", "": "generic SQL"}
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)
# nodes that do more than read (DML, DDL, SELECT ... INTO, FOR UPDATE, ...), which the quality
# engine refuses at run time; looked up by name, as not every sqlglot version has every node
_WRITES = (
    "DML", "DDL", "Drop", "Alter", "Command", "Into", "Lock", "Copy", "Pragma", "Set", "Use", "Transaction",
    "Commit", "Rollback", "Attach", "Detach", "TruncateTable", "Grant", "Revoke", "Kill", "Analyze", "Refresh",
    "Cache", "Uncache", "LoadData", "Install", "Export", "Comment",
)  # fmt: skip
_CLAUSES = ("from", "from_", "where", "group", "having", "limit", "into", "locks", "with", "with_")
_PLACEHOLDERS = ("aq_template", "0")
_PREFIX = "SELECT "


def _renderings(text: str) -> list[str] | None:
    """The text with each ``{{ ... }}`` replaced by placeholders, or None when it has Jinja
    statements or comments (its SQL is known only once Airflow renders it)."""
    if "{%" in text or "{#" in text:
        return None
    if "{{" not in text:
        return [text]
    return [_TEMPLATE.sub(placeholder, text) for placeholder in _PLACEHOLDERS]


def _reason(error: Exception, prefix: int) -> str:
    """sqlglot's first parse error in words, with its line and column in the user's text."""
    import sqlglot

    details = error.errors[0] if isinstance(error, sqlglot.errors.ParseError) and error.errors else None
    if details is None:
        return str(error).split("\n")[0]
    description, token = details["description"], details.get("highlight") or ""
    if description.startswith("Required keyword"):
        what = f"something is missing near `{token}`"
    elif description.startswith("Expecting "):
        what = f"expecting `{description.removeprefix('Expecting ')}` after `{token}`"
    elif description.startswith("Invalid expression / Unexpected token"):
        what = f"unexpected `{token}`"
    else:
        what = description
    line, col = details.get("line", 1), details.get("col", 1) - max(len(token) - 1, 0)  # the token's start
    if line == 1:
        col = max(1, col - prefix)
    return f"{what} (line {line}, column {col})"


def _statements(text: str, dialect: str) -> list[Any]:
    import sqlglot

    return [s for s in sqlglot.parse(text, read=dialect or None) if s is not None]


def _writes(tree: Any) -> str | None:
    """What in ``tree`` does more than read, in words, or None."""
    from sqlglot import exp

    kinds = tuple(k for name in _WRITES if isinstance(k := getattr(exp, name, None), type))
    node = next((n for n in tree.walk() if isinstance(n, kinds)), None)
    if node is None:
        return None
    named = {"into": "SELECT ... INTO", "lock": "FOR UPDATE/FOR SHARE", "command": "a statement sqlglot cannot read"}
    return named.get(node.key, node.key.upper().replace("_", " "))


def _query_problem(text: str, dialect: str) -> str | None:
    """Why ``text`` is not one query in ``dialect``, or None. Raises sqlglot's errors."""
    from sqlglot import exp

    statements = _statements(text, dialect)
    if not statements:
        return "holds no SQL statement: write one SELECT"
    if len(statements) > 1:
        return f"holds {len(statements)} statements: write exactly one SELECT"
    if not isinstance(statements[0], exp.Query):
        writes = _writes(statements[0])
        return f"is {writes or statements[0].key.upper()}, not a query: write one SELECT"
    writes = _writes(statements[0])
    return f"may only read, and it contains {writes}" if writes else None


def _expression_problem(text: str, dialect: str) -> str | None:
    """Why ``text`` is not one SQL expression in ``dialect``, or None. Raises sqlglot's errors."""
    from sqlglot import exp

    statements = _statements(_PREFIX + text, dialect)
    if len(statements) != 1 or not isinstance(statements[0], exp.Select) or len(statements[0].expressions) != 1:
        return "must be a single SQL expression"
    if any(statements[0].args.get(k) for k in _CLAUSES):
        return "must be a single SQL expression (no FROM, WHERE, GROUP BY, ...)"
    writes = _writes(statements[0])
    return f"may only read, and it contains {writes}" if writes else None


def sql_problem(text: str, kind: str, dialects: tuple[str, ...]) -> str | None:
    """Why ``text`` (a ``query`` or an ``expression``) would fail at run time in every one of
    ``dialects``, or None when one of them takes it (or its templates hide its SQL)."""
    import sqlglot

    renderings = _renderings(text)
    if renderings is None:
        return None
    check = _query_problem if kind == "query" else _expression_problem
    prefix = 0 if kind == "query" else len(_PREFIX)
    structural: str | None = None  # why a text that parses is still wrong (two statements, ...)
    syntax: str | None = None  # the first parse error
    sqlglot_logger = logging.getLogger("sqlglot")
    level = sqlglot_logger.level
    sqlglot_logger.setLevel(logging.ERROR)  # no "falling back to a Command" warnings on the console
    try:
        for dialect in dialects:
            for rendered in renderings:
                try:
                    problem = check(rendered, dialect)
                except sqlglot.errors.SqlglotError as error:
                    syntax = syntax or f"is not valid SQL ({_dialects(dialects)}): {_reason(error, prefix)}"
                    continue
                if problem is None:
                    return None
                structural = structural or problem
    finally:
        sqlglot_logger.setLevel(level)
    return structural or syntax


def _dialects(dialects: tuple[str, ...]) -> str:
    names = [_NAMES[d] for d in dialects]
    return names[0] if len(names) == 1 else "in none of " + ", ".join(names)


def sql_problems(pipeline: Pipeline) -> list[Problem]:
    """Located problems of every piece of SQL in ``pipeline``."""
    problems = []

    def check(path: tuple, text: str | None, kind: str, dialects: tuple[str, ...]) -> None:
        if text is None:
            return
        problem = sql_problem(text, kind, dialects)
        if problem:
            problems.append(Problem(path, f"{'.'.join(str(p) for p in path)}: {problem}"))

    for name, step in pipeline.steps.items():
        at = ("steps", name)
        check((*at, "sql"), step.sql, "query", WAREHOUSE_DIALECTS)
        dialects = ARTIFACT_DIALECTS if step.kind in PROCESS_KINDS else WAREHOUSE_DIALECTS
        for i, item in enumerate(step.checks):
            check((*at, "checks", i, "sql"), item.sql, "query", dialects)
            check((*at, "checks", i, "expression"), item.expression, "expression", dialects)
            check((*at, "checks", i, "where"), item.where, "expression", dialects)
        for i, item in enumerate(step.metrics):
            check((*at, "metrics", i, "expression"), item.expression, "expression", dialects)
            check((*at, "metrics", i, "where"), item.where, "expression", dialects)
    return problems
