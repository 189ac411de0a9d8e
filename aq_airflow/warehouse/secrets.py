"""The secrets a warehouse connection holds, and text with them masked: what the CLI prints and
the quality pages show (a driver's error may echo a URI or a password) never carries them.

A connection's password, credentials typed into its host, a URI's password and its
secret-looking query parameters, a JSON connection's password and secret-looking extras are
masked as ``***``; so is the password of any other ``scheme://user:password@`` in the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
# the password of any URI with credentials: scheme://user:password@host. Linear in the text (it
# masks whole JSON documents of the results tables, megabytes of messages): a scheme is looked
# for only where a run of scheme characters starts, and no quantifier backtracks (``*+``), where
# `\b[A-Za-z][A-Za-z0-9+.-]*` tried again after every dot of `a.a.a.a…` (quadratic).
_URI_PASSWORD = re.compile(r"(?P<head>(?<![A-Za-z0-9+.-])[A-Za-z0-9+.-]++://[^:/?#@\s]*+:)(?P<password>[^@\s/]++)(?=@)")
# names of query parameters and JSON extras whose values are secrets
_SECRET_NAME = re.compile(r"pass|secret|token|key|credential|private|auth", re.IGNORECASE)


def is_path(value: str) -> bool:
    """Whether a warehouse value (``aq-airflow --warehouse``) is a file path (a DuckDB
    warehouse, which holds no secret), not a URI or JSON."""
    text = value.strip()
    return "://" not in text and not text.startswith("{")


def secrets_of(value: str | None) -> list[str]:
    """The secrets a warehouse value (a connection URI or JSON) holds, as written and as decoded: a URI's password and
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
