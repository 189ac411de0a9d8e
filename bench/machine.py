"""The benchmarks' view of the machine they share with other work."""

from __future__ import annotations

import os
import time


def settle(max_load: float | None, max_wait: float) -> float:
    """Waits (up to ``max_wait`` s) for the machine's 1-minute load to fall to ``max_load`` before
    a timed run (other work on the machine slows both sides of a ratio, unevenly); returns the
    load then, others' work included."""
    deadline = time.monotonic() + max_wait
    while max_load is not None and os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]
