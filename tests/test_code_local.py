"""Code packages on the local runner: a step's process goes through the same contract as a pod
(the run's pinned package, first on the path; a command step in its folder), so a laptop and a
cluster run the same bytes; `code: image` ships nothing."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from aq_airflow.artifacts import code_package
from aq_airflow.artifacts.store import Location
from aq_airflow.artifacts.values import read_input

STEPS = '''\
import os
import pathlib

VERSION = "v1"


def edit():
    """Changes this module in the dags folder while the run goes on."""
    live = pathlib.Path(os.environ["LIVE_CODE"])
    live.write_text(live.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))
    return {"edited": True}


def after(edit):
    return {"version": VERSION, "file": __file__}
'''

WHERE = """\
import os
from local_code import steps
open(os.path.join(os.environ["AQ_OUTPUT"], "where.txt"), "w").write(os.getcwd() + " " + steps.VERSION)
"""

SPEC = """
pipeline: {name}
code: {name}_code
defaults:
  env: {{LIVE_CODE: "{live}"}}
steps:
  edit:
    python: local_code.steps:edit
  after:
    python: local_code.steps:after
    inputs: [edit]
  where:
    command: [python, -m, local_code.where]
    inputs: [after]
"""


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AQ_CODE_CACHE", str(tmp_path / "cache"))  # the worker's, inherited by its steps
    return tmp_path / "cache"


@pytest.fixture
def code_folder():
    """Makes code folders beside the specs `run_dag` writes (named in their `code:`), and removes
    them after the test: the dags folder is the session's, and a spec at its root packages it all."""
    made = []

    def make(name: str) -> Path:
        folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "local" / f"{name}_code"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "local_code").mkdir(parents=True)
        made.append(folder)
        return folder

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_local_runner_runs_the_runs_package(code_folder, run_dag, tmp_path, cache):
    code = code_folder("local_pinned")
    live = code / "local_code" / "steps.py"
    (code / "local_code" / "__init__.py").write_text("")
    live.write_text(STEPS)
    (code / "local_code" / "where.py").write_text(WHERE)
    digest = code_package.build(str(code)).digest
    text = SPEC.format(name="local_pinned", live=live)
    _, first, states = run_dag("local_pinned", text)
    assert set(states.values()) == {"success"}, states
    root = tmp_path / "artifacts" / "local_pinned" / first.run_id
    extracted = cache / digest.removeprefix("sha256:")
    # `edit` changed the dags folder mid-run; `after` and `where` still ran the run's package
    assert 'VERSION = "v2"' in live.read_text()
    after = read_input(Location.of(str(root / "after")), "after", dict)
    assert after == {"version": "v1", "file": str(extracted / "local_code" / "steps.py")}
    where, version = (root / "where" / "where.txt").read_text().split()
    assert version == "v1" and where != str(extracted)  # a command step, in a copy of the package of its own
    assert sorted(p.name for p in extracted.iterdir()) == ["local_code"]
    _, second, states = run_dag("local_pinned", text, date="2026-03-02")
    assert set(states.values()) == {"success"}, states
    root = tmp_path / "artifacts" / "local_pinned" / second.run_id
    assert read_input(Location.of(str(root / "after")), "after", dict)["version"] == "v2"  # the next run: new code


def test_code_image_ships_nothing(run_dag, tmp_path, cache, monkeypatch):
    installed = tmp_path / "site"  # the worker's installed packages
    installed.mkdir()
    (installed / "preinstalled_steps.py").write_text(
        "import os\n\ndef info():\n    return {'digest': os.environ.get('AQ_CODE_DIGEST'), 'file': __file__}\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")]))
    _, dag_run, states = run_dag("from_image", "code: image\nsteps:\n  info:\n    python: preinstalled_steps:info\n")
    assert states == {"info.run": "success"}
    root = tmp_path / "artifacts" / "from_image"
    info = read_input(Location.of(str(root / dag_run.run_id / "info")), "info", dict)
    assert info == {"digest": None, "file": str(installed / "preinstalled_steps.py")}
    assert not (root / dag_run.run_id / "_code.json").exists() and not (tmp_path / "artifacts" / "_code").exists()
    assert not cache.exists()


