"""Spec -> Plan: task list, edges, resolved resources, pod settings and quality gating.

Wiring of one step's task group (DESIGN.md section 1):

- ``run``: computes the output (absent for a ``table`` step that no python/command step reads
  and that is not published);
- ``checks`` and ``metrics``: one task each, after ``run``;
- ``publish``: after ``run`` and after the error-severity checks (and metrics) of the step.

A downstream step waits for its producers' ``run`` task and for their *gating* quality tasks:
those with at least one ``severity: error`` check or metric. Warnings never block.
"""

from __future__ import annotations

import dataclasses
import functools
import graphlib
import json
import math
import os
import posixpath
import re

from aq_airflow.pipeline_spec import Pipeline, Problem, ProblemsFound, Resources, SecretRef, SpecFile, Step
from aq_airflow.pipeline_spec.conditions import referenced_steps
from aq_airflow.pipeline_spec.engines import SparkScript
from aq_airflow.pipeline_spec.foreach import MAX_MAP_LENGTH, ForeachParam, ForeachStep, too_many_items
from aq_airflow.pipeline_spec.models import CODE_FROM_IMAGE, PROCESS_KINDS, Check, Metric, ScheduleAfter
from aq_airflow.pipeline_spec.profiles import ProfileSpec
from aq_airflow.pipeline_spec.reserved import reserved_dag_id
from aq_airflow.pipeline_spec.types import byte_count, duration_seconds, memory_bytes
from aq_airflow.plan.conditions import compile_condition, reads_results, results_tasks
from aq_airflow.plan.model import (
    DEFAULT_MIN_HISTORY,
    KSERVE_RUNTIMES,
    ArtifactRef,
    AssetRef,
    CallbackRef,
    CheckPlan,
    ClusterJob,
    Command,
    ComputeResources,
    DagPlan,
    Expansion,
    Foreach,
    GroupPlan,
    InputRef,
    ItemsPlan,
    MetricPlan,
    ModelFormat,
    NodeGroup,
    OperatorPlan,
    Placement,
    PodSettings,
    PublishPlan,
    QualityPlan,
    QualitySource,
    Runner,
    RunPlan,
    Seconds,
    SecretEnv,
    ServePlan,
    ServingMode,
    Severity,
    SourceKind,
    StepKind,
    TaskPlan,
    TaskRole,
    TaskSettings,
    WhenPlan,
)
from aq_airflow.plan.profiles import Profile, resolve_profile

# the smallest pod a Spark driver or executor starts in (:meth:`_Planner.spark_memory`)
MIN_SPARK_MEMORY = 2**30


def _merged(pipeline: Pipeline, step: Step, key: str):
    """A step setting over its default; ``resources`` merge key by key."""
    value, default = getattr(step, key), getattr(pipeline.defaults, key)
    if key == "resources" and value is not None and default is not None:
        return Resources(**{**default.model_dump(exclude_none=True), **value.model_dump(exclude_none=True)})
    return value if value is not None else default


def _seconds(duration: str | None) -> Seconds | None:
    return Seconds(duration_seconds(duration)) if duration is not None else None


def compile_check(check: Check) -> CheckPlan:
    """A spec check as the engine reads it: kind, severity and durations resolved once."""
    kind = check.kind
    value = getattr(check, "schema_" if kind == "schema" else kind)
    fields: dict = {}
    if kind in ("not_null", "unique"):
        fields["columns"] = tuple(value) if isinstance(value, list) else (value,)
    elif kind == "between":
        fields.update(columns=(check.column,), low=value[0], high=value[1])
    elif kind == "accepted_values":
        fields.update(columns=(value.column,), values=tuple(value.values))
    elif kind == "row_count":
        fields.update(low=value.min, high=value.max)
    elif kind == "freshness":
        fields.update(columns=(value.column,), max_age=duration_seconds(value.max_age), max_age_text=value.max_age)
    elif kind in ("expression", "sql", "expect"):
        fields[kind] = value
        if kind == "expect":  # the expectation's column, if it names one (lineage, sample headers)
            fields["kwargs"] = dict(check.kwargs or {})
            column = fields["kwargs"].get("column")
            fields["columns"] = (column,) if isinstance(column, str) else ()
    elif kind == "schema":
        fields["schema"] = dict(value)
    elif kind == "schema_change":
        fields["changes"] = tuple(value.on)
    return CheckPlan(name=check.name, kind=kind, severity=Severity(check.severity), where=check.where,
                     mostly=check.mostly, description=check.description, **fields)  # fmt: skip


