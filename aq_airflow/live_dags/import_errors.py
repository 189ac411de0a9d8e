"""A broken spec as an Airflow import error of its own file, beside its placeholder DAG.

Import-error alerting, ``airflow dags list-import-errors``, the UI's import-error banner,
``/api/v2/importErrors`` and the usual CI check (``assert not DagBag().import_errors``) all read
``DagBag.import_errors``, keyed by file. A loader shard cannot raise for one spec (that would
drop every DAG of the shard), and an error keyed by the shard's path marks all of the shard's
DAGs stale (``_update_import_errors`` in ``airflow/dag_processing/collection.py``). An error
keyed by the *spec's* path hides nothing: no DAG has that file. Airflow's importer collects
such structured errors (``DagImportError``, with file, line and column) in the
``DagImportResult`` of the file it is importing, and ``DagBag.process_file`` copies them into
``import_errors`` by their own path. The loader adds its spec's error to that result.

Airflow hands the loader no reference to the result, so it is found on the call stack (the
importer's frame holds it); where none is (another caller, another Airflow version) nothing is
added and the placeholder DAG alone reports the error.

How long it shows: the dag-processor writes it with each parse of the shard; when the spec is
fixed the shard's next parse no longer carries it, and Airflow deletes it at its next bundle
refresh (``clear_orphaned_import_errors`` keeps only errors of ``.py`` files it lists, every
``[dag_processor] refresh_interval``, 5 minutes by default). The same refresh deletes it while
the spec is still broken; the shard's next parse (``min_file_process_interval``, 30 s) writes it
again.
"""

from __future__ import annotations

import os
import sys


def _import_result():
    """The ``DagImportResult`` of the file Airflow is importing now, or None."""
    try:
        from airflow.dag_processing.importers.base import DagImportResult
    except ImportError:  # an Airflow without pluggable importers: the placeholder alone
        return None
    frame = sys._getframe(1)
    while frame is not None:
        for value in frame.f_locals.values():
            if isinstance(value, DagImportResult):
                return value
        frame = frame.f_back
    return None


def _utf8(path: str) -> bool:
    """Whether a path can be an import error's key: Airflow logs the key and stores it in its
    metadata DB, and a name that is not UTF-8 (its bytes kept as lone surrogates) would fail
    both, dropping every DAG of the shard. Such a spec is reported by its placeholder alone."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def report_import_error(loader_file: str, spec_path: str, errors: list[str], dag_id: str) -> bool:
    """Adds the spec's errors as an import error of the spec's own file to the import Airflow
    is running of ``loader_file``; whether there was one to add to."""
    result = _import_result()
    if result is None or not errors or not _utf8(spec_path):
        return False
    from airflow.dag_processing.importers.base import DagImportError

    if not loader_file or not loader_file.endswith(result.file_path):
        return False  # the result of another file's import: this loader's is not on the stack
    if os.path.isabs(result.file_path):  # a DagBag without a bundle: absolute paths
        key = spec_path
    else:  # relative to the bundle root, as the shard's own path is
        key = os.path.relpath(spec_path, loader_file[: -len(result.file_path)])
    message = (
        f"aq-airflow: this spec is invalid; its DAG `{dag_id}` (tag aq:invalid) fails each run until it is fixed:\n"
        + "\n".join(errors)
    )
    result.errors.append(DagImportError(file_path=key, message=message, error_type="aq_invalid_spec"))
    return True
