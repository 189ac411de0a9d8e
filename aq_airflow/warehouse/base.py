"""The warehouse adapter contract: everything aq-airflow does that depends on which database a
DbApiHook reaches, in one class per dialect.

``Warehouse`` implements the portable parts over PEP 249 (connections, read and write sessions,
Arrow batches from rows, statement generation through sqlglot, telling failures apart); each
dialect's module overrides only what differs, the way sqlglot's dialects do. Adapters register
themselves by subclassing (their ``conn_types``; the generic one as the fallback), so this module
imports none of them: ``Warehouse.of(hook)`` picks among those registered, and the package
(``aq_airflow.warehouse``) imports every adapter module. Nothing here imports a driver, pandas or
``pyarrow.dataset`` at import time: those imports stay inside the methods that need them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.fs as pafs
from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from aq_airflow.artifacts.store import read_row_groups
from aq_airflow.warehouse.session import ReadSession, WriteSession

log = logging.getLogger(__name__)

MODES = ("append", "replace", "merge")

# PEP 249's classes for failures of the database's operation rather than of the query or data:
# a lost connection, a lock, a timeout, a full disk. Every driver names them so.
_INFRASTRUCTURE_CLASSES = frozenset({"OperationalError", "InterfaceError"})
# SQLSTATE classes that say the same where a driver reports one (psycopg ``pgcode``/``sqlstate``,
# Snowflake ``sqlstate``): connection exception, transaction rollback (serialization failure,
# deadlock), insufficient resources, operator intervention (cancel, shutdown), system error
_INFRASTRUCTURE_SQLSTATES = frozenset({"08", "40", "53", "57", "58"})


def normalize_identifier(name: str, dialect: str | None) -> str:
    """The spelling a quoted reference must use to mean the unquoted ``name`` (Snowflake
    upper-cases unquoted names, PostgreSQL and DuckDB lower-case or ignore case)."""
    return normalize_identifiers(exp.to_identifier(name), dialect=dialect).name


def table_expression(name: str, dialect: str | None) -> exp.Table:
    """A (validated, dotted) table name, each part normalized for the dialect, then quoted."""
    node = normalize_identifiers(exp.to_table(name, dialect=dialect), dialect=dialect)
    for part in node.find_all(exp.Identifier):
        part.set("quoted", True)
    return node


def column_expression(name: str, dialect: str | None) -> exp.Column:
    """A column, normalized the way the dialect treats unquoted names, then quoted."""
    node = normalize_identifiers(exp.column(name), dialect=dialect)
    node.this.set("quoted", True)
    return node


def select_all(table: str, dialect: str | None) -> str:
    """``SELECT * FROM table`` with each part of the name normalized and quoted for the dialect,
    so quoting never changes which table is meant."""
    return exp.select("*").from_(table_expression(table, dialect)).sql(dialect=dialect, identify=True)


def sql_type(kind: pa.DataType) -> str:
    """The portable SQL type (DuckDB's spelling, rendered per dialect by sqlglot) a published
    table gets for an Arrow type."""
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_floating(kind):
        return "DOUBLE"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_decimal(kind):
        return f"DECIMAL({kind.precision}, {kind.scale})"
    if pa.types.is_date(kind):
        return "DATE"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ" if kind.tz else "TIMESTAMP"
    return "TEXT"


def is_infrastructure_error(error: BaseException) -> bool:
    """Whether ``error`` says a warehouse or the store could not be used (so a task should fail
    and retry), rather than that the query or the data is wrong (a check outcome), when it may
    come from more than one warehouse (a quality task reads an in-memory DuckDB over its Parquet
    output and writes results to the team's warehouse): asks every registered adapter, each of
    which knows its own driver's errors. Where one adapter is the only source, ask it
    (``warehouse.is_infrastructure_error``). A statement a warehouse refused by rule (a write in
    a read-only transaction) is never one, whatever class the driver gives it."""
    adapters = Warehouse.adapters()
    if any(adapter.refused_statement(error) for adapter in adapters):
        return False
    return any(adapter.is_infrastructure_error(error) for adapter in adapters)


def _sqlstate(error: BaseException) -> str | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) and len(state) == 5 else None


class FailureKind(StrEnum):
    """What a failed statement says of the warehouse (:meth:`Warehouse.failure_kind`)."""

    UNREACHABLE = "unreachable"  # it could not be used, or a lock is held elsewhere: retry
    MISSING = "missing"  # the table (or its schema) is not there yet
    UNREADABLE = "unreadable"  # it answered, but refused the statement


class _Connector:
    """The part of a DbApiHook an adapter uses, around a bare connection factory."""

    def __init__(self, connect: Callable[[], Any], conn_type: str | None = None):
        self.get_conn = connect
        self.conn_type = conn_type


class Warehouse:
    """A warehouse reached through a DbApiHook (or anything with ``get_conn()``).

    Subclasses set ``dialect`` (sqlglot's name) and ``conn_types`` (the Airflow connection types
    they serve, which registers them) and override what their database does differently.
    """

    #: sqlglot's name for the SQL this warehouse speaks (None: sqlglot's generic SQL)
    dialect: ClassVar[str | None] = None
    #: the Airflow connection types served by this adapter (``Warehouse.of`` chooses by them)
    conn_types: ClassVar[tuple[str, ...]] = ()
    #: the DB-API paramstyle's placeholder when the hook does not declare one
    default_placeholder: ClassVar[str] = "%s"
    #: connections autocommit, so a transaction is opened with an explicit BEGIN
    explicit_begin: ClassVar[bool] = False
    #: the statement opening a read-only transaction, in which the SQL users write runs (None:
    #: the warehouse has none; the connection's own rights are then the only limit)
    read_only_begin: ClassVar[str | None] = None
    #: ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` is SQL here (elsewhere a column is added
    #: only after looking it up, and a second writer adding it at once fails)
    add_column_if_not_exists: ClassVar[bool] = False
    #: exception class names (in the driver's own modules) that are infrastructure failures
    #: beyond PEP 249's OperationalError and InterfaceError
    infrastructure_error_names: ClassVar[frozenset[str]] = frozenset()
    #: the driver's top-level module, for ``infrastructure_error_names``
    driver_module: ClassVar[str | None] = None

    _registry: ClassVar[dict[str, type[Warehouse]]] = {}
    _by_dialect: ClassVar[dict[str, type[Warehouse]]] = {}
    #: the adapter for every other DB-API database (``GenericWarehouse``, which registers itself
    #: with ``fallback=True``): made with ``dialect=`` and asked ``dialect_for(hook, conn_type)``
    _fallback: ClassVar[type[Warehouse] | None] = None

    def __init_subclass__(cls, fallback: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for conn_type in cls.conn_types:
            Warehouse._registry[conn_type] = cls
        if cls.conn_types and cls.dialect:
            Warehouse._by_dialect[cls.dialect] = cls
        if fallback:
            Warehouse._fallback = cls

    def __init__(self, hook: Any, placeholder: str | None = None):
        self.hook = hook
        self._placeholder = placeholder

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dialect={self.dialect!r})"

    # --- choosing an adapter -------------------------------------------------------------

    @classmethod
    def of(cls, hook: Any) -> Warehouse:
        """The adapter for a DbApiHook, by its connection type; a generic DB-API adapter (with
        the sqlglot dialect the hook's connection suggests) for databases without their own."""
        if isinstance(hook, Warehouse):
            return hook
        conn_type = _conn_type(hook)
        adapter = cls._registry.get(conn_type or "")
        if adapter is not None:
            return adapter(hook)
        generic = _fallback()
        return generic(hook, dialect=generic.dialect_for(hook, conn_type))  # type: ignore[call-arg,attr-defined]

    @classmethod
    def for_dialect(
        cls, dialect: str | None, connect: Callable[[], Any] | None = None, placeholder: str | None = None
    ) -> Warehouse:
        """The adapter for a sqlglot dialect over a bare connection factory (tests, the local
        DuckDB over Parquet outputs, callers that hold no hook)."""
        adapter = cls._by_dialect.get(dialect or "")
        connector = _Connector(connect or _no_connection, adapter.conn_types[0] if adapter else None)
        if adapter is not None:
            return adapter(connector, placeholder=placeholder)
        return _fallback()(connector, placeholder=placeholder, dialect=dialect)  # type: ignore[call-arg]

    @classmethod
    def from_conn_id(cls, conn_id: str) -> Warehouse:
        """The adapter for an Airflow connection: its provider's hook owns the connection (the
        credentials stay in Airflow's connections or secrets backend)."""
        from airflow.sdk import BaseHook  # Airflow only where a connection id is resolved

        return cls.from_connection(BaseHook.get_connection(conn_id))

    @classmethod
    def from_connection(cls, conn: Any) -> Warehouse:
        """The adapter for an Airflow ``Connection`` a caller has looked up already (to mask its
        secrets, or to look at it first): the hook Airflow makes for its type."""
        return cls.of(conn.get_hook())

    @classmethod
    def adapters(cls) -> list[type[Warehouse]]:
        """Every registered adapter class, and the generic one."""
        return [*dict.fromkeys(cls._registry.values()), _fallback()]

    # --- identifiers and SQL text ----------------------------------------------------------

    @property
    def placeholder(self) -> str:
        """The DB-API parameter marker of this warehouse's driver (``?``, ``%s``, ...)."""
        if self._placeholder:
            return self._placeholder
        try:
            declared = getattr(self.hook, "placeholder", None)  # a DbApiHook's (connection extras)
        except Exception:  # a hook whose connection cannot be looked up here
            declared = None
        self._placeholder = declared if isinstance(declared, str) and declared else self.default_placeholder
        return self._placeholder

    def normalize_identifier(self, name: str) -> str:
        return normalize_identifier(name, self.dialect)

    def table(self, name: str) -> exp.Table:
        return table_expression(name, self.dialect)

    def column(self, name: str) -> exp.Column:
        return column_expression(name, self.dialect)

    def quote_table(self, name: str) -> str:
        return self.table(name).sql(dialect=self.dialect)

    def select_all(self, table: str) -> str:
        return select_all(table, self.dialect)

    def render(self, expression: exp.Expression) -> str:
        return expression.sql(dialect=self.dialect)

    # --- connections and transactions ----------------------------------------------------

    def connect(self, wait: float | None = None) -> Any:
        """A new DB-API connection. ``wait``: how long to wait for a warehouse that admits one
        connection at a time (a file-backed DuckDB); ignored by the others."""
        return self.hook.get_conn()

    def cursor(self, conn: Any) -> Any:
        """A cursor on ``conn`` that shares its transaction."""
        return conn.cursor()

    def begin(self, cursor: Any) -> None:
        """Open a transaction (PEP 249 drivers open one implicitly; autocommit ones are told)."""
        if self.explicit_begin:
            cursor.execute("BEGIN TRANSACTION")

    @contextmanager
    def reading(self, wait: float | None = None, conn: Any = None) -> Iterator[ReadSession]:
        """A :class:`ReadSession` on one connection (a new one, waiting up to ``wait`` seconds
        for a warehouse that admits one at a time, unless given); closed after."""
        conn = self.connect(wait=wait) if conn is None else conn
        session = ReadSession(self, conn)
        try:
            yield session
        finally:
            session.end()
            _close(conn)

    @contextmanager
    def writing(self, begin: bool = True, conn: Any = None) -> Iterator[WriteSession]:
        """A :class:`WriteSession` whose statements commit together or not at all; the connection
        (a new one unless given) is closed after. ``begin=False`` opens no transaction first
        (DDL, or set-up before :meth:`begin`)."""
        conn = self.connect() if conn is None else conn
        try:
            session = WriteSession(self, conn)
            if begin:
                session.begin()
            yield session
            conn.commit()
        except BaseException:
            _rollback(conn)
            raise
        finally:
            _close(conn)

    def begin_read_only(self, conn: Any, cursor: Any) -> bool:
        """Open a read-only transaction on ``conn`` for the statements that follow on ``cursor``
        (before any other statement of a transaction); False where the warehouse has none."""
        if self.read_only_begin is None:
            return False
        cursor.execute(self.read_only_begin)
        return True

    def end_read_only(self, conn: Any, cursor: Any) -> None:
        """End a read-only transaction: rolled back (it wrote nothing, and one a statement
        failed in is aborted and must be); a failed rollback keeps the error that caused it."""
        _rollback(conn)

    # --- errors ----------------------------------------------------------------------------

    @classmethod
    def is_infrastructure_error(cls, error: BaseException) -> bool:
        """Whether ``error`` says the warehouse could not be used (fail and retry the task)
        rather than that the query or data is wrong: OS errors and timeouts, PEP 249's
        OperationalError and InterfaceError, connection/resource/cancel SQLSTATEs, and the
        adapter's own driver errors, and lock conflicts (:meth:`is_lock_conflict`)."""
        if cls.refused_statement(error):
            return False
        if isinstance(error, OSError | TimeoutError) or cls.is_lock_conflict(error):
            return True
        names = {kind.__name__ for kind in type(error).__mro__}
        if names & _INFRASTRUCTURE_CLASSES:
            return True
        state = _sqlstate(error)
        if state is not None and state[:2] in _INFRASTRUCTURE_SQLSTATES:
            return True
        if cls.infrastructure_error_names and cls.driver_module:
            for kind in type(error).__mro__:
                if (
                    kind.__name__ in cls.infrastructure_error_names
                    and kind.__module__.split(".")[0] == cls.driver_module
                ):
                    return True
        return False

    #: SQLSTATEs meaning another transaction holds what this one needs (SQL's serialization
    #: failure; adapters add their database's own)
    lock_conflict_sqlstates: ClassVar[frozenset[str]] = frozenset({"40001"})

    @classmethod
    def is_lock_conflict(cls, error: BaseException) -> bool:
        """Whether ``error`` says another session holds a lock this one needed (a serialization
        failure, a lock timeout, a file another process holds): nothing wrong with the SQL, and
        the same work can succeed once the other session is done."""
        return _sqlstate(error) in cls.lock_conflict_sqlstates

    #: SQLSTATEs meaning "no such table or schema" (PostgreSQL, ODBC, DB2 spell them so)
    missing_table_sqlstates: ClassVar[frozenset[str]] = frozenset({"42P01", "3F000", "42S02", "42704"})

    @classmethod
    def is_missing_table(cls, error: BaseException) -> bool:
        """Whether ``error`` says the table (or its schema) does not exist. The SQLSTATE where
        the driver reports one; adapters add their driver's own signal (an errno, a class)."""
        return _sqlstate(error) in cls.missing_table_sqlstates

    @classmethod
    def failure_kind(cls, error: BaseException) -> FailureKind:
        """``unreachable`` (the warehouse could not be used, or a lock held elsewhere: retry),
        ``missing`` (the table is not there yet) or ``unreadable`` (it answered, but refused the
        statement). A missing table is told first: some drivers raise it under PEP 249's
        OperationalError (sqlite3), and a warehouse that says what it lacks was reached."""
        if cls.is_missing_table(error):
            return FailureKind.MISSING
        if cls.is_infrastructure_error(error):
            return FailureKind.UNREACHABLE
        return FailureKind.UNREADABLE

    @classmethod
    def refused_statement(cls, error: BaseException) -> bool:
        """Whether ``error`` is the warehouse refusing one statement by rule (a write inside a
        read-only transaction), which a driver may raise under an infrastructure class: a
        verdict on the SQL, never a reason to retry."""
        return False

    # --- reading Arrow -------------------------------------------------------------------

    def read_arrow(self, conn: Any, sql: str, batch_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The batches of a query on an open connection (``ReadSession.arrow`` calls it, inside
        the session's transaction); DB-API rows turned into Arrow here."""
        cursor = self.cursor(conn)
        cursor.execute(sql)
        return self.batches_from_rows(cursor, batch_rows)

    def arrow_type(self, column: Sequence[Any]) -> pa.DataType | None:
        """The Arrow type of a DB-API ``description`` entry, or None to infer it from values."""
        return None

    def batches_from_rows(self, cursor: Any, batch_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Record batches from an executed cursor's rows, ``batch_rows`` at a time. Types come
        from the description where the adapter knows them, from the first batch's values
        otherwise (a column null throughout the first batch is then typed null)."""
        rows = cursor.fetchmany(batch_rows)
        description = list(cursor.description or [])  # after the first fetch: named cursors
        names = [d[0] for d in description]
        known = [self.arrow_type(d) for d in description]
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in names]
        first = [
            pa.array(values, type=kind) if kind is not None else pa.array(values, from_pandas=False)
            for values, kind in zip(columns, known, strict=True)
        ]
        schema = pa.schema([pa.field(n, a.type) for n, a in zip(names, first, strict=True)])

        def batches() -> Iterator[pa.RecordBatch]:
            if not rows:
                return
            yield pa.RecordBatch.from_arrays(first, schema=schema)
            while chunk := cursor.fetchmany(batch_rows):
                arrays = [pa.array(list(v), type=f.type) for v, f in zip(zip(*chunk, strict=True), schema, strict=True)]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)

        return schema, batches()

    # --- publishing --------------------------------------------------------------------------

    def bulk_load(
        self,
        files: list[str],
        fs: pafs.FileSystem | None,
        schema: pa.Schema,
        target: str,
        mode: str,
        keys: Sequence[str] = (),
    ) -> None:
        """Load Parquet ``files`` (on ``fs``: local by default, or an object store) with Arrow
        ``schema`` into ``target`` (created when missing) by ``mode``: ``append``, ``replace``
        (the table's rows become the files'), or ``merge`` (rows whose ``keys`` match are
        replaced). The change to ``target`` is one transaction; memory holds about a row group."""
        raise NotImplementedError(f"publish to a `{self.dialect or 'generic'}` warehouse is not built")

    def check_load(self, mode: str, keys: Sequence[str], schema: pa.Schema) -> list[str]:
        """Validate a load before it touches the warehouse; returns the merge keys as the
        output's own column names (a key is matched the way the warehouse matches names)."""
        if mode not in MODES:
            raise ValueError(f"publish mode `{mode}` is not one of {', '.join(MODES)}")
        if mode != "merge":
            return []
        if not keys:
            raise ValueError("a merge needs at least one key column")
        names = {self.normalize_identifier(n): n for n in schema.names}
        missing = [k for k in keys if self.normalize_identifier(k) not in names]
        if missing:
            raise ValueError(f"merge key(s) {', '.join(missing)} are not columns of the output")
        return [names[self.normalize_identifier(k)] for k in keys]

    def create_schema_sql(self, target: str) -> str | None:
        """``CREATE SCHEMA IF NOT EXISTS`` for the schema part of a dotted target, if it has one."""
        parts = target.split(".")
        if len(parts) < 2:
            return None
        return self.render(exp.Create(this=self.table(".".join(parts[:-1])), kind="SCHEMA", exists=True))

    def portable_type(self, name: str) -> exp.DataType:
        """A SQL type written portably (``VARCHAR``, ``BIGINT``, ``TIMESTAMP``, ...) and read as
        DuckDB means it: TIMESTAMP is without a time zone, which Snowflake must be told."""
        return exp.DataType.build(name, dialect="duckdb")

    def column_type(self, kind: pa.DataType) -> exp.DataType:
        """The column type a published table gets for an Arrow type (:func:`sql_type`)."""
        return self.portable_type(sql_type(kind))

    def create_table_sql(self, target: str, schema: pa.Schema) -> str:
        """``CREATE TABLE IF NOT EXISTS`` with a column per Arrow field, types via :func:`sql_type`."""
        columns = [exp.ColumnDef(this=self.column(f.name).this, kind=self.column_type(f.type)) for f in schema]
        create = exp.Create(this=exp.Schema(this=self.table(target), expressions=columns), kind="TABLE", exists=True)
        return self.render(create)

    def ddl_statements(self, target: str, schema: pa.Schema) -> list[str]:
        return [s for s in (self.create_schema_sql(target), self.create_table_sql(target, schema)) if s]

    def load_statements(
        self, target: str, staged: exp.Expression, names: Sequence[str], mode: str, keys: Sequence[str]
    ) -> list[str]:
        """The statements that move staged rows (a table or relation) into the target."""
        table = self.table(target)
        cols = [self.column(n) for n in names]
        statements = []
        if mode == "replace":
            statements.append(self.render(exp.delete(table.copy())))
        elif mode == "merge":
            key_cols = [self.column(k) for k in keys]
            staged_keys = exp.select(*[c.copy() for c in key_cols]).from_(staged.copy())
            if len(key_cols) > 1:  # (a, b) IN (SELECT a, b ...): the subquery needs its own parentheses
                matched = exp.In(this=exp.Tuple(expressions=[c.copy() for c in key_cols]), query=staged_keys.subquery())
            else:
                matched = key_cols[0].copy().isin(query=staged_keys)
            statements.append(self.render(exp.delete(table.copy(), where=matched)))
        insert = exp.insert(
            exp.select(*[c.copy() for c in cols]).from_(staged.copy()),
            exp.Schema(this=table.copy(), expressions=[c.this.copy() for c in cols]),
        )
        statements.append(self.render(insert))
        return statements


def row_groups(files: list[str], fs: pafs.FileSystem, schema: pa.Schema) -> Iterator[pa.Table]:
    """The files' row groups one at a time (one empty table when there are none)."""
    empty = True
    for group in read_row_groups(fs, files):
        empty = False
        yield group
    if empty:
        yield schema.empty_table()


def _conn_type(hook: Any) -> str | None:
    conn_type = getattr(hook, "conn_type", None)
    if isinstance(conn_type, str) and conn_type:
        return conn_type
    attr = getattr(hook, "conn_name_attr", None)  # duckdb_conn_id, postgres_conn_id, ...
    return attr.rsplit("_conn_id", 1)[0] if isinstance(attr, str) and attr.endswith("_conn_id") else None


def _fallback() -> type[Warehouse]:
    if Warehouse._fallback is None:  # the package imports generic.py, which registers it
        raise RuntimeError("no generic warehouse adapter is registered: import aq_airflow.warehouse")
    return Warehouse._fallback


def _no_connection() -> Any:
    raise RuntimeError("this warehouse adapter was made for SQL text only and has no connection")


def _rollback(conn: Any) -> None:
    """Roll back, keeping the error that caused it (a rollback on a lost connection fails too)."""
    try:
        conn.rollback()
    except Exception as error:
        log.debug("rollback failed: %s", error)


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception as error:
        log.debug("closing the connection failed: %s", error)
