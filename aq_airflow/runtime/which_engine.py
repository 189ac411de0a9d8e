"""Which engine a step's code runs on (``runtime.engines``), by the step's environment: a module
of its own, as it imports each engine and each engine imports their base class."""

from __future__ import annotations

from aq_airflow.runtime import contract
from aq_airflow.runtime.engines import Engine


def engine_for(env: dict[str, str]) -> Engine:
    """The step's engine, by ``AQ_ENGINE`` (imported only for the steps that use it)."""
    name = env.get(contract.ENGINE)
    if name == "spark":
        from aq_airflow.runtime.spark import SparkEngine

        return SparkEngine()
    if name == "ray":
        from aq_airflow.runtime.ray import RayEngine

        return RayEngine()
    return Engine()
