"""The Plan: a pipeline as typed, runner-neutral data.

Both backends read only this: ``live_dags`` turns it into live DAG objects at parse time and
``codegen`` renders it as Python source. The Plan says *what* runs (a step's kind, command,
resolved resources and placement, artifact references, compiled checks with their defaults and
durations resolved), never which operator class runs it: ``aq_airflow.operators.registry``
decides that.
Every fact is decided once, in the planner; later layers read fields, they never re-derive them.

Every class here is a frozen dataclass of plain values (str, int, float, bool, None, tuples,
dicts of those, datetimes and the classes below), so a plan can be cached as JSON
(``plan.store``) and written as Python literals (``codegen``).
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class StepKind(StrEnum):
    """What computes a step's output (exactly one per step)."""

    SQL = "sql"  # a query in the warehouse
    TABLE = "table"  # an existing warehouse table: exported only when a python/command step reads it
    PYTHON = "python"  # module:function called by the aq runtime in the step's image
    COMMAND = "command"  # any container command; inputs and output locations in its environment
    SPARK = "spark"  # PySpark: a SparkApplication on Kubernetes, local mode on the local runner
    RAY = "ray"  # a Ray job's entrypoint: a KubeRay RayJob on Kubernetes, a local Ray on the local runner


class Runner(StrEnum):
    """Where a python, command, spark or ray step runs (sql and table steps run in the warehouse)."""

    KUBERNETES = "kubernetes"
    LOCAL = "local"


class Severity(StrEnum):
    ERROR = "error"  # fails the task and blocks what depends on the step
    WARNING = "warning"  # recorded and logged; the task stays green


class SourceKind(StrEnum):
    """Where checks and metrics read a step's data."""

    TABLE = "table"  # a warehouse table (pushdown)
    QUERY = "query"  # a sql step's query (pushdown)
    ARTIFACT = "artifact"  # the step's Parquet output in the artifact store (DuckDB over Parquet)


@dataclass(frozen=True, slots=True)
class Seconds:
    """A duration; a ``timedelta`` in the DAG."""

    value: int


@dataclass(frozen=True, slots=True)
class AssetRef:
    """An Airflow Asset named after a warehouse table (publish outlets, ``schedule: {after}``)."""

    name: str

    @property
    def uri(self) -> str:
        return f"aq://warehouse/{self.name}"


@dataclass(frozen=True, slots=True)
class CallbackRef:
    """A ``module:callable`` the DAG calls on failure; imported when called, never at parse time."""

    path: str


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A step's output in the artifact store: ``{dag_id}/{run_id}/{step}`` under the store root.

    The run id is known only at run time, so a reference holds the rest; ``map_index`` is the
    item of a mapped step (None: the step is not mapped).
    """

    dag_id: str
    step: str
    map_index: int | None = None
    each: bool = False  # a mapped step's output, one per item: `item(map_index)` names one

    def item(self, map_index: int | str) -> ArtifactRef:
        """One item's output of a mapped step (``map_index`` may be an Airflow template in a
        pod's environment, rendered per item)."""
        return dataclasses.replace(self, map_index=map_index, each=False)

    def path(self, run_id: str) -> str:
        """The output's folder relative to the store root for one run.

        The dag_id and step follow the spec's rules (never ``.``, ``..`` or a ``/``); the run id
        comes from Airflow, whose default pattern admits ``.`` (and ``..`` under
        ``allow_double_dot_in_ids``), so one that is not a single plain path segment is refused
        rather than let a run write into another run's or pipeline's folder."""
        if run_id in ("", ".", "..") or any(c in run_id for c in "/\\\0"):
            raise ValueError(f"run id {run_id!r} cannot name an artifact folder: it is not one plain path segment")
        item = "" if self.map_index is None else f"/{self.map_index}"
        return f"{self.dag_id}/{run_id}/{self.step}{item}"

    def location(self, root: str, run_id: str) -> str:
        """The output's folder (a path or URI) under the store ``root`` for one run."""
        return f"{root.rstrip('/')}/{self.path(run_id)}"


@dataclass(frozen=True, slots=True)
class InputRef:
    """One input of a step: the argument it binds to and the output that feeds it."""

    argument: str
    artifact: ArtifactRef
    gather: bool = False  # fan-in: every item's output of a mapped producer, in item order


