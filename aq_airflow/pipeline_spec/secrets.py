"""Credentials pasted into a spec, found by their name (env variables) and by their shape (any
plain value).

A spec is not secret: it is in git, in the DAG's docs in the Airflow UI and in the serialized
DAG, and env values and args reach the pod spec in clear. A credential belongs in a Kubernetes
Secret, passed as ``{secret: name, key: k}``.

Shapes are the ones secret scanners agree on and that innocent values never take: a URI with a
password, ``password=...`` settings, cloud and SaaS key formats (AWS, GitHub, Slack, OpenAI and
Anthropic ``sk-``, Stripe, Google, Hugging Face, Azure storage), bearer tokens, JWTs and PEM
private key blocks. Hashes, UUIDs, URLs without a password and templated values (``$PASSWORD``,
``{{ var.value.x }}``) are never flagged; the messages never repeat the value. Templates that read
an Airflow connection (``{{ conn.x.password }}``) are refused: they would print its credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# Literal values under these names are credentials; they must come from a secret reference.
# `TOKENS`/`TOKENIZER` (MAX_TOKENS, TOKENIZERS_PARALLELISM) and `SECRETS` (SECRETS_MANAGER_ARN)
# name settings, not credentials.
CREDENTIAL_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET(?!S)|TOKEN(?!S|IZER)|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE
)
# ...unless the name says it holds where the credential is, and the value is a path
_PATH_NAME = re.compile(r"(_FILE|_PATH|_DIR|_DIRS|_FOLDER|_LOCATION)$|^GOOGLE_APPLICATION_CREDENTIALS$", re.I)
_PATH_VALUE = re.compile(r"(~|\.{1,2})?/\S*|[A-Za-z]:\\\S*|[^\s/]+/\S*")

# A password or token that is a reference, not a value: a template, an env expansion, a mask
_REFERENCE = re.compile(r"^(\{|\$|%\(|<|\*+$|x+$|\.\.\.)", re.IGNORECASE)

_SHAPES = re.compile(
    r"""
    (?P<uri>\b[a-z][a-z0-9+.-]*://[^\s/:@'"]*:(?P<uri_secret>[^\s/@'"]+)@)
  | (?P<setting>(?<![A-Za-z0-9_])(?i:password|passwd|pwd)=(?P<setting_secret>[^\s;&'",]+))
  | (?P<aws>\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b)
  | (?P<github>\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}))
  | (?P<slack>\bxox[abposr]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/(?:services|workflows|triggers)/\S+)
  | (?P<sk>(?<![A-Za-z0-9_-])sk-(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{20,})
  | (?P<stripe>\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,})
  | (?P<google>\bAIza[0-9A-Za-z_-]{35})
  | (?P<huggingface>\bhf_[A-Za-z0-9]{30,}\b)
  | (?P<azure>AccountKey=[A-Za-z0-9+/]{20,}|[?&]sig=[A-Za-z0-9%+/]{20,})
  | (?P<bearer>\bBearer\s+[A-Za-z0-9._~+/-]{20,})
  | (?P<jwt>\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})
  | (?P<private_key>-----BEGIN[A-Z0-9\ ]*PRIVATE\ KEY[A-Z\ ]*-----)
    """,
    re.VERBOSE,
)
_KINDS = {
    "uri": "a URI with a password",
    "setting": "a password setting",
    "aws": "an AWS access key",
    "github": "a GitHub token",
    "slack": "a Slack token or webhook",
    "sk": "an API key (sk-...)",
    "stripe": "a Stripe key",
    "google": "a Google API key",
    "huggingface": "a Hugging Face token",
    "azure": "an Azure storage key or signature",
    "bearer": "a bearer token",
    "jwt": "a JSON Web Token",
    "private_key": "a private key",
}


def is_credential_name(name: str, value: Any) -> bool:
    """Whether an env variable's name says it holds a credential that ``value`` would spell
    out literally (``DB_PASSWORD: hunter2``; not ``PASSWORD_FILE: /etc/pw``)."""
    if not CREDENTIAL_NAME.search(name):
        return False
    return not (isinstance(value, str) and _PATH_NAME.search(name) and _PATH_VALUE.fullmatch(value))


def secret_kind(text: str) -> str | None:
    """What credential ``text`` holds (``"a URI with a password"``), or None."""
    for match in _SHAPES.finditer(text):
        kind = next(k for k in _KINDS if match.group(k) is not None)
        secret = match.group(f"{kind}_secret") if kind in ("uri", "setting") else None
        if secret is not None and _REFERENCE.match(secret):
            continue
        return _KINDS[kind]
    return None


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
