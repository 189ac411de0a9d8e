"""Where the artifact store is: one rule for the operators, the CLI and gc."""

from __future__ import annotations

import os

#: The variable that names the store root when the spec names none (set on workers and in pods).
ARTIFACTS = "AQ_ARTIFACTS"
#: ``<root>/_code/<hex>``: the code packages of every pipeline on the store (``code_package``),
#: beside the pipelines' folders ``<root>/<dag_id>/``: no pipeline may take this name.
CODE_FOLDER = "_code"
#: ``<root>/<dag_id>/<run_id>/_code.json``: the run's one code version (``code_package.pin``)
RUN_PIN = "_code.json"


def artifacts_root(artifacts: str | None) -> str:
    """The artifact store root: the spec's URI, else ``$AQ_ARTIFACTS``, else a folder in
    ``$AIRFLOW_HOME``; a local path is made absolute (steps run in their own working folder)."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    root = artifacts or os.environ.get(ARTIFACTS) or os.path.join(home, "aq-artifacts")
    return root if "://" in root else os.path.abspath(root)


def artifact_uri(artifacts: str | None, ref, run_id: str) -> str:
    """An output's location for one run: the store root (see :func:`artifacts_root`) plus the
    path of ``ref`` (a plan's ``ArtifactRef``)."""
    return ref.location(artifacts_root(artifacts), run_id)
