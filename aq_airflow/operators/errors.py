"""Errors raised by aq-airflow tasks."""

from __future__ import annotations

from airflow.exceptions import AirflowException


class InvalidSpec(AirflowException):
    """The spec behind this DAG is invalid; the message lists every file:line:col issue."""


class StepFailed(AirflowException):
    """A step's process failed; ``output`` holds its last lines (the task log has them all)."""

    def __init__(self, message: str, output: list[str]):
        super().__init__(message)
        self.output = output
