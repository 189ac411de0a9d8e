"""Loopback ports: a local Airflow binds 127.0.0.1 only, on ports nobody else holds."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 now."""
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def port_or_free(wanted: int) -> int:
    """``wanted`` if it is free, else a free port."""
    return wanted if wanted and port_free(wanted) else free_port()
