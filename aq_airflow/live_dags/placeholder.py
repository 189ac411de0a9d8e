"""A visible stand-in for a pipeline whose spec is broken, so the team sees the error in the UI."""

from __future__ import annotations

from airflow.sdk import DAG

from aq_airflow.operators import AqInvalidSpecOperator
from aq_airflow.plan import spec_doc

INVALID_TAG = "aq:invalid"


def placeholder_dag(dag_id: str, errors: list[str], source: str, text: str) -> DAG:
    """A DAG with the spec's dag_id, tagged ``aq:invalid``, whose description and docs carry the
    ``file:line:col`` errors (the docs also the spec, ``text`` at ``source``) and whose one task
    fails with them."""
    listing = "\n".join(errors)
    dag = DAG(
        dag_id=dag_id,
        schedule=None,
        description=f"INVALID SPEC: {errors[0]}"[:1000],
        doc_md=f"## This pipeline's spec is invalid\n\nFix these and the DAG comes back:\n\n```\n{listing}\n```\n\n"
        + spec_doc(None, source, text),
        tags=[INVALID_TAG],
    )
    AqInvalidSpecOperator(task_id="invalid_spec", errors=errors, dag=dag)
    return dag
