"""Loopback ports: a local Airflow binds 127.0.0.1 only, on ports nobody else holds.

Several stacks started side by side on one machine (a test suite's parallel workers) each name a
band of their own in ``AQ_DEVSTACK_PORTS`` (``20000-20499``): a port is then chosen in that band
only, so no other stack can choose it between the probe here and the server's bind. Without a
band the kernel picks the port. Either way a process never hands out the same port twice (a stack
chooses all its ports before its servers bind them).
"""

from __future__ import annotations

import os
import secrets
import socket

LOOPBACK = "127.0.0.1"
#: ``first-last``: the ports this process may choose from (unset: any the kernel gives)
PORT_BAND = "AQ_DEVSTACK_PORTS"

_given: set[int] = set()  # ports this process handed out


def _band() -> range | None:
    text = os.environ.get(PORT_BAND, "")
    first, _, last = text.partition("-")
    if not (first.isdigit() and last.isdigit() and 0 < int(first) <= int(last) < 65536):
        return None
    return range(int(first), int(last) + 1)


def port_free(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 now."""
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port free on 127.0.0.1 now, in this process's band if it has one, and never one this
    process handed out before."""
    band = _band()
    if band is None:
        for _ in range(100):
            with socket.socket() as sock:
                sock.bind((LOOPBACK, 0))
                port = sock.getsockname()[1]
            if port not in _given:
                _given.add(port)
                return port
        raise OSError("no free loopback port that this process has not handed out already")
    start = secrets.randbelow(len(band))  # another process with the same band starts elsewhere
    for step in range(len(band)):
        port = band[(start + step) % len(band)]
        if port not in _given and port_free(port):
            _given.add(port)
            return port
    raise OSError(f"no free loopback port in {band.start}-{band.stop - 1} ({PORT_BAND})")


def port_or_free(wanted: int) -> int:
    """``wanted`` if it is free, else a free port."""
    return wanted if wanted and port_free(wanted) else free_port()
