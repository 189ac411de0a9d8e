"""The single task of a placeholder DAG standing for an invalid spec."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from aq_airflow.operators.errors import InvalidSpec


class AqInvalidSpecOperator(BaseOperator):
    """Fails with the spec's errors, so a run of a broken pipeline says what to fix."""

    ui_color = "#f4a6a6"

    def __init__(self, *, errors: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.errors = errors

    def execute(self, context: Any) -> Any:
        raise InvalidSpec("the pipeline spec is invalid:\n" + "\n".join(self.errors))
