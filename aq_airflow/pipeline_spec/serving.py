"""The spec's `serve:`: promote a step's model to a serving endpoint once its checks pass.

A step whose output is a trained model (a python or ray step returning it) may say where it is
served::

    train:
      python: churn.train:fit
      inputs: [features]
      serve: {endpoint: churn, format: sklearn, replicas: {min: 1, max: 3}}

The step's ``serve`` task runs after its checks and metrics and is gated as ``publish`` is. It
writes the model in the layout the format's model server reads, under a version derived from the
model's digest, format and signature, points the endpoint at it (a KServe InferenceService on Kubernetes, a local model
repository on a laptop), and smoke-tests it over the Open Inference Protocol with rows of
``sample`` (default: the step's first input), whose columns are also the model's recorded
signature.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from aq_airflow.artifacts.model_repository import ENDPOINT, MAX_ENDPOINT, is_endpoint
from aq_airflow.pipeline_spec.types import IDENT, ByteQuantity, Column, CpuQuantity, GpuType

#: the model formats a `serve:` may name: KServe's ``modelFormat`` names, each served by a
#: runtime that speaks the Open Inference Protocol (MLServer; on KServe onnx needs the `aq-mlserver-onnx` runtime)
SERVE_FORMATS = ("sklearn", "xgboost", "lightgbm", "onnx", "mlflow")
#: the kinds of step whose output can be a model object
SERVING_KINDS = ("python", "ray")
MAX_SERVE_REPLICAS = 100

_ENDPOINT_RULE = f"lower-case letters, digits and `-`, starting with a letter, at most {MAX_ENDPOINT} characters"


def _endpoint_name(value: str) -> str:
    """An endpoint name, or a message that says the rule and offers a name that keeps it."""
    if is_endpoint(value):
        return value
    offer = re.sub(r"[^a-z0-9]+", "-", value.lower()).lstrip("-0123456789")[:MAX_ENDPOINT].strip("-")
    hint = f", e.g. `{offer}`" if offer else ""
    raise ValueError(f"`{value}` cannot name an endpoint (an InferenceService and a URL path): use {_ENDPOINT_RULE}"
                     f"{hint}")  # fmt: skip


_ENDPOINT_SCHEMA = {
    "type": "string",
    "pattern": ENDPOINT.pattern,
    "maxLength": MAX_ENDPOINT,
    "description": f"The endpoint's name: {_ENDPOINT_RULE}.",
}
# checked here (the message offers a name that keeps the rule), by editors through the schema
EndpointName = Annotated[str, AfterValidator(_endpoint_name), WithJsonSchema(_ENDPOINT_SCHEMA)]


class _Model(BaseModel):  # as the spec's other models: frozen, strict, unknown keys refused
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class ServeReplicas(_Model):
    """How many copies of the model server run: KServe scales between ``min`` and ``max``."""

    min: Annotated[int, Field(ge=0, le=MAX_SERVE_REPLICAS)] = 1
    max: Annotated[int, Field(ge=1, le=MAX_SERVE_REPLICAS)] = 1

    @model_validator(mode="after")
    def _ordered(self) -> ServeReplicas:
        if self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is above `max` ({self.max}): swap them")
        return self


class ServeResources(_Model):
    """One model server's size; the cluster profile places a GPU ask as it does a step's."""

    cpu: CpuQuantity | None = None
    memory: ByteQuantity | None = None
    gpu: Annotated[int, Field(ge=0, le=64)] | None = None
    gpu_type: GpuType | None = None

    @model_validator(mode="after")
    def _gpu_type_needs_gpu(self) -> ServeResources:
        if self.gpu_type is not None and not self.gpu:
            raise ValueError("`gpu_type` is set but `gpu` is not: add `gpu: 1` (or more)")
        return self


class Serve(_Model):
    """`serve:`: the endpoint a step's model is promoted to when its checks pass."""

    endpoint: EndpointName
    format: Literal[SERVE_FORMATS] = Field(
        description="How the model is written and which server runtime loads it (KServe's `modelFormat`)."
    )
    canary: Annotated[int, Field(ge=1, le=99)] | None = Field(
        None,
        description="Percent of traffic the new model gets, and keeps (KServe Knative mode only): the last model "
        "that had all the traffic gets the rest until someone raises canaryTrafficPercent to 100.",
    )
    replicas: ServeReplicas = ServeReplicas()
    resources: ServeResources | None = None
    sample: Annotated[str, Field(pattern=rf"^{IDENT}$", max_length=63)] | None = Field(
        None,
        description="The step whose table gives the model's input signature and the smoke test's rows "
        "(default: this step's first input).",
    )
    columns: Annotated[list[Column], Field(min_length=1, max_length=10_000)] | None = Field(
        None,
        description="The model's input columns, in order (default: those the model names, e.g. scikit-learn's "
        "`feature_names_in_`).",
    )
    smoke_rows: Annotated[int, Field(ge=1, le=1000)] = Field(
        5, description="How many sample rows the smoke test sends."
    )
