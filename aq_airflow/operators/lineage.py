"""A step task's OpenLineage facets, from the manifest it committed: its inputs and output as
datasets in the artifact store, the output's columns (``SchemaDatasetFacet``), and where the code
that made it is and which version (``SourceCodeLocationJobFacet``: the git repository's remote and
commit for a clean checkout, else the code package's location and its commit or digest). A sql
step's query is its ``SQLJobFacet``.

The provider's listener asks each operator for these when its task completes
(``get_openlineage_facets_on_complete``); the manifest's provenance (``artifacts.provenance``) is
the one source, so lineage says what ``aq-airflow show`` says.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from aq_airflow.artifacts.provenance import CodeVersion, Provenance


def dataset_name(uri: str) -> tuple[str, str]:
    """(namespace, name) of an artifact-store location, as OpenLineage names files: the scheme and
    bucket (``s3://bucket``) and the path in it; a local folder is namespace ``file`` and its path."""
    parts = urlsplit(uri)
    if parts.scheme and parts.scheme != "file" and "://" in uri:
        return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
    return "file", os.path.abspath(parts.path if parts.scheme == "file" else uri)


def code_location(code: CodeVersion) -> Any:
    """Where the code that ran is and its version. A clean git checkout is its commit: the facet
    is git's (``type: git``, the repository's remote URL) when the checkout has a remote, else the
    code package's (``type: aq-code-package``, its URI in the store), versioned by the commit it
    was built from either way. A dirty checkout or a folder out of git is the package, versioned by
    its digest (no commit holds those files)."""
    from openlineage.client.facet_v2 import source_code_location_job

    clean_git = code.git is not None and not code.git.dirty
    if clean_git and code.git.remote:
        return source_code_location_job.SourceCodeLocationJobFacet(
            type="git", url=code.git.remote, repoUrl=code.git.remote, version=code.git.commit
        )
    uri = code.uri or ""
    url = uri if "://" in uri else f"file://{os.path.abspath(uri)}" if uri else f"aq-code:{code.digest}"
    return source_code_location_job.SourceCodeLocationJobFacet(
        type="aq-code-package", url=url, version=code.git.commit if clean_git else code.digest
    )


def step_lineage(manifest: dict | None, sql: str | None = None) -> Any:
    """The ``OperatorLineage`` of a step task that committed ``manifest`` (None: it committed
    nothing, and there is no lineage to tell)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import schema_dataset, sql_job

    if not manifest or not manifest.get("uri"):
        return OperatorLineage()
    made = Provenance.of(manifest)
    inputs = [Dataset(*dataset_name(i.uri)) for i in made.inputs.values()] if made else []
    facets = {}
    if manifest.get("schema"):
        fields = [schema_dataset.SchemaDatasetFacetFields(name=str(n), type=str(t)) for n, t in manifest["schema"]]
        facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=fields)
    job_facets = {}
    if made is not None and made.code is not None:
        job_facets["sourceCodeLocation"] = code_location(made.code)
    if sql:
        job_facets["sql"] = sql_job.SQLJobFacet(query=sql)
    output = Dataset(*dataset_name(manifest["uri"]), facets=facets)
    return OperatorLineage(inputs=inputs, outputs=[output], job_facets=job_facets)


class StepLineage:
    """The OpenLineage method of the python and command step operators (local and pod): the
    facets of the manifest the task committed (``self.committed``, set by its ``execute``)."""

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The inputs and output the step's manifest records, the output's schema and the code's
        location and version (:func:`step_lineage`)."""
        return step_lineage(getattr(self, "committed", None))
