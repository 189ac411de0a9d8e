"""Every statement on the results tables, built as sqlglot expressions and rendered in the
warehouse's dialect by its adapter (``Warehouse.render``): the DDL, the migrations, the store's
replace and lookups, and the read model's queries. No SQL text is written or edited here.

Identifiers. Every name of ours (tables, columns, CTEs, aliases) is written the same way in every
statement, reads and writes alike: normalized the way the dialect treats an unquoted name, then
quoted (``Warehouse.table`` / ``Warehouse.column``). So ``sample`` is ``"sample"`` in DuckDB and
PostgreSQL and ``"SAMPLE"`` in Snowflake, never a keyword. The rule is what keeps the tables of
release N readable: their DDL wrote the columns unquoted, which Snowflake stored upper-case
(``DAG_ID``), PostgreSQL lower-case and DuckDB as written (it matches names without regard to
case). Quoting *as written* would look for ``"dag_id"`` in Snowflake and miss ``DAG_ID``; leaving
names bare would meet keywords. Normalized-then-quoted names are the ones an unquoted name
resolves to, in all three, and can never be keywords.

Values. Every value (a dag id, a date, a step, an outcome or role word) is a DB-API parameter:
:class:`Binder` hands out the driver's marker and keeps the value; a statement is built in the
order its text reads (a CTE before the query that uses it, a SELECT list before its WHERE), so
the values line up with the markers. Page sizes and offsets, clamped integers of ours, are
literals.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from aq_airflow.results.rows import (
    CHECKS_TABLE,
    COLUMNS,
    DEPLOYMENTS_TABLE,
    KEY,
    METRICS_TABLE,
    Outcome,
    Role,
    naive_utc,
)
from aq_airflow.warehouse import Warehouse

#: the columns a table has (a table of an earlier release lacks those added since, until its first
#: write by this one; the read model reads a missing one as NULL, ``role`` by
#: :meth:`Statements.role`); None: it has every column of this release
Present = set[str] | None


class Binder:
    """DB-API parameters in the order their markers appear in a statement's text."""

    def __init__(self, marker: str):
        self.marker = marker
        self.values: list[Any] = []

    def __call__(self, value: Any) -> exp.Expression:
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, datetime.datetime):
            value = naive_utc(value)
        self.values.append(value)
        return exp.Var(this=self.marker)


@dataclass
class Statement:
    """One statement and its parameters."""

    expression: exp.Expression
    params: list[Any] = field(default_factory=list)


