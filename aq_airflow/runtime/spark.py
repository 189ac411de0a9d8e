"""A spark step in the step's own process: its function gets ``spark`` and its inputs as Spark
DataFrames and returns one, which Spark writes as the step's Parquet output; or a plain PySpark
script (``--script FILE -- args``) that writes Parquet into ``AQ_OUTPUT`` itself.

Inputs are read through their manifests exactly as every other step's: only the files a manifest
lists, held to it first (digests, footers' rows and schema; :meth:`Location.verified`), then
handed to ``spark.read.parquet`` by path. Outputs keep the attempt protocol: Spark writes into a
folder of the attempt's own (``.spark-<attempt>``), its part files are renamed into the output
folder as ``part-<attempt>-<n>.parquet`` (Spark's ``_SUCCESS`` and ``.crc`` files are left
behind), described from their footers and committed by the manifest; files of earlier attempts
are dropped.

On an object store Spark needs Hadoop's connector for it, which PySpark's wheel lacks
(``runtime.spark_session.direct_access``). Without it the step's files go through a local scratch
folder with pyarrow: inputs downloaded (and verified there: the bytes Spark reads are the bytes
hashed), outputs written locally and uploaded, hashed as they go. That costs a copy of each
through the local disk, and the disk room for it; with the connector (a cluster's image, or
``spark.jars.packages``) Spark reads and writes the store itself.
"""

from __future__ import annotations

import os
import re
import runpy
import shutil
import sys
import tempfile
import time
import traceback
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from aq_airflow.artifacts.provenance import PROVENANCE
from aq_airflow.artifacts.store import (
    CHUNK,
    BadOutput,
    HashingSink,
    Location,
    MissingArtifact,
    clear,
    commit_files,
    parquet_fields,
    refused,
)
from aq_airflow.artifacts.values import read_input, write_output
from aq_airflow.runtime import code, contract, record
from aq_airflow.runtime.engines import Engine
from aq_airflow.runtime.failures import StepFailed
from aq_airflow.runtime.spark_session import direct_access, spark_uri, start_session

# a file name Spark takes as itself: Hadoop reads `*?[]{}\` as a glob and `:` as a URI's scheme
SPARK_SAFE_NAME = re.compile(r"[^*?\[\]{}\\:]+")
STAGING_PREFIX = ".spark-"  # the folder Spark writes an attempt's output into, in the output folder
MAX_ERROR_LINES = 60  # of a Spark failure or a script's traceback, the last lines


