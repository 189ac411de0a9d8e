"""Errors raised by aq-airflow tasks."""

from __future__ import annotations

from airflow.exceptions import AirflowException


class NotBuiltYet(AirflowException):
    """Raised by a task whose run-time behaviour is not built yet, so that nothing pretends
    to run or pass."""

    def __init__(self, capability: str):
        super().__init__(
            f"aq-airflow: {capability} is not built yet in this version; this task cannot run. "
            "The DAG's structure is final; its run-time behaviour lands in a later release."
        )


class InvalidSpec(AirflowException):
    """The spec behind this DAG is invalid; the message lists every file:line:col issue."""
