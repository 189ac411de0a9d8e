"""The pipeline spec as pydantic models: the single source of truth for what a
``*.aq.yaml`` file may say, how it is validated, and the JSON schema editors use.

Models are frozen (a validated spec is a value), forbid unknown keys (a typo is an error,
never a silently ignored setting) and are strict: a value is taken as YAML gives it (`"3"` is no
number and `1` no boolean), so the JSON schema editors check accepts exactly what the loader does.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from aq_airflow.pipeline_spec.conditions import Condition
from aq_airflow.pipeline_spec.engines import (
    DynamicAllocation,
    Pod,
    RayWorkers,
    RuntimeEnv,
    SparkConf,
    SparkExecutors,
    SparkScript,
    check_runtime_env,
    check_spark_conf,
)
from aq_airflow.pipeline_spec.foreach import MAX_MAP_LENGTH, Foreach, ForeachStep
from aq_airflow.pipeline_spec.roots import unsafe_root
from aq_airflow.pipeline_spec.secrets import is_credential_name
from aq_airflow.pipeline_spec.serving import SERVING_KINDS, Serve
from aq_airflow.pipeline_spec.types import (
    ByteQuantity,
    CallablePath,
    Column,
    CommandText,
    ConnId,
    CpuQuantity,
    CronOrPreset,
    DagId,
    Duration,
    EnvName,
    GpuType,
    KubeName,
    OperatorClass,
    RetryDelay,
    SizeQuantity,
    SqlCondition,
    SqlExpression,
    SqlQuery,
    StepName,
    TableName,
    Text,
    Timeout,
    Timestamp,
)

Severity = Literal["error", "warning"]
MAX_CHECKS_PER_STEP = 200
Scalar = str | int | float | bool

# The monitoring tables (aq_airflow.results.store): a publish into them would replace or corrupt
# every pipeline's check and metric history.
RESULTS_TABLES = ("aq_check_results", "aq_metric_results")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


def _exactly_one(model: BaseModel, kinds: tuple[str, ...], what: str) -> str:
    present = [k for k in kinds if getattr(model, k) is not None]
    if len(present) != 1:
        found = "none" if not present else " and ".join(f"`{k.rstrip('_')}`" for k in present)
        names = ", ".join(k.rstrip("_") for k in kinds)
        raise ValueError(f"{what} needs exactly one of {names}; found {found}")
    return present[0]


class Resources(Model):
    """What a step asks of its node; the cluster profile turns it into pod settings."""

    cpu: CpuQuantity | None = None
    memory: ByteQuantity | None = None
    gpu: Annotated[int, Field(ge=0, le=64)] | None = None
    gpu_type: GpuType | None = None
    ephemeral_storage: ByteQuantity | None = None

    @model_validator(mode="after")
    def _gpu_type_needs_gpu(self) -> Resources:
        if self.gpu_type is not None and not self.gpu:
            raise ValueError("`gpu_type` is set but `gpu` is not: add `gpu: 1` (or more)")
        return self


class SecretRef(Model):
    """A value taken from a Kubernetes Secret at run time; the spec never holds the value."""

    secret: KubeName
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$")]


EnvValue = Scalar | SecretRef


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ordered(low: Any, high: Any, what: str) -> None:
    """``low <= high`` when both are numbers (templates such as "{{ params.x }}" are known only
    at run time)."""
    if _is_number(low) and _is_number(high) and low > high:
        raise ValueError(f"{what} is reversed: the minimum ({low:g}) is above the maximum ({high:g}); swap them")


class RowCount(Model):
    min: int | str | None = None
    max: int | str | None = None

    @model_validator(mode="after")
    def _in_order(self) -> RowCount:
        _ordered(self.min, self.max, "`row_count`")
        return self


class AcceptedValues(Model):
    column: Column
    values: Annotated[list[Scalar], Field(min_length=1)]


class Freshness(Model):
    column: Column
    max_age: Duration


class Quantile(Model):
    column: Column
    q: Annotated[float, Field(gt=0, lt=1)]


SCHEMA_CHANGES = ("added", "removed", "retyped")


class SchemaChange(Model):
    """The output's columns against the same step's last output of an earlier logical date: the
    check fails (at its severity) when a change of a kind in `on` happened."""

    on: Annotated[list[Literal["added", "removed", "retyped"]], Field(min_length=1)] = Field(
        default=list(SCHEMA_CHANGES),
        description="The changes that fail the check: columns `added`, `removed`, `retyped` (default: all three).",
    )

    @field_validator("on")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        twice = sorted({kind for kind in value if value.count(kind) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} is listed twice: name each change once")
        return value


ColumnList = Column | Annotated[list[Column], Field(min_length=1)]

CHECK_KINDS = (
    "not_null",
    "unique",
    "between",
    "accepted_values",
    "row_count",
    "freshness",
    "expression",
    "schema_",
    "schema_change",
    "expect",
    "sql",
)


class Check(Model):
    """A pass/fail assertion on a step's output. Exactly one kind key."""

    name: StepName
    not_null: ColumnList | None = None
    unique: ColumnList | None = None
    column: Column | None = Field(None, description="The column that `between` applies to.")
    between: Annotated[tuple[Scalar, Scalar], Field(strict=False)] | None = None  # YAML gives a list
    accepted_values: AcceptedValues | None = None
    row_count: RowCount | None = None
    freshness: Freshness | None = None
    expression: SqlExpression | None = Field(None, description="A boolean SQL expression that must hold for every row.")
    schema_: dict[Column, Text] | None = Field(None, alias="schema", description="Expected columns and types.")
    schema_change: SchemaChange | None = Field(
        None,
        description="Columns added, removed or retyped since the same step's last output of an earlier logical date.",
    )
    expect: Annotated[str, Field(pattern=r"^expect_[a-z0-9_]+$")] | None = Field(
        None, description="A Great Expectations expectation, e.g. `expect_column_values_to_not_be_null`."
    )
    kwargs: dict[str, Any] | None = None
    sql: SqlQuery | None = Field(None, description="Escape hatch: a query returning one boolean.")
    where: SqlCondition | None = None
    severity: Severity = "error"
    mostly: Annotated[float, Field(gt=0, le=1)] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kind = _exactly_one(self, CHECK_KINDS, f"check `{self.name}`")
        if (self.column is not None) != (kind == "between"):
            raise ValueError(f"check `{self.name}`: `column` goes with `between: [lo, hi]`, and only with it")
        if self.kwargs is not None and kind != "expect":
            raise ValueError(f"check `{self.name}`: `kwargs` goes with `expect:` only")
        if kind == "schema_change" and (self.where is not None or self.mostly is not None):
            raise ValueError(
                f"check `{self.name}`: `where` and `mostly` select rows; `schema_change` compares columns: remove them"
            )
        return self

    @field_validator("between")
    @classmethod
    def _between_in_order(cls, value: tuple[Scalar, Scalar] | None) -> tuple[Scalar, Scalar] | None:
        if value is not None:
            _ordered(value[0], value[1], "`between`")
        return value

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None).rstrip("_")


