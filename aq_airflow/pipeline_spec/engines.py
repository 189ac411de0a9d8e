"""The spec's scale-out steps: `spark:` (a SparkApplication on Kubernetes, PySpark's local mode on
a laptop) and `ray:` (a KubeRay RayJob, a local Ray), and how big their clusters are.

A step's engine and its sizing are sibling keys of the step (`spark:` with `driver:`,
`executors:`, `dynamic_allocation:`, `spark_conf:`; `ray:` with `head:`, `workers:`,
`runtime_env:`); :class:`~aq_airflow.pipeline_spec.models.Step` refuses a sizing key on a step of
another kind, at the key's own line.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aq_airflow.pipeline_spec.secrets import is_credential_name
from aq_airflow.pipeline_spec.types import ByteQuantity, CpuQuantity, GpuType

# The sizing keys each engine takes (a step of another kind may not name them)
SPARK_KEYS = ("driver", "executors", "dynamic_allocation", "spark_conf")
RAY_KEYS = ("head", "workers", "runtime_env")
ENGINE_KEYS = {"spark": SPARK_KEYS, "ray": RAY_KEYS}

MAX_REPLICAS = 1000
SparkConfValue = str | int | float | bool

# a Spark setting aq-airflow decides itself (where the driver runs, how it reaches the store), which
# `spark_conf:` may not override: the same step must run the same way on a laptop and a cluster
RESERVED_SPARK_CONF = ("spark.master", "spark.submit.deployMode", "spark.kubernetes.namespace")
# ...nor the pods' identity and shape on a cluster, which the cluster profile decides (the service
# account, the credentials spark-submit uses, pod templates and feature steps that would replace the
# non-root security context): the SparkApplication's own fields set them, and a `--conf` wins over them
RESERVED_SPARK_PREFIXES = ("spark.kubernetes.authenticate.",)
RESERVED_SPARK_SUFFIXES = (".podTemplateFile", ".podTemplateContainerName", ".pod.featureSteps")

# A `spark_conf` key whose value is a credential, by Spark's and Hadoop's names for them
# (`spark.hadoop.fs.s3a.secret.key`, `spark.ssl.keyPassword`, `fs.azure.account.key.<account>...`,
# `fs.s3a.session.token`)
_SPARK_CREDENTIAL = re.compile(
    r"password|passwd|secret(?!s)|token(?!s|izer)|credential|access\.?key|api.?key|private.?key|"
    r"account\.key(\.|$)|encryption\.key$",
    re.IGNORECASE,
)
# ...and keys that name a Kubernetes Secret (`spark.kubernetes.driver.secretKeyRef.ENV: name:key`,
# `spark.kubernetes.executor.secrets.<name>: /mount/path`), which is the way to pass one
_SECRET_REFERENCE = re.compile(r"\.secretKeyRef\.|\.secrets\.", re.IGNORECASE)
# ...unless the key says where the credential is or how it is got, not the credential itself
# (`fs.s3a.aws.credentials.provider`, `spark.authenticate.secret.file`, `...sas.token.provider.type`)
_SPARK_ABOUT_CREDENTIAL = re.compile(
    r"(file|path|location|provider|providers|class|impl|type|enabled|mode|algorithm)$", re.IGNORECASE
)
# a value read from the environment when the job runs (Hadoop's `${env.NAME}`, Spark's `${env:NAME}`)
ENV_REFERENCE = re.compile(r"\$\{env[.:][A-Za-z_][A-Za-z0-9_]*\}")


class _Model(BaseModel):  # as the spec's other models: frozen, strict, unknown keys refused
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class SparkScript(_Model):
    """`spark: {file: jobs/features.py, args: [...]}`: a plain PySpark script (relative to the code
    folder), run as spark-submit runs it; it writes its output as Parquet into `AQ_OUTPUT`."""

    file: Annotated[
        str,
        Field(
            min_length=4,
            max_length=1024,
            pattern=r"^[^/\x00\n\r][^\x00\n\r]*\.py$",
            description="A `.py` file, relative to the code folder (the spec's folder by default).",
        ),
    ]

    @field_validator("file")
    @classmethod
    def _inside(cls, file: str) -> str:
        if ".." in file.replace("\\", "/").split("/"):
            raise ValueError(f"`{file}` leaves the code folder: name a script inside it")
        return file

    args: list[Annotated[str, Field(max_length=4096)]] = Field([], description="The script's arguments (sys.argv[1:]).")


class Pod(_Model):
    """One pod's size: Spark's driver, Ray's head."""

    cpu: CpuQuantity | None = None
    memory: ByteQuantity | None = None


def _memory_given(group: Any, what: str) -> None:
    if group.memory is None:
        raise ValueError(
            f"{what} need `memory`: each one's size is fixed when the cluster starts (e.g. `memory: 8Gi`); "
            "a default too small fails the job long after it started"
        )


def _gpu_type_needs_gpu(group: Any) -> None:
    if group.gpu_type is not None and not group.gpu:
        raise ValueError("`gpu_type` is set but `gpu` is not: add `gpu: 1` (or more)")


