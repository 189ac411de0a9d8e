"""A Celery broker on a Redis server for a local Airflow: a database index nobody uses and a
queue of its own, and their keys removed afterwards. A few RESP2 commands over a socket: no
Redis client library is needed."""

from __future__ import annotations

import socket
from typing import Any


def _encode(*words: str) -> bytes:
    return f"*{len(words)}\r\n".encode() + b"".join(f"${len(w.encode())}\r\n{w}\r\n".encode() for w in words)


def _read_reply(stream) -> Any:
    """One RESP2 reply: simple strings, errors, integers, bulk strings, arrays."""
    line = stream.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise OSError(f"redis: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        return [_read_reply(stream) for _ in range(int(rest))]
    raise OSError(f"redis: unexpected reply {line!r}")


def redis_command(host: str, port: int, *args: str, db: int = 0, timeout: float = 3) -> Any:
    """One command on a fresh connection."""
    with socket.create_connection((host, port), timeout=timeout) as sock, sock.makefile("rb") as stream:
        sock.sendall((_encode("SELECT", str(db)) if db else b"") + _encode(*args))
        if db:
            _read_reply(stream)
        return _read_reply(stream)


def clean_redis(host: str, port: int, db: int, queue: str) -> None:
    """Removes what the broker left for our queue (and kombu's shared key, once it is alone)."""
    ours = [k for k in redis_command(host, port, "KEYS", "*", db=db) if queue in k or k.startswith("unacked")]
    if ours:
        redis_command(host, port, "DEL", *ours, db=db)
    if redis_command(host, port, "KEYS", "*", db=db) == ["_kombu.binding_deadlines"]:
        redis_command(host, port, "DEL", "_kombu.binding_deadlines", db=db)
