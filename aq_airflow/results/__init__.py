"""The results layer: check and metric results as tables in the warehouse.

``rows`` (what the tables hold: columns, row types, the outcome, severity and role words),
``statements`` (every statement, as sqlglot expressions), ``migrations`` (create, and bring tables
of earlier releases up to date), ``store`` (the writer, and the lookups tasks make), ``views`` and
``history`` (the read model of the CLI and the UI).
"""

from aq_airflow.results.rows import CHECKS_TABLE, METRICS_TABLE, utcnow
from aq_airflow.results.store import ResultsStore, result_row

__all__ = ["CHECKS_TABLE", "METRICS_TABLE", "ResultsStore", "result_row", "utcnow"]
