"""A PostgreSQL metadata database of its own for a local Airflow (created, later dropped), on a
server given by a DSN such as ``postgresql://postgres@127.0.0.1:5432/postgres``."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


def with_database(dsn: str, database: str) -> str:
    """``dsn`` naming ``database`` instead of its own."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


def sqlalchemy_url(dsn: str) -> str:
    """The SQLAlchemy URL of a ``postgresql://`` DSN, with the driver Airflow's provider installs."""
    return dsn.replace("postgresql://", "postgresql+psycopg2://", 1)


def _admin(admin_dsn: str, statement: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE cannot run in one)."""
    import psycopg2

    conn = psycopg2.connect(admin_dsn, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


def _checked(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):  # quoted below as it is
        raise ValueError(f"database name {name!r}: use letters, digits and _ only")
    return name


def create_database(admin_dsn: str, name: str) -> None:
    _admin(admin_dsn, f'CREATE DATABASE "{_checked(name)}"')


def drop_database(admin_dsn: str, name: str) -> None:
    _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')
