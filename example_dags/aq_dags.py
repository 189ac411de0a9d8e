"""Builds every *.aq.yaml pipeline under this folder (written by `aq-airflow init`)."""

from aq_airflow.build import load_dags

load_dags(globals())
