"""The plan layer: a validated spec becomes a :class:`DagPlan`, the typed data both backends read.

The model classes load eagerly (operators and generated DAG files hold them); the planner, which
needs the spec layer (YAML, pydantic), loads when first named.
"""

from __future__ import annotations

import importlib
from typing import Any

from aq_airflow.plan.model import (
    ArtifactRef,
    AssetRef,
    CallbackRef,
    CheckPlan,
    DagPlan,
    GroupPlan,
    MetricPlan,
    OperatorPlan,
    PublishPlan,
    QualityPlan,
    RunPlan,
    Seconds,
    ServePlan,
    TaskPlan,
)

_LAZY = {
    "compile_spec": "compile",
    "compile_text": "compile",
    "plan_pipeline": "planner",
    "spec_doc": "planner",
    "BUILTIN_PROFILES": "profiles",
    "Profile": "profiles",
    "resolve_profile": "profiles",
}

__all__ = [
    "ArtifactRef",
    "AssetRef",
    "CallbackRef",
    "CheckPlan",
    "DagPlan",
    "GroupPlan",
    "MetricPlan",
    "OperatorPlan",
    "PublishPlan",
    "QualityPlan",
    "RunPlan",
    "Seconds",
    "ServePlan",
    "TaskPlan",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
