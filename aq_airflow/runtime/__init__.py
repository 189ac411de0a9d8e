"""The step runtime, run inside a step's container: pyarrow and the standard library only,
never Airflow, so a step image needs nothing but ``aq-airflow`` (core) and pyarrow."""
