"""A step output's manifest (its commit marker, ``_manifest.json``), read without pyarrow.

:mod:`aq_airflow.artifacts.store` reads and writes outputs on any pyarrow filesystem. The
local runner's task process only needs the manifest of a local output back: reading it by path
spares each task instance (each item of a ``foreach:`` step) the pyarrow import.
"""

from __future__ import annotations

import hashlib
import json
import os

MANIFEST = "_manifest.json"
# Every manifest our writer commits says so (``"writer": "aq-airflow"``): a ``_manifest.json`` of
# anyone else's (a fixture in a project folder under the store root) is not a step's output, and
# ``aq-airflow gc`` never takes it for one.
WRITER = "aq-airflow"


class MissingArtifact(Exception):
    """A step's output is not there (never written, or its writer died before committing)."""


class BadOutput(MissingArtifact):
    """A step's output is there, but its manifest is not one our writer made, names a file outside
    its folder, or disagrees with the files it names: it is not read."""


KINDS = ("table", "object", "files", "none")
# The one digest algorithm a manifest records (``"digests": {"part-….parquet": "sha256:<hex>"}``)
DIGEST = "sha256"
# A manifest larger than this is not one our writer made (a command step's 100,000 files list in
# a few MiB): it is refused before it is parsed.
MAX_MANIFEST_BYTES = 64 * 2**20


def manifest_digest(data: bytes) -> str:
    """``sha256:<hex>`` of a committed manifest's bytes: one value that pins an output whole (the
    manifest holds every file's digest), recorded by the steps that read it (``artifacts.provenance``)."""
    return f"{DIGEST}:{hashlib.sha256(data).hexdigest()}"


def plain_file_name(name: object) -> bool:
    """A file name a manifest may list: one plain name inside the output's own folder (no
    separator, no ``..``, not hidden, not one of the store's own ``_`` files such as the
    manifest, at most 255 bytes), never a path that leads elsewhere."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not name.startswith((".", "_"))
        and not any(c in name for c in "/\\\0")
        and name.isprintable()
        and len(name.encode()) <= 255  # a file name's longest on common filesystems
    )


def _who(producer: str | None) -> str:
    return f"step `{producer}`" if producer else "the producing step"


def refused(uri: str, producer: str | None, why: str) -> BadOutput:
    """The error of an output that is not read: who made it, where it is, what disagreed and the fix."""
    again = f"run step `{producer}` again" if producer else "run the producing step again"
    return BadOutput(f"the output of {_who(producer)} at {uri}: {why}; it is not read. {again[0].upper()}{again[1:]}")


def _shown(value: object, limit: int = 80) -> str:
    """A manifest's value in a message: as Python writes it, cut short."""
    try:
        text = repr(value)
    except RecursionError:  # nested about as deep as the JSON parser goes
        return "a deeply nested value"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_digest(value: object) -> bool:
    prefix = f"{DIGEST}:"
    hexdigits = value[len(prefix) :] if isinstance(value, str) and value.startswith(prefix) else ""
    return len(hexdigits) == 64 and all(c in "0123456789abcdef" for c in hexdigits)


def checked(manifest: object, uri: str, producer: str | None = None) -> dict:
    """The manifest when it has the shape our writer gives it: an object with a known ``kind``,
    a list of distinct plain ``files`` names (one for an object, none for nothing), a table's
    ``rows`` and ``schema``, and ``digests`` for exactly its files when it has them (a manifest of
    the release before digests has none, and no ``writer`` stamp either: the two came in the same
    release, so a stamped manifest without digests is not genuine). Else :class:`BadOutput` naming
    the producer and the fix.
    Only the shape: :meth:`aq_airflow.artifacts.store.Location.verified` holds it to the files."""
    if not isinstance(manifest, dict) or manifest.get("kind") not in KINDS:
        kind = manifest.get("kind") if isinstance(manifest, dict) else None
        known = ", ".join(KINDS)
        why = f"its manifest's kind {_shown(kind)} is none of {known}" if kind else "its manifest has no kind"
        raise refused(uri, producer, why)
    kind, files = manifest["kind"], manifest.get("files")
    if not isinstance(files, list) or not all(plain_file_name(name) for name in files):
        bad = next((n for n in files if not plain_file_name(n)), files) if isinstance(files, list) else files
        raise refused(
            uri, producer,
            f"its manifest lists {_shown(bad, 200)}, not a plain file name in the output's folder (a manifest's "
            "files are never paths elsewhere)",
        )  # fmt: skip
    if len(set(files)) != len(files):
        raise refused(uri, producer, "its manifest lists a file twice")
    expected = {"object": 1, "none": 0}.get(kind)
    if expected is not None and len(files) != expected:
        raise refused(uri, producer, f"its manifest (kind {kind}) lists {len(files)} files, not {expected}")
    if kind == "table":
        schema = manifest.get("schema")
        if not _is_count(manifest.get("rows")):
            raise refused(uri, producer, f"its manifest's rows {_shown(manifest.get('rows'))} is not a row count")
        if not isinstance(schema, list) or not all(
            isinstance(c, list) and len(c) == 2 and all(isinstance(p, str) for p in c) for c in schema
        ):
            raise refused(uri, producer, "its manifest's schema is not a list of [column, type] pairs")
    digests = manifest.get("digests")
    if digests is None and manifest.get("writer") == WRITER:
        raise refused(
            uri, producer,
            f'its manifest says our writer made it ("writer": "{WRITER}") but has no digests, which our writer '
            "records in every manifest it stamps",
        )  # fmt: skip
    if digests is not None:
        if not isinstance(digests, dict) or set(digests) != set(files):
            raise refused(uri, producer, "its manifest's digests are not one for each of its files")
        bad = next((name for name, value in digests.items() if not _is_digest(value)), None)
        if bad is not None:
            raise refused(uri, producer, f"its manifest's digest of {bad} is not {DIGEST}:<64 hex digits>")
    return manifest


def parse(data: bytes, uri: str, producer: str | None = None) -> dict:
    """A manifest file's bytes as a :func:`checked` manifest."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise refused(uri, producer, f"its manifest is larger than {MAX_MANIFEST_BYTES >> 20} MiB")
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than Python recurses
        raise refused(uri, producer, "its manifest is not valid JSON") from None
    return checked(manifest, uri, producer)


def is_ours(manifest: object) -> bool:
    """Whether a parsed ``_manifest.json`` is one our writer committed (see :data:`WRITER`)."""
    try:
        checked(manifest, "")
    except BadOutput:
        return False
    return manifest.get("writer") == WRITER


def missing_output(uri: str, producer: str | None, error: BaseException) -> MissingArtifact:
    who = f"step `{producer}`" if producer else "the producing step"
    return MissingArtifact(
        f"no output of {who} at {uri}: it has not run in this DAG run, or it failed before "
        f"committing its output ({type(error).__name__})"
    )


def read_local_manifest(path: str, producer: str | None = None) -> dict:
    """The manifest of an output in a local folder (a path, not a URI)."""
    try:
        with open(os.path.join(os.path.abspath(path), MANIFEST), "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as error:
        raise missing_output(path, producer, error) from None
    return parse(data, path, producer)
