"""Cluster profiles: how portable resource asks become pod settings on each cloud.

A GPU ask (``gpu: 1, gpu_type: a100-80gb``) becomes three things on the pod: the
``nvidia.com/gpu`` limit, node labels that pick the accelerator (a node selector, or a required
node-affinity ``In`` term when a type maps to several label values), and a toleration for the
taint the cloud puts on its GPU nodes. Label values follow each provider's documentation:

- GKE: ``cloud.google.com/gke-accelerator``; GKE taints GPU nodes ``nvidia.com/gpu=present:NoSchedule``.
- EKS with Karpenter: ``karpenter.k8s.aws/instance-gpu-name`` and ``instance-gpu-memory`` (MiB);
  EKS Auto Mode uses the same labels under ``eks.amazonaws.com/``. GPU node pools are tainted
  ``nvidia.com/gpu:NoSchedule``.
- AKS: GPU nodes carry ``kubernetes.azure.com/accelerator: nvidia``; the GPU model is known from the
  VM size (``node.kubernetes.io/instance-type``); GPU pools are tainted ``sku=gpu:NoSchedule``.
- NVIDIA GPU operator (any cluster): GPU feature discovery's ``nvidia.com/gpu.product``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from aq_airflow.pipeline_spec.profiles import ProfileSpec

GPU_RESOURCE = "nvidia.com/gpu"
# KServe's deployment modes by their names before 0.15 (its API still takes both)
_SERVING_MODES = {"RawDeployment": "Standard", "Serverless": "Knative"}
_GPU_TAINT = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Profile:
    """A resolved cluster profile (built-in, or a user profile merged onto one)."""

    name: str
    runner: str = "kubernetes"
    namespace: str = "default"
    kubernetes_conn_id: str = "kubernetes_default"
    service_account: str | None = None
    image_pull_policy: str = "IfNotPresent"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict, ...] = ()
    gpu_resource: str = GPU_RESOURCE
    gpu_node_selector: dict[str, str] = field(default_factory=dict)
    gpu_type_labels: dict[str, dict[str, str | list[str]]] = field(default_factory=dict)
    gpu_tolerations: tuple[dict, ...] = (_GPU_TAINT,)
    gpu_nodes: bool = True  # false: the cluster has none, and a step's GPU ask is a spec problem
    default_cpu: str = "1"
    default_memory: str = "2Gi"
    run_as_user: int = 1000
    pod_labels: dict[str, str] = field(default_factory=dict)
    artifacts_ttl: str | None = None  # a duration; None keeps outputs until deleted by hand
    # a spark step's SparkApplication: its main file, the launcher the image holds, and the image's Spark
    spark_launcher: str = "local:///opt/aq-airflow/spark_main.py"
    spark_version: str = "4.3.0"
    # KServe's deployment mode for `serve:` endpoints, by its current name (`serving_mode`)
    serving_mode: str = "Standard"

    def __post_init__(self) -> None:
        # KServe 0.15 renamed its modes; a profile may use either name (one spelling downstream)
        object.__setattr__(self, "serving_mode", _SERVING_MODES.get(self.serving_mode, self.serving_mode))


def _karpenter(prefix: str) -> dict[str, dict[str, str | list[str]]]:
    name, memory = f"{prefix}/instance-gpu-name", f"{prefix}/instance-gpu-memory"
    return {
        "t4": {name: "t4"},
        "a10g": {name: "a10g"},
        "l4": {name: "l4"},
        "l40s": {name: "l40s"},
        "v100": {name: "v100"},
        "a100-40gb": {name: "a100", memory: "40960"},
        "a100-80gb": {name: "a100", memory: "81920"},
        "h100-80gb": {name: "h100"},
        "h200-141gb": {name: "h200"},
    }


_AKS_SIZE = "node.kubernetes.io/instance-type"
_GFD = "nvidia.com/gpu.product"

BUILTIN_PROFILES: dict[str, Profile] = {
    "local": Profile(name="local", runner="local", gpu_tolerations=()),
    "gke": Profile(
        name="gke",
        gpu_type_labels={
            gpu: {"cloud.google.com/gke-accelerator": label}
            for gpu, label in {
                "t4": "nvidia-tesla-t4",
                "l4": "nvidia-l4",
                "v100": "nvidia-tesla-v100",
                "p100": "nvidia-tesla-p100",
                "a100-40gb": "nvidia-tesla-a100",
                "a100-80gb": "nvidia-a100-80gb",
                "h100-80gb": "nvidia-h100-80gb",
                "h100-mega-80gb": "nvidia-h100-mega-80gb",
                "h200-141gb": "nvidia-h200-141gb",
                "b200": "nvidia-b200",
            }.items()
        },
        gpu_tolerations=({"key": GPU_RESOURCE, "operator": "Equal", "value": "present", "effect": "NoSchedule"},),
    ),
    "eks": Profile(name="eks", gpu_type_labels=_karpenter("karpenter.k8s.aws")),
    "eks-auto": Profile(name="eks-auto", gpu_type_labels=_karpenter("eks.amazonaws.com")),
    "aks": Profile(
        name="aks",
        gpu_node_selector={"kubernetes.azure.com/accelerator": "nvidia"},
        gpu_type_labels={
            "t4": {_AKS_SIZE: [f"Standard_NC{n}as_T4_v3" for n in (4, 8, 16, 64)]},
            "v100": {_AKS_SIZE: ["Standard_NC6s_v3", "Standard_NC12s_v3", "Standard_NC24s_v3"]},
            "a10": {_AKS_SIZE: [f"Standard_NV{n}ads_A10_v5" for n in (6, 12, 18, 36, 72)]},
            "a100-40gb": {_AKS_SIZE: ["Standard_ND96asr_v4"]},
            "a100-80gb": {
                _AKS_SIZE: [f"Standard_NC{n}ads_A100_v4" for n in (24, 48, 96)] + ["Standard_ND96amsr_A100_v4"]
            },
            "h100-80gb": {
                _AKS_SIZE: ["Standard_NC40ads_H100_v5", "Standard_NC80adis_H100_v5", "Standard_ND96isr_H100_v5"]
            },
        },
        gpu_tolerations=(
            {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
            _GPU_TAINT,
        ),
    ),
    "nvidia": Profile(
        name="nvidia",
        gpu_type_labels={
            "t4": {_GFD: "Tesla-T4"},
            "l4": {_GFD: "NVIDIA-L4"},
            "a10g": {_GFD: "NVIDIA-A10G"},
            "l40s": {_GFD: "NVIDIA-L40S"},
            "v100": {_GFD: ["Tesla-V100-SXM2-16GB", "Tesla-V100-SXM2-32GB", "Tesla-V100-PCIE-16GB"]},
            "a100-40gb": {_GFD: ["NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"]},
            "a100-80gb": {_GFD: ["NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"]},
            "h100-80gb": {_GFD: ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"]},
        },
    ),
}


def resolve_profile(name: str, user_profiles: dict[str, ProfileSpec]) -> Profile:
    """The profile called ``name``: a built-in, or a user profile over the one it extends.

    Raises ``KeyError`` with the list of known names when there is no such profile, and
    ``ValueError`` when user profiles extend each other in a loop.
    """
    chain: list[str] = []
    while name in user_profiles and name not in chain:
        chain.append(name)
        name = user_profiles[name].extends or "local"
    if name in chain:
        raise ValueError(f"profiles extend each other in a loop: {' -> '.join([*chain, name])}")
    if name not in BUILTIN_PROFILES:
        known = sorted({*BUILTIN_PROFILES, *user_profiles})
        raise KeyError(f"no cluster profile `{name}`; known profiles: {', '.join(known)}")
    profile = BUILTIN_PROFILES[name]
    for user_name in reversed(chain):
        spec = user_profiles[user_name]
        changes = spec.model_dump(exclude_none=True, exclude={"extends"})
        for key in ("tolerations", "gpu_tolerations"):
            if key in changes:
                changes[key] = tuple(t.model_dump(exclude_none=True) for t in getattr(spec, key))
        profile = replace(profile, name=user_name, **changes)
    return profile
