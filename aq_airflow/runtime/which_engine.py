"""Which engine a step's code runs on (``runtime.engines``), by the step's environment: a module
of its own, as it imports each engine and each engine imports their base class."""

from __future__ import annotations

import json
from typing import Any

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