class SparkExecutors(_Model):
    """`executors:`: how many executors and the size of each (or `dynamic_allocation:`)."""

    instances: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] | None = None
    cpu: CpuQuantity | None = None
    memory: ByteQuantity | None = None
    gpu: Annotated[int, Field(ge=0, le=8)] | None = None
    gpu_type: GpuType | None = None

    @model_validator(mode="after")
    def _sized(self) -> SparkExecutors:
        _memory_given(self, "executors")
        _gpu_type_needs_gpu(self)
        return self


class DynamicAllocation(_Model):
    """`dynamic_allocation: {min, max}`: Spark adds and removes executors within these bounds."""

    min: Annotated[int, Field(ge=0, le=MAX_REPLICAS)] = 0
    max: Annotated[int, Field(ge=1, le=MAX_REPLICAS)]

    @model_validator(mode="after")
    def _in_order(self) -> DynamicAllocation:
        if self.min > self.max:
            raise ValueError(f"`dynamic_allocation` is reversed: `min` ({self.min}) is above `max` ({self.max})")
        return self


class RayWorkers(_Model):
    """`workers:`: Ray's worker group, its replicas and the size of each."""

    replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] = 1
    cpu: CpuQuantity | None = None
    memory: ByteQuantity | None = None
    gpu: Annotated[int, Field(ge=0, le=8)] | None = None
    gpu_type: GpuType | None = None

    @model_validator(mode="after")
    def _sized(self) -> RayWorkers:
        _memory_given(self, "workers")
        _gpu_type_needs_gpu(self)
        return self


_ENV_FIX = (
    "a spec is not secret (it shows in the Airflow UI and in the cluster's resources): give the step the "
    "credential as an `env:` value `{secret: name, key: k}` (S3A, Azure and GCS connectors read their "
    "standard variables from the environment)"
)


def is_spark_credential(key: str, value: SparkConfValue) -> bool:
    """Whether ``key: value`` spells out a credential (``spark.hadoop.fs.s3a.secret.key: ...``):
    a key that names one, with a literal value (not a switch, not ``${env.NAME}``), and that is
    not a reference to a Kubernetes Secret (``spark.kubernetes.driver.secretKeyRef.*``)."""
    if isinstance(value, bool) or not _SPARK_CREDENTIAL.search(key) or _SPARK_ABOUT_CREDENTIAL.search(key):
        return False
    if _SECRET_REFERENCE.search(key):
        return False
    return not (isinstance(value, str) and ENV_REFERENCE.fullmatch(value.strip()))


def check_spark_conf(conf: dict[str, SparkConfValue] | None) -> dict[str, SparkConfValue] | None:
    for key, value in (conf or {}).items():
        if key in RESERVED_SPARK_CONF:
            raise ValueError(
                f"`{key}` is set by aq-airflow (local mode on a laptop, the SparkApplication on a cluster): "
                "remove it; the cluster profile decides where the job runs"
            )
        if key.startswith(RESERVED_SPARK_PREFIXES) or key.endswith(RESERVED_SPARK_SUFFIXES):
            raise ValueError(
                f"`{key}` would change the identity or the security of the job's pods, which the cluster profile "
                "decides (its service account, non-root pods): remove it"
            )
        if is_spark_credential(key, value):
            raise ValueError(
                f"`{key}` holds a credential: {_ENV_FIX}; Hadoop's settings read it from there as "
                f"`{key}: ${{env.NAME}}`"
            )
    return conf


def check_runtime_env(runtime_env: dict[str, Any] | None) -> dict[str, Any] | None:
    """Ray's `runtime_env`: its `env_vars` reach every Ray worker in clear (the RayJob's body, the
    Airflow UI), so a literal credential there is refused as in `env:` (the step's `env:`, Secret
    references, reaches every Ray process: they inherit the step's environment); a value Ray
    would refuse when the job starts (not text) is refused here."""
    env_vars = (runtime_env or {}).get("env_vars")
    if env_vars is not None and not isinstance(env_vars, dict):
        raise ValueError("`runtime_env.env_vars` is a mapping of variable names to text")
    for name, value in (env_vars or {}).items():
        if not isinstance(value, str):
            raise ValueError(f"`runtime_env.env_vars.{name}` is not text: Ray takes text values only; quote it")
        if is_credential_name(str(name), value):
            raise ValueError(f"`runtime_env.env_vars.{name}` looks like a credential: {_ENV_FIX}")
    return runtime_env


SparkConf = Annotated[
    dict[Annotated[str, Field(pattern=r"^spark\.[A-Za-z0-9._-]+$", max_length=200)], SparkConfValue],
    Field(description="Spark settings passed through (`spark.sql.shuffle.partitions: 64`)."),
]
RuntimeEnv = Annotated[
    dict[str, Any],
    Field(description="Ray's runtime_env passed through (`pip`, `env_vars`, ...)."),
]
