"""The kubernetes runner: the plan's plain pod settings as Kubernetes client objects for the
KubernetesPodOperator (resources, env with Secret references, node affinity)."""

from __future__ import annotations

from functools import cache

from kubernetes.client import Configuration
from kubernetes.client import models as k8s


@cache
def _model_configuration() -> Configuration:
    """One client configuration shared by every model object built at parse time.

    Without it each ``V1EnvVar`` makes its own ``Configuration``, whose logger set-up is most of
    the cost of building a pod task (measured: about half of a 10-step DAG's parse time).
    """
    return Configuration()


def _model(kind: type, **fields):
    return kind(**fields, local_vars_configuration=_model_configuration())


def resource_requirements(resources: dict) -> k8s.V1ResourceRequirements:
    return _model(k8s.V1ResourceRequirements, requests=dict(resources["requests"]), limits=dict(resources["limits"]))


def env_vars(env: dict[str, str], secret_env: list[dict]) -> list[k8s.V1EnvVar]:
    """Plain values as they are (Airflow renders their templates); secrets only by reference."""
    plain = [_model(k8s.V1EnvVar, name=name, value=value) for name, value in env.items()]
    secret = [
        _model(
            k8s.V1EnvVar,
            name=ref["name"],
            value_from=_model(
                k8s.V1EnvVarSource,
                secret_key_ref=_model(k8s.V1SecretKeySelector, name=ref["secret"], key=ref["key"]),
            ),
        )
        for ref in secret_env
    ]
    return plain + secret


def node_affinity(required: dict[str, list[str]]) -> k8s.V1Affinity | None:
    """A required node-affinity term with one ``In`` expression per label (all must match)."""
    if not required:
        return None
    expressions = [
        _model(k8s.V1NodeSelectorRequirement, key=label, operator="In", values=list(values))
        for label, values in sorted(required.items())
    ]
    term = _model(k8s.V1NodeSelectorTerm, match_expressions=expressions)
    selector = _model(k8s.V1NodeSelector, node_selector_terms=[term])
    return _model(
        k8s.V1Affinity,
        node_affinity=_model(k8s.V1NodeAffinity, required_during_scheduling_ignored_during_execution=selector),
    )
