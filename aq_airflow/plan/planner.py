"""Spec -> Plan: task list, edges, resolved resources, pod settings and quality gating.

Wiring of one step's task group (DESIGN.md section 1):

- ``run``: computes the output (absent for a ``table`` step that no python/command step reads);
- ``checks`` and ``metrics``: one task each, after ``run``;
- ``publish``: after ``run`` and after the error-severity checks (and metrics) of the step.

A downstream step waits for its producers' ``run`` task and for their *gating* quality tasks:
those with at least one ``severity: error`` check or metric. Warnings never block.
"""

from __future__ import annotations

import graphlib
import json
import os
import re

from aq_airflow.plan.model import AssetRef, CallbackRef, DagPlan, GroupPlan, Seconds, TaskPlan
from aq_airflow.plan.profiles import Profile, resolve_profile
from aq_airflow.runtime import contract
from aq_airflow.spec import Pipeline, Problem, ProblemsFound, Resources, SecretRef, SpecFile, Step
from aq_airflow.spec.profiles import ProfileSpec
from aq_airflow.spec.types import duration_seconds

RUNTIME_CMD = ["python", "-m", "aq_airflow.runtime"]
RUN_ID = "{{ run_id }}"
# Airflow context values a step function may name as parameters (rendered by Airflow at run time).
# Runs without a logical date (asset-triggered, some manual runs) have no `ds` or `logical_date`
# in Airflow's context: there both are the run's own date (`run_after`).
CONTEXT_TEMPLATE = (
    "{% set when = logical_date if logical_date is defined and logical_date else dag_run.run_after %}"
    '{"run_id": {{ run_id | tojson }}, "ds": {{ when.strftime("%Y-%m-%d") | tojson }}, '
    '"logical_date": {{ when | string | tojson }}, "params": {{ dict(params) | tojson }}}'
)

POD_SECURITY_CONTEXT = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _merged(pipeline: Pipeline, step: Step, key: str):
    """A step setting over its default; ``resources`` merge key by key."""
    value, default = getattr(step, key), getattr(pipeline.defaults, key)
    if key == "resources" and value is not None and default is not None:
        return Resources(**{**default.model_dump(exclude_none=True), **value.model_dump(exclude_none=True)})
    return value if value is not None else default