class SparkEngine(Engine):
    """PySpark around a step: a session (``runtime.spark_session``), DataFrames in and out."""

    name = "spark"

    def __init__(self) -> None:
        self.session = None
        self.created = False
        self.env: dict[str, str] = {}
        self._scratch: str | None = None

    def start(self, env: dict[str, str]) -> None:
        self.env = env
        try:
            self.session, self.created = start_session(env)
        except StepFailed:
            raise
        except Exception as error:  # PySpark's JVM did not start: most often no Java
            step = env.get(contract.STEP, "?")
            problem = java_problem()
            if problem:
                raise StepFailed(
                    f"step `{step}`: cannot start Spark: {problem}: PySpark needs a JDK 17 or 21 (`make install` "
                    "installs Debian's default-jdk-headless; elsewhere install one and put it on the PATH, or set "
                    "JAVA_HOME)"
                ) from None
            raise StepFailed(f"step `{step}`: cannot start Spark:\n{_tail(error)}") from None
        self.ship_code(env)

    def ship_code(self, env: dict[str, str]) -> None:
        """The step's code package to Spark's Python workers: the driver has it on its path
        (``runtime.code``), but a UDF, or a function a ``mapInPandas`` calls, runs in a worker
        process (on an executor pod, on a cluster) that imports its module by name. Spark ships an
        ``addPyFile`` zip to every executor and puts it on its workers' path."""
        folder = code.package_folder(env)
        if folder is None:
            return
        archive = code.package_zip(folder)
        context = self.session.sparkContext
        if not any(f.endswith("/" + os.path.basename(archive)) for f in context.listFiles):  # a reused session's
            context.addPyFile(archive)

    def values(self) -> dict[str, Any]:
        return {"spark": self.session}

    def stop(self) -> None:
        """Stop the session when this step started it (a notebook's or a test's is left running),
        and remove the scratch folder."""
        if self.created and self.session is not None:
            self.session.stop()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def scratch(self, name: str) -> str:
        """A new folder in this step's local scratch folder (removed by :meth:`stop`)."""
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="aq-spark-")
        folder = tempfile.mkdtemp(prefix=f"{name}-", dir=self._scratch)
        return folder

    # -- inputs ---------------------------------------------------------------------------------
    def read_input(self, location: Location, producer: str, annotation: Any) -> Any:
        """A table input as a DataFrame over exactly its manifest's files; any other output (an
        object, a folder of files, nothing) as a python step gets it."""
        manifest = location.read_manifest(producer)
        if manifest["kind"] != "table":
            return read_input(location, producer, annotation)
        return self.session.read.parquet(*self.table_paths(location, manifest, producer))

    def table_paths(self, location: Location, manifest: dict, producer: str) -> list[str]:
        """Paths Spark reads a committed table from, its files verified: the files themselves
        where Spark reaches them under names it takes literally, else local copies."""
        names = manifest["files"]
        if direct_access(self.session, location.uri) and all(SPARK_SAFE_NAME.fullmatch(n) for n in names):
            location.verified(manifest, producer)
            base = location.path if location.is_local else spark_uri(location.uri, self.env).rstrip("/")
            return [f"{base}/{name}" for name in names]
        folder = self.scratch("input")
        for name in names:
            try:
                with (
                    location.fs.open_input_stream(location.join(name)) as source,
                    open(os.path.join(folder, name), "wb") as target,
                ):
                    shutil.copyfileobj(source, target, CHUNK)
            except FileNotFoundError:
                raise refused(location.uri, producer, f"its manifest lists {name}, which is not a file there") from None
        Location(pafs.LocalFileSystem(), folder, location.uri).verified(manifest, producer)  # what Spark reads
        paths = []
        for index, name in enumerate(names):
            path = os.path.join(folder, name)
            if not SPARK_SAFE_NAME.fullmatch(name):
                os.replace(path, safe := os.path.join(folder, f"part-{index:05d}.parquet"))
                path = safe
            paths.append(path)
        return paths

    # -- the output -----------------------------------------------------------------------------
    def write_output(self, location: Location, attempt: str, value: Any, step: str) -> dict:
        """A DataFrame written by Spark (:meth:`write_frame`); a pandas, polars or pyarrow table,
        or None, as a python step's; anything else is refused (TypeError: the step fails)."""
        from pyspark.sql import DataFrame

        if isinstance(value, DataFrame):
            if value.sparkSession.sparkContext._jsc is None:  # stopped: nothing can compute the frame now
                raise StepFailed(
                    f"step `{step}`: its function stopped the SparkSession (`spark.stop()`) and then returned a "
                    "DataFrame, which Spark computes and writes only after the function, with that session: "
                    "leave stopping it to the runtime"
                )
            return self.write_frame(location, attempt, value, step)
        if value is None or _is_table(value):
            return write_output(location, attempt, value)
        raise TypeError(
            f"its function returned a {type(value).__module__}.{type(value).__qualname__}, which a spark step "
            "cannot store: return a Spark DataFrame (Spark writes it as Parquet), a pandas, polars or pyarrow "
            "table, or None"
        )

    def write_frame(self, location: Location, attempt: str, frame, step: str) -> dict:
        """Spark writes ``frame`` into the attempt's own folder; its part files become the
        output's (:func:`adopt_parts`)."""
        drop_earlier(location)
        direct = direct_access(self.session, location.uri)
        if direct:
            folder = location.child(f"{STAGING_PREFIX}{attempt}")
            target = folder.path if location.is_local else spark_uri(folder.uri, self.env)
        else:
            folder = Location(pafs.LocalFileSystem(), os.path.join(self.scratch("output"), "table"), "")
            target = folder.path
        try:
            frame.write.mode("overwrite").parquet(target)
        except Exception as error:  # Spark's own failure, raised only now that the plan runs
            raise StepFailed(f"step `{step}`: Spark failed computing or writing the DataFrame its function "
                             f"returned:\n{spark_error(error)}") from None  # fmt: skip
        try:
            names, digests = adopt_parts(folder, location, attempt, upload=not direct)
        finally:
            folder.fs.delete_dir(folder.path)
        fields = parquet_fields(location, names, step)
        size = sum(location.fs.get_file_info(location.join(n)).size for n in names)
        stored = {"kind": "table", "files": names, "bytes": size, **fields, "python_type": "pyspark.sql.DataFrame"}
        return {**stored, "digests": digests} if digests else stored


