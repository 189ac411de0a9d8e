"""A step's code package where the step runs (``runtime.code``, ``runtime.imports``): the runtime
as a pod runs it, in an empty working folder with an import path of aq-airflow alone, so the
step's code can come only from the package."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aq_airflow.artifacts import code_package
from aq_airflow.runtime import contract
from aq_airflow.runtime.imports import missing_modules

RUNTIME_PATH = str(Path(contract.__file__).resolve().parents[2])  # what an image with the runtime has


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def shipped(tmp_path: Path, files: dict[str, str], root: Path | None = None) -> dict[str, str]:
    """The package variables of ``files`` built, stored under ``root`` and extracted into a cache
    of this test's own."""
    package = code_package.build(str(write(tmp_path / "code", files)))
    uri = code_package.upload(package, str(root or tmp_path / "store"))
    return {contract.CODE_URI: uri, contract.CODE_DIGEST: package.digest, contract.CODE_CACHE: str(tmp_path / "cache")}


def runtime(tmp_path: Path, argv: list[str], env: dict[str, str], step: str = "s") -> subprocess.CompletedProcess:
    workdir = tmp_path / f"pod-{len(list(tmp_path.glob('pod-*')))}"
    workdir.mkdir()
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": RUNTIME_PATH, contract.STEP: step,
            contract.OUTPUT: str(tmp_path / "out" / step)}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "aq_airflow.runtime", *argv], env={**base, **env}, cwd=workdir,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


CHURN = {
    "churn/__init__.py": "",
    "churn/train.py": """\
        from __future__ import annotations

        import sklearn_not_installed_here
        import os

        open(os.environ["SIDE_EFFECT"], "w").write("user code ran")

        def fit():
            return {"fitted": True}
        """,
}