def compile_metric(metric: Metric) -> MetricPlan:
    """A spec metric as the engine reads it: kind, severity and bounds resolved once."""
    kind = metric.kind
    value = getattr(metric, kind)
    fields: dict = {}
    if kind == "quantile":
        fields.update(column=value.column, q=value.q)
    elif kind == "expression":
        fields["expression"] = value
    else:
        fields["column"] = value
    if metric.bounds:
        fields.update(bounds_min=metric.bounds.min, bounds_max=metric.bounds.max)
    if metric.history:
        history = metric.history
        minimum = history.min_history or min(DEFAULT_MIN_HISTORY, history.window)
        fields.update(history_window=history.window, max_zscore=history.max_zscore, min_history=minimum)
    change = metric.max_change
    if change is not None:
        fields["max_change"] = float(change.rstrip("%")) / 100 if isinstance(change, str) else float(change)
    return MetricPlan(name=metric.name, kind=kind, severity=Severity(metric.severity), where=metric.where,
                      description=metric.description, **fields)  # fmt: skip


def endpoint_problems(pipeline: Pipeline) -> list[Problem]:
    """A second `serve:` step of one endpoint, at its `endpoint` (the two tasks would run side by
    side and replace each other's promotion)."""
    problems: list[Problem] = []
    first: dict[str, str] = {}
    for name, step in pipeline.steps.items():
        if step.serve is None:
            continue
        endpoint = step.serve.endpoint
        if endpoint in first:
            problems.append(
                Problem(
                    ("steps", name, "serve", "endpoint"),
                    f"step `{first[endpoint]}` serves endpoint `{endpoint}` already: two steps promoting one "
                    "endpoint would replace each other's model; name another endpoint",
                )
            )
        first.setdefault(endpoint, name)
    return problems