METRIC_KINDS = (
    "count",
    "mean",
    "min",
    "max",
    "sum",
    "stddev",
    "null_fraction",
    "distinct_count",
    "quantile",
    "expression",
)


class Bounds(Model):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _in_order(self) -> Bounds:
        _ordered(self.min, self.max, "`bounds`")
        return self


class History(Model):
    """A learned bound: the value's z-score against the latest passed value of each of the
    `window` earlier logical dates."""

    window: Annotated[int, Field(ge=2, le=1000, description="How many earlier dates to learn from.")]
    max_zscore: Annotated[float, Field(gt=0)]
    min_history: Annotated[int, Field(ge=2, le=1000)] | None = Field(
        None,
        description="Earlier dates needed before the bound applies (until then the metric passes, "
        "learning); default 7, or the window when smaller.",
    )

    @model_validator(mode="after")
    def _min_within_window(self) -> History:
        if self.min_history is not None and self.min_history > self.window:
            raise ValueError(f"`min_history` ({self.min_history}) cannot exceed `window` ({self.window})")
        return self


def _check_change(value: str | float) -> str | float:
    if isinstance(value, str) and not re.fullmatch(r"\d+(\.\d+)?%", value):
        raise ValueError(f"`{value}` is not a change: write a percentage like `20%` or a fraction like 0.2")
    return value


