"""The Airflow operators aq-airflow DAGs are made of; the plan names them by class name.

Each class is imported when first named: a loader shard imports only the operator modules its
DAGs use, and a worker running one task does not pay for the warehouse and Kubernetes clients
of the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "AqCheckOperator": "quality",
    "AqConditionOperator": "condition",
    "AqMetricOperator": "quality",
    "AqPublishOperator": "quality",
    "AqInvalidSpecOperator": "invalid",
    "AqInferenceServiceOperator": "inference_service",
    "AqItemsOperator": "foreach",
    "AqLocalServeOperator": "serve",
    "AqLocalStepOperator": "step",
    "AqPodStepOperator": "pod",
    "AqRayJobStepOperator": "ray_job",
    "AqSparkStepOperator": "spark_application",
    "AqSqlStepOperator": "sql_step",
    "ImportedCallback": "callbacks",
}
__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
