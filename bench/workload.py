"""The benchmark workload: N pipelines x 10 python steps (a third on GPUs), each step with 3
checks and 2 metrics, written three ways: aq specs, compiled .py files, dag-factory YAML with
KubernetesPodOperator tasks building the same pods."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path

import yaml

from aq_airflow.cli.main import loader_files
from aq_airflow.codegen import render_dag
from aq_airflow.operators.registry import operator_arguments, operator_name
from aq_airflow.plan import AssetRef, Seconds, compile_spec
from aq_airflow.runners.kubernetes import pod_arguments

STEPS = 10


def spec_text(index: int) -> str:
    steps = {}
    for k in range(STEPS):
        step = {
            "python": f"pkg.steps:step_{k}",
            "checks": [
                {"name": "id_not_null", "not_null": "id"},
                {"name": "id_unique", "unique": "id"},
                {"name": "score_range", "column": "score", "between": [0, 1]},
            ],
            "metrics": [
                {"name": "rows", "count": "*", "history": {"window": 14, "max_zscore": 3}},
                {"name": "mean_score", "mean": "score", "bounds": {"min": 0, "max": 1}},
            ],
        }
        if k:
            step["inputs"] = [f"s{k - 1}"] + ([f"s{k - 2}"] if k > 1 and k % 4 == 0 else [])
        if k % 3 == 2:
            step["resources"] = {"gpu": 1, "gpu_type": "a100-80gb", "memory": "32Gi"}
        steps[f"s{k}"] = step
    spec = {
        "pipeline": f"bench_{index:03d}",
        "schedule": "0 6 * * *",
        "start_date": "2026-01-01",
        "artifacts": "s3://bench/aq",
        "cluster": "gke",
        "defaults": {"image": "ghcr.io/acme/bench:1", "resources": {"cpu": 1, "memory": "2Gi"}, "retries": 2},
        "steps": steps,
    }
    return yaml.safe_dump(spec, sort_keys=False)


def _dag_factory_value(value):
    """A plan value as dag-factory YAML: plan objects and enums as ``__type__`` dicts."""
    if isinstance(value, Seconds):
        return value.value
    if isinstance(value, AssetRef):
        return {"__type__": "airflow.sdk.Asset", "name": value.name, "uri": value.uri}
    if isinstance(value, enum.Enum):
        return {"__type__": f"aq_airflow.plan.model.{type(value).__name__}", "__args__": [value.value]}
    if dataclasses.is_dataclass(value):
        fields = {f.name: _dag_factory_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": f"aq_airflow.plan.model.{type(value).__name__}", **fields}
    if isinstance(value, dict):
        return {k: _dag_factory_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dag_factory_value(v) for v in value]
    return value


def _k8s(value):
    """A Kubernetes client model object as a dag-factory ``__type__`` dict."""
    if isinstance(value, list):
        return [_k8s(v) for v in value]
    if not hasattr(value, "openapi_types"):
        return value
    fields = {name: _k8s(getattr(value, name)) for name in value.openapi_types if getattr(value, name) is not None}
    return {"__type__": f"kubernetes.client.models.{type(value).__name__}", **fields}


def dag_factory_config(plan) -> dict:
    """The same DAG as dag-factory YAML: KubernetesPodOperator for pods, the same operators elsewhere."""
    tasks = {}
    for task in plan.tasks:
        name = task.task_id.replace(".", "_")
        arguments = operator_arguments(task)
        operator = operator_name(task)
        if operator == "AqPodStepOperator":
            pod = {k: _k8s(v) for k, v in pod_arguments(arguments.pop("plan")).items() if v is not None}
            config = {
                "operator": "airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator",
                **_dag_factory_value(arguments),
                **pod,
                "xcom_sidecar_container_security_context": pod["container_security_context"],
                "do_xcom_push": True,
            }
        else:
            config = {"operator": f"aq_airflow.operators.{operator}", **_dag_factory_value(arguments)}
        config["task_group_name"] = task.group
        config["dependencies"] = [u.replace(".", "_") for u in task.upstream]
        tasks[name] = config
    arguments = plan.dag_arguments()
    return {
        plan.dag_id: {
            "default_args": {"owner": "airflow", "start_date": arguments["start_date"].date().isoformat()},
            "schedule": arguments["schedule"],
            "catchup": False,
            "tags": arguments["tags"],
            "task_groups": {g.group_id: {"tooltip": g.tooltip} for g in plan.groups},
            "tasks": tasks,
        }
    }


def write_workload(root: Path, pipelines: int) -> dict[str, Path]:
    """Three folders of the same pipelines; returns them by kind."""
    folders = {kind: root / kind for kind in ("aq", "compiled", "dag_factory")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for name, source in loader_files(1).items():
        (folders["aq"] / name).write_text(source)
    (folders["dag_factory"] / "dag_factory_dags.py").write_text(
        "from dagfactory import load_yaml_dags\n\nload_yaml_dags(globals(), dags_folder=__file__.rsplit('/', 1)[0])\n"
    )
    for index in range(pipelines):
        spec_path = folders["aq"] / f"bench_{index:03d}.aq.yaml"
        spec_path.write_text(spec_text(index))
        plan = compile_spec(spec_path)
        (folders["compiled"] / f"{plan.dag_id}.py").write_text(render_dag(plan))
        (folders["dag_factory"] / f"{plan.dag_id}.yml").write_text(yaml.safe_dump(dag_factory_config(plan)))
    return folders
