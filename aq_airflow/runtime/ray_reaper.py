"""``python -m aq_airflow.runtime.ray_reaper GROUP FOLDER``: stops a ray step's local Ray when the
step's process dies without stopping it.

A step's process killed outright (SIGKILL: the kernel's OOM killer, ``kill -9``) takes its Ray
head's processes with it (Ray ties them to it), but not all of Ray's: the agents its raylet starts
lived on for minutes. This watcher, in a session of its own, reads a pipe only the step's process
holds: at its end (the process is gone) without :data:`STAND_DOWN` first (written by a step that
stopped its Ray itself), it kills the step's process group, which holds every process of that Ray
but its task workers (they leave once their raylet is gone), and removes the Ray's folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys

STAND_DOWN = b"stopped"


def main(argv: list[str]) -> int:
    group, folder = int(argv[0]), argv[1]
    said = b""
    while chunk := sys.stdin.buffer.read(64):
        said += chunk
    if said == STAND_DOWN:
        return 0
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:  # every one of them already gone
        pass
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
