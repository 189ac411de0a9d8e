"""The plan layer: a validated spec becomes a :class:`DagPlan`, the plain data both backends read."""

from aq_airflow.plan.compile import compile_spec, compile_text
from aq_airflow.plan.model import AssetRef, CallbackRef, DagPlan, GroupPlan, Seconds, TaskPlan
from aq_airflow.plan.planner import plan_pipeline, spec_doc
from aq_airflow.plan.profiles import BUILTIN_PROFILES, Profile, resolve_profile

__all__ = [
    "BUILTIN_PROFILES",
    "AssetRef",
    "CallbackRef",
    "DagPlan",
    "GroupPlan",
    "Profile",
    "Seconds",
    "TaskPlan",
    "compile_spec",
    "compile_text",
    "plan_pipeline",
    "resolve_profile",
    "spec_doc",
]