class _Planner:
    def __init__(self, pipeline: Pipeline, spec_file: SpecFile, profile: Profile, source: str):
        self.pipeline = pipeline
        self.spec_file = spec_file
        self.source = source
        self.profile = profile
        self.dag_id = pipeline.pipeline or spec_file.default_dag_id
        self.problems: list[Problem] = []
        self.tasks: list[TaskPlan] = []
        self.gates: dict[str, tuple[str, ...]] = {}
        consumers = [s for s in pipeline.steps.values() if s.kind in ("python", "command")]
        self.exported = {producer for s in consumers for producer in s.input_map.values()}
        if profile.runner == "kubernetes" and consumers and not pipeline.artifacts:
            self.problems.append(
                Problem(
                    ("cluster",),
                    f"profile `{profile.name}` runs steps in pods, which need a shared artifact store: "
                    "set `artifacts:` to an s3://, gs:// or abfs:// URI",
                )
            )

    # -- paths ---------------------------------------------------------------------------------
    def relative_output(self, step: str) -> str:
        return f"{self.dag_id}/{RUN_ID}/{step}"

    def output_uri(self, step: str) -> str:
        return f"{self.pipeline.artifacts.rstrip('/')}/{self.relative_output(step)}"

    # -- per-step settings ---------------------------------------------------------------------
    def task_settings(self, step: Step) -> dict:
        settings: dict = {}
        retries = _merged(self.pipeline, step, "retries")
        if retries is not None:
            settings["retries"] = retries
        delay = _merged(self.pipeline, step, "retry_delay")
        if delay is not None:
            settings["retry_delay"] = Seconds(duration_seconds(delay))
        timeout = _merged(self.pipeline, step, "timeout")
        if timeout is not None:
            settings["execution_timeout"] = Seconds(duration_seconds(timeout))
        pool = _merged(self.pipeline, step, "pool")
        if pool is not None:
            settings["pool"] = pool
        return settings

    def environment(self, name: str, step: Step) -> tuple[dict[str, str], list[dict]]:
        """Plain env vars (Airflow-templated at run time) and Kubernetes Secret references."""
        env: dict[str, str] = {contract.DAG_ID: self.dag_id, contract.RUN_ID: RUN_ID, contract.STEP: name}
        secrets: list[dict] = []
        merged = {**(self.pipeline.defaults.env or {}), **(step.env or {})}
        for key, value in sorted(merged.items()):
            if isinstance(value, SecretRef):
                secrets.append({"name": key, "secret": value.secret, "key": value.key})
            else:
                env[key] = json.dumps(value) if isinstance(value, bool) else str(value)
        if step.args:
            env[contract.ARGS] = json.dumps(step.args, sort_keys=True)
        env[contract.CONTEXT] = CONTEXT_TEMPLATE
        if step.inputs:
            env[contract.INPUTS] = contract.encode_inputs(list(step.input_map), isinstance(step.inputs, list))
        return env, secrets

    def asked_resources(self, step: Step) -> dict:
        """The resources the spec asks for a step (its own over `defaults:`), nothing filled in."""
        ask = _merged(self.pipeline, step, "resources")
        return ask.model_dump(exclude_none=True, mode="json") if ask else {}

    def resources(self, name: str, step: Step) -> dict:
        ask = _merged(self.pipeline, step, "resources")
        cpu = (ask and ask.cpu) or self.profile.default_cpu
        memory = (ask and ask.memory) or self.profile.default_memory
        requests = {"cpu": cpu, "memory": memory}
        if ask and ask.ephemeral_storage:
            requests["ephemeral-storage"] = ask.ephemeral_storage
        limits = dict(requests)
        if ask and ask.gpu:
            limits[self.profile.gpu_resource] = str(ask.gpu)
        return {"requests": requests, "limits": limits}

    def placement(self, name: str, step: Step) -> dict:
        """Node selector, node affinity and tolerations for the step's GPU ask."""
        ask = _merged(self.pipeline, step, "resources")
        selector = dict(self.profile.node_selector)
        tolerations = list(self.profile.tolerations)
        affinity: dict[str, list[str]] = {}
        if ask and ask.gpu:
            selector.update(self.profile.gpu_node_selector)
            tolerations.extend(self.profile.gpu_tolerations)
            if ask.gpu_type:
                labels = self.profile.gpu_type_labels.get(ask.gpu_type)
                if labels is None:
                    known = ", ".join(sorted(self.profile.gpu_type_labels)) or "none"
                    self.problems.append(
                        Problem(
                            ("steps", name, "resources", "gpu_type"),
                            f"profile `{self.profile.name}` has no GPU type `{ask.gpu_type}`; it knows: {known}",
                        )
                    )
                    labels = {}
                for label, value in sorted(labels.items()):
                    if isinstance(value, list):
                        affinity[label] = list(value)
                    else:
                        selector[label] = value
        return {"node_selector": selector, "node_affinity": affinity, "tolerations": tolerations}

    # -- tasks ---------------------------------------------------------------------------------
    def add(self, step: str, role: str, operator: str, kwargs: dict, upstream: tuple[str, ...]) -> str:
        task_id = f"{step}.{role}"
        implied = {u for t in self.tasks if t.task_id in upstream for u in t.upstream}
        direct = tuple(sorted(set(upstream) - implied))
        self.tasks.append(TaskPlan(task_id, step, operator, kwargs, direct))
        return task_id

    def start(self, step: Step) -> tuple[str, ...]:
        producers = [*step.input_map.values(), *step.depends_on]
        return tuple(t for p in producers for t in self.gates[p])

    def run_task(self, name: str, step: Step, start: tuple[str, ...]) -> str | None:
        if step.kind == "table" and name not in self.exported:
            return None
        if step.kind in ("sql", "table"):
            kwargs = {
                "conn_id": self.pipeline.warehouse,
                "sql": step.sql,
                "table": step.table,
                "step": name,
                "artifacts": self.pipeline.artifacts,
                "output": self.relative_output(name),
                **self.task_settings(step),
            }
            return self.add(name, "run", "AqSqlStepOperator", kwargs, start)
        if step.kind == "python":
            cmds, arguments = list(RUNTIME_CMD), ["--function", step.python]
        else:
            command = step.command
            cmds, arguments = (["/bin/sh", "-c"], [command]) if isinstance(command, str) else (list(command), [])
        env, secrets = self.environment(name, step)
        if self.profile.runner == "local":
            env[contract.OUTPUT] = self.relative_output(name)
            for arg, producer in sorted(step.input_map.items()):
                env[contract.input_variable(arg)] = self.relative_output(producer)
            kwargs = {
                "step": name,
                "cmds": cmds,
                "arguments": arguments,
                "env_vars": env,
                "secret_env": secrets,
                "artifacts": self.pipeline.artifacts,
                "resource_asks": self.asked_resources(step),
                **self.task_settings(step),
            }
            return self.add(name, "run", "AqLocalStepOperator", kwargs, start)
        image = _merged(self.pipeline, step, "image")
        if not image:
            self.problems.append(
                Problem(("steps", name), f"step `{name}` has no image: set `image:` on it or under `defaults:`")
            )
        if self.pipeline.artifacts:
            env[contract.ARTIFACTS] = self.pipeline.artifacts
            env[contract.OUTPUT] = self.output_uri(name)
            for arg, producer in sorted(step.input_map.items()):
                env[contract.input_variable(arg)] = self.output_uri(producer)
        profile = self.profile
        kwargs = {
            "step": name,
            "image": image or "",
            "cmds": cmds,
            "arguments": arguments,
            "env_vars": env,
            "secret_env": secrets,
            "container_resources": self.resources(name, step),
            **self.placement(name, step),
            "namespace": profile.namespace,
            "kubernetes_conn_id": profile.kubernetes_conn_id,
            "service_account_name": profile.service_account,
            "image_pull_policy": profile.image_pull_policy,
            "labels": {"app.kubernetes.io/managed-by": "aq-airflow", "aq-airflow/step": name},
            "security_context": {
                **POD_SECURITY_CONTEXT,
                "runAsUser": profile.run_as_user,
                "runAsGroup": profile.run_as_user,
                "fsGroup": profile.run_as_user,
            },
            "container_security_context": CONTAINER_SECURITY_CONTEXT,
            **self.task_settings(step),
        }
        return self.add(name, "run", "AqPodStepOperator", kwargs, start)

    def quality_source(self, name: str, step: Step) -> dict:
        """Where checks read the data: the warehouse for table and sql steps (pushdown; a sql
        step's output also names its columns), the Parquet output otherwise."""
        if step.kind == "table":
            return {"table": step.table}
        if step.kind == "sql":
            return {"query": step.sql, "artifact": self.relative_output(name)}
        return {"artifact": self.relative_output(name)}

    def plan_step(self, name: str, step: Step) -> None:
        start = self.start(step)
        run = self.run_task(name, step, start)
        after_run = (run,) if run else start
        gates = list(after_run)
        source = self.quality_source(name, step)
        # quality and publish tasks take the step's retries, retry_delay, timeout and pool, as `run` does
        common = {
            "conn_id": self.pipeline.warehouse,
            "step": name,
            "artifacts": self.pipeline.artifacts,
            **self.task_settings(step),
        }
        image = _merged(self.pipeline, step, "image") if step.kind in ("python", "command") else None
        recorded = {
            "source": source,
            "results_schema": self.pipeline.results_schema,
            "spec_hash": self.spec_file.sha256[:16],
            "image": image,
        }
        if step.checks:
            checks = [c.model_dump(mode="json", exclude_none=True, by_alias=True) for c in step.checks]
            kwargs = {**common, "checks": checks, "sensitive": list(step.sensitive), **recorded}
            task = self.add(name, "checks", "AqCheckOperator", kwargs, after_run)
            if any(c.severity == "error" for c in step.checks):
                gates.append(task)
        if step.metrics:
            metrics = [m.model_dump(mode="json", exclude_none=True, by_alias=True) for m in step.metrics]
            task = self.add(name, "metrics", "AqMetricOperator", {**common, "metrics": metrics, **recorded}, after_run)
            if any(m.severity == "error" for m in step.metrics):
                gates.append(task)
        if step.publish:
            publish = step.publish
            kwargs = {
                **common,
                "source": {"artifact": self.relative_output(name)} if step.kind != "table" else source,
                "table": publish.table,
                "mode": publish.mode,
                "keys": list(publish.keys or []),
                "outlets": [AssetRef(publish.table)],
            }
            self.add(name, "publish", "AqPublishOperator", kwargs, tuple(gates))
        self.gates[name] = tuple(gates)

    def plan(self) -> DagPlan:
        graph = {n: {*s.input_map.values(), *s.depends_on} for n, s in self.pipeline.steps.items()}
        for name in graphlib.TopologicalSorter(graph).static_order():
            self.plan_step(name, self.pipeline.steps[name])
        if self.problems:
            raise ProblemsFound(self.problems)
        pipeline = self.pipeline
        schedule = pipeline.schedule
        order = {name: i for i, name in enumerate(pipeline.steps)}
        ttl = pipeline.artifacts_ttl or self.profile.artifacts_ttl
        tasks = sorted(self.tasks, key=lambda t: (order[t.group], self.tasks.index(t)))
        return DagPlan(
            dag_id=self.dag_id,
            source=self.source,
            spec_sha256=self.spec_file.sha256,
            description=pipeline.description,
            doc_md=spec_doc(pipeline.description, self.source, self.spec_file.text),
            schedule=schedule if isinstance(schedule, str) else None,
            schedule_assets=tuple(AssetRef(t) for t in schedule.after)
            if schedule and not isinstance(schedule, str)
            else (),
            start_date=pipeline.start_date,
            end_date=pipeline.end_date,
            catchup=pipeline.catchup,
            tags=tuple(dict.fromkeys(["aq", *pipeline.tags])),
            params=dict(pipeline.params),
            max_active_runs=pipeline.max_active_runs,
            dagrun_timeout=Seconds(duration_seconds(pipeline.timeout)) if pipeline.timeout else None,
            default_args={"owner": pipeline.owner},
            on_failure=CallbackRef(pipeline.on_failure) if pipeline.on_failure else None,
            groups=tuple(GroupPlan(name, f"{step.kind} step") for name, step in pipeline.steps.items()),
            tasks=tuple(tasks),
            artifacts=pipeline.artifacts,
            artifacts_ttl=Seconds(duration_seconds(ttl)) if ttl else None,
        )


