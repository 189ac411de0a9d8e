"""The wheel and sdist as users get them.

``core_venv``: the wheel in a fresh venv without Airflow (templates ship inside it, the CLI
compiles, the spec and runtime layers import without Airflow).
``production_venv``: wheel and sdist built from a clean copy of the repo, the wheel installed
with ``[airflow,test]`` from the lock: every module ships, the examples load through Airflow's
DagBag with that venv's Python, the provider registers and no dev tool's plugin is present.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from tests.conftest import EXAMPLES, REPO


def test_wheel_ships_the_templates(core_venv):
    wheel, _ = core_venv
    names = zipfile.ZipFile(wheel).namelist()
    assert "aq_airflow/templates/dag.py.j2" in names
    assert "aq_airflow/serving/model-server.lock" in names  # the model server venv's pins (serving.model_server)
    # the onnx runtime MLServer imports from a version folder: data copied there, no module of ours
    assert "aq_airflow/serving/mlserver-runtimes/aq_onnx_runtime.py" in names
    assert not [n for n in names if n.endswith("aq_airflow/serving/aq_onnx_runtime.py")]


def test_core_works_without_airflow(core_venv, tmp_path):
    _, env_dir = core_venv
    python = env_dir / "bin" / "python"
    probe = subprocess.run([python, "-c", "import airflow"], capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode != 0  # really no Airflow here
    code = (
        "import sys, aq_airflow.pipeline_spec, aq_airflow.runtime, aq_airflow.plan, aq_airflow.codegen;"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'airflow']"
    )
    subprocess.run([python, "-c", code], check=True, cwd=tmp_path)
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


# --- the production install: wheel + sdist from a clean copy, wheel[airflow,test] from the lock ---


def source_modules() -> set[str]:
    """Every module of the package in the source tree, as a dotted name."""
    package = REPO / "aq_airflow"
    return {
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for path in package.rglob("*.py")
        if "__pycache__" not in path.parts
    }


def test_wheel_holds_every_module_and_the_templates(production_venv):
    names = set(zipfile.ZipFile(production_venv.wheel).namelist())
    shipped = {name[: -len(".py")].replace("/", ".") for name in names if name.endswith(".py")}
    modules = source_modules()
    assert len(modules) > 30  # the package, really
    assert modules - shipped == set(), "modules missing from the wheel"
    assert "aq_airflow/templates/dag.py.j2" in names


def test_sdist_holds_the_packages_and_the_templates(production_venv):
    with tarfile.open(production_venv.sdist) as archive:
        # members are prefixed by aq_airflow-<version>/
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = {m for m in source_modules() if m.replace(".", "/") + ".py" not in names}
    assert missing == set(), "modules missing from the sdist"
    assert {"templates/dag.py.j2", "setup.cfg", "pyproject.toml"} <= names
    assert {"setup.py", "README.md"} <= names


def production_env(home: Path) -> dict[str, str]:
    """The environment of an Airflow installed from the wheel: nothing of this checkout or the
    test session's Airflow (AIRFLOW_*, PYTHONPATH) leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AQ_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
    )
    return env


DAGBAG_PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
import aq_airflow
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "package": aq_airflow.__file__,
    "errors": {path: str(error) for path, error in bag.import_errors.items()},
    "dags": {dag_id: sorted(dag.tags) for dag_id, dag in bag.dags.items()},
}))
"""


def test_examples_load_through_dagbag_with_the_installed_wheel(production_venv, tmp_path):
    home = tmp_path / "airflow"
    dags = home / "dags"
    env = production_env(home)
    init = subprocess.run(
        [production_venv.bin / "aq-airflow", "init", str(dags)], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    assert list(dags.glob("*.py")), "aq-airflow init wrote no loader"
    for spec in EXAMPLES.glob("*.aq.yaml"):
        shutil.copy(spec, dags)
    shutil.copy(EXAMPLES / "aq-profiles.yaml", dags)
    for package in ("churn", "regions"):
        shutil.copytree(EXAMPLES / package, dags / package, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [production_venv.python, "-c", DAGBAG_PROBE, str(dags)],
        # what this asserts is that every example loads from the wheel, not how fast: a shard that
        # imports the Kubernetes, Spark and Ray operators takes 5 s alone and, beside the suite's
        # JVMs and Rays on two cores, passed Airflow's 30 s default once
        env={**env, "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    bag = json.loads(result.stdout.strip().splitlines()[-1])
    assert bag["package"].startswith(str(production_venv.venv)), bag["package"]  # the wheel, not the checkout
    assert bag["errors"] == {}
    expected = {
        re.search(r"^pipeline:\s*(\S+)", spec.read_text(), re.M).group(1) for spec in EXAMPLES.glob("*.aq.yaml")
    }
    assert expected == {
        "churn_scoring", "churn_alerts", "churn_champion", "fraud_training", "image_embeddings", "region_training",
        "churn_at_scale",
    }  # fmt: skip
    assert expected <= set(bag["dags"]), bag["dags"]
    assert not [dag_id for dag_id, tags in bag["dags"].items() if "aq:invalid" in tags], bag["dags"]


def airflow_cli(production_venv, tmp_path, *args: str) -> subprocess.CompletedProcess:
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [production_venv.bin / "airflow", *args],
        env=production_env(home),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_installed_provider_is_listed(production_venv, tmp_path):
    result = airflow_cli(production_venv, tmp_path, "providers", "list", "-o", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    providers = {p["package_name"] for p in json.loads(result.stdout[result.stdout.index("[") :])}
    assert "aq-airflow" in providers
    assert "apache-airflow-providers-celery" in providers  # the [test] extra


def test_no_plugin_from_dev_tools(production_venv, tmp_path):
    listing = subprocess.run(
        [production_venv.python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True
    )
    if listing.returncode != 0:  # a uv-made venv has no pip
        listing = subprocess.run(
            [shutil.which("uv") or str(Path(sys.executable).parent / "uv"), "pip", "list", "--format", "json",
             "--python", str(production_venv.python)],
            capture_output=True,
            text=True,
        )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    installed = {p["name"].lower() for p in json.loads(listing.stdout)}
    assert installed.isdisjoint({"dag-factory", "pytest", "ruff", "hypothesis", "fakesnow", "kubernetes-validate"})
    result = airflow_cli(production_venv, tmp_path, "plugins", "-o", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout.strip()
    plugins = json.loads(text[text.index("[") :]) if "[" in text else []
    assert "dagfactory" not in result.stdout.lower()
    # every plugin comes from Airflow's own distributions or from aq-airflow
    sources = [p["source"] for p in plugins]
    assert all(s.startswith(("apache-airflow", "aq-airflow")) for s in sources), sources
