"""Custom resource bodies checked against the vendored CRDs' ``openAPIV3Schema`` (tests/crds/), as
the API server checks them, with jsonschema.

Kubernetes' structural schemas are OpenAPI v3 with ``x-kubernetes-*`` extensions; jsonschema reads
them once these are turned into plain JSON Schema: ``x-kubernetes-int-or-string`` is "an integer
or a string", ``x-kubernetes-preserve-unknown-fields`` keeps any field there; the other extensions
(list types, map keys, embedded resources) say nothing about a single body's shape and are dropped.
Elsewhere a field the schema does not name is a problem: the API server would prune it silently
(or, with strict field validation, refuse it), so a misspelled field never reaches the operator.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).parent / "crds"
SPARK_APPLICATIONS = CRDS / "spark-operator" / "sparkoperator.k8s.io_sparkapplications.yaml"
RAY_JOBS = CRDS / "kuberay" / "ray.io_rayjobs.yaml"
INFERENCE_SERVICES = CRDS / "kserve" / "serving.kserve.io_inferenceservices.yaml"


def json_schema(node: Any) -> Any:
    """A structural schema node as plain JSON Schema (see the module's docstring)."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "format"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _validator(path: Path, version: str) -> jsonschema.Draft7Validator:
    crd = yaml.safe_load(path.read_text())
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema = json_schema(served["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}  # the API server's ObjectMeta, not the CRD's
    return jsonschema.Draft7Validator(schema)


def crd_problems(body: dict, path: Path = SPARK_APPLICATIONS) -> list[str]:
    """What the CRD's schema finds wrong in ``body`` (empty: valid), each as `path: message`."""
    version = body.get("apiVersion", "").rpartition("/")[2]
    errors = sorted(_validator(path, version).iter_errors(body), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(map(str, e.absolute_path)) or '<body>'}: {e.message}" for e in errors]
