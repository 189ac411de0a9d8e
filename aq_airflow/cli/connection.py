"""The ``--warehouse`` value of ``aq-airflow run`` and ``results``, and keeping its secrets out of
everything they print.

A value is an Airflow connection URI (``postgresql://user:pw@host/db``), an Airflow connection
as JSON, or a path to a DuckDB file. Its password (and any secret-looking query parameter or
JSON extra) is masked as ``***`` in whatever the command writes to stdout and stderr: its own
lines, Airflow's logs and the drivers' error messages, which may echo the URI. Any other
``scheme://user:password@`` in the output is masked the same way.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from aq_airflow.warehouse import DuckDB

MASK = "***"
# the password of any URI with credentials: scheme://user:password@host. Linear in the text (it
# masks whole JSON documents of the results tables, megabytes of messages): a scheme is looked
# for only where a run of scheme characters starts, and no quantifier backtracks (``*+``), where
# `\b[A-Za-z][A-Za-z0-9+.-]*` tried again after every dot of `a.a.a.a…` (quadratic).
_URI_PASSWORD = re.compile(r"(?P<head>(?<![A-Za-z0-9+.-])[A-Za-z0-9+.-]++://[^:/?#@\s]*+:)(?P<password>[^@\s/]++)(?=@)")
# names of query parameters and JSON extras whose values are secrets
_SECRET_NAME = re.compile(r"pass|secret|token|key|credential|private|auth", re.IGNORECASE)


class WarehouseError(ValueError):
    """A ``--warehouse`` value that names no usable warehouse (the message says why)."""


def is_path(value: str) -> bool:
    """Whether a ``--warehouse`` value is a file path (a DuckDB warehouse), not a URI or JSON."""
    text = value.strip()
    return "://" not in text and not text.startswith("{")


def secrets_of(value: str | None) -> list[str]:
    """The secrets a ``--warehouse`` value holds, as written and as decoded: a URI's password and
    secret-looking query parameters, a JSON connection's password and secret-looking extras."""
    if not value or is_path(value):
        return []
    found: list[str] = []
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            found += _secret_values(data, top=True)
    else:
        try:
            parts = urlsplit(text)
            password = parts.password
        except ValueError:  # a malformed port, ...: the regex below still finds the password
            parts, password = None, None
        if password:
            found.append(password)
        match = _URI_PASSWORD.search(text)
        if match:
            found.append(match.group("password"))
        if parts is not None:
            found += [v for k, v in parse_qsl(parts.query, keep_blank_values=False) if _SECRET_NAME.search(k)]
    variants = {form for secret in found if secret for form in (secret, unquote(secret))}
    return sorted((s for s in variants if s), key=len, reverse=True)


def _secret_values(data: Any, top: bool = False) -> list[str]:
    found = []
    for key, item in data.items() if isinstance(data, dict) else ():
        if isinstance(item, dict):
            found += _secret_values(item)
        elif isinstance(item, str) and item and key != "conn_type" and (key == "password" or _SECRET_NAME.search(key)):
            found.append(item)
        elif key == "extra" and top and isinstance(item, str):
            try:
                found += _secret_values(json.loads(item))
            except ValueError:
                continue
    return found


def connection_secrets(conn: Any) -> list[str]:
    """The secrets of an Airflow connection as looked up (not as typed on a command line): its
    password, credentials typed into its host (``user:password@host``), and what
    :func:`secrets_of` finds in its URI (secret-looking extras)."""
    found = [conn.password] if getattr(conn, "password", None) else []
    host = getattr(conn, "host", None) or ""
    if "@" in host:
        userinfo = host.rsplit("@", 1)[0]
        found += [userinfo, userinfo.split(":", 1)[-1]]
    try:
        found += secrets_of(conn.get_uri())
    except Exception:  # noqa: S110 - a connection that makes no URI: its password is still masked
        pass
    return [s for s in found if s]


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every given secret and every URI password replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return _URI_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def error_line(error: BaseException, secrets: Iterable[str] = ()) -> str:
    """An error as one printable line: its class and first line, secrets masked, at most 300
    characters (drivers' messages may echo a URI or run to pages)."""
    first = (str(error).strip().splitlines() or [""])[0]
    text = mask(f"{type(error).__name__}: {first}" if first else type(error).__name__, secrets)
    return text if len(text) <= 300 else text[:299] + "…"


