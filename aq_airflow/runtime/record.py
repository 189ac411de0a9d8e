"""An output's provenance (:class:`aq_airflow.artifacts.provenance.Provenance`), built from the
step's contract environment (``runtime.contract``), in one place for every kind of step.

Whoever commits an output calls :func:`provenance` with the environment the step got: the runtime
for a python step (its own ``os.environ``), the operators for a command step's files (the
environment they started the process or pod with) and a sql step's export (the record variables
``runners.environment.record_environment`` renders). So the record says the same thing, from
the same variables, whichever wrote it.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping

from aq_airflow.artifacts.manifest import MANIFEST, manifest_digest
from aq_airflow.artifacts.provenance import CodeVersion, GitState, ImageVersion, InputVersion, Provenance
from aq_airflow.runtime import contract


def now() -> str:
    """The moment, as the record writes it: ISO 8601 in UTC."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


def _json(text: str | None) -> object:
    """A JSON variable's value; None when unset or not JSON (a template Airflow did not render)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _iso(moment: object) -> str | None:
    """A context's date (``str(datetime)``: ``2026-03-01 00:00:00+00:00``) in ISO 8601's own form."""
    try:
        return datetime.datetime.fromisoformat(str(moment)).isoformat() if moment else None
    except ValueError:
        return str(moment)


def code_version(env: Mapping[str, str]) -> CodeVersion | None:
    """The code package the step ran (``AQ_CODE_DIGEST``, ``AQ_CODE_URI``, ``AQ_CODE_GIT``); None
    without one (`code: image`, a sql step)."""
    digest = env.get(contract.CODE_DIGEST)
    if not digest:
        return None
    git = _json(env.get(contract.CODE_GIT))
    known = isinstance(git, dict) and git.get("commit")
    state = GitState.of(git) if known else None
    return CodeVersion(digest, env.get(contract.CODE_URI) or None, state)


def image_digest(image_id: str | None) -> str | None:
    """The digest in a container status's ``imageID`` (``repo@sha256:<hex>``, or with a
    ``docker-pullable://`` scheme before it); None when it names none (an empty ``imageID``, or
    a local image ID without a repository digest)."""
    _, at, digest = (image_id or "").rpartition("@")
    return digest if at and digest.startswith("sha256:") else None


def read_manifest_digest(uri: str) -> str | None:
    """The digest of the manifest committed at ``uri`` (an input of a command step, which the
    operator does not read otherwise); None when there is none."""
    from aq_airflow.artifacts.store import Location  # pyarrow: only where an input is read

    location = Location.of(uri)
    try:
        with location.fs.open_input_stream(location.join(MANIFEST)) as handle:
            return manifest_digest(handle.read())
    except OSError:
        return None


def input_versions(env: Mapping[str, str], digests: Mapping[str, str | None] | None = None) -> dict[str, InputVersion]:
    """Each input's producer, location and manifest digest: from ``digests`` (the reader's, taken
    as it read the manifest) or else read here. A fan-in's (every item of a mapped step) is the
    producer's folder of items, which has no one manifest: its digest is None."""
    declared = contract.decode_inputs(env)
    versions = {}
    for name, uri in declared.locations.items():
        if digests is not None and name in digests:
            digest = digests[name]
        else:
            digest = None if name in declared.gathered else read_manifest_digest(uri)
        versions[name] = InputVersion(declared.producers.get(name, name), uri, digest)
    return versions


def provenance(
    env: Mapping[str, str],
    started: str,
    finished: str,
    *,
    digests: Mapping[str, str | None] | None = None,
    image_id: str | None = None,
) -> Provenance:
    """The record of one output, from the environment its step ran with (rendered); ``started``
    and ``finished`` from :func:`now`; ``image_id`` the pod's container status's, where known."""
    context = _json(env.get(contract.CONTEXT))
    context = context if isinstance(context, dict) else {}
    args = _json(env.get(contract.ARGS))
    params = context.get("params")
    image = env.get(contract.IMAGE)
    try_number = env.get(contract.TRY_NUMBER, "")
    return Provenance(
        code=code_version(env),
        image=ImageVersion(image, image_digest(image_id)) if image else None,
        spec_hash=env.get(contract.SPEC_HASH) or None,
        args=args if isinstance(args, dict) else {},
        params=params if isinstance(params, dict) else {},
        inputs=input_versions(env, digests),
        run_id=env.get(contract.RUN_ID) or None,
        logical_date=_iso(context.get("logical_date")),
        try_number=int(try_number) if try_number.isdigit() else None,
        started=started,
        finished=finished,
    )