def test_a_missing_module_fails_the_local_task_with_its_reason(code_folder, run_dag, cache, capsys):
    code = code_folder("local_missing")
    (code / "local_code" / "__init__.py").write_text("")
    (code / "local_code" / "fit.py").write_text("import not_on_this_worker_xyz\n\n\ndef fit():\n    return 1\n")
    spec = "code: local_missing_code\nsteps:\n  fit:\n    python: local_code.fit:fit\n"
    _, _, states = run_dag("local_missing", spec)
    assert states == {"fit.run": "failed"}
    output = capsys.readouterr()
    assert (
        "step `fit` failed: a Python package its code imports is missing (exit code 4): aq-airflow: this worker's "
        f"Python ({sys.executable}) has no Python package `not_on_this_worker_xyz` (imported by local_code/fit.py "
        "line 1)"
    ) in output.out + output.err


def test_a_code_folder_that_cannot_be_packaged_fails_the_task_saying_why(code_folder, run_dag, tmp_path, cache, capsys):
    code = code_folder("local_refused")
    (code / "local_code" / "__init__.py").write_text("def f():\n    return 1\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the pipeline's")
    (code / "local_code" / "linked.txt").symlink_to(outside)
    _, _, states = run_dag("local_refused", "code: local_refused_code\nsteps:\n  f:\n    python: local_code:f\n")
    assert states == {"f.run": "failed"}
    output = capsys.readouterr()
    assert (
        f"step `f` cannot start: its code cannot be packaged: local_code/linked.txt in the code folder "
        f"{code}: is a symbolic link out of the code folder"
    ) in output.out + output.err
    assert not cache.exists()  # nothing ran


def test_a_later_task_whose_pinned_package_is_gone_fails_saying_so(code_folder, run_dag, cache, capsys):
    """A later task never rebuilds: it checks that the run's package is still in the store."""
    code = code_folder("local_gone")
    (code / "local_code" / "__init__.py").write_text(
        "import os\n\ndef first():\n    os.remove(os.environ['AQ_CODE_URI'])\n    return 1\n\n"
        "def second(first):\n    return 2\n"
    )
    spec = "code: local_gone_code\nsteps:\n  first:\n    python: local_code:first\n" \
        "  second:\n    python: local_code:second\n    inputs: [first]\n"  # fmt: skip
    _, _, states = run_dag("local_gone", spec)
    assert states == {"first.run": "success", "second.run": "failed"}
    output = capsys.readouterr()
    digest = code_package.build(str(code)).digest
    assert f"step `second` cannot start: this run's code package {digest} is no longer at " in output.out + output.err


EXITS = """
code: {code}
steps:
  grep_3:
    command: [sh, -c, "echo no match; exit 3"]
  cli_4:
    command: [sh, -c, "echo usage problem; exit 4"]
"""


@pytest.mark.parametrize("shipped", [True, False], ids=["package", "image"])
def test_a_command_exiting_3_or_4_fails_as_its_own(shipped, code_folder, run_dag, cache, capsys):
    """grep, pytest or any CLI may exit 3 or 4: the step's own failure, whether its command went
    through the runtime (a package shipped, exec'd after the fetch) or not (`code: image`)."""
    name = f"local_exits_{'package' if shipped else 'image'}"
    if shipped:
        (code_folder(name) / "local_code" / "__init__.py").write_text("")
    _, _, states = run_dag(name, EXITS.format(code=f"{name}_code" if shipped else "image"))
    assert states == {"grep_3.run": "failed", "cli_4.run": "failed"}
    output = capsys.readouterr()
    text = output.out + output.err
    assert "step `grep_3` failed: the step's process exited with code 3: no match" in text
    assert "step `cli_4` failed: the step's process exited with code 4: usage problem" in text
    assert "could not be fetched" not in text and "is missing" not in text


