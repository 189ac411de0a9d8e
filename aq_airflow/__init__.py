"""aq-airflow: declarative ML and data pipelines compiled to Airflow 3 DAGs."""

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Airflow provider metadata (the ``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "aq-airflow",
        "name": "aq-airflow",
        "description": "Declarative YAML pipelines compiled to Airflow DAGs, with checks and metrics.",
        "versions": [__version__],
    }
