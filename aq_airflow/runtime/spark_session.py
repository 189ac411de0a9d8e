"""The SparkSession a spark step runs on, and how Spark reaches the artifact store.

Two places start a step: a SparkApplication's driver, where spark-submit has already launched
the JVM with the cluster's settings (the session is only fetched, named after the step), and
anywhere else (``aq-airflow run``, the local runner, a test), where PySpark's local mode runs the
whole job in this process's JVM, sized to the machine: ``local[N]`` over the CPUs this process may
use, half its memory as the driver's heap (local mode has no executors: the driver's heap is all
Spark has), no web UI. ``AQ_ENGINE_CONF`` (the step's ``spark_conf:``) goes on top.

The artifact store: a local folder works everywhere. An object store needs Hadoop's connector for
its scheme on Spark's classpath (``s3a://``: hadoop-aws; ``gs://``: the GCS connector;
``abfss://``: hadoop-azure), which a cluster's image has and PySpark's wheel does not.
:func:`direct_access` asks the JVM; without it, ``runtime.spark`` stages the step's files through
a local folder with pyarrow (the store's own filesystem, credentials as every other step reads
them).
"""

from __future__ import annotations

import os
import sys
import warnings
from urllib.parse import urlsplit

from aq_airflow.runtime import contract, engines
from aq_airflow.runtime.machine import usable_cpus, usable_memory

# Hadoop's scheme for each store scheme the artifact store takes
SPARK_SCHEMES = {"s3": "s3a", "gs": "gs", "abfs": "abfss", "abfss": "abfss", "az": "abfss"}
# where the session was started from a spark-submit (a SparkApplication's driver): the JVM is there
SUBMITTED = "PYSPARK_GATEWAY_PORT"
# local mode's master when set in the worker's environment (e.g. `local[4]` to use fewer cores)
MASTER = "SPARK_MASTER"
# what every spark step runs with, in local mode and in a SparkApplication's `sparkConf` alike
# (the step's `spark_conf:` may change them): the same step writes the same files everywhere
ALWAYS = {
    # Parquet's own timestamp type, not the deprecated INT96, for every reader after the step
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
# what aq-airflow sets on a local-mode session it starts, besides ALWAYS
LOCAL_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",  # a progress bar's carriage returns in a task log
    "spark.driver.host": "127.0.0.1",  # a laptop's hostname may not resolve (VPNs, hotel Wi-Fi)
    "spark.driver.bindAddress": "127.0.0.1",
}


# PySpark warns on every pandas conversion that it has not caught up with pandas 3 (which the
# lock pins): in every spark step's log, and nothing a step's author can do about it
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


def engine_conf(env: dict[str, str]) -> dict[str, str]:
    """The step's ``spark_conf:`` (``AQ_ENGINE_CONF``) as Spark takes it: every value a string
    (``true``, not Python's ``True``)."""
    conf = engines.engine_conf(env)
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in conf.items()}


def local_settings(env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(master, conf) of a local-mode session: every usable CPU (``SPARK_MASTER`` to say
    otherwise), half the memory as the driver's heap (at least 1 GiB, at most 64 GiB: a larger
    heap pauses longer in garbage collection), :data:`ALWAYS`, :data:`LOCAL_DEFAULTS`, then the
    step's conf."""
    master = env.get(MASTER) or f"local[{usable_cpus()}]"
    heap = min(max(usable_memory() // 2**21, 1024), 64 * 1024)  # half, in MiB
    conf = {**ALWAYS, **LOCAL_DEFAULTS, "spark.driver.memory": f"{heap}m", **engine_conf(env)}
    return master, conf


def app_name(env: dict[str, str]) -> str:
    return ".".join(p for p in (env.get(contract.DAG_ID), env.get(contract.STEP)) if p) or "aq-airflow"


def start_session(env: dict[str, str]):
    """(session, created): the session already running in this process (a notebook's, a test's,
    a spark-submit's), else a new local-mode one (:func:`local_settings`). ``created`` says
    whether the step owns it (and stops it)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    builder = SparkSession.builder.appName(app_name(env))
    if SUBMITTED in os.environ:  # spark-submit's driver: the cluster's settings are already the JVM's
        session = builder.getOrCreate()
    else:
        # Spark runs a UDF's Python (and an RDD's) in workers it starts as `$PYSPARK_PYTHON`, else the
        # `python3` on the PATH: another Python, without the step's packages, when the worker's venv
        # is not on its PATH. Local mode's workers are this Python
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        master, conf = local_settings(env)
        for key, value in conf.items():
            builder = builder.config(key, value)
        session = builder.master(master).getOrCreate()
    configure_stores(session, env)
    return session, True


def configure_stores(session, env: dict[str, str]) -> None:
    """Hadoop's S3A settings from the variables every AWS SDK reads: the endpoint
    (``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``: an emulator, MinIO, another cloud's S3,
    with path-style requests) and the region. Credentials are not copied into Spark's settings
    (which its event log and UI show): S3A's default providers read ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN`` from the environment themselves. A setting
    the step's ``spark_conf:`` gives (``spark.hadoop.fs.s3a.*``) is kept."""
    hadoop = session.sparkContext._jsc.hadoopConfiguration()
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    wanted = {}
    if endpoint:
        wanted.update({"fs.s3a.endpoint": endpoint, "fs.s3a.path.style.access": "true"})
        if endpoint.startswith("http://"):
            wanted["fs.s3a.connection.ssl.enabled"] = "false"
    if region:
        wanted["fs.s3a.endpoint.region"] = region
    given = engine_conf(env)
    for key, value in wanted.items():
        if f"spark.hadoop.{key}" not in given:
            hadoop.set(key, value)


def spark_uri(uri: str, env: dict[str, str]) -> str:
    """A store URI (or local path) as Hadoop names it: ``s3://`` as ``s3a://``; ``abfs://container/p``
    as ``abfss://container@account.dfs.core.windows.net/p`` (the account from
    ``AZURE_STORAGE_ACCOUNT_NAME`` or the connection string); a local path as itself."""
    if "://" not in uri:
        return os.path.abspath(uri)
    parts = urlsplit(uri)
    scheme = SPARK_SCHEMES.get(parts.scheme, parts.scheme)
    netloc = parts.netloc
    if scheme == "abfss" and "@" not in netloc:
        fields = dict(f.split("=", 1) for f in env.get("AZURE_STORAGE_CONNECTION_STRING", "").split(";") if "=" in f)
        account = fields.get("AccountName") or env.get("AZURE_STORAGE_ACCOUNT_NAME")
        if account:
            netloc = f"{netloc}@{account}.dfs.{fields.get('EndpointSuffix', 'core.windows.net')}"
    return f"{scheme}://{netloc}{parts.path}"


def direct_access(session, uri: str) -> bool:
    """Whether Spark itself reads and writes ``uri``: a local path always; an object store when
    Hadoop's filesystem for its scheme is on the JVM's classpath (asked as Spark would ask it)."""
    if "://" not in uri or uri.startswith("file://"):
        return True
    scheme = SPARK_SCHEMES.get(urlsplit(uri).scheme, urlsplit(uri).scheme)
    try:
        jvm = session.sparkContext._jvm
        jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(scheme, session.sparkContext._jsc.hadoopConfiguration())
    except Exception:  # py4j's error for a ClassNotFound / "No FileSystem for scheme"
        return False
    return True
