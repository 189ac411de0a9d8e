"""What each pytest-xdist worker has of its own on the machine's shared services: a band of
loopback ports and a Redis database index, so that the servers two workers start at the same time
cannot choose the same port, nor their Celery brokers share a database.

Outside pytest-xdist (one process: ``pytest`` without ``-n``, ``make demo-ui``) there is no band:
the kernel picks the ports.
"""

from __future__ import annotations

import os
import random
import re
import socket

# Below the kernel's ephemeral range (32768-60999 on Linux), where port 0 and outgoing
# connections land: a port of a band is never taken by a client socket of this machine.
BAND_START, BAND_SIZE, BANDS = 20000, 500, 25
REDIS_DATABASES = 16  # Redis's default `databases`; index 0 is left to whatever else uses it

_cursor: int | None = None  # the next port of this worker's band to try
_given: set[int] = set()  # ports handed out by this process (outside xdist)


def worker_number() -> int | None:
    """This pytest-xdist worker's number (gw3 -> 3), or None outside pytest-xdist."""
    found = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(found.group(1)) if found else None


def worker_name() -> str:
    """``gw3`` under pytest-xdist, ``main`` otherwise: for names of per-worker things."""
    return os.environ.get("PYTEST_XDIST_WORKER") or "main"


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on, for a server this process is about to start; never
    one this process handed out before (a stack chooses all its ports before its servers bind
    them). Under pytest-xdist it comes from this worker's band (gw0: 20000-20499, gw1:
    20500-20999, ...), walked from a random start, so no other worker can choose the same port
    between the probe here and the server's bind."""
    global _cursor
    worker = worker_number()
    if worker is None or worker >= BANDS:
        for _ in range(100):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _given:
                _given.add(port)
                return port
        raise OSError("no free loopback port that this process has not handed out already")
    band = BAND_START + worker * BAND_SIZE
    if _cursor is None:
        _cursor = random.randrange(BAND_SIZE)  # another session's gw0 on this machine starts elsewhere
    for _ in range(BAND_SIZE):
        port = band + _cursor
        _cursor = (_cursor + 1) % BAND_SIZE
        if _bindable(port):
            return port
    raise OSError(f"no free loopback port in {band}-{band + BAND_SIZE - 1} (pytest-xdist worker gw{worker})")


def redis_database() -> int:
    """This worker's Redis database index: 1 + the worker number (1 outside pytest-xdist), so
    that the Celery brokers of two workers never share a database."""
    return 1 + (worker_number() or 0) % (REDIS_DATABASES - 1)