class Statements:
    """The statements of the results tables in one warehouse (in ``schema``, or the default)."""

    def __init__(self, warehouse: Warehouse, schema: str | None = None):
        self.warehouse = warehouse
        self.schema = schema

    # --- names -----------------------------------------------------------------------------

    def table(self, table: str) -> exp.Table:
        return self.warehouse.table(f"{self.schema}.{table}" if self.schema else table)

    def id(self, name: str) -> exp.Identifier:
        """One of our names, normalized for the dialect and quoted (see the module's docstring)."""
        return self.warehouse.column(name).this

    def col(self, name: str) -> exp.Column:
        return exp.Column(this=self.id(name))

    def alias(self, expression: exp.Expression, name: str) -> exp.Alias:
        return exp.Alias(this=expression, alias=self.id(name))

    def binder(self) -> Binder:
        return Binder(self.warehouse.placeholder)

    def render(self, statement: Statement) -> str:
        return self.warehouse.render(statement.expression)

    # --- DDL and migrations --------------------------------------------------------------------

    def create_schema(self) -> Statement | None:
        if not self.schema:
            return None
        return Statement(exp.Create(this=self.warehouse.table(self.schema), kind="SCHEMA", exists=True))

    def _column_def(self, table: str, column: str, exists: bool = False) -> exp.ColumnDef:
        kind = dict(COLUMNS[table])[column]
        constraints = []
        if table == CHECKS_TABLE and column == "role":  # rows of writers before the column: checks
            default = exp.DefaultColumnConstraint(this=exp.Literal.string(Role.CHECK.value))
            constraints.append(exp.ColumnConstraint(kind=default))
        return exp.ColumnDef(
            this=self.id(column), kind=self.warehouse.portable_type(kind), constraints=constraints, exists=exists
        )

    def create_table(self, table: str) -> Statement:
        columns = [self._column_def(table, name) for name, _ in COLUMNS[table]]
        return Statement(
            exp.Create(this=exp.Schema(this=self.table(table), expressions=columns), kind="TABLE", exists=True)
        )

    def add_column(self, table: str, column: str) -> Statement:
        definition = self._column_def(table, column, exists=self.warehouse.add_column_if_not_exists)
        return Statement(exp.Alter(this=self.table(table), kind="TABLE", actions=[definition]))

    def probe(self, table: str) -> Statement:
        """A query of no rows whose description names the table's columns (every warehouse)."""
        never = exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(0))
        return Statement(exp.select(exp.Star()).from_(self.table(table)).where(never))

    def move_when_verdicts(self) -> Statement:
        """Release N's `when:` verdicts (step ``<step>.when``, kind ``when``) to this version's
        shape: the step's own name, role ``when``. Rows of any other shape are left alone, so
        a second run changes nothing."""
        bind, suffix = self.binder(), f".{Role.WHEN.value}"
        step = self.col("step")
        shortened = exp.Substring(
            this=step.copy(),
            start=exp.Literal.number(1),
            length=exp.Sub(this=exp.Length(this=step.copy()), expression=bind(len(suffix))),
        )
        sets = [
            exp.EQ(this=self.col("step"), expression=shortened),
            exp.EQ(this=self.col("role"), expression=bind(Role.WHEN)),
        ]
        where = exp.and_(
            self.col("kind").eq(bind(Role.WHEN.value)),
            self.col("name").eq(bind(Role.WHEN.value)),
            exp.Like(this=self.col("step"), expression=bind(f"%{suffix}")),
        )
        return Statement(
            exp.Update(this=self.table(CHECKS_TABLE), expressions=sets, where=exp.Where(this=where)), bind.values
        )

    # --- the store's writes -----------------------------------------------------------------

    def _matches(self, bind: Binder, pairs: Sequence[tuple[str, Any]]) -> exp.Expression:
        return exp.and_(*[self.col(name).eq(bind(value)) for name, value in pairs])

    def delete_key(self, table: str, key: dict[str, Any]) -> Statement:
        """The rows of one key (:data:`~aq_airflow.results.rows.KEY`)."""
        bind = self.binder()
        where = self._matches(bind, [(name, key[name]) for name in KEY[table]])
        return Statement(exp.delete(self.table(table), where=where), bind.values)

    def delete_items_past(self, table: str, key: dict[str, Any], items: int) -> Statement:
        """A `foreach:` step's rows of the key's date at a map index past this run's items."""
        bind = self.binder()
        same = self._matches(bind, [(n, key[n]) for n in KEY[table] if n != "map_index"])
        past = exp.GTE(this=self.col("map_index"), expression=bind(int(items)))
        return Statement(exp.delete(self.table(table), where=exp.and_(same, past)), bind.values)

    def insert(self, table: str) -> Statement:
        """One row of ``table``, every column; for ``executemany`` with each row's values."""
        names = [name for name, _ in COLUMNS[table]]
        marks = exp.Tuple(expressions=[exp.Var(this=self.warehouse.placeholder) for _ in names])
        target = exp.Schema(this=self.table(table), expressions=[self.id(n) for n in names])
        return Statement(exp.insert(exp.Values(expressions=[marks]), target))

    # --- the store's lookups ----------------------------------------------------------------

    def latest_first(self) -> list[exp.Ordered]:
        """A date's rows, latest written first: by ``created_at``, then ``try_number``."""
        return [exp.Ordered(this=self.col(name), desc=True, nulls_first=False) for name in ("created_at", "try_number")]

    def rank(self, partition: Sequence[str], order: Sequence[exp.Ordered] | None = None) -> exp.Window:
        return exp.Window(
            this=exp.RowNumber(),
            partition_by=[self.col(n) for n in partition],
            order=exp.Order(expressions=list(order if order is not None else self.latest_first())),
        )

    def metric_history(
        self, dag_id: str, step: str, name: str, map_index: int, before: datetime.datetime, limit: int
    ) -> Statement:
        """Passed values of the latest row of each date before ``before``, newest first."""
        bind = self.binder()
        ranked = (
            exp.select(
                self.col("value"),
                self.col("outcome"),
                self.col("logical_date"),
                self.alias(self.rank(["logical_date"]), "aq_rank"),
            )
            .from_(self.table(METRICS_TABLE))
            .where(self._matches(bind, [("dag_id", dag_id), ("step", step), ("name", name), ("map_index", map_index)]))
            .where(exp.LT(this=self.col("logical_date"), expression=bind(before)))
        )
        query = (
            exp.select(self.col("value"))
            .from_(exp.Subquery(this=ranked, alias=exp.TableAlias(this=self.id("aq_latest"))))
            .where(self.col("aq_rank").eq(exp.Literal.number(1)))
            .where(self.col("outcome").eq(bind(Outcome.PASSED)))
            .where(exp.Not(this=exp.Is(this=self.col("value"), expression=exp.Null())))
            .order_by(exp.Ordered(this=self.col("logical_date"), desc=True))
            .limit(exp.Literal.number(int(limit)))
        )
        return Statement(query, bind.values)

    def run_result(
        self,
        table: str,
        dag_id: str,
        run_id: str,
        step: str,
        name: str,
        map_index: int,
        logical_date: datetime.datetime,
    ) -> Statement:
        """(value or NULL, outcome) of one check or metric as a run recorded it for its date."""
        bind = self.binder()
        value = self.col("value") if table == METRICS_TABLE else exp.Null()
        pairs = [
            ("dag_id", dag_id),
            ("run_id", run_id),
            ("step", step),
            ("name", name),
            ("map_index", map_index),
            ("logical_date", logical_date),
        ]
        if table == CHECKS_TABLE:
            pairs.append(("role", Role.CHECK))
        query = (
            exp.select(value, self.col("outcome"))
            .from_(self.table(table))
            .where(self._matches(bind, pairs))
            .order_by(*self.latest_first())
            .limit(exp.Literal.number(1))
        )
        return Statement(query, bind.values)

    def champion_date(self, dag_id: str, step: str, map_index: int, before: datetime.datetime) -> Statement:
        """The latest date before ``before`` on which ``step``'s `when:` condition held."""
        bind = self.binder()
        pairs = [
            ("dag_id", dag_id),
            ("step", step),
            ("role", Role.WHEN),
            ("outcome", Outcome.PASSED),
            ("map_index", map_index),
        ]
        query = (
            exp.select(self.col("logical_date"))
            .from_(self.table(CHECKS_TABLE))
            .where(self._matches(bind, pairs))
            .where(exp.LT(this=self.col("logical_date"), expression=bind(before)))
            .order_by(exp.Ordered(this=self.col("logical_date"), desc=True))
            .limit(exp.Literal.number(1))
        )
        return Statement(query, bind.values)

    def metric_value(
        self, dag_id: str, step: str, name: str, map_index: int, logical_date: datetime.datetime
    ) -> Statement:
        """A metric's value on one date (its latest row)."""
        bind = self.binder()
        pairs = [
            ("dag_id", dag_id),
            ("step", step),
            ("name", name),
            ("map_index", map_index),
            ("logical_date", logical_date),
        ]
        query = (
            exp.select(self.col("value"))
            .from_(self.table(METRICS_TABLE))
            .where(self._matches(bind, pairs))
            .order_by(*self.latest_first())
            .limit(exp.Literal.number(1))
        )
        return Statement(query, bind.values)

    # --- the read model's pieces ---------------------------------------------------------------

    def role(self, bind: Binder, present: Present) -> exp.Expression:
        """A checks row's role: its column; in a table of release N (no column yet) ``when`` for
        a row of kind ``when`` (how release N marked a verdict), ``check`` for any other."""
        if present is None or "role" in present:
            return self.col("role")
        is_when = self.col("kind").eq(bind(Role.WHEN.value))
        return exp.Case(ifs=[exp.If(this=is_when, true=bind(Role.WHEN))], default=bind(Role.CHECK))

    def sources(
        self,
        bind: Binder,
        table: str,
        columns: Sequence[str],
        present: Present,
        text: Sequence[str] = (),
        rewrite: dict[str, Callable[[Binder, exp.Expression], exp.Expression]] | None = None,
    ) -> list[exp.Expression]:
        """``columns`` as a SELECT list over ``table`` itself, each under its own name: a column
        the table lacks (a table of an earlier version) as NULL, ``role`` by :meth:`role`; those
        in ``text`` cast to text (a value the driver cannot convert); ``rewrite`` maps a column
        to an expression of it."""
        selected = []
        for name in columns:
            if name == "role" and table == CHECKS_TABLE:
                source = self.role(bind, present)
            elif present is not None and name not in present:
                source = exp.Null()
            else:
                source = self.col(name)
            if name in text:
                source = exp.cast(source, exp.DataType.build("VARCHAR"))
            if rewrite and name in rewrite:
                source = rewrite[name](bind, source)
            selected.append(self.alias(source, name))
        return selected

    def filters(
        self,
        bind: Binder,
        table: str,
        dag_id: str,
        present: Present,
        step: str | None = None,
        start: datetime.datetime | None = None,
        end: datetime.datetime | None = None,
        steps: Sequence[str] | None = None,
        map_index: int | None = None,
        run_id: str | None = None,
        logical_date: datetime.datetime | None = None,
        role: Role | None = None,
        endpoint: str | None = None,
        dated_steps: Sequence[tuple[datetime.datetime, str]] | None = None,
    ) -> exp.Expression:
        """The WHERE of a read: one pipeline, and whichever of the rest are given (``endpoint``:
        of ``aq_deployments``; ``dated_steps``: any of these (logical_date, step) pairs)."""
        conditions: list[exp.Expression] = [self.col("dag_id").eq(bind(dag_id))]
        if logical_date is not None:
            conditions.append(self.col("logical_date").eq(bind(logical_date)))
        if step is not None:
            conditions.append(self.col("step").eq(bind(step)))
        if steps is not None:
            conditions.append(exp.In(this=self.col("step"), expressions=[bind(s) for s in steps]))
        if start is not None:
            conditions.append(exp.GTE(this=self.col("logical_date"), expression=bind(start)))
        if end is not None:
            conditions.append(exp.LT(this=self.col("logical_date"), expression=bind(end)))
        if map_index is not None:
            conditions.append(self.col("map_index").eq(bind(int(map_index))))
        if run_id is not None:
            conditions.append(self.col("run_id").eq(bind(run_id)))
        if role is not None and table == CHECKS_TABLE:
            conditions.append(self.role(bind, present).eq(bind(role)))
        if endpoint is not None:
            conditions.append(self.col("endpoint").eq(bind(endpoint)))
        if dated_steps is not None:
            pairs = [
                exp.and_(self.col("logical_date").eq(bind(date)), self.col("step").eq(bind(step)))
                for date, step in dated_steps
            ]
            conditions.append(exp.Paren(this=exp.or_(*pairs)) if len(pairs) > 1 else pairs[0])
        return exp.and_(*conditions)

    def partition(self, table: str, present: Present) -> list[str]:
        """What one verdict is: a date's check or metric of a step and map index (and role)."""
        keys = ["logical_date", "step", "map_index", "name"]
        return [*keys, "role"] if table == CHECKS_TABLE and (present is None or "role" in present) else keys

    def latest(
        self,
        bind: Binder,
        table: str,
        columns: Sequence[str],
        present: Present,
        where: Callable[[Binder], exp.Expression],
    ) -> exp.Select:
        """Each verdict's latest row among ``where``'s (``where`` binds after the SELECT list)."""
        selected = self.sources(bind, table, columns, present)
        ranked = (
            exp.select(*selected, self.alias(self.rank(self.partition(table, present)), "aq_rank"))
            .from_(self.table(table))
            .where(where(bind))
        )
        return (
            exp.select(*[self.col(c) for c in columns])
            .from_(exp.Subquery(this=ranked, alias=exp.TableAlias(this=self.id("aq_latest"))))
            .where(self.col("aq_rank").eq(exp.Literal.number(1)))
        )

    # --- the read model's queries ---------------------------------------------------------------

    def series(
        self,
        table: str,
        columns: Sequence[str],
        present: Present,
        where: Callable[[Binder], exp.Expression],
        first: int,
        last: int,
        points: int,
        messages: bool = True,
    ) -> Statement:
        """Series ``first+1 .. last`` (a series: a check or metric of a step, map index (and
        role), ordered so) with each series' newest ``points`` dates, each date's latest row; and
        the number of series. ``messages=False``: a passed row's message reads as NULL.

        One query: the page's series keys first (numbered and counted), then the latest row per
        date and the points cap over those series' rows only, partitioned by the key's number
        (an integer sort, not one of text under a collation)."""
        bind = self.binder()
        keys = self.partition(table, present)[1:]
        keyed = [f"aq_{k}" for k in keys]
        grouped = exp.select(*[self.col(k) for k in keys]).from_(self.table(table)).where(where(bind))
        grouped = grouped.group_by(*[self.col(k) for k in keys])
        numbered = exp.select(
            *[self.alias(self.col(k), a) for k, a in zip(keys, keyed, strict=True)],
            self.alias(
                exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[self.col(k) for k in keys])), "aq_key"
            ),
            self.alias(exp.Window(this=exp.Count(this=exp.Star())), "aq_total"),
        ).from_(exp.Table(this=self.id("aq_keys")))
        page = (
            exp.select(*[self.col(a) for a in keyed], self.col("aq_key"), self.col("aq_total"))
            .from_(exp.Table(this=self.id("aq_numbered")))
            .where(exp.GT(this=self.col("aq_key"), expression=exp.Literal.number(int(first))))
            .where(exp.LTE(this=self.col("aq_key"), expression=exp.Literal.number(int(last))))
        )
        rewrite = None
        if not messages:

            def passed_message(bind: Binder, message: exp.Expression) -> exp.Expression:
                passed = self.col("outcome").eq(bind(Outcome.PASSED))
                return exp.Case(ifs=[exp.If(this=passed, true=exp.Null())], default=message)

            rewrite = {"message": passed_message}
        selected = self.sources(bind, table, columns, present, rewrite=rewrite)
        on = exp.and_(*[self.col(k).eq(self.col(a)) for k, a in zip(keys, keyed, strict=True)])
        dated = (
            exp.select(
                *selected,
                self.col("aq_key"),
                self.col("aq_total"),
                self.alias(self.rank(["aq_key", "logical_date"]), "aq_rank"),
            )
            .from_(self.table(table))
            .join(exp.Table(this=self.id("aq_page")), on=on)
            .where(where(bind))
        )
        newest = exp.Ordered(this=self.col("logical_date"), desc=True)
        pointed = (
            exp.select(
                *[self.col(c) for c in columns],
                self.col("aq_key"),
                self.col("aq_total"),
                self.alias(
                    exp.Window(
                        this=exp.RowNumber(), partition_by=[self.col("aq_key")], order=exp.Order(expressions=[newest])
                    ),
                    "aq_point",
                ),
            )
            .from_(exp.Table(this=self.id("aq_dated")))
            .where(self.col("aq_rank").eq(exp.Literal.number(1)))
        )
        query = (
            exp.select(*[self.col(c) for c in columns], self.col("aq_key"), self.col("aq_total"))
            .from_(exp.Table(this=self.id("aq_pointed")))
            .where(exp.LTE(this=self.col("aq_point"), expression=exp.Literal.number(int(points))))
        )
        for name, body in (
            ("aq_keys", grouped),
            ("aq_numbered", numbered),
            ("aq_page", page),
            ("aq_dated", dated),
            ("aq_pointed", pointed),
        ):
            query = query.with_(self.id(name), as_=body)
        return Statement(query, bind.values)

    def timeline(
        self,
        table: str,
        columns: Sequence[str],
        present: Present,
        where: Callable[[Binder], exp.Expression],
        limit: int,
        offset: int,
    ) -> Statement:
        """Verdicts as rows, newest date first, then step, map index and name."""
        bind = self.binder()
        order = [
            exp.Ordered(this=self.col("logical_date"), desc=True),
            *[exp.Ordered(this=self.col(c)) for c in ("step", "map_index", "name")],
        ]
        query = self.latest(bind, table, columns, present, where).order_by(*order)
        query = query.limit(exp.Literal.number(int(limit))).offset(exp.Literal.number(int(offset)))
        return Statement(query, bind.values)

    def run_rows(
        self, table: str, columns: Sequence[str], present: Present, where: Callable[[Binder], exp.Expression]
    ) -> Statement:
        """One date's verdicts (their latest rows), by step, map index and name."""
        bind = self.binder()
        query = self.latest(bind, table, columns, present, where)
        return Statement(query.order_by(*[self.col(c) for c in ("step", "map_index", "name")]), bind.values)

    def steps(self, dag_id: str) -> Statement:
        """Every step of a pipeline with rows in either table."""
        bind = self.binder()
        selects = [
            exp.select(self.col("step")).distinct().from_(self.table(table)).where(self.col("dag_id").eq(bind(dag_id)))
            for table in (CHECKS_TABLE, METRICS_TABLE)
        ]
        return Statement(exp.union(*selects, distinct=True), bind.values)

    def overview(self, dag_ids: Sequence[str], present: Present) -> Statement:
        """Each pipeline's latest date and the verdict counts of its checks and metrics on it (a
        condition's verdict dates a pipeline, but is not counted)."""
        bind = self.binder()
        columns = [
            "dag_id",
            "logical_date",
            "step",
            "map_index",
            "name",
            "outcome",
            "severity",
            "created_at",
            "try_number",
        ]
        parts = []
        for tag, table in enumerate((CHECKS_TABLE, METRICS_TABLE)):
            role = self.role(bind, present) if table == CHECKS_TABLE else exp.Null()
            part = (
                exp.select(
                    self.alias(exp.Literal.number(tag), "aq_table"),
                    *[self.col(c) for c in columns],
                    self.alias(role, "role"),
                )
                .from_(self.table(table))
                .where(exp.In(this=self.col("dag_id"), expressions=[bind(d) for d in dag_ids]))
            )
            parts.append(part)
        rows = exp.union(*parts, distinct=False)
        newest = (
            exp.select(
                self.alias(self.col("dag_id"), "aq_dag"), self.alias(exp.Max(this=self.col("logical_date")), "aq_date")
            )
            .from_(exp.Table(this=self.id("aq_rows")))
            .group_by(self.col("dag_id"))
        )
        on = exp.and_(self.col("dag_id").eq(self.col("aq_dag")), self.col("logical_date").eq(self.col("aq_date")))
        latest = (
            exp.select(
                *[self.col(c) for c in ("dag_id", "logical_date", "role", "outcome", "severity")],
                self.alias(self.rank(["aq_table", "dag_id", "step", "map_index", "name", "role"]), "aq_rank"),
            )
            .from_(exp.Table(this=self.id("aq_rows")))
            .join(exp.Table(this=self.id("aq_newest")), on=on)
        )
        counted = exp.or_(
            exp.Is(this=self.col("role"), expression=exp.Null()),
            exp.NEQ(this=self.col("role"), expression=bind(Role.WHEN)),
        )
        group = [self.col(c) for c in ("dag_id", "logical_date", "outcome", "severity")]
        query = (
            exp.select(*[g.copy() for g in group], exp.Count(this=exp.Star()))
            .from_(exp.Table(this=self.id("aq_latest")))
            .where(exp.and_(self.col("aq_rank").eq(exp.Literal.number(1)), counted))
            .group_by(*group)
        )
        for name, body in (("aq_rows", rows), ("aq_newest", newest), ("aq_latest", latest)):
            query = query.with_(self.id(name), as_=body)
        return Statement(query, bind.values)

    def newest_dates(self, dag_ids: Sequence[str]) -> Statement:
        """Each pipeline's latest date in the checks table."""
        bind = self.binder()
        query = (
            exp.select(self.col("dag_id"), exp.Max(this=self.col("logical_date")))
            .from_(self.table(CHECKS_TABLE))
            .where(exp.In(this=self.col("dag_id"), expressions=[bind(d) for d in dag_ids]))
            .group_by(self.col("dag_id"))
        )
        return Statement(query, bind.values)

    def newest_rows(
        self,
        table: str,
        columns: Sequence[str],
        present: Present,
        where: Callable[[Binder], exp.Expression],
        last: int,
        text: Sequence[str] = (),
    ) -> Statement:
        """Every row (not one per date), newest written first."""
        bind = self.binder()
        order = [
            exp.Ordered(this=self.col("created_at"), desc=True),
            *[exp.Ordered(this=self.col(c)) for c in ("step", "map_index", "name")],
        ]
        query = (
            exp.select(*self.sources(bind, table, columns, present, text))
            .from_(self.table(table))
            .where(where(bind))
            .order_by(*order)
            .limit(exp.Literal.number(max(0, int(last))))
        )
        return Statement(query, bind.values)

    # --- the deployments' reads -------------------------------------------------------------------

    def deployments(
        self, columns: Sequence[str], present: Present, where: Callable[[Binder], exp.Expression], last: int
    ) -> Statement:
        """Promotion attempts (rows of ``aq_deployments``: one per try), newest first: by
        ``created_at``, then ``try_number``; at most ``last``."""
        bind = self.binder()
        query = (
            exp.select(*self.sources(bind, DEPLOYMENTS_TABLE, columns, present))
            .from_(self.table(DEPLOYMENTS_TABLE))
            .where(where(bind))
            .order_by(*self.latest_first(), exp.Ordered(this=self.col("endpoint")))
            .limit(exp.Literal.number(max(0, int(last))))
        )
        return Statement(query, bind.values)

    def endpoints(
        self, columns: Sequence[str], present: Present, where: Callable[[Binder], exp.Expression]
    ) -> Statement:
        """Each endpoint's latest promotion attempt among ``where``'s rows, by endpoint."""
        bind = self.binder()
        ranked = (
            exp.select(
                *self.sources(bind, DEPLOYMENTS_TABLE, columns, present),
                self.alias(self.rank(["endpoint"]), "aq_rank"),
            )
            .from_(self.table(DEPLOYMENTS_TABLE))
            .where(where(bind))
        )
        query = (
            exp.select(*[self.col(c) for c in columns])
            .from_(exp.Subquery(this=ranked, alias=exp.TableAlias(this=self.id("aq_latest"))))
            .where(self.col("aq_rank").eq(exp.Literal.number(1)))
            .order_by(self.col("endpoint"))
        )
        return Statement(query, bind.values)
