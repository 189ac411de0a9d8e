"""One run of a DAG with ``dag.test()``, recorded with its real start time.

Airflow 3.3's ``dag.test()`` creates its DagRun with ``start_date=logical_date``
(``get_or_create_dagrun(start_date=logical_date or run_after, ...)``), and nothing it takes
changes that. A run for a past date therefore showed in Airflow's UI as lasting from that date
until it ended (the duration is ``end_date - start_date``): 285 days for the demo's runs. Here the
run's row gets the wall-clock time as it is inserted, so the UI and the REST API show when the
run started and how long it took, during the run and after; its logical date stays the one
asked for. ``aq-airflow run`` and ``demo-ui``'s history runner (``devstack.history``) both
run through :func:`dag_test`.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any


def dag_test(
    dag: Any, logical_date: datetime.datetime, conf: dict | None = None, run_after: datetime.datetime | None = None
) -> Any:
    """``dag.test(logical_date=..., run_conf=conf, run_after=...)``, its DagRun started now;
    returns the DagRun. ``run_after`` names the run (``dag.test`` takes no run id): a caller that
    must know the run id before it starts passes it."""
    with _started_now(dag.dag_id):
        return dag.test(logical_date=logical_date, run_conf=conf or None, run_after=run_after)


@contextlib.contextmanager
def _started_now(dag_id: str) -> Iterator[None]:
    """While it lasts, the DagRun ``dag.test()`` inserts for ``dag_id`` (triggered by TEST)
    takes the current time as its ``start_date``: set on the row as Airflow's own session
    flushes it (a SQLAlchemy ``before_insert`` event of the DagRun model), not patched later."""
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import event

    def started_now(mapper, connection, run: DagRun) -> None:
        if run.dag_id == dag_id and run.triggered_by == DagRunTriggeredByType.TEST:
            run.start_date = timezone.utcnow()

    event.listen(DagRun, "before_insert", started_now)
    try:
        yield
    finally:
        event.remove(DagRun, "before_insert", started_now)
