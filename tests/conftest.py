"""Test set-up: a real Airflow in a temporary AIRFLOW_HOME, and a kubeconfig that points the
KubernetesPodOperator at loopback (building a pod needs a client configuration, not a server).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="aq-airflow-test-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(_HOME, "dags")
_KUBECONFIG = Path(_HOME) / "kubeconfig"
_KUBECONFIG.write_text(
    "apiVersion: v1\nkind: Config\n"
    'clusters: [{name: loop, cluster: {server: "http://127.0.0.1:9"}}]\n'
    "users: [{name: test, user: {token: test}}]\n"
    "contexts: [{name: loop, context: {cluster: loop, user: test}}]\n"
    "current-context: loop\n"
)
os.environ["KUBECONFIG"] = str(_KUBECONFIG)
# the example profile `onprem-a100` names its own Kubernetes connection
os.environ["AIRFLOW_CONN_K8S_ONPREM"] = json.dumps(
    {"conn_type": "kubernetes", "extra": {"kube_config_path": str(_KUBECONFIG)}}
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_dags"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture
def dags_folder(tmp_path: Path) -> Path:
    """An empty dags folder with the two-line loader in it."""
    from aq_airflow.cli.main import LOADER_FILE, LOADER_SOURCE

    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / LOADER_FILE).write_text(LOADER_SOURCE)
    return folder


def example_specs() -> list[Path]:
    return sorted(EXAMPLES.glob("*.aq.yaml"))
