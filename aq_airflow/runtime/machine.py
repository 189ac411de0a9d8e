"""What of this machine a step's process may use: its CPUs and its memory.

A local engine (PySpark's local mode, a local Ray) sizes itself to these, not to the host: a
container's limits (cgroup v2, else v1) and a ``taskset`` are what the process really gets, and
an engine sized past them is throttled or killed by the OOM killer. One answer for every engine,
so a Spark step and a Ray step on one worker agree on what the worker has.
"""

from __future__ import annotations

import os

# cgroup v2's files, else v1's (a quota of -1 or "max" is none)
CPU_MAX = "/sys/fs/cgroup/cpu.max"  # "max 100000" or "200000 100000" (quota period)
CPU_QUOTA_V1, CPU_PERIOD_V1 = "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"
MEMORY_MAX = "/sys/fs/cgroup/memory.max"
MEMORY_LIMIT_V1 = "/sys/fs/cgroup/memory/memory.limit_in_bytes"


def usable_cpus() -> int:
    """The CPUs this process may run on: its CPU affinity (a taskset's share, not the host's),
    no more than its container's CPU quota rounded down (a quota of 1.5 CPUs keeps one busy
    worker, not two throttled ones), at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS has no affinity
        count = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None:
        count = min(count, int(quota))
    return max(1, count)


def cpu_quota() -> float | None:
    """The container's CPU quota in CPUs (``quota / period``), None when it has none."""
    try:
        with open(CPU_MAX, encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
    except (OSError, ValueError):
        try:
            with open(CPU_QUOTA_V1, encoding="ascii") as handle, open(CPU_PERIOD_V1, encoding="ascii") as periods:
                quota, period = handle.read().strip(), periods.read().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def usable_memory() -> int:
    """This machine's memory in bytes, less its container's memory limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in (MEMORY_MAX, MEMORY_LIMIT_V1):  # v1's "no limit" is a huge number: min() keeps the machine's
        try:
            with open(path, encoding="ascii") as handle:
                limit = handle.read().strip()
        except OSError:
            continue
        if limit.isdigit():
            total = min(total, int(limit))
        break
    return total
