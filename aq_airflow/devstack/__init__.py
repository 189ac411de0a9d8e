"""A local Airflow on this machine, for ``aq-airflow demo-ui``, ``aq-airflow run``, the
deployment and UI tests and the benchmarks: one place that knows how to set one up.

- ``loader_file``: the source of the dags-folder loader file (``init``'s shards, the local-run
  loader); nothing of Airflow, so ``init`` runs without it.
- ``ports``: free loopback ports.
- ``home``: an Airflow home (settings as environment variables, dags folder, metadata DB on
  SQLite or PostgreSQL, simple-auth-manager users and passwords), ``airflow db migrate``.
- ``postgres`` / ``redis``: a metadata database of its own, a Celery broker database of its own.
- ``processes``: the Airflow processes (api-server, scheduler, dag-processor, triggerer, Celery
  worker), each in its own process group with its own log; waits for health; stops them all.
- ``api``: the REST API v2 as a logged-in user (trigger, wait for a run, task states and logs).
- ``history``: pipelines run for several dates with ``dag.test()``, so the quality pages have
  history without a scheduler.

Airflow is imported inside functions only: importing these modules reads no Airflow config.
"""
