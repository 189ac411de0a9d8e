"""Small helpers shared by the tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from aq_airflow.pipeline_spec import SPEC_SUFFIXES, SpecError, SpecFile
from aq_airflow.plan import compile_text


def spec_file(text: str, name: str = "pipe.aq.yaml") -> SpecFile:
    return SpecFile(name, textwrap.dedent(text).lstrip("\n"))


def issues_of(text: str) -> list[str]:
    """The located issues of a spec text (empty when it compiles)."""
    try:
        compile_text(spec_file(text))
    except SpecError as error:
        return [str(i) for i in error.issues]
    return []


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def shard_import_errors(bag) -> dict[str, str]:
    """A DagBag's import errors of files that are no spec: a loader file that failed to import,
    which would hide all its DAGs. A broken spec's own import error (keyed by the spec's path,
    ``live_dags.import_errors``) hides nothing and is not among them."""
    return {path: error for path, error in bag.import_errors.items() if not path.endswith(SPEC_SUFFIXES)}
