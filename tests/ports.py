"""What each pytest-xdist worker has of its own on the machine's shared services: a band of
loopback ports and a Redis database index, so that the servers two workers start at the same time
cannot choose the same port, nor their Celery brokers share a database.

The band is devstack's (``AQ_DEVSTACK_PORTS``, set here per worker by tests/conftest.py), so the
stacks devstack builds and the servers the tests start themselves choose from it alike. Outside
pytest-xdist there is no band: the kernel picks the ports.
"""

from __future__ import annotations

import os
import re

from aq_airflow.devstack.ports import PORT_BAND, free_port

__all__ = ["claim_band", "free_port", "redis_database", "worker_name", "worker_number"]

# Below the kernel's ephemeral range (32768-60999 on Linux), where port 0 and outgoing
# connections land: a port of a band is never taken by a client socket of this machine.
BAND_START, BAND_SIZE, BANDS = 20000, 500, 25
REDIS_DATABASES = 16  # Redis's default `databases`; index 0 is left to whatever else uses it


def worker_number() -> int | None:
    """This pytest-xdist worker's number (gw3 -> 3), or None outside pytest-xdist."""
    found = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(found.group(1)) if found else None


def worker_name() -> str:
    """``gw3`` under pytest-xdist, ``main`` otherwise: for names of per-worker things."""
    return os.environ.get("PYTEST_XDIST_WORKER") or "main"


def band(worker: int) -> str:
    """Worker ``worker``'s ports (gw0: 20000-20499, gw1: 20500-20999, ...), as devstack reads them."""
    first = BAND_START + (worker % BANDS) * BAND_SIZE
    return f"{first}-{first + BAND_SIZE - 1}"


def claim_band() -> None:
    """Under pytest-xdist, give this worker's stacks (and the processes they start) its band."""
    worker = worker_number()
    if worker is not None:
        os.environ[PORT_BAND] = band(worker)


def redis_database() -> int:
    """This worker's Redis database index: 1 + the worker number (1 outside pytest-xdist), so
    that the Celery brokers of two workers never share a database."""
    return 1 + (worker_number() or 0) % (REDIS_DATABASES - 1)
