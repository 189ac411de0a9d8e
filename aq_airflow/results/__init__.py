"""The results layer: check and metric results as tables in the warehouse."""

from aq_airflow.results.store import CHECKS_TABLE, METRICS_TABLE, ResultsStore, result_row, utcnow

__all__ = ["CHECKS_TABLE", "METRICS_TABLE", "ResultsStore", "result_row", "utcnow"]