@dataclass(frozen=True, slots=True)
class SecretEnv:
    """An environment variable whose value comes from a Kubernetes Secret, by reference only."""

    name: str
    secret: str
    key: str


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """Airflow task settings a step gives every task of its group (run, checks, metrics, publish),
    and those the planner decides for one role (``max_active_tis_per_dag``: a serve task promotes
    one endpoint, one run at a time)."""

    retries: int | None = None
    retry_delay: Seconds | None = None
    execution_timeout: Seconds | None = None
    pool: str | None = None
    max_active_tis_per_dag: int | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """What a python or command step's container runs.

    ``function`` (``module:function``) runs under the aq runtime, which reads inputs, calls it and
    commits its output; ``argv`` is the user's own command, whose files the task commits after;
    ``script`` is a Spark script the runtime runs with ``argv`` as its arguments (and commits).
    """

    function: str | None = None
    argv: tuple[str, ...] = ()
    script: str | None = None  # a spark step's `{file: ...}`, relative to the code folder; its args in ``argv``

    @property
    def runs_runtime(self) -> bool:
        """The aq runtime runs the step and commits its output (a function, or a Spark script
        whose files it commits); a plain command's files the task commits after."""
        return self.function is not None or self.script is not None


@dataclass(frozen=True, slots=True)
class ComputeResources:
    """Requests and limits with the profile's defaults filled in; ``asked`` is what the spec
    itself asked (the local runner reports it; profile defaults are no ask)."""

    requests: dict[str, str]
    limits: dict[str, str]
    asked: dict[str, Any]
    gpu: int = 0


@dataclass(frozen=True, slots=True)
class Placement:
    """Which nodes a pod may run on: a node selector, required affinity labels (a label that
    maps to several values), and tolerations."""

    node_selector: dict[str, str] = field(default_factory=dict)
    node_affinity: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """The pods of one role of a step's cluster (Spark's driver or executors, Ray's head or
    workers): the size of each, where they may run, how many. ``placement`` is None on the local
    runner. ``min_replicas``/``max_replicas``: Spark's dynamic allocation (``replicas`` is then
    the initial count)."""

    resources: ComputeResources
    placement: Placement | None = None
    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None


@dataclass(frozen=True, slots=True)
class ClusterJob:
    """A spark or ray step's cluster, decided from the spec and the profile: the leader (Spark's
    driver, Ray's head) and the workers (executors, Ray's worker group), and the engine's own
    settings passed through (``spark_conf``; Ray's ``runtime_env``). What runs is the step's
    ``RunPlan.command``: a function, or a Spark script."""

    leader: NodeGroup
    workers: NodeGroup
    conf: dict[str, Any] = field(default_factory=dict)
    runtime_env: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PodSettings:
    """The cluster profile's settings for every pod of a pipeline."""

    namespace: str
    kubernetes_conn_id: str
    service_account: str | None
    image_pull_policy: str
    run_as_user: int
    # a spark step's SparkApplication (`runners.spark_application`): the main file the image holds
    # (aq-airflow's launcher, `runtime/spark_main.py`) and the image's Spark version; the
    # profile's (`plan.profiles.Profile`, which holds their defaults)
    spark_launcher: str
    spark_version: str
    labels: dict[str, str] = field(default_factory=dict)  # the profile's own pod labels


@dataclass(frozen=True, slots=True)
class RunPlan:
    """The compute of one step: a warehouse query or export, or a process (a pod or a local one).

    ``env`` holds the user's plain environment values; the runners add the aq contract's
    variables (``runtime.contract``) from the typed fields.
    """

    step: str
    kind: StepKind
    output: ArtifactRef
    artifacts: str | None  # the store root the spec names (None: the worker's local folder)
    warehouse: str | None = None  # connection id (sql and table steps)
    sql: str | None = None
    table: str | None = None
    runner: Runner | None = None  # python and command steps
    command: Command | None = None
    image: str | None = None
    inputs: tuple[InputRef, ...] = ()
    inputs_as_list: bool = False  # `inputs: [a, b]` (bind by name, then in order) vs a map
    args: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[SecretEnv, ...] = ()
    # a python or command step's process (placement: its pod's); a spark or ray step's are its
    # `job`'s groups (None here: one fact, one place)
    resources: ComputeResources | None = None
    placement: Placement | None = None
    pod: PodSettings | None = None
    foreach: Foreach | None = None  # a mapped step: the item arrives as `item` / AQ_ITEM
    # python and command steps: the folder of the step's own code (the spec's folder, or `code:`),
    # relative to the dags folder ("." at its root), shipped as the run's code package
    # (`runners.code`); None for `code: image` (nothing shipped)
    code_folder: str | None = None
    # the most bytes the code package's files may hold (the spec's `code_max_size`); None: the
    # default (`artifacts.code_package.DEFAULT_SIZE_LIMIT`)
    code_max_size: int | None = None
    spec_hash: str | None = None  # the sha256 of the spec's text, recorded in its outputs' provenance
    job: ClusterJob | None = None  # spark and ray steps: their cluster (`runners.custom_resource` builds it)


