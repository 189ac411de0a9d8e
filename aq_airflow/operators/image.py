"""The image a step ran in, by digest: what its pod's status reports, recorded in the step's
committed manifest (the runtime knows the image only by the name the spec gives it). Used by
every operator whose step runs in a pod: its own, a SparkApplication's driver, a RayJob's."""

from __future__ import annotations

import dataclasses
from typing import Any

from aq_airflow.artifacts.provenance import PROVENANCE, Provenance
from aq_airflow.artifacts.store import Location
from aq_airflow.runtime import record


def with_image_digest(output: Location, manifest: dict, image_id: str | None) -> dict:
    """The step's committed manifest with the image digest its pod's status reported (the
    runtime knows the image only by the name the spec gives it), committed again; as it was when
    the status names no digest."""
    made = Provenance.of(manifest)
    digest = record.image_digest(image_id)
    if made is None or made.image is None or not digest:
        return manifest
    image = dataclasses.replace(made.image, digest=digest)
    return output.commit({**manifest, PROVENANCE: dataclasses.replace(made, image=image).to_json()})


def container_image_id(remote_pod: Any, container: str) -> str | None:
    """``container``'s ``imageID`` as a finished pod's status reports it (a real kubelet:
    ``<repository>@sha256:<hex>``), or None."""
    status = getattr(remote_pod, "status", None)
    for state in getattr(status, "container_statuses", None) or []:
        if state.name == container:
            return state.image_id or None
    return None
