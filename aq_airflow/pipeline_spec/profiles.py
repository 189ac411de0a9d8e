"""User cluster profiles (``aq-profiles.yaml`` next to the specs), validated like specs.

A profile file says how the team's clusters differ from a built-in profile::

    profiles:
      gke-prod:
        extends: gke
        namespace: ml-pipelines
        service_account: aq-runner
        kubernetes_conn_id: k8s_prod
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
from pydantic import Field

from aq_airflow.pipeline_spec.load import SpecFile, load_document, validation_problems
from aq_airflow.pipeline_spec.models import Model
from aq_airflow.pipeline_spec.types import ByteQuantity, ConnId, CpuQuantity, Duration, KubeName

PROFILES_FILE = "aq-profiles.yaml"
ProfileName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
# Kubernetes label syntax: an optional DNS-subdomain prefix, then a name of at most 63 characters
LabelKey = Annotated[
    str,
    Field(
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
    ),
]
LabelValue = Annotated[str, Field(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")]


class Toleration(Model):
    key: str
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class ProfileSpec(Model):
    """A cluster profile; every field left out is taken from the profile it extends."""

    extends: ProfileName | None = None
    runner: Literal["kubernetes", "local"] | None = None
    namespace: KubeName | None = None
    kubernetes_conn_id: ConnId | None = None
    service_account: KubeName | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = None
    gpu_resource: str | None = None
    gpu_node_selector: dict[str, str] | None = None
    gpu_type_labels: dict[str, dict[str, str | list[str]]] | None = Field(
        None,
        description="Portable GPU type -> node labels; a list of values becomes a node-affinity `In`.",
    )
    gpu_tolerations: list[Toleration] | None = None
    gpu_nodes: bool | None = Field(
        None, description="Whether the cluster has GPU nodes (default true): false makes any `gpu:` ask an error."
    )
    default_cpu: CpuQuantity | None = None
    default_memory: ByteQuantity | None = None
    run_as_user: Annotated[int, Field(ge=1)] | None = None
    pod_labels: dict[LabelKey, LabelValue] | None = Field(
        None,
        description='Labels on every pod, e.g. `{azure.workload.identity/use: "true"}` for AKS workload identity.',
    )
    artifacts_ttl: Duration | None = Field(None, description="How long run outputs are kept (`aq-airflow gc`).")
    spark_launcher: Annotated[str, Field(pattern=r"^(local|s3a|gs|abfss|https?)://\S+\.py$")] | None = Field(
        None,
        description="The SparkApplication's main file: aq-airflow's launcher "
        "(`aq_airflow/runtime/spark_main.py`) where the image holds it (default "
        "`local:///opt/aq-airflow/spark_main.py`).",
    )
    serving_mode: Literal["Standard", "Knative", "RawDeployment", "Serverless"] | None = Field(
        None,
        description="KServe's deployment mode for `serve:` endpoints (default `Standard`, KServe's default; "
        "`RawDeployment` and `Serverless` are its older names). Only `Knative` splits traffic for `canary:`.",
    )
    spark_version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")] | None = Field(
        None, description="The Spark version of the steps' image (a SparkApplication's `sparkVersion`)."
    )


class ProfilesFile(Model):
    profiles: dict[ProfileName, ProfileSpec]


def parse_profiles(spec_file: SpecFile) -> dict[str, ProfileSpec]:
    """Validate a profiles file; raises :class:`SpecError` with positions."""
    data = load_document(spec_file)
    try:
        return dict(ProfilesFile.model_validate(data).profiles)
    except pydantic.ValidationError as exc:
        raise spec_file.error(validation_problems(data, exc)) from None
