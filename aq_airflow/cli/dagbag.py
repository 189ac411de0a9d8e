"""A deployment preflight: load a dags folder through Airflow's own DagBag and report."""

from __future__ import annotations


def show_dagbag(folder: str) -> int:
    from airflow.dag_processing.dagbag import DagBag

    from aq_airflow.live_dags import INVALID_TAG

    bag = DagBag(dag_folder=folder)
    invalid = 0
    for dag_id in sorted(bag.dags):
        dag = bag.dags[dag_id]
        state = "INVALID" if INVALID_TAG in dag.tags else "ok"
        invalid += state == "INVALID"
        print(f"{state:8} {dag_id:40} {len(dag.tasks):3} task(s)  {dag.description or ''}")
    for path, error in sorted(bag.import_errors.items()):
        print(f"IMPORT ERROR {path}: {error}")
    print(f"{len(bag.dags)} DAG(s), {invalid} invalid spec(s), {len(bag.import_errors)} import error(s)")
    return 1 if invalid or bag.import_errors else 0
