"""Credentials pasted into a spec, found by their name (env variables) and by their shape (any
plain value).

A spec is not secret: it is in git, in the DAG's docs in the Airflow UI and in the serialized
DAG, and env values and args reach the pod spec in clear. A credential belongs in a Kubernetes
Secret, passed as ``{secret: name, key: k}``.

The shapes (``artifacts.secret_shapes``, which code packages are scanned with too) are the ones
secret scanners agree on and that innocent values never take; the messages never repeat the
value. Templates that read an Airflow connection (``{{ conn.x.password }}``) are refused: they
would print its credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from aq_airflow.artifacts.secret_shapes import secret_kind

# Literal values under these names are credentials; they must come from a secret reference.
# `TOKENS`/`TOKENIZER` (MAX_TOKENS, TOKENIZERS_PARALLELISM) and `SECRETS` (SECRETS_MANAGER_ARN)
# name settings, not credentials.
CREDENTIAL_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET(?!S)|TOKEN(?!S|IZER)|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE
)
# ...unless the name says it holds where the credential is, and the value is a path
_PATH_NAME = re.compile(r"(_FILE|_PATH|_DIR|_DIRS|_FOLDER|_LOCATION)$|^GOOGLE_APPLICATION_CREDENTIALS$", re.I)
_PATH_VALUE = re.compile(r"(~|\.{1,2})?/\S*|[A-Za-z]:\\\S*|[^\s/]+/\S*")


def is_credential_name(name: str, value: Any) -> bool:
    """Whether an env variable's name says it holds a credential that ``value`` would spell
    out literally (``DB_PASSWORD: hunter2``; not ``PASSWORD_FILE: /etc/pw``)."""
    if not CREDENTIAL_NAME.search(name):
        return False
    return not (isinstance(value, str) and _PATH_NAME.search(name) and _PATH_VALUE.fullmatch(value))


# An Airflow template that reads a connection (`{{ conn.wh.password }}`, `conn.wh.get_uri()`)
# would write its credentials into a query, an output or a results row in clear.
_CONNECTION_TEMPLATE = re.compile(r"\{[{%][^}]*\bconn\b", re.IGNORECASE)


def _strings(node: Any, path: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, key))
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _strings(value, (*path, index))


def _env_entry(path: tuple) -> bool:
    return (len(path) == 3 and path[:2] == ("defaults", "env")) or (
        len(path) == 4 and path[0] == "steps" and path[2] == "env"
    )


def secret_values(data: Any) -> list[tuple[tuple, str]]:
    """(path, message) for every plain string of a spec's data that holds a credential.

    Every value is scanned: env values, args, params, commands, SQL, descriptions. Env values
    whose name already marks them as credentials are left to the model's own (name) check.
    """
    found = []
    for path, text in _strings(data, ()):
        if _CONNECTION_TEMPLATE.search(text):
            where = ".".join(str(p) for p in path)
            found.append((path, f"{where}: a template here may not read Airflow connections (`conn.`): it would "
                                "write their credentials into queries, outputs and results; the warehouse "
                                "connection is used by aq-airflow itself, and a step gets secrets as "
                                "`{secret: name, key: k}` env values"))  # fmt: skip
            continue
        if _env_entry(path) and is_credential_name(str(path[-1]), text):
            continue
        kind = secret_kind(text)
        if kind is None:
            continue
        where = ".".join(str(p) for p in path)
        if _env_entry(path):
            name = str(path[-1])
            fix = f"reference a Kubernetes Secret instead, `{name}: {{secret: my-secret, key: {name.lower()}}}`"
        else:
            fix = (
                "a spec is not secret (it shows in the Airflow UI): keep the value in a Kubernetes Secret "
                "and pass it to the step as an env value `{secret: name, key: k}`"
            )
        found.append((path, f"{where}: this looks like a credential ({kind}): {fix}"))
    return found
