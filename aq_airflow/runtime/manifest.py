"""A step output's manifest (its commit marker, ``_manifest.json``), read without pyarrow.

:mod:`aq_airflow.runtime.artifacts` reads and writes outputs on any pyarrow filesystem. The
local runner's task process only needs the manifest of a local output back: reading it by path
spares each task instance (each item of a ``foreach:`` step) the pyarrow import.
"""

from __future__ import annotations

import json
import os

MANIFEST = "_manifest.json"


class MissingArtifact(Exception):
    """A step's output is not there (never written, or its writer died before committing)."""


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
            return json.loads(handle.read())
    except OSError as error:
        raise missing_output(path, producer, error) from None
