"""Sessions: the one way aq-airflow runs statements on a warehouse.

``Warehouse.reading()`` yields a :class:`ReadSession` (one connection; a read-only transaction
where the dialect has one, so the SQL users write reads and never writes), and
``Warehouse.writing()`` a :class:`WriteSession` (one transaction: every statement commits together
or none does). The quality engine, the results store and its history, publish, the CLI and the UI
all go through these two; no module opens connections or transactions of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlglot import exp

if TYPE_CHECKING:
    import pyarrow as pa


# rows per Arrow batch read from a warehouse when the caller does not say
BATCH_ROWS = 128 * 1024


class Session:
    """Statements on one connection's cursor; SQL as text or as a sqlglot expression (rendered
    in the warehouse's dialect), values always as DB-API parameters. ``warehouse`` is the
    ``Warehouse`` adapter that opened it (it renders expressions and knows the dialect's
    read-only transaction)."""

    def __init__(self, warehouse: Any, conn: Any):
        self.warehouse = warehouse
        self.conn = conn
        self.cursor = warehouse.cursor(conn)

    def _text(self, sql: str | exp.Expression) -> str:
        return self.warehouse.render(sql) if isinstance(sql, exp.Expression) else sql

    def _execute(self, sql: str | exp.Expression, parameters: Sequence[Any]) -> None:
        if parameters:
            self.cursor.execute(self._text(sql), tuple(parameters))
        else:
            self.cursor.execute(self._text(sql))

    def execute(self, sql: str | exp.Expression, parameters: Sequence[Any] = ()) -> None:
        """Run one statement."""
        self._execute(sql, parameters)

    def fetch(self, sql: str | exp.Expression, parameters: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        """(column names, rows) of one query."""
        self.execute(sql, parameters)
        return [d[0] for d in self.cursor.description or []], [tuple(r) for r in self.cursor.fetchall()]

    def rows(self, sql: str | exp.Expression, parameters: Sequence[Any] = ()) -> list[tuple]:
        """The rows of one query."""
        return self.fetch(sql, parameters)[1]


class ReadSession(Session):
    """Reads on one connection, inside a read-only transaction where the warehouse has one
    (DuckDB, PostgreSQL; Snowflake has none). A statement the warehouse rejects ends its
    transaction (rolled back: PostgreSQL refuses every later statement of an aborted one) and the
    next statement opens another, so one bad query never poisons the queries after it."""

    def __init__(self, warehouse: Any, conn: Any):
        super().__init__(warehouse, conn)
        self._open = False

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """The read-only transaction a statement runs in: opened unless open, ended when the
        statement (or reading its result) fails."""
        if not self._open:
            self._open = self.warehouse.begin_read_only(self.conn, self.cursor)
        try:
            yield
        except BaseException:
            self.end()
            raise

    def execute(self, sql: str | exp.Expression, parameters: Sequence[Any] = ()) -> None:
        with self._transaction():
            self._execute(sql, parameters)

    def fetch(self, sql: str | exp.Expression, parameters: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        with self._transaction():
            return super().fetch(sql, parameters)

    def arrow(self, sql: str, batch_rows: int = BATCH_ROWS) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """``(schema, record batches)`` of one query, streamed the adapter's fastest way (memory
        holds about one batch); the batches are valid until the session ends."""
        with self._transaction():
            return self.warehouse.read_arrow(self.conn, sql, batch_rows)

    def end(self) -> None:
        """End the current read-only transaction (rolled back: it wrote nothing)."""
        if self._open:
            self._open = False
            self.warehouse.end_read_only(self.conn, self.cursor)


class WriteSession(Session):
    """Statements of one transaction (committed by ``Warehouse.writing()`` when its block ends
    without an error, rolled back otherwise)."""

    def run(self, statements: Sequence[str | exp.Expression]) -> None:
        """Run statements in order."""
        for statement in statements:
            self.execute(statement)

    def executemany(self, sql: str | exp.Expression, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for each row of DB-API parameters (the driver batches them)."""
        self.cursor.executemany(self._text(sql), rows)

    def begin(self) -> None:
        """Open the transaction now, in a session made with ``writing(begin=False)``: what ran
        before (DDL, staging that commits on its own) is outside it, what follows is in it."""
        self.warehouse.begin(self.cursor)
