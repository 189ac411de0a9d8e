"""The Airflow operators aq-airflow DAGs are made of; the plan names them by class name."""

from aq_airflow.operators.callbacks import ImportedCallback
from aq_airflow.operators.invalid import AqInvalidSpecOperator
from aq_airflow.operators.quality import AqCheckOperator, AqMetricOperator, AqPublishOperator
from aq_airflow.operators.step import AqLocalStepOperator, AqPodStepOperator, AqSqlStepOperator

__all__ = [
    "AqCheckOperator",
    "AqInvalidSpecOperator",
    "AqLocalStepOperator",
    "AqMetricOperator",
    "AqPodStepOperator",
    "AqPublishOperator",
    "AqSqlStepOperator",
    "ImportedCallback",
]