class Metric(Model):
    """A number computed from a step's output, with optional static or learned bounds."""

    name: StepName
    count: Literal["*"] | Column | None = None
    mean: Column | None = None
    min: Column | None = None
    max: Column | None = None
    sum: Column | None = None
    stddev: Column | None = None
    null_fraction: Column | None = None
    distinct_count: Column | None = None
    quantile: Quantile | None = None
    expression: SqlExpression | None = Field(None, description="Any aggregate SQL expression.")
    where: SqlCondition | None = None
    bounds: Bounds | None = None
    history: History | None = None
    max_change: str | Annotated[float, Field(gt=0)] | None = None
    severity: Severity = "warning"
    description: str | None = None

    _max_change = field_validator("max_change")(_check_change)

    @model_validator(mode="after")
    def _one_kind(self) -> Metric:
        _exactly_one(self, METRIC_KINDS, f"metric `{self.name}`")
        if self.history is not None and self.max_change is not None:
            raise ValueError(f"metric `{self.name}`: use `history` or `max_change`, not both")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in METRIC_KINDS if getattr(self, k) is not None)


class Publish(Model):
    """Load the step's output into a warehouse table once its error checks passed."""

    table: TableName = Field(
        description="`table`, `schema.table` or `db.schema.table`; not aq_check_results or aq_metric_results."
    )
    mode: Literal["append", "replace", "merge"] = "append"
    keys: list[Column] | None = None

    @field_validator("table")
    @classmethod
    def _not_the_results_tables(cls, table: str) -> str:
        """In any schema: the connection's default schema (where the results go when
        `results_schema` is unset) and other pipelines' `results_schema` are not known here."""
        if table.rsplit(".", 1)[-1].lower() in RESULTS_TABLES:
            raise ValueError(
                f"`{table}` is where aq-airflow records check and metric results; publishing into it would "
                "replace or corrupt every pipeline's history (in any schema): choose another table name"
            )
        return table

    @model_validator(mode="after")
    def _merge_needs_keys(self) -> Publish:
        if self.mode == "merge" and not self.keys:
            raise ValueError("`mode: merge` needs `keys`: the columns that identify a row")
        return self


def _no_literal_credentials(env: dict[str, EnvValue] | None) -> dict[str, EnvValue] | None:
    for name, value in (env or {}).items():
        if not isinstance(value, SecretRef) and is_credential_name(name, value):
            raise ValueError(
                f"`{name}` looks like a credential: reference a Kubernetes Secret instead, "
                f"`{name}: {{secret: my-secret, key: {name.lower()}}}`"
            )
    return env


def _names_a_program(argv: list[str]) -> list[str]:
    if not argv[0].strip():
        raise ValueError("the first item is blank: it names the program to run")
    return argv


class StepSettings(Model):
    """Settings that `defaults` may give every step."""

    image: Text | None = None
    resources: Resources | None = None
    env: dict[EnvName, EnvValue] | None = None
    retries: Annotated[int, Field(ge=0, le=100)] | None = None
    retry_delay: RetryDelay | None = None
    timeout: Timeout | None = None
    pool: Text | None = None

    _env = field_validator("env")(_no_literal_credentials)


# `code:`: the folder of the steps' own code, relative to the spec (default: the spec's folder),
# shipped to every python and command step as a content-addressed package; or `image`: the steps
# run the copy of their code their image holds, and nothing is shipped.
CODE_FROM_IMAGE = "image"
CodeSource = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[^\x00\n\r]+$",
        description=(
            "The folder of the steps' code, relative to the spec (default: the spec's own folder), shipped "
            "to every python and command step as a package; `image`: use only the image's copy."
        ),
    ),
]


