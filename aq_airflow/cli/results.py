"""``aq-airflow results``: the check and metric history of a pipeline, from the warehouse."""

from __future__ import annotations

import os

from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore


def store_for(conn_id: str, schema: str | None) -> ResultsStore:
    from airflow.sdk import BaseHook

    return ResultsStore.of(BaseHook.get_connection(conn_id).get_hook(), schema)


def print_results(store: ResultsStore, dag_id: str, step: str | None, last: int, run_id: str | None = None) -> int:
    shown = 0
    for table, title in ((CHECKS_TABLE, "checks"), (METRICS_TABLE, "metrics")):
        try:
            columns, rows = store.read(table, dag_id, step, last, run_id)
        except Exception as error:  # no table yet: nothing recorded
            print(f"{title}: nothing recorded ({type(error).__name__})")
            continue
        print(f"\n{title} ({table}), newest first")
        widths = {"logical_date": 19, "run_id": 24, "step": 12, "name": 22, "kind": 15, "outcome": 7, "severity": 8,
                  "value": 10, "failing_rows": 7, "message": 60}  # fmt: skip
        print("  ".join(c[: widths[c]].ljust(widths[c]) for c in columns))
        for row in rows:
            cells = []
            for column, value in zip(columns, row, strict=True):
                text = "" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))
                cells.append(text[: widths[column]].ljust(widths[column]))
            print("  ".join(cells).rstrip())
        shown += len(rows)
    return 0 if shown else 1


def show(dag_id: str, conn: str, step: str | None, last: int, schema: str | None) -> int:
    """Print the history, the warehouse named by a connection URI/JSON, or a DuckDB file path."""
    if os.path.exists(conn):
        from aq_airflow.warehouse import DuckDB

        conn = DuckDB.connection_json(conn)
    os.environ["AIRFLOW_CONN_AQ_RESULTS_CLI"] = conn
    return print_results(store_for("aq_results_cli", schema), dag_id, step, last)