@dataclass(frozen=True, slots=True)
class Foreach:
    """Where a mapped step's items come from (exactly one of ``items``, ``param``, ``step``).

    ``step`` names a mapped step (the same items: a map -> map chain) or a step whose output
    holds them (a list object; a table: one item per row as a dict, or per distinct ``column``
    value)."""

    items: tuple[Any, ...] | None = None
    param: str | None = None
    step: str | None = None
    step_mapped: bool = False  # `step` is itself mapped: its items, not its output
    column: str | None = None
    max_parallel: int | None = None


@dataclass(frozen=True, slots=True)
class ItemsPlan:
    """A mapped step's item list, resolved at run time: recorded beside the items' outputs
    (``_items.json`` in the step's folder) and returned for Airflow to expand over."""

    step: str
    foreach: Foreach
    output: ArtifactRef  # the mapped step's folder
    artifacts: str | None
    source: ArtifactRef | None = None  # `foreach: {step: s}`: s's output, or s's items when mapped


@dataclass(frozen=True, slots=True)
class Expansion:
    """A mapped task: one instance per item of the ``over`` task's list."""

    over: str  # the task id of the step's items task
    max_parallel: int | None = None


@dataclass(frozen=True, slots=True)
class QualitySource:
    """The data a step's checks and metrics read."""

    kind: SourceKind
    table: str | None = None
    query: str | None = None
    artifact: ArtifactRef | None = None  # a sql step's output names its columns for `schema` checks


# Fields of checks and metrics that may hold Airflow templates (``"{{ params.min_rows }}"``).
TEMPLATED_FIELDS = ("low", "high", "values", "where", "expression", "sql", "kwargs")


@dataclass(frozen=True, slots=True)
class CheckPlan:
    """One check, compiled: its kind, severity and durations resolved; the kind's values in
    typed fields (unused ones stay empty)."""

    name: str
    # not_null, unique, between, accepted_values, row_count, freshness, expression, schema, schema_change, expect, sql
    kind: str
    severity: Severity
    columns: tuple[str, ...] = ()  # not_null / unique: the columns; between, accepted_values, freshness, expect: one
    low: Any = None  # between / row_count lower bound
    high: Any = None  # between / row_count upper bound
    values: tuple[Any, ...] = ()  # accepted_values
    max_age: int | None = None  # freshness, in seconds
    max_age_text: str | None = None  # freshness, as written (for messages)
    expression: str | None = None
    sql: str | None = None
    schema: dict[str, str] = field(default_factory=dict)
    changes: tuple[str, ...] = ()  # schema_change: the kinds that fail it (added, removed, retyped)
    expect: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    where: str | None = None
    mostly: float | None = None
    description: str | None = None

    @property
    def column(self) -> str | None:
        """The one column the check is about, if it is about one (lineage, samples)."""
        return self.columns[0] if len(self.columns) == 1 else None


# Values a learned (z-score) bound needs before it applies, when the spec does not say
# (`history: {min_history: N}`); the window, when smaller. The z-score of a new value against n
# earlier ones uses their sample mean and standard deviation, and for normal noise it follows
# Student's t with n - 1 degrees of freedom scaled by sqrt(1 + 1/n), not a normal: with 3 values
# a perfectly ordinary day scores |z| > 3 one time in 8 (12.2%) and |z| > 4.85 one time in 19
# (5.2%: the "4.85 sd" alarm on day 4). With 5 values |z| > 3 is 5.2%, with 7 it is 3.1%
# (|z| > 4.85: 0.39%), with 10 1.9%, with 14 1.2% (0.27% if the mean and deviation were known).
# 7 (a week of daily runs) is where the false-alarm rate has fallen fourfold from 3 values;
# each value after it buys little. docs/architecture.md has the table.
DEFAULT_MIN_HISTORY = 7


