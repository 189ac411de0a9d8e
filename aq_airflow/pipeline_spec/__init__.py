"""The spec layer: ``*.aq.yaml`` text to a validated, immutable :class:`Pipeline`.

Imports nothing of Airflow, so editors, CI and step images can validate specs cheaply.
"""

from aq_airflow.pipeline_spec.errors import SpecError, SpecIssue
from aq_airflow.pipeline_spec.load import SPEC_SUFFIXES, Problem, ProblemsFound, SpecFile, parse_spec, spec_paths
from aq_airflow.pipeline_spec.models import Check, Metric, Pipeline, Publish, Resources, SecretRef, Step
from aq_airflow.pipeline_spec.schema import json_schema

__all__ = [
    "SPEC_SUFFIXES",
    "Check",
    "Metric",
    "Pipeline",
    "Problem",
    "ProblemsFound",
    "Publish",
    "Resources",
    "SecretRef",
    "SpecError",
    "SpecFile",
    "SpecIssue",
    "Step",
    "json_schema",
    "parse_spec",
    "spec_paths",
]
