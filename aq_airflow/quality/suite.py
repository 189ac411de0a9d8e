"""A step's checks and metrics compiled into one aggregate query: one scan of the data.

Each check or metric contributes a few named aggregates (``SUM(CASE ...)`` failing counts,
``COUNT(*)``, ``MAX(col)``, ...) to a single ``SELECT ... FROM source``. Checks that cannot be an
aggregate (``schema``, raw ``sql``, Great Expectations) are evaluated beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from aq_airflow.plan.model import CheckPlan, MetricPlan
from aq_airflow.quality.sql import QualitySQLError, count_if, literal, null_count, user_expression, when
from aq_airflow.warehouse import column_expression as column

FUSED_CHECKS = ("not_null", "unique", "between", "accepted_values", "row_count", "freshness", "expression")
SAMPLE_LIMIT = 5


@dataclass
class Compiled:
    """One check or metric: its plan, the aggregates it reads, and how to sample failing rows."""

    spec: CheckPlan | MetricPlan
    measures: dict[str, str] = field(default_factory=dict)  # role -> alias in the fused query
    failing: exp.Expression | None = None  # row-level condition, for samples
    where: exp.Expression | None = None
    sample_columns: list[exp.Column] = field(default_factory=list)
    error: str | None = None  # the check could not be compiled


class Suite:
    """The fused query of one step's checks and metrics over one relation."""

    def __init__(self, relation: exp.Expression, dialect: str | None):
        self.relation = relation
        self.dialect = dialect
        self.aggregates: dict[str, exp.Expression] = {}

    def measure(self, expression: exp.Expression) -> str:
        """The alias of an aggregate in the fused query; the same aggregate is computed once."""
        for alias, existing in self.aggregates.items():
            if existing == expression:
                return alias
        alias = f"m{len(self.aggregates)}"
        self.aggregates[alias] = expression
        return alias

    def query(self) -> str | None:
        if not self.aggregates:
            return None
        select = exp.select(*(exp.alias_(e, a, quoted=True) for a, e in self.aggregates.items()))
        return select.from_(exp.alias_(self.relation, "aq_source")).sql(dialect=self.dialect)

    def sample_query(self, compiled: Compiled, sensitive: set[str]) -> str | None:
        """A few failing rows of a row-level check, without the columns marked sensitive."""
        columns = [c for c in compiled.sample_columns if c.name.lower() not in sensitive]
        hidden = len(columns) < len(compiled.sample_columns)
        kind = compiled.spec.kind
        if not columns or (hidden and kind == "unique"):  # a partial key would mislead
            return None
        source = exp.alias_(self.relation, "aq_source")
        if kind == "unique":  # the duplicated keys, with how often each appears
            rows = exp.func("COUNT", exp.Star())
            select = exp.select(*columns, exp.alias_(rows.copy(), "duplicates", quoted=True)).from_(source)
            if compiled.where is not None:
                select = select.where(compiled.where)
            select = select.group_by(*[c.copy() for c in columns]).having(rows > exp.Literal.number(1))
            return select.limit(SAMPLE_LIMIT).sql(dialect=self.dialect)
        if compiled.failing is None:
            return None
        select = exp.select(*columns).from_(source).where(compiled.failing)
        return select.limit(SAMPLE_LIMIT).sql(dialect=self.dialect)

    def _where(self, spec: CheckPlan | MetricPlan) -> exp.Expression | None:
        return user_expression(spec.where, self.dialect, "where") if spec.where else None

    def _rows(self, where: exp.Expression | None) -> str:
        return self.measure(count_if(where, self.dialect) if where is not None else exp.func("COUNT", exp.Star()))

    def _failing(
        self, compiled: Compiled, where, condition: exp.Expression, columns: list[exp.Column], count=None
    ) -> None:
        """``count``: an aggregate counting the rows ``condition`` holds for, cheaper than
        ``count_if(condition)``."""
        full = condition if where is None else exp.and_(where.copy(), condition)
        compiled.measures["failing"] = self.measure(count if count is not None else count_if(full, self.dialect))
        compiled.measures["rows"] = self._rows(where)
        compiled.failing = full
        compiled.sample_columns = columns

    def add_check(self, spec: CheckPlan) -> Compiled:
        compiled = Compiled(spec)
        if spec.kind not in FUSED_CHECKS:
            return compiled
        try:
            self._add_check(compiled, spec)
        except QualitySQLError as error:
            compiled.error = str(error)
        return compiled

    def _add_check(self, compiled: Compiled, spec: CheckPlan) -> None:
        d, kind = self.dialect, spec.kind
        where = self._where(spec)
        if kind in ("not_null", "unique"):
            cols = [column(n, d) for n in spec.columns]
            single = where is None and len(cols) == 1  # counted by COUNT's own NULL skipping
            if kind == "not_null":
                count = null_count(cols[0]) if single else None
                self._failing(compiled, where, exp.or_(*(c.is_(exp.Null()) for c in cols)), cols, count)
                return
            present = exp.and_(*(exp.Not(this=c.is_(exp.Null())) for c in cols))
            counted = present if where is None else exp.and_(where.copy(), present)
            rows = exp.Count(this=cols[0].copy()) if single else count_if(counted, self.dialect)
            compiled.measures["rows"] = self.measure(rows)
            distinct = exp.Count(this=exp.Distinct(expressions=[when(where, c.copy()) for c in cols]))
            compiled.measures["distinct"] = self.measure(distinct)
            compiled.sample_columns = cols
            compiled.where = where
        elif kind == "between":
            col = column(spec.column, d)
            failing = exp.or_(col.copy() < literal(spec.low), col.copy() > literal(spec.high))
            self._failing(compiled, where, failing, [col])
        elif kind == "accepted_values":
            col = column(spec.column, d)
            allowed = [literal(v) for v in spec.values]
            self._failing(compiled, where, exp.Not(this=col.copy().isin(*allowed)), [col])
        elif kind == "expression":
            condition = user_expression(spec.expression, d, "expression")
            holds = exp.func("COALESCE", exp.paren(condition), exp.false())
            cols = list({c.name: column(c.name, d) for c in condition.find_all(exp.Column)}.values())
            self._failing(compiled, where, exp.Not(this=holds), cols)
        elif kind == "row_count":
            compiled.measures["rows"] = self._rows(where)
        elif kind == "freshness":
            col = column(spec.column, d)
            compiled.measures["latest"] = self.measure(exp.func("MAX", when(where, col)))

    def add_metric(self, spec: MetricPlan) -> Compiled:
        compiled = Compiled(spec)
        try:
            compiled.measures["value"] = self.measure(self._metric(spec))
        except QualitySQLError as error:
            compiled.error = str(error)
        return compiled

    def _metric(self, spec: MetricPlan) -> exp.Expression:
        d, kind = self.dialect, spec.kind
        where = self._where(spec)
        if kind == "expression":
            if where is not None:
                raise QualitySQLError("`where` does not combine with an `expression` metric; filter inside it")
            return user_expression(spec.expression, d, "expression")
        if kind == "count":
            if spec.column == "*":
                return count_if(where, self.dialect) if where is not None else exp.func("COUNT", exp.Star())
            return exp.func("COUNT", when(where, column(spec.column, d)))
        if kind == "quantile":
            col = when(where, column(spec.column, d))
            within = exp.WithinGroup(
                this=exp.PercentileCont(this=exp.Literal.number(spec.q)),
                expression=exp.Order(expressions=[exp.Ordered(this=col)]),
            )
            return within
        col = column(spec.column, d)
        if kind == "null_fraction":
            rows = count_if(where, self.dialect) if where is not None else exp.func("COUNT", exp.Star())
            nulls = null_count(col) if where is None else count_if(exp.and_(where, col.is_(exp.Null())), d)
            return exp.Div(
                this=exp.Cast(this=nulls, to=exp.DataType.build("double")),
                expression=exp.func("NULLIF", rows, exp.Literal.number(0)),
            )
        if kind == "distinct_count":
            return exp.Count(this=exp.Distinct(expressions=[when(where, col)]))
        function = {"mean": "AVG", "min": "MIN", "max": "MAX", "sum": "SUM", "stddev": "STDDEV_SAMP"}[kind]
        return exp.func(function, when(where, col))