def test_a_python_step_calling_sys_exit_4_is_no_missing_package(code_folder, run_dag, cache, capsys):
    code = code_folder("local_sys_exit")
    (code / "local_code" / "__init__.py").write_text("import sys\n\n\ndef quit():\n    sys.exit(4)\n")
    _, _, states = run_dag(
        "local_sys_exit", "code: local_sys_exit_code\nsteps:\n  quit:\n    python: local_code:quit\n"
    )
    assert states == {"quit.run": "failed"}
    output = capsys.readouterr()
    text = output.out + output.err
    assert (
        "step `quit` failed: the step's process exited with code 1: aq-airflow: step `quit`: `local_code:quit` "
        "called sys.exit(4) instead of returning"
    ) in text
    assert "a Python package its code imports is missing" not in text


SHARED = "def value():\n    return {'from': 'the dags folder'}\n"


@pytest.mark.parametrize("shipped", [True, False], ids=["package", "image"])
def test_a_dags_folder_module_outside_the_code_folder_is_not_shipped(shipped, code_folder, run_dag, cache, capsys):
    """A shipped step's code is its package, all of it, as in a pod: a module in the dags folder
    beside (not in) its code folder is missing, named; with `code: image` the dags folder's root is
    on the path, as the dag-processor has it."""
    dags_root = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "local"
    shared = dags_root / "aq_shared_outside_xyz.py"
    shared.write_text(SHARED)
    try:
        name = f"local_outside_{'package' if shipped else 'image'}"
        uses = "from aq_shared_outside_xyz import value\n\n\ndef f():\n    return value()\n"
        if shipped:
            (code_folder(name) / "local_code" / "__init__.py").write_text(uses)
            spec = f"code: {name}_code\nsteps:\n  f:\n    python: local_code:f\n"
        else:
            (dags_root / "aq_uses_outside_xyz.py").write_text(uses)
            spec = "code: image\nsteps:\n  f:\n    python: aq_uses_outside_xyz:f\n"
        _, _, states = run_dag(name, spec)
    finally:
        shared.unlink()
        (dags_root / "aq_uses_outside_xyz.py").unlink(missing_ok=True)
    output = capsys.readouterr()
    if shipped:
        assert states == {"f.run": "failed"}
        assert (
            "step `f` failed: a Python package its code imports is missing (exit code 4): aq-airflow: this worker's "
            f"Python ({sys.executable}) has no Python package `aq_shared_outside_xyz` (imported by "
            "local_code/__init__.py line 1)"
        ) in output.out + output.err
    else:
        assert states == {"f.run": "success"}


def test_validate_checks_a_code_image_steps_module_where_the_worker_imports_it(tmp_path):
    """`code: image` on the local runner: the step imports what the worker's Python has (and the
    dags folder's root), so validate looks there, not in the spec's folder (before: not at all)."""
    import subprocess
    import sys

    dags = tmp_path / "dags"
    (dags / "team" / "shop_only_here").mkdir(parents=True)
    (dags / "team" / "shop_only_here" / "__init__.py").write_text("def build():\n    return {}\n")
    spec = dags / "team" / "img.aq.yaml"
    spec.write_text("pipeline: img\ncluster: local\ncode: image\nsteps:\n  s:\n    python: shop_only_here:build\n")
    (dags / "aq_dags.py").write_text("")  # the dags folder's root: the spec's folder's parent
    result = subprocess.run([sys.executable, "-m", "aq_airflow.cli", "validate", str(dags)], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "module `shop_only_here` of `shop_only_here:build` is not installed here, nor at the dags folder's root" \
        in result.stdout  # fmt: skip
    (dags / "team" / "shop_only_here").rename(dags / "shop_only_here")  # at the root: the worker's path has it
    again = subprocess.run([sys.executable, "-m", "aq_airflow.cli", "validate", str(dags)], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