def display(value: str | None) -> str | None:
    """A ``--warehouse`` value as it may be printed."""
    return None if value is None else mask(value, secrets_of(value))


def connection(value: str, must_exist: bool) -> str:
    """The Airflow connection (URI or JSON, for an ``AIRFLOW_CONN_*`` variable) a ``--warehouse``
    value names: a DuckDB file path as a DuckDB connection (``must_exist``: the file, else its
    folder), a URI or JSON as given once Airflow can read it and has a hook for its type."""
    if is_path(value):
        path = Path(value).expanduser()
        if path.is_dir():
            raise WarehouseError(
                f"--warehouse {value}: this is a folder; --warehouse takes a DuckDB file (such as "
                f"{Path(value) / 'warehouse.duckdb'}) or an Airflow connection URI or JSON"
            )
        if path.exists() and not path.is_file():
            raise WarehouseError(f"--warehouse {value}: this is not a regular file; it takes a DuckDB file")
        if must_exist and not path.is_file():
            raise WarehouseError(f"no such warehouse file: {value}")
        if not must_exist and not path.parent.resolve().is_dir():
            raise WarehouseError(f"no such folder for the warehouse file: {value}")
        return DuckDB.connection_json(path)
    from airflow.sdk import Connection

    try:
        if value.strip().startswith("{"):
            conn = Connection.from_json(value, conn_id="aq_cli_warehouse")
        else:
            conn = Connection.from_uri(value, conn_id="aq_cli_warehouse")
    except Exception as error:
        raise WarehouseError(f"--warehouse is not an Airflow connection URI or JSON: {error}") from None
    if not conn.conn_type:
        raise WarehouseError("--warehouse is not an Airflow connection URI or JSON: it names no connection type")
    try:  # how Connection.get_hook finds the hook, without making one
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        known = ProvidersManagerTaskRuntime().hooks.get(conn.conn_type) is not None
    except Exception:  # providers cannot be listed here: the hook, when made, says what is wrong
        known = True
    if not known:
        raise WarehouseError(
            f"--warehouse: Airflow has no hook for connection type `{conn.conn_type}` (is its provider installed?)"
        )
    if must_exist and conn.conn_type == "duckdb":
        _duckdb_file_exists(conn)
    return value


def _duckdb_file_exists(conn: Any) -> None:
    """A DuckDB connection to read results from must name a file that is there: the hook opens
    the extra's ``database``, a MotherDuck database, the host, else an empty in-memory database
    (``duckdb:///tmp/x.duckdb`` puts the path in the schema: no host), and DuckDB creates a
    missing file; either way the results would read as "nothing recorded yet"."""
    extra = conn.extra_dejson or {}
    if extra.get("motherduck_token") or conn.password:
        return
    database = extra.get("database") or conn.host
    if not database:
        raise WarehouseError(
            "--warehouse: this DuckDB connection names no file (Airflow reads the path from the URI's host, "
            "here empty), so it would open an empty in-memory database; pass the DuckDB file's path instead, "
            "e.g. --warehouse /path/to/warehouse.duckdb"
        )
    if database != ":memory:" and not database.startswith("md:") and not Path(database).expanduser().is_file():
        raise WarehouseError(f"no such warehouse file: {database}")


class _Masking(io.TextIOBase):
    """A text stream that masks secrets in everything written through it to ``stream``."""

    def __init__(self, stream: Any, secrets: list[str]):
        self._stream = stream
        self._secrets = secrets

    def write(self, text: str) -> int:
        self._stream.write(mask(text, self._secrets))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def also_mask(secret: str | None) -> None:
    """Mask ``secret`` too in the output of the ``masked_output`` block running (a password read
    from an Airflow connection rather than given on the command line)."""
    for stream in (sys.stdout, sys.stderr):
        if secret and isinstance(stream, _Masking) and secret not in stream._secrets:
            stream._secrets.append(secret)
            stream._secrets.sort(key=len, reverse=True)


@contextlib.contextmanager
def masked_output(*values: str | None) -> Iterator[None]:
    """stdout and stderr with the secrets of ``values`` (and every URI password) masked, for as
    long as the block runs: whatever writes through ``sys.stdout``/``sys.stderr`` (print, our
    messages, Airflow's and the drivers' logs set up inside the block) is masked."""
    secrets = sorted({s for value in values for s in secrets_of(value)}, key=len, reverse=True)
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Masking(out, secrets), _Masking(err, secrets)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        sys.stdout, sys.stderr = out, err