@dataclass(frozen=True, slots=True)
class MetricPlan:
    """One metric, compiled: kind, severity and bounds resolved (``max_change`` as a fraction)."""

    name: str
    kind: str  # count, mean, min, max, sum, stddev, null_fraction, distinct_count, quantile, expression
    severity: Severity
    column: str | None = None  # "*" for `count: "*"`
    q: float | None = None  # quantile
    expression: str | None = None
    where: str | None = None
    bounds_min: float | None = None
    bounds_max: float | None = None
    history_window: int | None = None  # earlier logical dates learned from (one value each)
    max_zscore: float | None = None
    min_history: int | None = None  # earlier dates needed before the learned bound applies
    max_change: float | None = None
    description: str | None = None

    @property
    def history_needed(self) -> int:
        """How many earlier dates' values the bounds need (0: none)."""
        return self.history_window or (1 if self.max_change is not None else 0)

    @property
    def history_minimum(self) -> int:
        """Earlier values needed before the z-score bound applies (see DEFAULT_MIN_HISTORY)."""
        return self.min_history or min(DEFAULT_MIN_HISTORY, self.history_window or DEFAULT_MIN_HISTORY)


@dataclass(frozen=True, slots=True)
class QualityPlan:
    """A step's checks or its metrics (one task each), over one source, in one scan."""

    step: str
    warehouse: str
    source: QualitySource
    artifacts: str | None
    results_schema: str | None
    spec_hash: str
    image: str | None = None  # the image that computed the data (recorded with each result)
    checks: tuple[CheckPlan, ...] = ()
    metrics: tuple[MetricPlan, ...] = ()
    sensitive: tuple[str, ...] = ()  # columns never shown in failing-row samples (lower case)

    def rendered(self, render) -> QualityPlan:
        """This plan with ``render`` (Airflow's template rendering) applied to what may hold
        templates: a sql step's query (``{{ ds }}``) and the fields of its checks and metrics."""

        def apply(item):
            present = {f.name for f in dataclasses.fields(item)}
            return dataclasses.replace(item, **{n: render(getattr(item, n)) for n in TEMPLATED_FIELDS if n in present})

        return dataclasses.replace(
            self,
            source=dataclasses.replace(self.source, query=render(self.source.query)),
            checks=tuple(apply(c) for c in self.checks),
            metrics=tuple(apply(m) for m in self.metrics),
        )


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """Load a step's output (or watched table) into a warehouse table, after its error checks."""

    step: str
    warehouse: str
    source: QualitySource
    artifacts: str | None
    table: str
    mode: str  # append | replace | merge
    keys: tuple[str, ...] = ()


class ModelFormat(StrEnum):
    """How a served model is written and which runtime loads it: KServe's ``modelFormat`` names.
    MLServer serves every format (on KServe: :data:`KSERVE_RUNTIMES`)."""

    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    ONNX = "onnx"
    MLFLOW = "mlflow"


# KServe's ServingRuntime per format, all MLServer over the Open Inference Protocol (so the
# endpoint answers for the version its model-settings.json names): KServe's own `kserve-mlserver`
# (config/runtimes/kserve-mlserver.yaml: sklearn, xgboost, lightgbm, mlflow), and for onnx one the
# cluster adds (kserve-mlserver lists no onnx, and its image has no onnxruntime; docs/serving.md)
KSERVE_RUNTIMES = {
    ModelFormat.SKLEARN: "kserve-mlserver",
    ModelFormat.XGBOOST: "kserve-mlserver",
    ModelFormat.LIGHTGBM: "kserve-mlserver",
    ModelFormat.MLFLOW: "kserve-mlserver",
    ModelFormat.ONNX: "aq-mlserver-onnx",
}


class ServingMode(StrEnum):
    """KServe's deployment mode (the profile's ``serving_mode``; the InferenceService's
    ``serving.kserve.io/deploymentMode`` annotation)."""

    STANDARD = "Standard"  # a Deployment and a Service (formerly RawDeployment): no traffic split
    KNATIVE = "Knative"  # Knative revisions (formerly Serverless): `canaryTrafficPercent` applies