def java_problem() -> str | None:
    """Why PySpark finds no Java (it runs ``$JAVA_HOME/bin/java``, else ``java`` on the PATH), or None."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = os.path.join(home, "bin", "java")
        return None if os.access(java, os.X_OK) else f"JAVA_HOME is {home}, with no bin/java"
    return None if shutil.which("java") else "there is no `java` on the PATH and JAVA_HOME is not set"


def _is_table(value: Any) -> bool:
    module = type(value).__module__.split(".")[0]
    if isinstance(value, pa.Table | pa.RecordBatch | pa.RecordBatchReader):
        return True
    return module in ("pandas", "polars") and type(value).__name__ == "DataFrame"


def drop_earlier(location: Location) -> None:
    """Remove what earlier attempts left in the (uncommitted: :meth:`Location.begin` withdrew its
    manifest) output folder: their files and Spark's folders of a killed attempt."""
    for info in location.fs.get_file_info(pafs.FileSelector(location.path, allow_not_found=True)):
        if info.type == pafs.FileType.Directory and info.base_name.startswith(STAGING_PREFIX):
            location.fs.delete_dir(info.path)
        elif info.type == pafs.FileType.File:
            location.fs.delete_file(info.path)


def spark_parts(folder: Location) -> list[str]:
    """The data files Spark wrote into ``folder``, in order (not ``_SUCCESS``, ``.crc`` files or
    ``_temporary``)."""
    entries = folder.fs.get_file_info(pafs.FileSelector(folder.path, allow_not_found=True))
    return sorted(e.base_name for e in entries if e.is_file and not e.base_name.startswith((".", "_")))


def adopt_parts(folder: Location, location: Location, attempt: str, upload: bool) -> tuple[list[str], dict]:
    """Move Spark's part files from ``folder`` into the output folder as
    ``part-<attempt>-<n>.parquet`` (renamed on the same filesystem; ``upload``: copied from the
    local scratch folder to the store, hashed as they go). Returns (names, digests known)."""
    names, digests = [], {}
    for index, part in enumerate(spark_parts(folder)):
        name = f"part-{attempt}-{index:05d}.parquet"
        if upload:
            digests[name] = upload_file(folder.join(part), location, name)
        else:
            location.fs.move(folder.join(part), location.join(name))
        names.append(name)
    return names, digests


def upload_file(path: str, location: Location, name: str) -> str:
    """Copy a local file into the output folder as ``name``; its digest, hashed as it goes."""
    sink = HashingSink(location.fs.open_output_stream(location.join(name)))
    try:
        with open(path, "rb") as source:
            shutil.copyfileobj(source, sink, CHUNK)
    finally:
        sink.close()
    return sink.digest


def spark_error(error: BaseException) -> str:
    """Spark's own error as Spark says it (``AnalysisException: [COLUMN_ALREADY_EXISTS] ...``; a
    UDF's: the Python worker's traceback), without the frames of the runtime and py4j it passed
    through; any other error as Python shows it (:func:`_tail`)."""
    from pyspark.errors import PySparkException

    if not isinstance(error, PySparkException):
        return _tail(error)
    lines = f"{type(error).__name__}: {error}".splitlines()
    if len(lines) > MAX_ERROR_LINES:
        lines = ["...", *lines[-MAX_ERROR_LINES:]]
    return "\n".join(lines)


def _tail(error: BaseException, start=None) -> str:
    """An exception as Python shows it (from traceback ``start`` on), its last lines."""
    lines = "".join(traceback.format_exception(type(error), error, start or error.__traceback__)).splitlines()
    if len(lines) > MAX_ERROR_LINES:
        lines = ["...", *lines[-MAX_ERROR_LINES:]]
    return "\n".join(lines)