def test_a_python_step_runs_its_function_from_the_package(tmp_path):
    env = shipped(tmp_path, {"team/__init__.py": "", "team/steps.py": "def answer():\n    return {'n': 42}\n"})
    result = runtime(tmp_path, ["--function", "team.steps:answer"], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["kind"] == "object"
    extracted = tmp_path / "cache" / env[contract.CODE_DIGEST].removeprefix("sha256:")
    assert (extracted / "team" / "steps.py").is_file()
    # without the package the same step finds no code: the import path has aq-airflow only
    bare = runtime(tmp_path, ["--function", "team.steps:answer"], {})
    assert bare.returncode == contract.EXIT_STEP_FAILED and "No module named 'team'" in bare.stderr


def test_the_package_comes_first_on_the_path(tmp_path):
    """A copy of the module in the image (here on PYTHONPATH) loses to the package's."""
    env = shipped(tmp_path, {"dup.py": "def which():\n    return {'from': 'package'}\n"})
    write(tmp_path / "image", {"dup.py": "def which():\n    return {'from': 'image'}\n"})
    image_path = f"{RUNTIME_PATH}:{tmp_path / 'image'}"
    result = runtime(tmp_path, ["--function", "dup:which"], {**env, "PYTHONPATH": image_path})
    assert result.returncode == 0, result.stderr
    from aq_airflow.artifacts.store import Location
    from aq_airflow.artifacts.values import read_input

    assert read_input(Location.of(str(tmp_path / "out" / "s")), "s", dict) == {"from": "package"}


def test_a_module_the_image_lacks_is_named_before_user_code_runs(tmp_path):
    env = shipped(tmp_path, CHURN)
    side_effect = tmp_path / "ran.txt"
    result = runtime(tmp_path, ["--function", "churn.train:fit"],
                     {**env, contract.IMAGE: "ghcr.io/acme/churn:1.4.2", "SIDE_EFFECT": str(side_effect)})  # fmt: skip
    assert result.returncode == contract.EXIT_MISSING_DEPENDENCY, result.stderr
    assert result.stderr.strip().splitlines() == [
        "aq-airflow: image ghcr.io/acme/churn:1.4.2 has no Python package `sklearn_not_installed_here` "
        "(imported by churn/train.py line 3): add it to the image, or stop importing it"
    ]  # one line, no traceback
    assert not side_effect.exists()  # the user's module was never imported
    local = runtime(tmp_path, ["--function", "churn.train:fit"], {**env, "SIDE_EFFECT": str(side_effect)})
    assert local.returncode == contract.EXIT_MISSING_DEPENDENCY
    assert f"this worker's Python ({sys.executable}) has no Python package `sklearn_not_installed_here`" in local.stderr


def test_the_import_walk_follows_the_package_and_skips_optional_imports(tmp_path):
    folder = write(tmp_path / "code", {
        "app/__init__.py": "import os\n",
        "app/step.py": """\
            from typing import TYPE_CHECKING
            from . import helpers
            from app.sub import deep
            import json, pyarrow

            try:
                import optional_not_here
            except ImportError:
                optional_not_here = None
            try:
                from also_optional import thing
            except (ValueError, ModuleNotFoundError):
                thing = None
            if TYPE_CHECKING:
                import typing_only_not_here

            def run():
                import lazy_not_here
            """,
        "app/helpers.py": "from .sub.deep import x\n\n\nimport helper_dep_not_here\n",
        "app/sub/__init__.py": "",
        "app/sub/deep.py": "x = 1\nfrom __future__ import annotations\nimport deep_dep_not_here\n",
        "unrelated.py": "import never_walked_not_here\n",
    })  # fmt: skip
    found = [(m.name, m.path, m.line) for m in missing_modules(str(folder), "app.step")]
    assert found == [  # `lazy_not_here`, in a function, is named when it runs (the test below)
        ("helper_dep_not_here", "app/helpers.py", 4),
        ("deep_dep_not_here", "app/sub/deep.py", 3),
    ]
    assert missing_modules(str(folder), "installed_elsewhere.mod") == []  # not in the package: the image's


def test_a_package_that_is_not_its_digest_fails_with_its_own_exit_code(tmp_path):
    env = shipped(tmp_path, {"m.py": "def f():\n    return 1\n"})
    other = code_package.build(str(write(tmp_path / "other", {"m.py": "def f():\n    return 2\n"})))
    wrong = runtime(tmp_path, ["--function", "m:f"], {**env, contract.CODE_DIGEST: other.digest})
    assert wrong.returncode == contract.EXIT_CODE_PACKAGE
    (line,) = wrong.stderr.strip().splitlines()
    assert line.startswith(f"aq-airflow: step `s`: cannot fetch its code package {other.digest} from ")
    gone = runtime(tmp_path, ["--function", "m:f"], {**env, contract.CODE_URI: str(tmp_path / "nowhere")})
    assert gone.returncode == contract.EXIT_CODE_PACKAGE and len(gone.stderr.strip().splitlines()) == 1


def test_a_command_step_runs_in_a_copy_of_the_package(tmp_path):
    env = shipped(tmp_path, {"tool/__init__.py": "", "tool/__main__.py": """\
        import os, sys
        print("cwd", os.getcwd())
        print("data", open("data.txt").read())
        sys.exit(int(sys.argv[1]))
        """, "data.txt": "beside the code"})  # fmt: skip
    result = runtime(tmp_path, ["--command", "--", "python", "-m", "tool", "0"], env)
    assert result.returncode == 0, result.stderr
    extracted = tmp_path / "cache" / env[contract.CODE_DIGEST].removeprefix("sha256:")
    cwd = Path(result.stdout.split("cwd ", 1)[1].splitlines()[0])
    assert cwd != extracted and cwd.name == "code" and "data beside the code" in result.stdout
    assert not cwd.exists()  # removed once the command exited
    assert runtime(tmp_path, ["--command", "--", "python", "-m", "tool", "7"], env).returncode == 7  # its own
    shell = runtime(tmp_path, ["--command", "--", "sh", "-c", "ls tool"], env)  # any language
    assert shell.returncode == 0 and "__main__.py" in shell.stdout


@pytest.mark.parametrize("processes", [4])
def test_steps_extracting_one_package_at_once_share_one_folder(object_store, tmp_path, processes):
    """Several steps on one node fetch the same package from the store at the same moment into
    the shared cache: all run, and the cache holds the one complete folder."""
    scheme, bucket = object_store
    bucket("code")
    files = {f"many/m{i:04d}.py": f"VALUE = {i}\n" for i in range(1500)}
    files["many/__init__.py"] = "def total():\n    from importlib import import_module\n" \
        "    return {'sum': sum(import_module(f'many.m{i:04d}').VALUE for i in range(1500))}\n"  # fmt: skip
    env = shipped(tmp_path, files, root=f"{scheme}://code/aq")
    steps = []
    for index in range(processes):
        (tmp_path / f"pod{index}").mkdir()
        steps.append(subprocess.Popen(
            [sys.executable, "-m", "aq_airflow.runtime", "--function", "many:total"],
            env={**os.environ, "PYTHONPATH": RUNTIME_PATH, **env, contract.STEP: f"s{index}",
                 contract.OUTPUT: f"{scheme}://code/aq/dag/run/s{index}"},
            cwd=tmp_path / f"pod{index}", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    results = [(step.wait(timeout=300), step.stderr.read()) for step in steps]
    assert all(code == 0 for code, _ in results), results
    cache = tmp_path / "cache"
    assert [p.name for p in cache.iterdir()] == [env[contract.CODE_DIGEST].removeprefix("sha256:")]  # no staging left
    (extracted,) = cache.iterdir()
    assert sorted(str(p.relative_to(extracted)) for p in extracted.rglob("*.py")) == sorted(files)


def test_an_import_the_check_leaves_to_run_time_is_named_as_missing_when_it_runs(tmp_path):
    """An import in a function (not required before the step runs: it may never be called) that
    fails when the function calls it is the same missing-dependency failure, with its file and
    line; a misspelt module of the package's own is the user's error, with its traceback."""
    env = shipped(tmp_path, {
        "lazy/__init__.py": "",
        "lazy/steps.py": """\
            def fit():
                import plotting_lib_not_here
                return {"fitted": True}

            def typo():
                import lazy.stepz
                return {}
            """,
    })  # fmt: skip
    image = {**env, contract.IMAGE: "ghcr.io/acme/churn:1.4.2"}
    result = runtime(tmp_path, ["--function", "lazy.steps:fit"], image)
    assert result.returncode == contract.EXIT_MISSING_DEPENDENCY, result.stderr
    assert result.stderr.strip().splitlines() == [
        "aq-airflow: image ghcr.io/acme/churn:1.4.2 has no Python package `plotting_lib_not_here` "
        "(imported by lazy/steps.py line 2): add it to the image, or stop importing it"
    ]
    own = runtime(tmp_path, ["--function", "lazy.steps:typo"], image)
    assert own.returncode == contract.EXIT_STEP_FAILED
    assert "No module named 'lazy.stepz'" in own.stderr and "Traceback" in own.stderr


def test_imports_a_valid_step_may_never_run_are_not_required(tmp_path):
    """Conditional and guarded imports of code that runs fine here are not refused up front."""
    folder = write(tmp_path / "code", {
        "valid.py": """\
            import contextlib
            import sys

            if sys.version_info >= (3, 11):
                import tomllib
            else:
                import tomli_not_here
            if sys.platform == "win32":
                import winreg_not_here
            if __debug__ and False:
                import never_not_here
            try:
                import ujson_not_here
            except Exception:
                import json
            with contextlib.suppress(ImportError):
                import orjson_not_here

            class Plots:
                import json as codec

            def plot():
                import matplotlib_not_here
            """,
    })  # fmt: skip
    assert missing_modules(str(folder), "valid") == []
    class_level = write(tmp_path / "cls", {"c.py": "class C:\n    import class_dep_not_here\n"})
    assert [m.name for m in missing_modules(str(class_level), "c")] == ["class_dep_not_here"]  # runs at import


def test_what_a_command_writes_where_it_runs_stays_its_own(tmp_path):
    """dbt writes `target/` and `logs/` beside its project: each run of a command gets a copy of
    the package of its own, so the shared cache is unchanged and two runs never see each other's files."""
    env = shipped(tmp_path, {"project/__init__.py": "", "project/__main__.py": """\
        import os, sys
        print("before", sorted(os.listdir(".")))
        os.makedirs("target", exist_ok=True)
        open("target/x", "a").write(sys.argv[1])
        """})  # fmt: skip
    extracted = tmp_path / "cache" / env[contract.CODE_DIGEST].removeprefix("sha256:")
    first = runtime(tmp_path, ["--command", "--", "python", "-m", "project", "one"], env)
    assert first.returncode == 0, first.stderr
    files = sorted(str(p.relative_to(extracted)) for p in extracted.rglob("*"))
    second = runtime(tmp_path, ["--command", "--", "python", "-m", "project", "two"], env)
    assert second.returncode == 0, second.stderr
    assert "target" not in first.stdout and "target" not in second.stdout  # neither saw the other's
    assert sorted(str(p.relative_to(extracted)) for p in extracted.rglob("*")) == files
    assert not (extracted / "target").exists() and "project/__pycache__" not in files


def test_a_python_step_calling_sys_exit_fails_as_its_own(tmp_path):
    """A user's `sys.exit(4)` is the step's failure (exit code 1), never the runtime's missing package."""
    env = shipped(tmp_path, {"quits.py": "import sys\n\ndef f():\n    sys.exit(4)\n"})
    result = runtime(tmp_path, ["--function", "quits:f"], env)
    assert result.returncode == contract.EXIT_STEP_FAILED, result.stderr
    assert "aq-airflow: step `s`: `quits:f` called sys.exit(4) instead of returning" in result.stderr


def test_a_forwarded_signal_ends_the_command_and_its_copy(tmp_path):
    """The runtime runs the command as its child: a SIGTERM to the runtime (a pod's PID 1) reaches
    the command, the runtime ends by the same signal, and the copy is gone."""
    env = shipped(tmp_path, {"wait.py": "import os, time\nprint(os.getcwd(), flush=True)\ntime.sleep(60)\n"})
    (tmp_path / "pod").mkdir()
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": RUNTIME_PATH, contract.STEP: "s"}
    step = subprocess.Popen(
        [sys.executable, "-m", "aq_airflow.runtime", "--command", "--", "python", "wait.py"],
        env={**base, **env}, cwd=tmp_path / "pod", stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    cwd = Path(step.stdout.readline().strip())
    assert cwd.is_dir()
    step.send_signal(signal.SIGTERM)
    assert step.wait(timeout=30) == -signal.SIGTERM
    assert not cwd.exists()
