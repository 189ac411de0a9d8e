"""Serving a pipeline's model: what `serve:` needs besides Airflow and Kubernetes.

- ``layout``: a model object written in the layout its format's model server reads, with its
  signature, at a ``ModelVersion``'s folder in the artifact store;
- ``signature``: the model's input columns and Open Inference Protocol types, taken from the
  sample table; a request of sample rows and the check of the response;
- ``oip``: the Open Inference Protocol (v2) client: readiness, inference, the smoke test;
- ``model_server``: a real model server (MLServer, in a venv of its own) on loopback, serving a
  model repository folder: ``aq-airflow serve``, the local serve task's smoke test, the tests;
- ``promotion``: an endpoint's ``current.json`` (``artifacts.model_repository.Promotion``) read
  and replaced on the store.

No Airflow here: ``aq-airflow serve`` and the tests' KServe controller use it without a scheduler.
"""