@dataclass(frozen=True, slots=True)
class ServePlan:
    """Promote a step's model to an endpoint, after the step's error checks and metrics (the gates
    ``publish`` waits for): write it in the format's server layout at a version derived from its
    digest (``artifacts.model_repository``), point the endpoint at it, smoke-test it with
    ``smoke_rows`` rows of ``sample`` over the Open Inference Protocol, roll back on failure, and
    record the attempt (``aq_deployments``).

    ``runner`` decides where the endpoint is: KUBERNETES, a KServe InferenceService (``pod``,
    ``resources``, ``placement`` set; ``mode`` the profile's); LOCAL, the store's model repository,
    served by ``aq-airflow serve`` (the smoke test starts a local model server)."""

    step: str
    endpoint: str
    format: ModelFormat
    model: ArtifactRef  # the step's output: the model object
    sample: ArtifactRef  # a table: the model's input signature and the smoke test's rows
    artifacts: str | None  # the store root the spec names (None: the worker's local folder)
    runner: Runner
    warehouse: str  # where the attempt is recorded (`aq_deployments`)
    results_schema: str | None
    spec_hash: str
    columns: tuple[str, ...] = ()  # the model's input columns as the spec names them (empty: the model's own)
    smoke_rows: int = 5
    canary: int | None = None  # percent of traffic to the new model (Knative mode only)
    min_replicas: int = 1
    max_replicas: int = 1
    mode: ServingMode = ServingMode.STANDARD
    resources: ComputeResources | None = None  # kubernetes: the model server's
    placement: Placement | None = None
    pod: PodSettings | None = None
    runtime: str | None = None  # kubernetes: the KServe ServingRuntime (KSERVE_RUNTIMES)


@dataclass(frozen=True, slots=True)
class ConditionPlan:
    """A `when:` condition, compiled: references resolved to (step, name), one node of a tree.

    ``kind``: ``param`` (``name`` is the param), ``metric`` / ``check`` (``step`` and ``name``),
    ``all`` / ``any`` / ``not`` (``terms``). ``op``: ``truthy``, ``equals``, ``above``, ``below``,
    ``at_least``, ``at_most`` or ``passed`` (a check; ``value`` says true or false). The operand
    is ``value`` (a literal), ``value_param`` (a param) or ``champion`` (the metric's value on
    the latest earlier date on which the step's condition held).
    """

    kind: str
    name: str | None = None
    step: str | None = None
    op: str | None = None
    value: Any = None
    value_param: str | None = None
    champion: bool = False
    terms: tuple[ConditionPlan, ...] = ()


@dataclass(frozen=True, slots=True)
class WhenPlan:
    """The condition task of a step: evaluated before its ``run`` from params and this run's
    results rows; false skips the step (and, through trigger rules, what needs it)."""

    step: str
    condition: ConditionPlan
    warehouse: str
    results_schema: str | None
    spec_hash: str
    reads_results: bool = False  # the condition reads metrics or checks (the warehouse)


@dataclass(frozen=True, slots=True)
class OperatorPlan:
    """An ``operator:`` step: any Airflow operator or sensor class, by its dotted path
    (``module.Class``, imported when the DAG is built), and its keyword arguments (plain data;
    strings may be Airflow templates, which the operator renders as its own fields)."""

    step: str
    class_path: str
    args: dict[str, Any] = field(default_factory=dict)


TaskBody = RunPlan | QualityPlan | PublishPlan | ServePlan | WhenPlan | OperatorPlan


class TaskRole(StrEnum):
    """A task's job in its step's group; with the step kind and runner it picks the operator."""

    WHEN = "when"
    RUN = "run"
    CHECKS = "checks"
    METRICS = "metrics"
    PUBLISH = "publish"
    SERVE = "serve"  # promote the step's model to its endpoint (after the same gates as publish)
    ITEMS = "items"  # a `foreach:` step's item list


# What a task that records results (a step's checks, metrics, or `when:` condition) is in its
# pipeline, kept in the serialized DAG: its operator takes these as arguments of the same names and
# lists them as template fields, the two places Airflow serializes (a mapped task's ``partial()``
# arguments, an unmapped task's template fields). The quality pages (``aq_airflow.ui``), which parse
# no DAG files, read them there: never from the task id, the DAG's docs or the spec.
# ``artifacts_root``: the store the spec names for the step outputs (None: the workers' own,
# ``$AQ_ARTIFACTS``), where the pages read the step output's manifest and provenance.
FACT_FIELDS = ("aq_step", "aq_role", "sensitive_columns", "results_conn_id", "results_schema", "artifacts_root")


