"""SQL building blocks for checks and metrics: literals, user expressions and the relation a
suite scans, as sqlglot expressions rendered per dialect (never pasted text). Identifiers come
from the warehouse layer (``aq_airflow.warehouse.column_expression``)."""

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


def user_expression(text: str, dialect: str | None, what: str) -> exp.Expression:
    """One SQL expression written by the user (`expression:`, `where:`): parsed, never pasted."""
    try:
        statements = sqlglot.parse(f"SELECT {text}", read=dialect)
    except sqlglot.errors.ParseError as error:
        raise QualitySQLError(f"{what} `{text}` is not valid SQL: {error.errors[0]['description']}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Select) or len(statements[0].expressions) != 1:
        raise QualitySQLError(f"{what} `{text}` must be a single SQL expression")
    select = statements[0]
    if any(select.args.get(k) for k in ("from", "where", "group", "having", "limit")):
        raise QualitySQLError(f"{what} `{text}` must be a single SQL expression")
    return select.expressions[0]


def query_relation(sql: str, dialect: str | None) -> exp.Expression:
    """A `sql` step's query as a subquery: checks run where the data is (pushdown)."""
    return sqlglot.parse_one(sql, read=dialect).subquery()


def count_if(condition: exp.Expression) -> exp.Expression:
    """SUM(CASE WHEN condition THEN 1 ELSE 0 END): portable across every dialect."""
    return exp.func("SUM", exp.If(this=condition, true=exp.Literal.number(1), false=exp.Literal.number(0)))


def when(where: exp.Expression | None, value: exp.Expression) -> exp.Expression:
    """``value`` for rows matching ``where`` (NULL elsewhere), for aggregates that skip NULLs."""
    return value if where is None else exp.If(this=where, true=value)
