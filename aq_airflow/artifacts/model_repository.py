"""Where served models live in the artifact store: one naming scheme for the serve task, the
local model server, ``aq-airflow serve``, KServe's ``storageUri`` and the tests.

- ``<root>/_models/<endpoint>/<version>/``: one promoted model, in the layout its format's model
  server reads (``serving.layout``), with ``signature.json`` beside it. The version is derived
  from what the folder holds (the model artifact's digest, the format, the signature), so the
  same model served the same way is the same version, whichever run promoted it, a changed
  format or signature is a new one, and a version folder is written once and never changed.
- ``<root>/_models/<endpoint>/current.json``: the version the endpoint serves (a
  :class:`Promotion`), replaced only after a version's smoke test passed. ``aq-airflow serve``
  reads it; a failed promotion leaves it, and so the endpoint, as it was.

``_models`` sits beside the pipelines' folders, as ``_code`` does: no pipeline may take the name
(``pipeline_spec.reserved``), and ``aq-airflow gc``, which walks pipelines' run folders only,
never deletes a served model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

#: ``<root>/_models/``: the served models of every pipeline on the store
MODELS_FOLDER = "_models"
#: ``<root>/_models/<endpoint>/current.json``: the promoted version
CURRENT = "current.json"
#: hex digits of the version's sha256 a version keeps (64 bits: no two models of one endpoint meet)
VERSION_DIGITS = 16

#: an endpoint's name: it names the InferenceService (a DNS-1035 label: KServe derives
#: `<name>-predictor` Services and hosts from it, so it stays well under 63 characters), the model
#: in `/v2/models/<endpoint>/infer` and its folder here
ENDPOINT = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_ENDPOINT = 45

_VERSION = re.compile(rf"^v[0-9a-f]{{{VERSION_DIGITS}}}$")


def is_endpoint(name: str) -> bool:
    """Whether ``name`` keeps the endpoint rule (``ENDPOINT``, at most ``MAX_ENDPOINT`` characters)."""
    return ENDPOINT.fullmatch(name) is not None and len(name) <= MAX_ENDPOINT


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One model of an endpoint as it is served: ``v`` and the first hex digits of a sha256 of
    the model artifact's digest, its format and its signature (:meth:`of`)."""

    endpoint: str
    version: str

    def __post_init__(self) -> None:
        if not is_endpoint(self.endpoint):
            raise ValueError(f"not an endpoint name: {self.endpoint!r}")
        if not _VERSION.fullmatch(self.version):
            raise ValueError(f"not a model version: {self.version!r} (v and {VERSION_DIGITS} hex digits)")

    @classmethod
    def of(cls, endpoint: str, model_digest: str, format: str, signature: str) -> ModelVersion:
        """The version of the model whose artifact file has ``model_digest`` (``sha256:<hex>`` or
        ``<hex>``) written in ``format`` (a ``ModelFormat`` value) with ``signature`` (its JSON):
        everything the version folder's files depend on, so none of them changes under a name."""
        identity = json.dumps([model_digest.split(":", 1)[-1].lower(), str(format), signature])
        return cls(endpoint, f"v{hashlib.sha256(identity.encode()).hexdigest()[:VERSION_DIGITS]}")

    @property
    def path(self) -> str:
        """The version's folder relative to the store root."""
        return f"{MODELS_FOLDER}/{self.endpoint}/{self.version}"

    def location(self, root: str) -> str:
        """The version's folder (a path or URI) under the store ``root``: KServe's ``storageUri``."""
        return f"{root.rstrip('/')}/{self.path}"


def endpoint_path(endpoint: str) -> str:
    """An endpoint's folder relative to the store root (its versions and ``current.json``)."""
    return f"{MODELS_FOLDER}/{endpoint}"


def current_path(endpoint: str) -> str:
    """Where the endpoint's promoted version is recorded, relative to the store root."""
    return f"{endpoint_path(endpoint)}/{CURRENT}"


@dataclass(frozen=True, slots=True)
class Promotion:
    """What ``current.json`` holds: the version an endpoint serves, and what promoted it."""

    endpoint: str
    version: str
    format: str  # a ``plan.model.ModelFormat`` value
    storage_uri: str  # the version's folder
    model_digest: str  # sha256:<hex> of the model artifact's file
    dag_id: str
    run_id: str
    step: str
    promoted_at: str  # ISO 8601, UTC
    code_digest: str | None = None  # the code package that made the model, when known

    @property
    def model_version(self) -> ModelVersion:
        return ModelVersion(self.endpoint, self.version)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Promotion:
        """A ``current.json`` read back; a clear error naming ``where`` for anything else."""
        try:
            data: Any = json.loads(text)
            names = {f.name for f in dataclasses.fields(cls)}
            if not isinstance(data, dict) or not {n for n in names if n != "code_digest"} <= set(data):
                raise ValueError("fields missing")
            promotion = cls(**{k: v for k, v in data.items() if k in names})
            promotion.model_version  # noqa: B018 - validates the endpoint and version
            return promotion
        except (ValueError, TypeError) as error:
            raise ValueError(f"{where} is not a promotion record aq-airflow wrote ({error})") from None
