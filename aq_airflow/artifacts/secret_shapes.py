"""What a credential looks like in text, whatever the text is: a spec's values
(``pipeline_spec.secrets``) and the files of a code package (``artifacts.code_package``) are
scanned with these same rules.

Shapes are the ones secret scanners agree on and that innocent values never take: a URI with a
password, ``password=...`` settings, cloud and SaaS key formats (AWS, GitHub, Slack, OpenAI and
Anthropic ``sk-``, Stripe, Google, Hugging Face, Azure storage), bearer tokens, JWTs and PEM
private key blocks. Hashes, UUIDs, URLs without a password and templated values (``$PASSWORD``,
``{{ var.value.x }}``) are never flagged. Here, in the lowest layer, so that both the spec layer
and the artifact layer read one copy of them.
"""

from __future__ import annotations

import re
from collections.abc import Collection

# A password or token that is a reference, not a value: a template, an env expansion, a mask
_REFERENCE = re.compile(r"^(\{|\$|%\(|<|\*+$|x+$|\.\.\.)", re.IGNORECASE)

SHAPES = re.compile(
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

# The shape a code file may take innocently: `connect(password=args.password)` is a keyword
# argument, not a credential. Spec values are scanned for it; package files are not.
PASSWORD_SETTING = "setting"  # noqa: S105 (the name of a shape)


def find_secret(text: str, ignore: Collection[str] = ()) -> tuple[str, int] | None:
    """The first credential in ``text``: what it is (``"a URI with a password"``) and where it
    starts (an offset), or None. ``ignore``: shapes (keys of the pattern) not to report."""
    for match in SHAPES.finditer(text):
        kind = next(k for k in _KINDS if match.group(k) is not None)
        if kind in ignore:
            continue
        secret = match.group(f"{kind}_secret") if kind in ("uri", "setting") else None
        if secret is not None and _REFERENCE.match(secret):
            continue
        return _KINDS[kind], match.start()
    return None


def secret_kind(text: str) -> str | None:
    """What credential ``text`` holds (``"a URI with a password"``), or None."""
    found = find_secret(text)
    return found[0] if found else None