def spec_doc(description: str | None, source: str, text: str) -> str:
    """The DAG's docs: its description, then the YAML it was compiled from, with its path.

    Airflow's Code tab shows the file that defined the DAG (a loader shard), and must keep doing
    so for Airflow to track the file; the docs are where the UI shows the spec itself.
    """
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)  # a fence no line of the spec can close
    header = f"{description}\n\n" if description else ""
    return f"{header}From the aq-airflow spec `{source}`:\n\n{fence}yaml\n{text.rstrip()}\n{fence}\n"


def plan_pipeline(
    pipeline: Pipeline,
    spec_file: SpecFile,
    user_profiles: dict[str, ProfileSpec] | None = None,
    local_run: bool = False,
    source: str | None = None,
) -> DagPlan:
    """Plan one validated pipeline; raises :class:`ProblemsFound` with located problems.
    ``source`` names the spec in the DAG's docs (default: its file name).

    ``local_run`` is the laptop run of a production spec (``aq-airflow run``): steps on the
    ``local`` profile, outputs in the local artifact folder, no retries.
    """
    if local_run:
        pipeline = pipeline.model_copy(update={"cluster": "local", "artifacts": None})
        no_retries = {"retries": 0}
        pipeline = pipeline.model_copy(
            update={
                "defaults": pipeline.defaults.model_copy(update=no_retries),
                "steps": {n: s.model_copy(update=no_retries) for n, s in pipeline.steps.items()},
            }
        )
    try:
        profile = resolve_profile(pipeline.cluster, user_profiles or {})
    except (KeyError, ValueError) as exc:
        raise ProblemsFound([Problem(("cluster",), str(exc.args[0]))]) from None
    return _Planner(pipeline, spec_file, profile, source or os.path.basename(spec_file.path)).plan()
