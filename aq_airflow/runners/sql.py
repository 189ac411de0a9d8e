"""SQL steps: a query's result streamed from the warehouse into the artifact store as Arrow
record batches, through the warehouse adapter's Arrow path (``aq_airflow.warehouse``)."""

from __future__ import annotations

from aq_airflow.runtime.artifacts import ROW_GROUP_ROWS, Location, write_batches
from aq_airflow.warehouse import Warehouse


def export_query(hook, sql: str, output: Location) -> dict:
    """Run ``sql`` in the warehouse of ``hook`` (a DbApiHook or an adapter) and commit its
    result as the step's table output."""
    warehouse = Warehouse.of(hook)
    with warehouse.arrow_batches(sql, batch_rows=ROW_GROUP_ROWS) as (schema, batches):
        attempt = output.begin()
        manifest = write_batches(output, attempt, schema, batches)
    manifest = {**manifest, "attempt": attempt, "uri": output.uri, "dialect": warehouse.dialect}
    return output.commit(manifest)