# -- a script ----------------------------------------------------------------------------------------
def script_path(file: str, folder: str | None, env: dict[str, str]) -> str:
    """The script: in the code package when one is shipped, else in the working directory or a
    folder on ``PYTHONPATH`` (the local runner's dags folder)."""
    places = [folder] if folder else [os.getcwd(), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    for place in places:
        path = os.path.abspath(os.path.join(place, file))
        if os.path.isfile(path):
            return path
    where = "its code package" if folder else ", ".join(places)
    raise StepFailed(f"step `{env.get(contract.STEP, '?')}`: no script {file} in {where}")


def run_script(file: str, args: list[str], env: dict[str, str]) -> dict:
    """Run a PySpark script as spark-submit would (``sys.argv`` = its path and ``args``, as
    ``__main__``), a session already started (its ``SparkSession.builder.getOrCreate()`` gets it),
    its inputs' ``AQ_INPUT_<NAME>`` verified and Spark-readable, ``AQ_OUTPUT`` where it writes its
    Parquet files; then commit what it wrote. Its failure: :class:`StepFailed` with its own
    traceback (from the script's frame on)."""
    step = env.get(contract.STEP, "?")
    output = env.get(contract.OUTPUT)
    if not output:
        raise StepFailed(f"step `{step}`: {contract.OUTPUT} is not set; this command runs inside an aq-airflow task")
    started, began = time.perf_counter(), record.now()
    path = script_path(file, code.use_package(env), env)
    engine = SparkEngine()
    engine.start(env)
    try:
        location = Location.of(output)
        attempt = clear(location)
        digests = script_inputs(engine, env, step)
        direct = direct_access(engine.session, location.uri)
        if direct:
            target = location.path if location.is_local else spark_uri(location.uri, env)
            if location.is_local:
                os.rmdir(location.path)  # empty: a script's default save mode (error if it exists) works
        else:
            target = os.path.join(engine.scratch("output"), "table")
        os.environ[contract.OUTPUT] = target
        user_started = time.perf_counter()
        _run_file(path, args, step, file)
        user_seconds = time.perf_counter() - user_started
        location.fs.create_dir(location.path, recursive=True)
        known: dict = {}
        written = location if direct else Location(pafs.LocalFileSystem(), target, "")
        _no_folders(written, step)
        if not direct:  # the script's files, uploaded under its own names
            known = {name: upload_file(written.join(name), location, name) for name in spark_parts(written)}
        made = record.provenance(env, began, record.now(), digests=digests)
        extra = {"step": step, "script": file, "user_seconds": round(user_seconds, 3), PROVENANCE: made.to_json()}
        try:
            manifest = commit_files(location, attempt, {**extra, **({"digests": known} if known else {})})
        except BadOutput as error:
            raise StepFailed(str(error)) from None
        return {**manifest, "seconds": round(time.perf_counter() - started, 3)}
    finally:
        engine.stop()


def exact_files(engine: SparkEngine, paths: list[str]) -> str | None:
    """A folder Spark reads holding exactly ``paths`` (a table's verified files), or None where
    they are not local files. Not the input's own folder: Spark would read what else it finds
    there (files added after the manifest was verified). Local copies are such a folder already;
    files read in place get one of links to them. (Not a Hadoop glob naming the files: Hadoop
    cannot glob under a folder whose name has a ``:``, as a run id's time does.)"""
    if not paths or "://" in paths[0]:
        return None
    folder = os.path.dirname(paths[0])
    if engine._scratch and folder.startswith(engine._scratch + os.sep):
        return folder  # local copies (runtime.spark.SparkEngine.table_paths)
    links = engine.scratch("input")
    for path in paths:
        os.symlink(path, os.path.join(links, os.path.basename(path)))
    return links


def script_inputs(engine: SparkEngine, env: dict[str, str], step: str) -> dict[str, str | None]:
    """Each table input's ``AQ_INPUT_<NAME>`` (in this process's environment, which the script
    reads) as a folder Spark reads holding exactly its manifest's files (:func:`exact_files`;
    on an object store Spark reads in place, the input's folder), verified first; returns each
    input's manifest digest (provenance)."""
    declared = contract.decode_inputs(env)
    digests: dict[str, str | None] = {}
    for name, uri in declared.locations.items():
        producer = declared.producers.get(name, name)
        location = Location.of(uri)
        try:
            manifest = location.read_manifest(producer)
            if manifest["kind"] == "table":
                readable = exact_files(engine, engine.table_paths(location, manifest, producer)) or spark_uri(uri, env)
            else:
                location.verified(manifest, producer)
                readable = uri
        except MissingArtifact as missing:
            raise StepFailed(f"step `{step}`, input `{name}`: {missing}") from None
        os.environ[contract.input_variable(name)] = readable
        digests[name] = location.manifest_digest
    return digests


def _no_folders(location: Location, step: str) -> None:
    """A script's output is one flat table: a folder in it (``partitionBy``) would not be read."""
    for info in location.fs.get_file_info(pafs.FileSelector(location.path, allow_not_found=True)):
        if info.type == pafs.FileType.Directory and not info.base_name.startswith((".", "_")):
            raise StepFailed(
                f"step `{step}`: its script wrote a folder {info.base_name!r} into {contract.OUTPUT} (partitionBy?): "
                "an output is one flat table of Parquet files; write it without partitions. Nothing was committed"
            )


def _run_file(path: str, args: list[str], step: str, file: str) -> None:
    """``path`` as ``__main__``, its folder first on the path (as ``python path`` has it)."""
    sys.argv = [path, *args]
    sys.path.insert(0, os.path.dirname(path))
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exit:
        if exit.code not in (None, 0):
            raise StepFailed(f"step `{step}`: script {file} exited with code {exit.code!r}") from None
    except Exception as error:
        start = error.__traceback__
        while start is not None and os.path.abspath(start.tb_frame.f_code.co_filename) != path:
            start = start.tb_next
        raise StepFailed(f"step `{step}`: script {file} raised an exception:\n{_tail(error, start)}") from None
