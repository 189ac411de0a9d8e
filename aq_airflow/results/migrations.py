"""Creating the results tables and bringing tables of earlier releases to this one's shape.

Every change is additive and idempotent, and no row is ever deleted:

- a column added since a table was made (``item_label``, ``role``) is added by ``ALTER TABLE ...
  ADD COLUMN`` (``IF NOT EXISTS`` where the warehouse has it, so two first writers at once do not
  fail); the table's columns are looked up first, so a table that has them takes no ALTER (no lock);
- ``role`` comes with ``DEFAULT 'check'`` (every row already there gets it, and so does a row a
  writer of release N adds during an upgrade); release N's `when:` verdicts, recorded under the step
  ``<step>.when`` with kind ``when``, are then moved to their step's own name with role ``when``
  (:meth:`~aq_airflow.results.statements.Statements.move_when_verdicts`). The UPDATE runs only in
  the write that added the column, in the same transaction where DDL is transactional (DuckDB,
  PostgreSQL); Snowflake commits each DDL statement on its own, so a writer stopped between the two
  would leave the old verdicts under ``<step>.when`` (read as role ``when`` all the same). Every
  `when:` task moves such rows again before it writes (``ensure_tables(verdicts=True)``), so the
  verdicts a worker of release N writes during a rolling upgrade reach their step too.

Readers never migrate: :class:`~aq_airflow.results.history.ResultsHistory` reads a table that lacks
a column as it is (``item_label`` NULL, ``role`` from the kind). Every checks, metrics and `when:`
task runs :func:`ensure_tables` before it writes.
"""

from __future__ import annotations

from aq_airflow.results.rows import COLUMNS
from aq_airflow.results.statements import Statements
from aq_airflow.warehouse.session import Session

# dialects in which a DDL statement commits on its own (so it is not run inside a transaction:
# fakesnow, like a strict driver, refuses one there)
DDL_COMMITS = frozenset({"snowflake"})


def table_columns(session: Session, statements: Statements, table: str) -> set[str]:
    """The (lower-case) column names of one of the results tables, from an empty SELECT's
    description: the same on every warehouse, no information_schema spelling needed."""
    columns, _ = session.fetch(statements.probe(table).expression)
    return {str(column).lower() for column in columns}


def ensure_tables(statements: Statements, verdicts: bool = False) -> None:
    """Create the schema and tables; add to tables of earlier releases the columns they lack, and
    move release N's `when:` verdicts when the ``role`` column is added (see the module's docstring).
    ``verdicts``: move them even when the column is there already (a `when:` task does: a worker
    of release N still running during an upgrade goes on writing ``<step>.when`` rows, which the
    column's default marks ``check``)."""
    warehouse = statements.warehouse
    with warehouse.writing(begin=False) as session:
        schema = statements.create_schema()
        if schema is not None:
            session.execute(schema.expression)
        for table in COLUMNS:
            session.execute(statements.create_table(table).expression)
        lacking = {table: missing(session, statements, table) for table in COLUMNS}
    if not any(lacking.values()):
        if verdicts:
            with warehouse.writing() as session:
                move = statements.move_when_verdicts()
                session.execute(move.expression, move.params)
        return
    with warehouse.writing(begin=warehouse.dialect not in DDL_COMMITS) as session:
        for table, columns in lacking.items():
            for column in columns:
                session.execute(statements.add_column(table, column).expression)
            if "role" in columns:
                move = statements.move_when_verdicts()
                session.execute(move.expression, move.params)


def missing(session: Session, statements: Statements, table: str) -> list[str]:
    """The columns of this release that ``table`` lacks, in table order."""
    present = table_columns(session, statements, table)
    return [column for column, _ in COLUMNS[table] if column not in present]