class _Planner:
    def __init__(self, pipeline: Pipeline, spec_file: SpecFile, profile: Profile, source: str):
        self.pipeline = pipeline
        self.spec_file = spec_file
        self.source = source
        self.profile = profile
        self.dag_id = pipeline.pipeline or spec_file.default_dag_id
        reserved = reserved_dag_id(self.dag_id)
        self.problems: list[Problem] = [Problem(("pipeline",), reserved)] if reserved else []
        self.warehouse = pipeline.warehouse
        self.tasks: list[TaskPlan] = []
        self.gates: dict[str, tuple[str, ...]] = {}
        consumers = [s for s in pipeline.steps.values() if s.kind in PROCESS_KINDS]
        # table steps whose data leaves the warehouse: read by a python/command step, or published
        # (publish loads a step's Parquet output)
        self.exported = {producer for s in consumers for producer in s.input_map.values()}
        self.exported |= {name for name, s in pipeline.steps.items() if s.publish}
        # ...or the sample rows a `serve:` smoke-tests its model with
        self.exported |= {s.serve.sample for s in pipeline.steps.values() if s.serve and s.serve.sample}
        self.mapped = {name for name, s in pipeline.steps.items() if s.foreach is not None}  # `foreach:` steps
        self.problems += endpoint_problems(pipeline)
        if profile.runner == "kubernetes" and consumers and not pipeline.artifacts:
            self.problems.append(
                Problem(
                    ("cluster",),
                    f"profile `{profile.name}` runs steps in pods, which need a shared artifact store: "
                    "set `artifacts:` to an s3://, gs:// or abfs:// URI",
                )
            )

    @functools.cached_property
    def code_folder(self) -> str | None:
        """Where the steps' own code lives, relative to the dags folder ("." at its root): the
        spec's folder, or the folder `code:` names relative to it; None for `code: image` (the
        image's copy, nothing shipped). Decided here once: the runners, ``aq-airflow run``,
        ``aq-airflow package`` and validate all read it. A folder outside the dags folder is a
        problem: only the dags folder reaches every worker."""
        spec_folder = posixpath.dirname(self.source.replace(os.sep, "/")) or "."
        key, named = ("code",), self.pipeline.code
        default = self.pipeline.defaults.code
        if named is not None and default is not None and named != default:
            self.problems.append(
                Problem(
                    ("defaults", "code"),
                    f"`code: {named}` at the top level and `code: {default}` here name two code folders; a "
                    "pipeline has one: keep one of them",
                )
            )
        if named is None:
            key, named = ("defaults", "code"), default
        if named is None:
            return spec_folder
        if named == CODE_FROM_IMAGE:
            return None
        folder = posixpath.normpath(posixpath.join(spec_folder, named.replace(os.sep, "/")))
        if posixpath.isabs(named) or folder == ".." or folder.startswith("../"):
            self.problems.append(
                Problem(
                    key,
                    f"`{named}` is outside the dags folder, and only the dags folder reaches the workers that "
                    f"build the code package: name a folder inside it, relative to this spec, or `{CODE_FROM_IMAGE}` "
                    "to run the image's copy of the code",
                )
            )
            return spec_folder
        return folder

    def output(self, step: str) -> ArtifactRef:
        return ArtifactRef(self.dag_id, step, each=step in self.mapped)

    # -- per-step settings ---------------------------------------------------------------------
    def task_settings(self, step: Step) -> TaskSettings:
        merged = functools.partial(_merged, self.pipeline, step)
        return TaskSettings(
            retries=merged("retries"),
            retry_delay=_seconds(merged("retry_delay")),
            execution_timeout=_seconds(merged("timeout")),
            pool=merged("pool"),
        )

    def environment(self, step: Step) -> tuple[dict[str, str], tuple[SecretEnv, ...]]:
        """Plain env values (Airflow-templated at run time) and Kubernetes Secret references."""
        env: dict[str, str] = {}
        secrets: list[SecretEnv] = []
        merged = {**(self.pipeline.defaults.env or {}), **(step.env or {})}
        for key, value in sorted(merged.items()):
            if isinstance(value, SecretRef):
                secrets.append(SecretEnv(key, value.secret, value.key))
            else:
                env[key] = json.dumps(value) if isinstance(value, bool) else str(value)
        return env, tuple(secrets)

    def resources(self, ask: Resources | None) -> ComputeResources:
        cpu = (ask and ask.cpu) or self.profile.default_cpu
        memory = (ask and ask.memory) or self.profile.default_memory
        requests = {"cpu": cpu, "memory": memory}
        if ask and ask.ephemeral_storage:
            requests["ephemeral-storage"] = ask.ephemeral_storage
        limits = dict(requests)
        gpu = (ask and ask.gpu) or 0
        if gpu:
            limits[self.profile.gpu_resource] = str(gpu)
        asked = ask.model_dump(exclude_none=True, mode="json") if ask else {}
        return ComputeResources(requests=requests, limits=limits, asked=asked, gpu=gpu)

    def placement(self, name: str, ask: Resources | None, key: tuple[str, ...] | None = None) -> Placement:
        """Node selector, node affinity and tolerations for the step's GPU ask (``key``: where the
        ask is in the spec, for a problem with its `gpu_type`; the step's `resources` by default)."""
        selector = dict(self.profile.node_selector)
        tolerations = list(self.profile.tolerations)
        affinity: dict[str, tuple[str, ...]] = {}
        if ask and ask.gpu:
            selector.update(self.profile.gpu_node_selector)
            tolerations.extend(self.profile.gpu_tolerations)
            if ask.gpu_type:
                labels = self.profile.gpu_type_labels.get(ask.gpu_type)
                if labels is None:
                    known = ", ".join(sorted(self.profile.gpu_type_labels)) or "none"
                    self.problems.append(
                        Problem(
                            (*(key or ("steps", name, "resources")), "gpu_type"),
                            f"profile `{self.profile.name}` has no GPU type `{ask.gpu_type}`; it knows: {known}",
                        )
                    )
                    labels = {}
                for label, value in sorted(labels.items()):
                    if isinstance(value, list):
                        affinity[label] = tuple(value)
                    else:
                        selector[label] = value
        return Placement(node_selector=selector, node_affinity=affinity, tolerations=tuple(tolerations))

    def pod_settings(self) -> PodSettings:
        profile = self.profile
        return PodSettings(
            namespace=profile.namespace,
            kubernetes_conn_id=profile.kubernetes_conn_id,
            service_account=profile.service_account,
            image_pull_policy=profile.image_pull_policy,
            run_as_user=profile.run_as_user,
            labels=dict(profile.pod_labels),
            spark_launcher=profile.spark_launcher,
            spark_version=profile.spark_version,
        )

    # -- tasks ---------------------------------------------------------------------------------
    def add(self, step: str, role: TaskRole, body, settings: TaskSettings, upstream: tuple[str, ...],
            outlets: tuple[AssetRef, ...] = ()) -> str:  # fmt: skip
        task_id = f"{step}.{role}"
        implied = {u for t in self.tasks if t.task_id in upstream for u in t.upstream}
        direct = tuple(sorted(set(upstream) - implied))
        self.tasks.append(TaskPlan(task_id, step, role, body, settings, direct, outlets))
        return task_id

    def start(self, step: Step) -> tuple[str, ...]:
        producers = [*step.input_map.values(), *step.depends_on]
        return tuple(t for p in producers for t in self.gates[p])

    def run_plan(self, name: str, step: Step) -> RunPlan | None:
        kind = StepKind(step.kind)
        common = {"step": name, "kind": kind, "output": self.output(name), "artifacts": self.pipeline.artifacts,
                  "spec_hash": self.spec_file.sha256}  # fmt: skip
        if kind in (StepKind.SQL, StepKind.TABLE):
            if kind == StepKind.TABLE and name not in self.exported:
                return None
            return RunPlan(**common, warehouse=self.warehouse, sql=step.sql, table=step.table)
        if kind == StepKind.PYTHON:
            command = Command(function=step.python)
        elif kind in (StepKind.SPARK, StepKind.RAY):
            code = getattr(step, kind)
            script = code if isinstance(code, SparkScript) else None
            command = Command(function=code) if script is None else Command(argv=tuple(script.args), script=script.file)
        else:
            argv = ["/bin/sh", "-c", step.command] if isinstance(step.command, str) else step.command
            command = Command(argv=tuple(argv))
        runner = Runner(self.profile.runner)
        image = _merged(self.pipeline, step, "image")
        if runner == Runner.KUBERNETES and not image:
            self.problems.append(
                Problem(("steps", name), f"step `{name}` has no image: set `image:` on it or under `defaults:`")
            )
        job = self.cluster_job(name, step, runner) if kind in (StepKind.SPARK, StepKind.RAY) else None
        # a cluster's pods are sized by its groups (`driver:`, `executors:`, ...); the task's own
        # process (the local runner's) by the leader's ask
        ask = _merged(self.pipeline, step, "resources") if job is None else None
        env, secrets = self.environment(step)
        return RunPlan(
            **common,
            runner=runner,
            command=command,
            image=image,
            inputs=self.inputs(name, step),
            inputs_as_list=isinstance(step.inputs, list),
            args=dict(step.args or {}),
            env=env,
            secrets=secrets,
            resources=self.resources(ask) if job is None else None,
            placement=self.placement(name, ask) if runner == Runner.KUBERNETES and job is None else None,
            pod=self.pod_settings() if runner == Runner.KUBERNETES else None,
            foreach=self.foreach(name, step),
            job=job,
            code_folder=self.code_folder,
            code_max_size=byte_count(self.pipeline.code_max_size) if self.pipeline.code_max_size else None,
        )

    def cluster_job(self, name: str, step: Step, runner: Runner) -> ClusterJob:
        """A spark or ray step's cluster: its leader (Spark's driver, Ray's head) and its workers
        (executors, Ray's worker group), each sized by the spec with the profile's defaults and
        placed by the profile (a GPU ask: the profile's GPU selector, labels and tolerations)."""
        spark = step.kind == "spark"
        leader_ask = step.driver if spark else step.head
        group = step.executors if spark else step.workers
        workers_key = "executors" if spark else "workers"
        ask = Resources(cpu=group.cpu, memory=group.memory, gpu=group.gpu, gpu_type=group.gpu_type) if group else None
        leader = Resources(cpu=leader_ask.cpu, memory=leader_ask.memory) if leader_ask else None
        placed = runner == Runner.KUBERNETES
        if ask and ask.gpu and placed and not self.profile.gpu_nodes:
            self.problems.append(
                Problem(
                    ("steps", name, workers_key, "gpu"),
                    f"profile `{self.profile.name}` has no GPU nodes (`gpu_nodes: false`): remove `gpu:`, or run "
                    "the pipeline on a profile with GPU nodes",
                )
            )
        if spark:
            dynamic = step.dynamic_allocation
            replicas = (group.instances if group and group.instances else None) or (dynamic.min if dynamic else 1)
            bounds = {"min_replicas": dynamic.min, "max_replicas": dynamic.max} if dynamic else {}
        else:
            replicas, bounds = (group.replicas if group else 1), {}
        gpu_key = ("steps", name, workers_key)
        workers, driver = self.resources(ask), self.resources(leader)
        if spark:
            for key, pod in (("driver", driver), ("executors", workers)):
                self.spark_memory(name, key, pod.requests["memory"], getattr(step, key))
            if workers.gpu:
                self.gpu_share(name, workers.gpu, workers.requests["cpu"])
        return ClusterJob(
            leader=NodeGroup(driver, self.placement(name, leader) if placed else None),
            workers=NodeGroup(workers, self.placement(name, ask, gpu_key) if placed else None, replicas, **bounds),
            conf=dict(step.spark_conf or {}),
            runtime_env=dict(step.runtime_env or {}),
        )

    def spark_memory(self, name: str, key: str, memory: str, asked) -> None:
        """A Spark pod's memory is its JVM's heap plus at least 384 MiB outside it
        (``runners.spark_application.memory_split``); below 1Gi the heap is too small for Spark
        to start (it wants 450 MiB), which would fail only when the pod runs."""
        if memory_bytes(memory) >= MIN_SPARK_MEMORY:
            return
        where = ("steps", name, key, "memory") if asked is not None and asked.memory else ("steps", name)
        self.problems.append(
            Problem(
                where,
                f"`{key}` memory {memory} is too small for Spark: a Spark pod needs at least 1Gi (384Mi outside the "
                "JVM's heap, and a heap of at least 450Mi): ask for `memory: 1Gi` or more",
            )
        )

    def gpu_share(self, name: str, gpus: int, cpu: str) -> None:
        """RAPIDS runs every executor task slot (one per core) on an equal share of the executor's
        GPUs, and Spark takes a task's GPU amount only as a whole number or as one GPU over a whole
        number of tasks (at most 0.5): so the cores must be a multiple of the GPUs or the GPUs of
        the cores. Refused here, at the ask, rather than by Spark when the executors start."""
        cores = max(1, math.ceil(int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)))
        if cores % gpus == 0 or gpus % cores == 0:
            return
        fits = sorted({c for c in (gpus, 2 * gpus, cores - cores % gpus) if c >= 1})
        self.problems.append(
            Problem(
                ("steps", name, "executors", "gpu"),
                f"executors with {gpus} GPUs and {cores} cores: Spark shares an executor's GPUs evenly among its "
                f"task slots (one per core), so the cores must be a multiple of the GPUs or the GPUs of the cores "
                f"(e.g. `cpu: {fits[0]}`" + "".join(f" or `cpu: {c}`" for c in fits[1:]) + ")",
            )
        )

    # -- foreach: mapped steps ---------------------------------------------------------------------
    def same_items(self, name: str, producer: str, seen: frozenset = frozenset()) -> bool:
        """Whether step ``name`` runs over the same items as the mapped ``producer``: it maps over
        the producer's items (``{step: producer}``, or a step that does, transitively), or both
        have the same literal list or param."""
        mine, theirs = self.pipeline.steps[name].foreach, self.pipeline.steps[producer].foreach
        if (name, producer) in seen:  # a loop of `foreach: {step: ...}` references
            return False
        seen = seen | {(name, producer)}
        if isinstance(mine, ForeachStep) and mine.column is None and mine.step in self.mapped:
            return mine.step == producer or self.same_items(mine.step, producer, seen)
        if isinstance(theirs, ForeachStep) and theirs.step in self.mapped:
            return self.same_items(name, theirs.step, seen)
        return mine == theirs and not isinstance(mine, ForeachStep)

    def inputs(self, name: str, step: Step) -> tuple[InputRef, ...]:
        """Inputs; one from a mapped step is that item's output in a mapped step over the same
        items (map -> map), or every item's output (a fan-in) in a step that is not mapped."""
        refs = []
        for arg, producer in step.input_map.items():
            ref = InputRef(arg, self.output(producer))
            if producer in self.mapped and name not in self.mapped:
                ref = InputRef(arg, ref.artifact, gather=True)
            elif producer in self.mapped and not self.same_items(name, producer):
                self.problems.append(
                    Problem(
                        ("steps", name, "foreach"),
                        f"input `{arg}` comes from `{producer}`, which runs per item over other items: each item "
                        f"of `{name}` would need one of them. Write `foreach: {{step: {producer}}}` to run over "
                        f"the same items, or read all of them in a step without `foreach:` (a fan-in)",
                    )
                )
            refs.append(ref)
        return tuple(refs)

    def foreach(self, name: str, step: Step) -> Foreach | None:
        """The step's items, checked here: a literal list or param default within Airflow's
        max_map_length, an upstream step it waits for, no nesting."""
        spec = step.foreach
        if spec is None:
            return None
        at = ("steps", name, "foreach")

        def problem(where: tuple, message: str) -> None:
            self.problems.append(Problem(where, message))

        if step.publish:
            problem(("steps", name, "publish"), f"`{name}` runs per item: publish from a step that reads all its items "
                    "(one without `foreach:` that takes it as an input)")  # fmt: skip
        if isinstance(spec, ForeachParam):
            params, param = self.pipeline.params, spec.param
            if param not in params:
                known = ", ".join(f"`{p}`" for p in params) or "none"
                problem((*at, "param"), f"`{param}` is not a param of this pipeline (params: {known}); declare it "
                        "under `params:` with a list default")  # fmt: skip
            elif not isinstance(params[param], list):
                problem((*at, "param"), f"param `{param}` is a {type(params[param]).__name__}, not a list: "
                        "`foreach:` runs the step once per item of a list")  # fmt: skip
            elif len(params[param]) > MAX_MAP_LENGTH:
                problem((*at, "param"), too_many_items(len(params[param])))
            return Foreach(param=param, max_parallel=step.max_parallel)
        if isinstance(spec, ForeachStep):
            other = spec.step
            if other not in self.pipeline.steps or other == name:
                problem((*at, "step"), f"`{other}` is not another step of this pipeline")
            elif other in self.mapped and spec.column is not None:
                problem((*at, "column"), f"`{other}` runs per item: a foreach over a column of each of its items "
                        "would nest mapping, which is not supported")  # fmt: skip
            elif other not in self.mapped and self.pipeline.steps[other].kind == "table":
                problem((*at, "step"), f"`{other}` is a table step: read it with a `sql:` step and run over that "
                        "step's rows")  # fmt: skip
            return Foreach(step=other, step_mapped=other in self.mapped, column=spec.column,
                           max_parallel=step.max_parallel)  # fmt: skip
        return Foreach(items=tuple(spec), max_parallel=step.max_parallel)

    def items_task(self, name: str, run: RunPlan | None, start: tuple[str, ...], settings: TaskSettings) -> tuple:
        """A mapped step's items task (its list, resolved at run time); the step's tasks start
        after it and expand over its list. Without `foreach:`, ``start`` as it is."""
        foreach = run.foreach if run is not None else None
        if foreach is None:
            return start
        source = None
        if foreach.step and foreach.step in self.pipeline.steps:
            source = ArtifactRef(self.dag_id, foreach.step, each=foreach.step_mapped)
            start = (*start, *self.gates.get(foreach.step, ()))
        body = ItemsPlan(name, foreach, ArtifactRef(self.dag_id, name, each=True), self.pipeline.artifacts, source)
        return (self.add(name, TaskRole.ITEMS, body, settings, tuple(dict.fromkeys(start))),)

    def map_tasks(self, name: str, step: Step) -> None:
        """A mapped step's run, checks and metrics: one instance per item of its items task."""
        if name not in self.mapped:
            return
        over = f"{name}.{TaskRole.ITEMS}"
        expansion = Expansion(over, step.max_parallel)
        roles = (TaskRole.RUN, TaskRole.CHECKS, TaskRole.METRICS)
        self.tasks = [
            dataclasses.replace(t, expand=expansion) if t.group == name and t.role in roles else t for t in self.tasks
        ]

    def quality_source(self, name: str, step: Step) -> QualitySource:
        """Where checks read the data: the warehouse for table and sql steps (pushdown; a sql
        step's output also names its columns), the Parquet output otherwise."""
        if step.kind == "table":
            return QualitySource(SourceKind.TABLE, table=step.table)
        if step.kind == "sql":
            return QualitySource(SourceKind.QUERY, query=step.sql, artifact=self.output(name))
        return QualitySource(SourceKind.ARTIFACT, artifact=self.output(name))

    def schema_change_source(self, name: str, step: Step) -> None:
        """A `schema_change` check compares the step's committed outputs (their manifests) in the
        artifact store; a `table` step reads a table in place and leaves none."""
        if step.kind != "table":
            return
        for index, check in enumerate(step.checks):
            if check.schema_change is not None:
                self.problems.append(
                    Problem(
                        ("steps", name, "checks", index, "schema_change"),
                        f"`{name}` is a table step: it leaves no output in the artifact store for `schema_change` "
                        f"to compare across runs. Check its columns with `schema:`, or put the check on a `sql:` "
                        f"step that selects from the table",
                    )
                )

    def when_task(self, name: str, step: Step, start: tuple[str, ...], settings: TaskSettings) -> tuple[str, ...]:
        """The step's condition task (after its producers and the quality tasks it reads); the
        step's tasks start after it. Without `when:`, ``start`` as it is."""
        if step.when is None:
            return start
        condition = compile_condition(step.when)
        body = WhenPlan(name, condition, self.warehouse, self.pipeline.results_schema, self.spec_file.sha256[:16],
                        reads_results(condition))  # fmt: skip
        return (self.add(name, TaskRole.WHEN, body, settings, (*start, *sorted(results_tasks(condition)))),)

    def plan_step(self, name: str, step: Step) -> None:
        start = self.start(step)
        settings = self.task_settings(step)  # every task of the step's group takes them
        start = self.when_task(name, step, start, settings)
        if step.operator is not None:  # the user's operator: one task, no output, nothing to check
            body = OperatorPlan(name, step.operator, dict(step.args or {}))
            self.gates[name] = (self.add(name, TaskRole.RUN, body, settings, start),)
            return
        run = self.run_plan(name, step)
        start = self.items_task(name, run, start, settings)
        run_task = self.add(name, TaskRole.RUN, run, settings, start) if run else None
        after_run = (run_task,) if run_task else start
        gates = list(after_run)
        source = self.quality_source(name, step)
        quality = {
            "step": name,
            "warehouse": self.warehouse,
            "source": source,
            "artifacts": self.pipeline.artifacts,
            "results_schema": self.pipeline.results_schema,
            "spec_hash": self.spec_file.sha256[:16],
            "image": run.image if run else None,
        }
        if step.checks:
            self.schema_change_source(name, step)
            checks = tuple(compile_check(c) for c in step.checks)
            sensitive = tuple(c.lower() for c in step.sensitive)
            body = QualityPlan(**quality, checks=checks, sensitive=sensitive)
            task = self.add(name, TaskRole.CHECKS, body, settings, after_run)
            if any(c.severity == Severity.ERROR for c in checks):
                gates.append(task)
        if step.metrics:
            metrics = tuple(compile_metric(m) for m in step.metrics)
            task = self.add(name, TaskRole.METRICS, QualityPlan(**quality, metrics=metrics), settings, after_run)
            if any(m.severity == Severity.ERROR for m in metrics):
                gates.append(task)
        if step.publish:
            publish = step.publish
            body = PublishPlan(
                step=name,
                warehouse=self.warehouse,
                source=QualitySource(SourceKind.ARTIFACT, artifact=self.output(name)),
                artifacts=self.pipeline.artifacts,
                table=publish.table,
                mode=publish.mode,
                keys=tuple(publish.keys or ()),
            )
            self.add(name, TaskRole.PUBLISH, body, settings, tuple(gates), (AssetRef(publish.table),))
        if step.serve:  # one promotion of the endpoint at a time: concurrent runs (catchup, backfill) queue
            serving = dataclasses.replace(settings, max_active_tis_per_dag=1)
            self.add(name, TaskRole.SERVE, self.serve_plan(name, step), serving, tuple(gates))
        self.map_tasks(name, step)
        self.gates[name] = tuple(gates)

    def serve_plan(self, name: str, step: Step) -> ServePlan:
        """A `serve:` step's promotion: its model (the step's output), the table that gives its
        signature and smoke-test rows, and on Kubernetes the model server's size and place and
        KServe's deployment mode (a `canary:` where that mode cannot split traffic, or `min: 0`
        where it cannot scale to zero, is a problem)."""
        serve = step.serve
        key = ("steps", name, "serve")
        sample = serve.sample or next(iter(step.input_map.values()), None)
        if sample is None:
            self.problems.append(
                Problem(
                    key,
                    f"`{name}` has no input to take the model's signature and smoke-test rows from: add "
                    "`sample: <step>` naming the step whose table the model reads",
                )
            )
        elif sample not in self.ancestors(name):
            self.problems.append(
                Problem(
                    (*key, "sample") if serve.sample else key,
                    f"`sample: {sample}` must name a step `{name}` runs after (its rows are read when the model "
                    "is served): name one of its inputs, or a step they read",
                )
            )
        elif sample in self.mapped:
            self.problems.append(
                Problem((*key, "sample"), f"`{sample}` runs per item: name a step with one table as `sample`")
            )
        runner = Runner.KUBERNETES if self.profile.runner == "kubernetes" else Runner.LOCAL
        mode = ServingMode(self.profile.serving_mode)
        if serve.canary is not None and runner == Runner.KUBERNETES and mode != ServingMode.KNATIVE:
            self.problems.append(
                Problem(
                    (*key, "canary"),
                    f"profile `{self.profile.name}` deploys endpoints in KServe's {mode} mode, which ignores "
                    "`canary` and would send all traffic to the new model at once: remove `canary`, or use a "
                    "profile with `serving_mode: Knative`",
                )
            )
        if serve.replicas.min == 0 and runner == Runner.KUBERNETES and mode != ServingMode.KNATIVE:
            self.problems.append(
                Problem(
                    (*key, "replicas", "min"),
                    f"profile `{self.profile.name}` deploys endpoints in KServe's {mode} mode, which does not scale "
                    "to zero: set `min: 1` (or more), or use a profile with `serving_mode: Knative`",
                )
            )
        placed = {}
        if runner == Runner.KUBERNETES:
            ask = serve.resources
            asked = Resources(**ask.model_dump(exclude_none=True)) if ask else None
            if asked and asked.gpu and not self.profile.gpu_nodes:
                self.problems.append(
                    Problem(
                        (*key, "resources", "gpu"),
                        f"profile `{self.profile.name}` has no GPU nodes (`gpu_nodes: false`): remove `gpu:`",
                    )
                )
            placed = {
                "resources": self.resources(asked),
                "placement": self.placement(name, asked, (*key, "resources")),
                "pod": self.pod_settings(),
                "runtime": KSERVE_RUNTIMES[ModelFormat(serve.format)],
            }
        return ServePlan(
            step=name,
            endpoint=serve.endpoint,
            format=ModelFormat(serve.format),
            model=self.output(name),
            sample=self.output(sample or name),
            artifacts=self.pipeline.artifacts,
            runner=runner,
            warehouse=self.warehouse,
            results_schema=self.pipeline.results_schema,
            spec_hash=self.spec_file.sha256[:16],
            columns=tuple(serve.columns or ()),
            smoke_rows=serve.smoke_rows,
            canary=serve.canary,
            min_replicas=serve.replicas.min,
            max_replicas=serve.replicas.max,
            mode=mode,
            **placed,
        )

    def ancestors(self, name: str) -> set[str]:
        """The steps ``name`` runs after, directly or through others."""
        found: set[str] = set()
        todo = list(self.pipeline.steps[name].upstream)
        while todo:
            step = todo.pop()
            if step in found or step not in self.pipeline.steps:
                continue
            found.add(step)
            todo.extend(self.pipeline.steps[step].upstream)
        return found

    def plan(self) -> DagPlan:
        steps = set(self.pipeline.steps)  # a `foreach:` naming no other step: reported by foreach()
        graph = {n: s.upstream & steps - {n} for n, s in self.pipeline.steps.items()}
        for n, s in self.pipeline.steps.items():  # a `when:` reads its referenced steps' results
            graph[n] |= referenced_steps(s.when) if s.when is not None else set()
        for name in graphlib.TopologicalSorter(graph).static_order():
            self.plan_step(name, self.pipeline.steps[name])
        if self.problems:
            raise ProblemsFound(self.problems)
        pipeline = self.pipeline
        schedule, schedule_assets = planned_schedule(pipeline.schedule)
        order = {name: i for i, name in enumerate(pipeline.steps)}
        ttl = pipeline.artifacts_ttl or self.profile.artifacts_ttl
        tasks = sorted(self.tasks, key=lambda t: (order[t.group], self.tasks.index(t)))
        return DagPlan(
            dag_id=self.dag_id,
            source=self.source,
            spec_sha256=self.spec_file.sha256,
            description=pipeline.description,
            doc_md=spec_doc(pipeline.description, self.source, self.spec_file.text),
            schedule=schedule,
            schedule_assets=schedule_assets,
            start_date=pipeline.start_date,
            end_date=pipeline.end_date,
            catchup=pipeline.catchup,
            tags=tuple(dict.fromkeys(["aq", *pipeline.tags])),
            params=dict(pipeline.params),
            max_active_runs=pipeline.max_active_runs,
            dagrun_timeout=_seconds(pipeline.timeout),
            default_args={"owner": pipeline.owner},
            on_failure=CallbackRef(pipeline.on_failure) if pipeline.on_failure else None,
            warehouse=self.warehouse,
            results_schema=pipeline.results_schema,
            groups=tuple(GroupPlan(name, f"{step.kind} step") for name, step in pipeline.steps.items()),
            tasks=tuple(tasks),
            artifacts=pipeline.artifacts,
            artifacts_ttl=_seconds(ttl),
        )


def planned_schedule(schedule: str | ScheduleAfter | None) -> tuple[str | None, tuple[AssetRef, ...]]:
    """A spec's ``schedule:`` as the DAG's: a cron or preset (None: triggered only), or the
    tables whose publishing triggers it, as Assets."""
    if schedule is None or isinstance(schedule, str):
        return schedule, ()
    return None, tuple(AssetRef(table) for table in schedule.after)


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
