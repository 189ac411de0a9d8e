"""The build layer: Plans become live Airflow DAGs; the dags-folder loader."""

from aq_airflow.live_dags.dag import build_dag
from aq_airflow.live_dags.loader import load_dags
from aq_airflow.live_dags.placeholder import INVALID_TAG, placeholder_dag

__all__ = ["INVALID_TAG", "build_dag", "load_dags", "placeholder_dag"]
