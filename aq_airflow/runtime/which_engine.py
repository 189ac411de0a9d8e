"""Which engine a step's code runs on (``runtime.engines``), by the step's environment: a module
of its own, as it imports each engine and each engine imports their base class."""

from __future__ import annotations

from aq_airflow.runtime import contract
from aq_airflow.runtime.engines import Engine
from aq_airflow.runtime.failures import StepFailed

ENGINES = ("spark", "ray")


def engine_for(env: dict[str, str]) -> Engine:
    """The step's engine, by ``AQ_ENGINE`` (imported only for the steps that use it)."""
    name = env.get(contract.ENGINE)
    if name == "spark":
        from aq_airflow.runtime.spark import SparkEngine

        return SparkEngine()
    if name == "ray":
        from aq_airflow.runtime.ray import RayEngine

        return RayEngine()
    if name:  # a step of an engine this runtime does not have would run as a python step, silently
        raise StepFailed(
            f"step `{env.get(contract.STEP, '?')}`: {contract.ENGINE} is `{name}`, which this runtime does not know "
            f"({', '.join(ENGINES)}): the image's aq-airflow is older than the DAG's, or the variable was changed"
        )
    return Engine()