@dataclass(frozen=True, slots=True)
class TaskPlan:
    """One Airflow task: its role in the step's group, what it does, and its settings."""

    task_id: str
    group: str
    role: TaskRole
    body: TaskBody
    settings: TaskSettings = TaskSettings()
    upstream: tuple[str, ...] = ()
    outlets: tuple[AssetRef, ...] = ()
    expand: Expansion | None = None  # mapped over a `foreach:` step's items

    def facts(self) -> dict[str, Any]:
        """The :data:`FACT_FIELDS` of a task that records results (plain text and lists, as
        Airflow serializes them); empty for the others."""
        body = self.body
        if self.role not in (TaskRole.CHECKS, TaskRole.METRICS, TaskRole.WHEN):
            return {}
        if not isinstance(body, QualityPlan | WhenPlan):
            return {}
        return {
            "aq_step": body.step,
            "aq_role": str(self.role),
            "sensitive_columns": list(getattr(body, "sensitive", ())),
            "results_conn_id": body.warehouse,
            "results_schema": body.results_schema,
            "artifacts_root": getattr(body, "artifacts", None),
        }


@dataclass(frozen=True, slots=True)
class GroupPlan:
    group_id: str
    tooltip: str


@dataclass(frozen=True, slots=True)
class DagPlan:
    """Everything needed to build one DAG, and nothing that needs Airflow to describe it."""

    dag_id: str
    source: str
    spec_sha256: str
    description: str | None
    doc_md: str | None
    schedule: str | None
    schedule_assets: tuple[AssetRef, ...]
    start_date: datetime.datetime | None
    end_date: datetime.datetime | None
    catchup: bool
    tags: tuple[str, ...]
    params: dict[str, Any]
    max_active_runs: int | None
    dagrun_timeout: Seconds | None
    default_args: dict[str, Any]
    on_failure: CallbackRef | None
    warehouse: str = "aq_warehouse"  # the connection id of sql steps, checks, metrics and publish
    results_schema: str | None = None
    groups: tuple[GroupPlan, ...] = ()
    tasks: tuple[TaskPlan, ...] = ()
    artifacts: str | None = None  # the store root the spec names (None: the worker's local folder)
    artifacts_ttl: Seconds | None = None  # how long run outputs are kept (`aq-airflow gc`)

    def dag_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``DAG(...)``, in a fixed order, leaving out what is unset so the
        DAG gets Airflow's own defaults there."""
        arguments: dict[str, Any] = {
            "dag_id": self.dag_id,
            "description": self.description,
            "schedule": list(self.schedule_assets) if self.schedule_assets else self.schedule,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "catchup": self.catchup,
            "tags": list(self.tags),
            "params": self.params,
            "max_active_runs": self.max_active_runs,
            "dagrun_timeout": self.dagrun_timeout,
            "default_args": self.default_args,
            "on_failure_callback": self.on_failure,
            "doc_md": self.doc_md,
        }
        keep = {"dag_id", "schedule", "catchup"}
        return {k: v for k, v in arguments.items() if k in keep or v not in (None, {}, [])}

    def kept_settings(self) -> KeptSettings:
        """What a placeholder keeps of this DAG should its spec break (see :class:`KeptSettings`)."""
        return KeptSettings(self.schedule, self.schedule_assets, self.start_date, self.end_date, self.on_failure)


@dataclass(frozen=True, slots=True)
class KeptSettings:
    """The DAG arguments a broken spec's placeholder keeps: when it runs and whom it tells.

    Read from what the broken spec still states validly, else from its last plan (the plan
    store records them per spec path), so a typo never silently stops a scheduled pipeline."""

    schedule: str | None = None
    schedule_assets: tuple[AssetRef, ...] = ()
    start_date: datetime.datetime | None = None
    end_date: datetime.datetime | None = None
    on_failure: CallbackRef | None = None


# Every class a plan may hold, by name: the plan store's JSON tags and codegen's imports.
PLAN_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Seconds, AssetRef, CallbackRef, ArtifactRef, InputRef, SecretEnv, TaskSettings, Command, ComputeResources,
        Placement, PodSettings, RunPlan, QualitySource, CheckPlan, MetricPlan, QualityPlan, PublishPlan, TaskPlan,
        GroupPlan, DagPlan, StepKind, Runner, Severity, SourceKind, TaskRole, ConditionPlan, WhenPlan,
    )
}  # fmt: skip
PLAN_TYPES.update({cls.__name__: cls for cls in (Foreach, ItemsPlan, Expansion)})  # `foreach:` steps
PLAN_TYPES[OperatorPlan.__name__] = OperatorPlan  # `operator:` steps
PLAN_TYPES[KeptSettings.__name__] = KeptSettings  # the plan store's per-spec record
PLAN_TYPES.update({cls.__name__: cls for cls in (NodeGroup, ClusterJob)})  # spark and ray steps
PLAN_TYPES.update({cls.__name__: cls for cls in (ServePlan, ModelFormat, ServingMode)})  # `serve:`
