"""`ray:` steps against hostile step code, each a real step process on a real local Ray: a
function returning handles into Ray's object store (ObjectRefs, a Dataset), which pickled would
name data gone with the step's Ray, and step code that starts Ray itself as it is imported. Each
fails the step with one clear line; nothing is committed; no Ray process is left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from aq_airflow.artifacts.store import MANIFEST
from aq_airflow.runtime import contract

pytestmark = pytest.mark.slow  # a local Ray per step process: ~20 s each on 2 cores

STEPS = """
import ray


@ray.remote
def square(n):
    return n * n


def refs():
    return {"best": [square.remote(n) for n in range(3)]}


def dataset():
    return ray.data.from_items([{"n": n} for n in range(3)]).materialize()

"""

EAGER = """
import ray

ray.init(include_dashboard=False, num_cpus=1)


def f():
    return 1
"""


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray_hostile")
    (folder / "ray_hostile_steps.py").write_text(STEPS)
    (folder / "ray_eager_steps.py").write_text(EAGER)
    ray_tmp = tempfile.mkdtemp(prefix="aqrh-", dir="/tmp")  # short: Ray's socket paths
    yield folder, Path(ray_tmp)
    shutil.rmtree(ray_tmp, ignore_errors=True)


def run(steps, function: str, output: Path) -> subprocess.CompletedProcess:
    """The step as the local runner starts it: `python -m aq_airflow.runtime --function ...`, a
    process of its own (the engine makes its process group Ray's)."""
    folder, ray_tmp = steps
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
        "RAY_TMPDIR": str(ray_tmp),
        contract.ENGINE: "ray",
        contract.DAG_ID: "hostile",
        contract.STEP: "tune",
        contract.OUTPUT: str(output),
        contract.INPUTS: contract.encode_inputs({}, as_list=True),
        contract.CONTEXT: json.dumps({"params": {}}),
    }
    command = [sys.executable, "-m", "aq_airflow.runtime", contract.FUNCTION_FLAG, function]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, start_new_session=True)


def failure_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith(contract.RUNTIME_MARKER)]
    assert done.returncode == contract.EXIT_STEP_FAILED and len(lines) == 1, done.stderr[-3000:]
    return lines[0].removeprefix(contract.RUNTIME_MARKER)


HANDLE_FIX = (
    "a handle to data in Ray's object store, which ends with the step: return the data itself (`ray.get(ref)`; "
    "a Dataset's `.to_pandas()` or `pyarrow.concat_tables(ray.get(dataset.to_arrow_refs()))`)"
)


@pytest.mark.parametrize(
    "function, what",
    [
        ("refs", "a dict holding a list holding a ray.ObjectRef"),
        ("dataset", "a ray.MaterializedDataset"),
    ],
)
def test_a_returned_ray_handle_fails_the_step_instead_of_pickling_what_will_be_gone(steps, tmp_path, function, what):
    """Before: stored as a pickled `object` output, committed; the next step unpickled references
    into a Ray that no longer existed."""
    done = run(steps, f"ray_hostile_steps:{function}", tmp_path / "tune")
    assert failure_line(done) == f"step `tune`: its function returned {what}, {HANDLE_FIX}"
    assert not (tmp_path / "tune" / MANIFEST).exists()
    assert list(steps[1].iterdir()) == []  # the step's Ray stopped, its folder removed


def test_step_code_that_starts_ray_as_it_is_imported_is_told_so(steps, tmp_path):
    """Before: `the local Ray did not start: RuntimeError: Maybe you called ray.init twice by
    accident?`, naming neither the cause nor the fix."""
    done = run(steps, "ray_eager_steps:f", tmp_path / "tune")
    assert failure_line(done) == (
        "step `tune`: its code started Ray itself as it was imported (`ray.init()` at a module's top level): "
        "remove the call; the runtime starts a local Ray (or connects to the RayJob's) before the function runs"
    )
    assert not (tmp_path / "tune" / MANIFEST).exists()
