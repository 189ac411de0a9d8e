"""``aq-airflow package SPEC``: the code package a spec's python and command steps get (its
digest, files and size), built as a worker builds it (``artifacts.code_package``); ``--upload``
stores it in the spec's artifact store ahead of the first run (for CI). A refused package is a
located error, as ``validate`` reports it (``cli.package_issues``).

Nothing of Airflow is imported here.
"""

from __future__ import annotations

import json
import os
import sys

from aq_airflow.artifacts import code_package
from aq_airflow.cli.package_issues import code_folder, refusal_issue
from aq_airflow.cli.specs import check
from aq_airflow.cli.terminal import visible
from aq_airflow.plan.model import RunPlan


def main(spec_path: str, upload: bool, as_json: bool) -> int:
    """Print the package of the spec's code folder (``--json``: one document) and with
    ``upload`` store it; 1 when the spec or its package is refused or the store fails."""
    if os.path.isdir(spec_path):  # `check` would plan each spec in it: a package is one spec's
        print(
            f"{spec_path}: is a folder; `aq-airflow package` takes one spec file (`*.aq.yaml`): name it",
            file=sys.stderr,
        )
        return 1
    (spec,) = check([spec_path])
    if spec.issues or spec.plan is None:
        for issue in spec.issues:
            print(visible(str(issue), newlines=True))
        return 1
    folder = code_folder(spec.plan, spec.folder)
    if folder is None:
        why = (
            "it has no python or command step"
            if not any(isinstance(t.body, RunPlan) and t.body.command is not None for t in spec.plan.tasks)
            else "`code: image`: its steps run the copy of their code their image holds"
        )
        if as_json:
            print(json.dumps({"spec": spec_path, "digest": None, "why": f"nothing to package: {why}"}))
        print(f"{spec_path}: nothing to package: {why}", file=sys.stderr)
        return 0
    try:
        package = code_package.build(folder.path, folder.size_limit)
    except code_package.PackageRefused as refused:
        print(visible(str(refusal_issue(spec, refused)), newlines=True))
        return 1
    except OSError as error:
        print(f"{spec_path}: the code folder {folder.path} cannot be read: {error}", file=sys.stderr)
        return 1
    uri = None
    if upload:
        from aq_airflow.artifacts.root import artifacts_root

        root = artifacts_root(spec.plan.artifacts)
        try:
            uri = code_package.upload(package, root)
        except (OSError, ValueError) as error:  # the store refused or cannot be reached
            print(f"{spec_path}: the package could not be stored in {root}: {error}", file=sys.stderr)
            return 1
    if as_json:
        files = [{"path": f.path, "size": f.size} for f in package.files]
        document = {"spec": spec_path, "folder": folder.path, "digest": package.digest, "size": package.size,
                    "compressed": len(package.data), "files": files, "uri": uri}  # fmt: skip
        print(json.dumps(document, indent=2))
        return 0
    width = max((len(f"{f.size:,}") for f in package.files), default=1)
    for entry in package.files:
        print(f"{entry.size:>{width},}  {visible(entry.path)}")
    print(f"{len(package.files)} file(s), {package.size:,} bytes ({len(package.data):,} compressed) in {folder.path}")
    print(package.digest)
    if uri:
        print(uri)
    return 0
