"""The kubernetes runner: the plan's plain pod settings as Kubernetes client objects for the
KubernetesPodOperator (resources, env with Secret references, node affinity)."""

from __future__ import annotations

from kubernetes.client import models as k8s


def resource_requirements(resources: dict) -> k8s.V1ResourceRequirements:
    return k8s.V1ResourceRequirements(requests=dict(resources["requests"]), limits=dict(resources["limits"]))


def env_vars(env: dict[str, str], secret_env: list[dict]) -> list[k8s.V1EnvVar]:
    """Plain values as they are (Airflow renders their templates); secrets only by reference."""
    plain = [k8s.V1EnvVar(name=name, value=value) for name, value in env.items()]
    secret = [
        k8s.V1EnvVar(
            name=ref["name"],
            value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=ref["secret"], key=ref["key"])),
        )
        for ref in secret_env
    ]
    return plain + secret


def node_affinity(required: dict[str, list[str]]) -> k8s.V1Affinity | None:
    """A required node-affinity term with one ``In`` expression per label (all must match)."""
    if not required:
        return None
    expressions = [
        k8s.V1NodeSelectorRequirement(key=label, operator="In", values=list(values))
        for label, values in sorted(required.items())
    ]
    term = k8s.V1NodeSelectorTerm(match_expressions=expressions)
    return k8s.V1Affinity(
        node_affinity=k8s.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(node_selector_terms=[term])
        )
    )
