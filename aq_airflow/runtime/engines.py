"""The engine a spark or ray step's code runs on, started by the runtime around the user's code.

A spark step's function gets a SparkSession (``spark``) and its inputs as DataFrames and returns
a DataFrame, which Spark itself writes as the step's Parquet output; a ray step's function runs
as a Ray job's entrypoint with a Ray connected (a local one, or the RayJob's cluster), its inputs
and output as a python step's. Everything else (binding, provenance, the commit) is
``runtime.step``'s, the same for every step kind. Which engine a step gets is
``runtime.which_engine``'s (apart from this base, which the engines import).
"""

from __future__ import annotations

import json
import traceback
from typing import Any

from aq_airflow.artifacts.store import Location
from aq_airflow.artifacts.values import read_input, write_output
from aq_airflow.runtime import contract
from aq_airflow.runtime.failures import StepFailed


class Engine:
    """A python step's way (no engine), which the engines override where theirs differs."""

    name = "python"

    def prepare(self) -> None:
        """Settings the engine's library reads as it is imported, set before the step's modules
        (which may import it) are."""

    def start(self, env: dict[str, str]) -> None:
        """Start (or connect to) the engine before the step's inputs are read."""

    def values(self) -> dict[str, Any]:
        """Values a step function may take by name besides its inputs, args and context (Spark's
        ``spark``)."""
        return {}

    def read_input(self, location: Location, producer: str, annotation: Any) -> Any:
        return read_input(location, producer, annotation)

    def write_output(self, location: Location, attempt: str, value: Any, step: str) -> dict:
        """Store the function's return value in the output folder; the manifest's fields."""
        return write_output(location, attempt, value)

    def failure(self, error: BaseException) -> str:
        """The text of the exception the step's function raised, for the step's failure message."""
        return "".join(traceback.format_exception(error))

    def stop(self) -> None:
        """Stop what :meth:`start` started (never a cluster the step only connected to)."""


def engine_conf(env: dict[str, str]) -> dict[str, Any]:
    """``AQ_ENGINE_CONF``, the step's ``spark_conf:`` or ``runtime_env:`` as aq-airflow wrote it
    (a JSON object); anything else is the step's one-line failure, not a traceback."""
    text = env.get(contract.ENGINE_CONF) or "{}"
    try:
        conf = json.loads(text)
    except ValueError:
        conf = None
    if not isinstance(conf, dict):
        raise StepFailed(
            f"step `{env.get(contract.STEP, '?')}`: {contract.ENGINE_CONF} is not a JSON object (aq-airflow writes "
            "the step's `spark_conf:` or `runtime_env:` there): it was changed after the DAG was compiled"
        )
    return conf
