"""SQL building blocks for checks and metrics: literals, user expressions and queries, and the
relation a suite scans, as sqlglot expressions rendered per dialect (never pasted text).
Identifiers come from the warehouse layer (``aq_airflow.warehouse.column_expression``).

SQL a user writes (`where:`, check and metric `expression:`, a raw `sql:` check) is parsed and
must be exactly one expression, or exactly one query that only reads; what runs is sqlglot's
rendering of what was checked, never the text as written. The engine also runs it inside a
read-only transaction where the warehouse has one. Neither limits *what* a query may read: the
warehouse connection's rights are that boundary."""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp


class QualitySQLError(ValueError):
    """A user expression that is not one SQL expression in the warehouse's dialect."""


def literal(value: Any) -> exp.Expression:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


# statements (anywhere in a tree: a data-modifying CTE, SELECT ... INTO, FOR UPDATE) that do
# more than read; a user's query or expression holding one is rejected before it reaches the
# warehouse. Looked up by name: not every sqlglot version has every node.
_WRITES = tuple(
    kind
    for name in ("DML", "DDL", "Drop", "Alter", "Command", "Into", "Lock", "Copy", "Pragma", "Set", "Use",
                 "Transaction", "Commit", "Rollback", "Attach", "Detach", "TruncateTable", "Grant", "Revoke",
                 "Kill", "Analyze", "Refresh", "Cache", "Uncache", "LoadData", "Install", "Export", "Comment")
    if isinstance(kind := getattr(exp, name, None), type)
)  # fmt: skip


def _parse(text: str, dialect: str | None, what: str) -> list[exp.Expression]:
    try:
        statements = sqlglot.parse(text, read=dialect)
    except sqlglot.errors.ParseError as error:
        raise QualitySQLError(f"{what} `{text}` is not valid SQL: {error.errors[0]['description']}") from None
    except sqlglot.errors.SqlglotError as error:  # a token error: an unterminated string, ...
        raise QualitySQLError(f"{what} `{text}` is not valid SQL: {error}") from None
    return [s for s in statements if s is not None]  # a stray `;` is no statement


def _writes(tree: exp.Expression) -> exp.Expression | None:
    """The first node of ``tree`` that does more than read, if any."""
    return next((node for node in tree.walk() if isinstance(node, _WRITES)), None)


def _statement_name(node: exp.Expression) -> str:
    named = {"into": "SELECT ... INTO", "lock": "FOR UPDATE/FOR SHARE", "command": "a statement sqlglot cannot read"}
    return named.get(node.key, node.key.upper().replace("_", " "))


def user_expression(text: str, dialect: str | None, what: str) -> exp.Expression:
    """One SQL expression written by the user (`expression:`, `where:`): parsed, never pasted."""
    statements = _parse(f"SELECT {text}", dialect, what)
    if len(statements) != 1 or not isinstance(statements[0], exp.Select) or len(statements[0].expressions) != 1:
        raise QualitySQLError(f"{what} `{text}` must be a single SQL expression")
    select = statements[0]
    # nothing but the one expression: no FROM, WHERE, GROUP BY, INTO, ... (by what is set, not a
    # list of clause names, which change between sqlglot versions: `from` became `from_`)
    if any(value for key, value in select.args.items() if key != "expressions"):
        raise QualitySQLError(f"{what} `{text}` must be a single SQL expression")
    if (writes := _writes(select)) is not None:
        raise QualitySQLError(f"{what} `{text}` may only read; it contains {_statement_name(writes)}")
    return select.expressions[0]


def user_query(text: str, dialect: str | None, what: str = "sql") -> str:
    """A query written by the user (a raw `sql:` check): exactly one SELECT that only reads,
    rendered by sqlglot from what was checked (so a second statement cannot ride along)."""
    statements = _parse(text, dialect, what)
    if len(statements) != 1:
        raise QualitySQLError(f"{what} must be exactly one SELECT statement; `{text}` has {len(statements)} statements")
    (statement,) = statements
    if not isinstance(statement, exp.Query):
        raise QualitySQLError(f"{what} must be one SELECT statement; `{text}` is {_statement_name(statement)}")
    if (writes := _writes(statement)) is not None:
        raise QualitySQLError(f"{what} must be a SELECT that only reads; `{text}` contains {_statement_name(writes)}")
    return statement.sql(dialect=dialect)


def query_relation(sql: str, dialect: str | None) -> exp.Expression:
    """A `sql` step's query as a subquery: checks run where the data is (pushdown)."""
    statements = _parse(sql, dialect, "the step's query")
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise QualitySQLError("checks read a `sql` step's query as a subquery: it must be exactly one SELECT")
    return statements[0].subquery()


# dialects where counting with the aggregate FILTER clause (SQL:2003) is measured faster than
# SUM(CASE ...) (bench/quality.py): PostgreSQL skips a row FILTER rejects without the CASE and
# SUM's transition, 10-20% of a scan of many checks. Not DuckDB: its SUM(CASE ...) is as fast.
_COUNT_WITH_FILTER = frozenset({"postgres"})


def count_if(condition: exp.Expression, dialect: str | None) -> exp.Expression:
    """How many rows ``condition`` holds for: ``COUNT(*) FILTER (WHERE condition)`` where that is
    faster, ``SUM(CASE WHEN condition THEN 1 ELSE 0 END)`` (portable) elsewhere. The counts are
    the same, but for no rows at all: 0 where SUM gives NULL (as COUNT(*) does); outcomes read
    NULL as 0."""
    if dialect in _COUNT_WITH_FILTER:
        return exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=condition))
    return exp.func("SUM", exp.If(this=condition, true=exp.Literal.number(1), false=exp.Literal.number(0)))


def null_count(column: exp.Expression) -> exp.Expression:
    """``COUNT(*) - COUNT(column)``: the NULLs of a column over every row, counted by COUNT's own
    skipping of NULLs, with no condition evaluated per row (portable; 5-10% of a PostgreSQL scan
    of many checks). ``count_if`` serves the rest: a `where`, several columns."""
    return exp.Sub(this=exp.Count(this=exp.Star()), expression=exp.Count(this=column.copy()))


def when(where: exp.Expression | None, value: exp.Expression) -> exp.Expression:
    """``value`` for rows matching ``where`` (NULL elsewhere), for aggregates that skip NULLs."""
    return value if where is None else exp.If(this=where, true=value)
