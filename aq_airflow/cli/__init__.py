"""The ``aq-airflow`` command line."""
