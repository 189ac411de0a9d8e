"""A visible stand-in for a pipeline whose spec is broken, so the team sees the error in the UI
and its alerts fire: it keeps the pipeline's schedule and every run fails with the errors."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import DAG

from aq_airflow.live_dags.dag import materialize
from aq_airflow.operators import AqInvalidSpecOperator
from aq_airflow.plan import spec_doc
from aq_airflow.plan.model import KeptSettings

INVALID_TAG = "aq:invalid"
log = logging.getLogger(__name__)


def _schedule_arguments(kept: KeptSettings | None) -> dict[str, Any]:
    """The kept schedule as DAG arguments. ``catchup`` is always off: a pipeline broken for a
    week fails once per interval from now on, never a backfill of every interval it missed
    (those runs would all fail the same way, and the spec's own catchup comes back with it)."""
    if kept is None:
        return {"schedule": None, "catchup": False}
    arguments = {
        "schedule": list(kept.schedule_assets) if kept.schedule_assets else kept.schedule,
        "start_date": kept.start_date,
        "end_date": kept.end_date,
        "catchup": False,
        "on_failure_callback": kept.on_failure,
    }
    return materialize({k: v for k, v in arguments.items() if v is not None or k in ("schedule", "catchup")})


def placeholder_dag(dag_id: str, errors: list[str], source: str, text: str, kept: KeptSettings | None = None) -> DAG:
    """A DAG with the spec's dag_id, tagged ``aq:invalid``, whose description and docs carry the
    ``file:line:col`` errors (the docs also the spec, ``text`` at ``source``) and whose one task
    fails with them. ``kept`` is the schedule, dates and failure callback it keeps (see
    :func:`aq_airflow.plan.compile.kept_settings`); None: it runs only when triggered."""
    listing = "\n".join(errors)
    common = {
        "dag_id": dag_id,
        "description": f"INVALID SPEC: {errors[0]}"[:1000],
        "doc_md": "## This pipeline's spec is invalid\n\nEach run fails until these are fixed:\n\n"
        f"```\n{listing}\n```\n\n" + spec_doc(None, source, text),
        "tags": [INVALID_TAG],
    }
    try:
        dag = DAG(**common, **_schedule_arguments(kept))
    except Exception:  # settings Airflow refuses (the last plan's end_date before a new start_date): unscheduled
        log.exception("aq-airflow: the placeholder of %s cannot keep its schedule", source)
        dag = DAG(**common, **_schedule_arguments(None))
    AqInvalidSpecOperator(task_id="invalid_spec", errors=errors, dag=dag)
    return dag