class Defaults(StepSettings):
    """`defaults`: settings every step gets, and the pipeline's code folder."""

    code: CodeSource | None = None


STEP_KINDS = ("sql", "python", "command", "table", "operator", "spark", "ray")
# the kinds that run the user's code as a process (a pod, a cluster, a local process): they read
# their inputs from the artifact store and write their output there
PROCESS_KINDS = ("python", "command", "spark", "ray")


def _for_engine(key: str, engine: str):
    """A field validator refusing ``key`` (a sizing key of ``engine``) on a step of another kind, at
    the key's own line (the step's kind keys are declared before the sizing keys, so
    ``info.data`` holds them)."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        kind = next((k for k in STEP_KINDS if info.data.get(k) is not None), None)
        if kind is not None and kind != engine:
            raise ValueError(f"`{key}` sizes a `{engine}:` step's cluster; a `{kind}` step has none: remove it")
        return value

    return field_validator(key)(check)


class Step(StepSettings):
    """One unit of work: exactly one of `sql`, `python`, `command`, `table`, `operator`, `spark`, `ray`."""

    sql: SqlQuery | None = None
    python: CallablePath | None = None
    command: CommandText | Annotated[list[str], Field(min_length=1), AfterValidator(_names_a_program)] | None = None
    table: TableName | None = None
    operator: OperatorClass | None = Field(
        None,
        description="Any Airflow operator or sensor class, `args:` its keyword arguments; no inputs or output "
        "(see README).",
    )
    spark: CallablePath | SparkScript | None = Field(
        None,
        description="A PySpark step: `module:function` (gets `spark` and its inputs as DataFrames, returns a "
        "DataFrame) or `{file: script.py, args: [...]}`; a SparkApplication on Kubernetes, local mode locally.",
    )
    ray: CallablePath | None = Field(
        None,
        description="A Ray step: `module:function`, the entrypoint of a RayJob on Kubernetes (a local Ray "
        "locally); inputs and output as a python step's.",
    )
    inputs: list[StepName] | dict[StepName, StepName] | None = None
    driver: Pod | None = Field(None, description="The Spark driver's `cpu` and `memory`.")
    executors: SparkExecutors | None = Field(
        None, description="Spark executors: `instances`, and each one's `cpu`, `memory`, `gpu`."
    )
    dynamic_allocation: DynamicAllocation | None = Field(
        None, description="Spark adds and removes executors between `min` and `max` (instead of `instances`)."
    )
    spark_conf: SparkConf | None = None
    head: Pod | None = Field(None, description="The Ray head's `cpu` and `memory`.")
    workers: RayWorkers | None = Field(
        None, description="Ray's worker group: `replicas`, and each one's `cpu`, `memory`, `gpu`."
    )
    runtime_env: RuntimeEnv | None = None
    depends_on: list[StepName] = []
    foreach: Foreach | None = Field(
        None, description="Run the step once per item: a list, `{param: name}` or `{step: name}` (see README)."
    )
    max_parallel: Annotated[int, Field(ge=1, le=MAX_MAP_LENGTH)] | None = Field(
        None, description="How many of a `foreach:` step's items run at once (default: as many as slots allow)."
    )
    args: dict[StepName, Any] | None = None
    # bounded like the rest of a spec: each check is an aggregate of one fused query and a
    # results row; thousands make a parse-time and warehouse cost no step needs
    checks: Annotated[list[Check], Field(max_length=MAX_CHECKS_PER_STEP)] = []
    metrics: Annotated[list[Metric], Field(max_length=MAX_CHECKS_PER_STEP)] = []
    publish: Publish | None = None
    serve: Serve | None = Field(
        None,
        description="Promote the step's model to a serving endpoint once its checks pass (KServe on Kubernetes, "
        "a local model server with `aq-airflow serve`).",
    )
    sensitive: list[Column] = Field([], description="Columns never shown in failing-row samples.")
    when: Condition | None = Field(
        None, description="Run the step only if this holds (params, this run's metrics and checks); else skip it."
    )

    _driver = _for_engine("driver", "spark")
    _executors = _for_engine("executors", "spark")
    _dynamic_allocation = _for_engine("dynamic_allocation", "spark")
    _spark_conf = _for_engine("spark_conf", "spark")
    _head = _for_engine("head", "ray")
    _workers = _for_engine("workers", "ray")
    _runtime_env = _for_engine("runtime_env", "ray")

    @field_validator("spark_conf")
    @classmethod
    def _spark_conf_not_ours(cls, value: Any) -> Any:
        return check_spark_conf(value)

    @field_validator("runtime_env")
    @classmethod
    def _runtime_env_no_credentials(cls, value: Any) -> Any:
        return check_runtime_env(value)

    @field_validator("inputs", "args")
    @classmethod
    def _spark_is_the_session(cls, value: Any, info: ValidationInfo) -> Any:
        """A spark function's `spark` parameter is the SparkSession: an input or an `args:` entry
        of that name would take its place, silently."""
        function = isinstance(info.data.get("spark"), str)
        names = value if isinstance(value, list) else list(value or {})
        if function and "spark" in names:
            what, fix = (
                ("an input", "pass it as another parameter with the map form, `inputs: {events: spark}`")
                if info.field_name == "inputs"
                else ("an `args:` entry", "rename the entry and the function's parameter")
            )
            raise ValueError(
                f"{what} named `spark` would replace the SparkSession a spark step's function gets as `spark`: {fix}"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kind = _exactly_one(self, STEP_KINDS, "a step")
        if kind in ("spark", "ray") and self.resources:
            sizing = "`driver:` and `executors:`" if kind == "spark" else "`head:` and `workers:`"
            raise ValueError(f"a `{kind}` step's cluster is sized by {sizing}, not `resources`: move the ask there")
        if kind == "spark" and self.executors and self.executors.instances and self.dynamic_allocation:
            raise ValueError(
                "`executors.instances` fixes the executor count and `dynamic_allocation` lets Spark choose it: "
                "keep one of them"
            )
        if kind == "table" and self.inputs:
            raise ValueError("a `table` step reads an existing table; it takes no `inputs`")
        if kind in ("sql", "table") and (self.image or self.resources):
            raise ValueError(f"a `{kind}` step runs in the warehouse: `image` and `resources` do not apply")
        names = [c.name for c in self.checks] + [m.name for m in self.metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"check and metric names must be unique in a step; repeated: {', '.join(twice)}")
        arguments = list(self.input_map)
        clash = sorted({a for a in arguments if [b.upper() for b in arguments].count(a.upper()) > 1})
        if clash:
            raise ValueError(
                f"inputs {', '.join(f'`{a}`' for a in clash)} differ only in case; a step's environment "
                "(AQ_INPUT_<NAME>) cannot tell them apart: rename one"
            )
        return self

    @field_validator("foreach")
    @classmethod
    def _foreach_on_processes(cls, value: Any, info: ValidationInfo) -> Any:
        """At the `foreach:` line: only python and command steps are mapped."""
        kind = next((k for k in ("sql", "table") if info.data.get(k) is not None), None)
        if value is not None and kind is not None:
            raise ValueError(f"`foreach` runs a python or command step per item; a `{kind}` step cannot")
        return value

    @field_validator("serve")
    @classmethod
    def _serve_a_model(cls, value: Serve | None, info: ValidationInfo) -> Serve | None:
        """At the `serve:` line: only a step whose output can be a model object, and not per item."""
        if value is None:
            return value
        kind = next((k for k in STEP_KINDS if info.data.get(k) is not None), None)
        if kind is not None and kind not in SERVING_KINDS:
            raise ValueError(
                f"`serve` promotes a model a step returns; a `{kind}` step's output is not one: put `serve` on the "
                "python (or ray) step that trains the model"
            )
        if info.data.get("foreach") is not None:
            raise ValueError(
                "`serve` promotes one model to one endpoint; this step runs per item: serve from a step that "
                "picks one of its items' models (a fan-in)"
            )
        return value

    @field_validator("max_parallel")
    @classmethod
    def _max_parallel_needs_foreach(cls, value: int | None, info: ValidationInfo) -> int | None:
        """At the `max_parallel:` line (a `foreach:` that failed validation is reported there)."""
        if value is not None and "foreach" in info.data and info.data["foreach"] is None:
            raise ValueError("`max_parallel` limits a `foreach:` step's items: add `foreach:` or remove it")
        return value

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    @property
    def input_map(self) -> dict[str, str]:
        """Inputs as {argument: producer step}; a list names arguments after the producers."""
        if isinstance(self.inputs, dict):
            return dict(self.inputs)
        return {name: name for name in self.inputs or []}

    @property
    def upstream(self) -> set[str]:
        """The steps this one runs after: its inputs, `depends_on`, and the step whose items
        `foreach: {step: ...}` runs over (implied, as if in `depends_on`)."""
        over = {self.foreach.step} if isinstance(self.foreach, ForeachStep) else set()
        return {*self.input_map.values(), *self.depends_on, *over}


class ScheduleAfter(Model):
    """Run when these warehouse tables (Airflow Assets published by other pipelines) change."""

    after: Annotated[list[TableName], Field(min_length=1)]


class Pipeline(Model):
    """A whole ``*.aq.yaml`` file."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        json_schema_extra={"title": "aq-airflow pipeline spec"},
    )

    pipeline: DagId | None = Field(None, description="The dag_id; defaults to the file name without .aq.yaml.")
    description: str | None = None
    schedule: CronOrPreset | ScheduleAfter | None = None
    start_date: Timestamp | None = None
    end_date: Timestamp | None = None
    catchup: bool = False
    owner: str = "airflow"
    tags: list[Annotated[str, Field(max_length=100)]] = []
    params: dict[StepName, Any] = {}
    warehouse: ConnId = Field("aq_warehouse", description="Airflow connection id of the warehouse.")
    artifacts: Text | None = Field(None, description="Artifact store URI; default: a local folder.")
    artifacts_ttl: Duration | None = Field(
        None, description="How long run outputs are kept; `aq-airflow gc` deletes older ones (default: the profile's)."
    )
    cluster: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")] = Field(
        "local", description="Cluster profile: gke, eks, aks, nvidia, local, or one from aq-profiles.yaml."
    )
    code: CodeSource | None = None
    code_max_size: SizeQuantity | None = Field(
        None, description="The most bytes the code package's files may hold in all: `100MB`, `200Mi` (default 50Mi)."
    )
    defaults: Defaults = Defaults()
    steps: Annotated[dict[StepName, Step], Field(min_length=1)]
    on_failure: CallablePath | None = Field(None, description="`module:callable` run when a task fails.")
    max_active_runs: Annotated[int, Field(ge=1)] | None = None
    timeout: Timeout | None = None
    results_schema: Column | None = Field(
        None, description="Warehouse schema of aq_check_results / aq_metric_results; default: the connection's."
    )

    @field_validator("start_date", "end_date")
    @classmethod
    def _utc(cls, value: datetime.datetime | None) -> datetime.datetime | None:
        """Naive dates mean UTC, so a spec means the same DAG on every machine."""
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value

    @field_validator("artifacts")
    @classmethod
    def _store_of_its_own(cls, artifacts: str | None) -> str | None:
        """Not the filesystem's root, a home or a system folder (see ``pipeline_spec.roots``); a
        relative path is judged where it is resolved (``aq-airflow run``, ``aq-airflow gc``)."""
        why = unsafe_root(artifacts, relative=False) if artifacts else None
        if why:
            raise ValueError(why)
        return artifacts

    @field_validator("end_date")
    @classmethod
    def _ends_after_start(cls, end: datetime.datetime | None, info: ValidationInfo) -> datetime.datetime | None:
        start = info.data.get("start_date")
        if end is not None and start is not None and end < start:
            raise ValueError("`end_date` is before `start_date`: no run could ever be scheduled; swap them")
        return end
