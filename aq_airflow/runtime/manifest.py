"""A step output's manifest (its commit marker, ``_manifest.json``), read without pyarrow.

:mod:`aq_airflow.runtime.artifacts` reads and writes outputs on any pyarrow filesystem. The
local runner's task process only needs the manifest of a local output back: reading it by path
spares each task instance (each item of a ``foreach:`` step) the pyarrow import.
"""

from __future__ import annotations

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


def plain_file_name(name: object) -> bool:
    """A file name a manifest may list: one plain name inside the output's own folder (no
    separator, no ``..``, not hidden), never a path that leads elsewhere."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
        and name.isprintable()
    )


def checked(manifest: object, uri: str, producer: str | None = None) -> dict:
    """The manifest when it has the shape our writer gives it (an object with a ``kind`` and a
    list of plain ``files`` names); else :class:`BadOutput` naming the producer and the fix."""
    who = f"step `{producer}`" if producer else "the producing step"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("kind"), str):
        raise BadOutput(f"the output of {who} at {uri}: its manifest is not an output manifest; run the step again")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(plain_file_name(name) for name in files):
        bad = next((n for n in files if not plain_file_name(n)), files) if isinstance(files, list) else files
        raise BadOutput(
            f"the output of {who} at {uri}: its manifest lists {str(bad)[:200]!r}, not a plain file name in the "
            "output's folder; it is not read (a manifest's files are never paths elsewhere). Run the step again"
        )
    return manifest


def parse(data: bytes, uri: str, producer: str | None = None) -> dict:
    """A manifest file's bytes as a :func:`checked` manifest."""
    try:
        manifest = json.loads(data)
    except ValueError:
        who = f"step `{producer}`" if producer else "the producing step"
        raise BadOutput(f"the output of {who} at {uri}: its manifest is not valid JSON; run the step again") from None
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
            data = handle.read()
    except OSError as error:
        raise missing_output(path, producer, error) from None
    return parse(data, path, producer)
