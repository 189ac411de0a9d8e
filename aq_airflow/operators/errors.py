"""Errors raised by aq-airflow tasks."""

from __future__ import annotations

from airflow.exceptions import AirflowException


class InvalidSpec(AirflowException):
    """The spec behind this DAG is invalid; the message lists every file:line:col issue."""
