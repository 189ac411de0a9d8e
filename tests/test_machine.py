"""runtime.machine: the CPUs and memory a step's process may use, as a container's cgroup (v2,
else v1) and a taskset limit them: one answer for the local Spark and the local Ray."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from aq_airflow.runtime import machine


@pytest.fixture
def cgroup(tmp_path, monkeypatch):
    """The module's cgroup files pointed into a folder of the test's own (none there yet)."""
    for name in ("CPU_MAX", "CPU_QUOTA_V1", "CPU_PERIOD_V1", "MEMORY_MAX", "MEMORY_LIMIT_V1"):
        monkeypatch.setattr(machine, name, str(tmp_path / name))
    return tmp_path


def affinity() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.skipif(not shutil.which("taskset") or affinity() < 2, reason="needs taskset and two CPUs")
def test_a_tasksets_cpus_are_what_the_process_uses():
    code = "from aq_airflow.runtime.machine import usable_cpus; print(usable_cpus())"
    done = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "1", done.stderr


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({}, None),  # no cgroup: the affinity
        ({"CPU_MAX": "max 100000\n"}, None),
        ({"CPU_MAX": "150000 100000\n"}, 1),  # 1.5 CPUs: one busy worker, not two throttled
        ({"CPU_MAX": "50000 100000\n"}, 1),  # at least one
        ({"CPU_QUOTA_V1": "100000\n", "CPU_PERIOD_V1": "100000\n"}, 1),  # cgroup v1
        ({"CPU_QUOTA_V1": "-1\n", "CPU_PERIOD_V1": "100000\n"}, None),
    ],
)
def test_a_containers_cpu_quota_caps_the_cpus(cgroup, files, cpus):
    for name, text in files.items():
        (cgroup / name).write_text(text)
    assert machine.usable_cpus() == (affinity() if cpus is None else min(cpus, affinity()))


def test_a_containers_memory_limit_caps_the_memory(cgroup):
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert machine.usable_memory() == physical
    (cgroup / "MEMORY_LIMIT_V1").write_text(f"{2**30}\n")  # v1
    assert machine.usable_memory() == min(2**30, physical)
    (cgroup / "MEMORY_MAX").write_text("max\n")  # v2 says none, and wins over v1
    assert machine.usable_memory() == physical
    (cgroup / "MEMORY_MAX").write_text(f"{2**29}\n")
    assert machine.usable_memory() == min(2**29, physical)
