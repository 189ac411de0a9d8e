"""The ui layer: the Airflow plugin that shows checks and metrics inside the Airflow UI.

``plugin`` (what Airflow loads in every component: cheap to import, no I/O), ``app`` (the FastAPI
app the api-server mounts at ``/aq-quality``), ``pipelines`` (what the metadata DB says about a
pipeline), ``pages`` (the pages' data and HTML), ``charts`` (server-side SVG). It reads results
only through :mod:`aq_airflow.results.history`, as ``aq-airflow results`` does.
"""
