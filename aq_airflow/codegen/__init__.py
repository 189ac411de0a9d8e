"""The codegen layer: Plans rendered as readable, deterministic Python DAG files."""

from aq_airflow.codegen.literals import py_literal
from aq_airflow.codegen.render import render_dag

__all__ = ["py_literal", "render_dag"]
