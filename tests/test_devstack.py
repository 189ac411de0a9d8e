"""The shape of ``aq_airflow.devstack`` and of who imports what around it: the local Airflow
is product code (it runs from the wheel: no import of ``tests`` or ``bench``, nothing of Airflow
at import time), the loader file has one source, and ``tests`` and ``bench`` never import each
other. What devstack does is tested where it runs: ``tests/test_demo_ui.py`` (the wheel),
``tests/ui`` and ``tests/deployment`` (their stacks are devstack's)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aq_airflow.cli.main import main
from aq_airflow.devstack.loader_file import loader_files, local_run_source

REPO = Path(__file__).resolve().parent.parent
MODULES = sorted(p.stem for p in (REPO / "aq_airflow" / "devstack").glob("*.py") if p.stem != "__init__")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name.split(".")[0] for name in names}


def test_devstack_imports_nothing_of_airflow_tests_or_bench_when_imported():
    code = (
        "import json, sys\n"
        + "".join(f"import aq_airflow.devstack.{m}\n" for m in MODULES)
        + "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    loaded = set(json.loads(result.stdout))
    assert "aq_airflow" in loaded and MODULES
    assert loaded.isdisjoint({"airflow", "tests", "bench", "httpx", "psycopg2", "pendulum"}), loaded


def test_devstack_source_names_no_test_or_bench_module():
    for path in (REPO / "aq_airflow" / "devstack").glob("*.py"):
        assert _imports(path).isdisjoint({"tests", "bench"}), path


def test_tests_and_bench_do_not_import_each_other():
    for folder, other in (("tests", "bench"), ("bench", "tests")):
        for path in (REPO / folder).rglob("*.py"):
            if "node_modules" not in path.parts:
                assert other not in _imports(path), f"{path.relative_to(REPO)} imports {other}"


def test_the_loader_file_has_one_source():
    """init's shards (the example folder's loader is one, as written) and the local-run loader
    of `run` and `demo-ui` come from devstack.loader_file; no other module spells one out."""
    assert (REPO / "example_dags" / "aq_dags_0.py").read_text() == loader_files(1)["aq_dags_0.py"]
    assert "load_dags(globals(), local_run=True)" in local_run_source()
    spelled = [
        path.relative_to(REPO)
        for path in (REPO / "aq_airflow").rglob("*.py")
        if "load_dags(globals()" in path.read_text(encoding="utf-8") and path.name != "loader_file.py"
    ]
    assert spelled == []


def test_demo_ui_refuses_bad_input_with_one_line_naming_it(tmp_path, capsys):
    spec = tmp_path / "p.aq.yaml"
    spec.write_text("pipeline: p\nwarehouse: aq_warehouse\nsteps:\n  a: {sql: SELECT 1 AS x}\n")
    cases = [
        ([str(tmp_path / "missing.aq.yaml")], 2, f"{tmp_path / 'missing.aq.yaml'}: no such spec file"),
        ([str(spec), "--conf", "2026-02-30={}"], 2, "--conf 2026-02-30={}: write it as YYYY-MM-DD="),
        ([str(spec), "--conf", "2026-02-27=[1]"], 2, "--conf 2026-02-27=[1]: write it as YYYY-MM-DD="),
        ([str(spec), "--days", "0"], 2, "--days must be at least 1"),
        ([str(spec), "--first-date", "yesterday"], 2, "--first-date yesterday: not a date: use YYYY-MM-DD"),
        ([str(spec), str(spec)], 2, "two specs name the same pipeline: p, p"),
    ]
    for args, code, message in cases:
        assert main(["demo-ui", *args, "--workdir", str(tmp_path / "w")]) == code, args
        err = capsys.readouterr().err
        assert err.startswith(message) and "Traceback" not in err, (args, err)
    broken = tmp_path / "broken.aq.yaml"
    broken.write_text("pipeline: broken\nsteps:\n  a: {sql: 1}\n  b: {inputs: [nowhere]}\n")
    assert main(["demo-ui", str(broken), "--workdir", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err
    assert f"{broken}:" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()  # refused before anything was set up


@pytest.mark.parametrize("port", ["99999", "-1", "0", "\uff18\uff10"])
def test_demo_ui_refuses_a_port_out_of_range_in_one_line(port, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["demo-ui", "example_dags/churn_scoring.aq.yaml", "--port", port])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "is not a port from 1 to 65535" in error and "Traceback" not in error
