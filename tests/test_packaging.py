"""The wheel, installed into a fresh venv without Airflow: templates ship inside it, the CLI
compiles, and the spec and runtime layers import without Airflow."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import EXAMPLES


def test_wheel_ships_the_templates(core_venv):
    import zipfile

    wheel, _ = core_venv
    names = zipfile.ZipFile(wheel).namelist()
    assert "aq_airflow/templates/dag.py.j2" in names


def test_core_works_without_airflow(core_venv, tmp_path):
    _, env_dir = core_venv
    python = env_dir / "bin" / "python"
    probe = subprocess.run([python, "-c", "import airflow"], capture_output=True, text=True)
    assert probe.returncode != 0  # really no Airflow here
    code = (
        "import sys, aq_airflow.spec, aq_airflow.runtime, aq_airflow.plan, aq_airflow.codegen;"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'airflow']"
    )
    subprocess.run([python, "-c", code], check=True)
    out = tmp_path / "out"
    result = subprocess.run(
        [env_dir / "bin" / "aq-airflow", "compile", str(EXAMPLES), "--out", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (out / "churn_scoring.py").read_text().startswith('"""churn_scoring: compiled by aq-airflow')
    result = subprocess.run([env_dir / "bin" / "aq-airflow", "validate", str(EXAMPLES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_provider_is_registered_with_airflow():
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "aq-airflow" in result.stdout
