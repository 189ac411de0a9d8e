"""The ``--warehouse`` value of ``aq-airflow run`` and ``results``, and keeping its secrets out of
everything they print.

A value is an Airflow connection URI (``postgresql://user:pw@host/db``), an Airflow connection
as JSON, or a path to a DuckDB file. Its password (and any secret-looking query parameter or
JSON extra: ``warehouse.secrets``) is masked as ``***`` in whatever the command writes to stdout and stderr: its own
lines, Airflow's logs and the drivers' error messages, which may echo the URI. Any other
``scheme://user:password@`` in the output is masked the same way.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from aq_airflow.warehouse import DuckDB
from aq_airflow.warehouse.secrets import is_path, mask, secrets_of


class WarehouseError(ValueError):
    """A ``--warehouse`` value that names no usable warehouse (the message says why)."""


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
