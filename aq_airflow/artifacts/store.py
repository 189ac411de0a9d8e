"""The artifact store: step outputs under ``{root}/{dag_id}/{run_id}/{step}/`` on any pyarrow
filesystem (a local folder, ``s3://``, ``gs://``, ``abfs://``; credentials come from the
environment, never from the spec).

A step's output is committed by its manifest: data files are written first under names unique to
the attempt, ``_manifest.json`` last. Readers go through the manifest only, so a killed or retried
step never leaves a half output that a later step reads as whole.

The manifest also records each file's sha256 (hashed as it is written, never read back), and a
table's rows and schema. A reader holds the files to it first (:meth:`Location.verified`): a file
changed, swapped or truncated after the commit, a manifest that claims other rows or another
schema, is refused (:class:`BadOutput`) rather than read. That guards against accidents and
confused writers; whoever can write both a file and its manifest can still change what the next
step reads (README, "The artifact store is a trust boundary").
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import json
import logging
import os
import pickle
import posixpath
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

# the manifest's name and the missing-output error live in artifacts.manifest (no pyarrow); named here too
from aq_airflow.artifacts.manifest import (  # noqa: F401
    DIGEST,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    WRITER,
    BadOutput,
    MissingArtifact,
    manifest_digest,
    missing_output,
    parse,
    plain_file_name,
    refused,
)

ROW_GROUP_ROWS = 128 * 1024
# The names an attempt gives its files before its manifest commits them: a table's
# ``part-<attempt>.parquet`` (:class:`TableWriter`; Spark's parts ``part-<attempt>-<n>.parquet``,
# ``runtime.spark``), an object's ``object-<attempt>.pkl``
# (``artifacts.values.write_output``), the manifest's temporary ``._manifest.json.<hex>``
# (:meth:`Location.commit`); ``<attempt>`` is :meth:`Location.begin`'s id. What a killed attempt
# leaves is only these, which ``aq-airflow gc`` may therefore take (a command step's own file names
# are the user's: never guessed).
ATTEMPT_FILE = re.compile(
    r"part-[0-9a-f]{12}(?:-[0-9]{5})?\.parquet|object-[0-9a-f]{12}\.pkl|\._manifest\.json\.[0-9a-f]{8}"
)
TEMP_MANIFEST = re.compile(r"\._manifest\.json\.[0-9a-f]{8}")  # :meth:`Location.commit`'s, before it is moved
CHUNK = 2**20  # a local file is hashed a MiB at a time: memory stays flat whatever its size
REMOTE_CHUNK, REMOTE_WINDOW = 8 * 2**20, 4  # an object store's file: 8 MiB ranges, 4 in flight

log = logging.getLogger(__name__)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path of a URI or a plain local path.

    Credentials and endpoints come from the standard variables of each cloud's SDKs, which
    pyarrow reads itself (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...;
    ``GOOGLE_APPLICATION_CREDENTIALS``; workload identity on a pod), except for
    ``STORAGE_EMULATOR_HOST`` (the Google SDKs' GCS emulator endpoint) and Azure's
    ``AZURE_STORAGE_*`` variables (see :func:`azure_filesystem`), applied here.
    """
    if "://" not in uri:
        uri = os.path.abspath(uri)
    if uri.startswith(AZURE_SCHEMES):
        return azure_filesystem(uri)
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if uri.startswith("gs://") and emulator:
        endpoint = urlsplit(emulator if "://" in emulator else f"http://{emulator}")
        gcs = pafs.GcsFileSystem(anonymous=True, endpoint_override=endpoint.netloc, scheme=endpoint.scheme)
        return gcs, uri.removeprefix("gs://")
    return pafs.FileSystem.from_uri(uri)


AZURE_SCHEMES = ("abfs://", "abfss://", "az://")
# Azurite's well-known development account (``UseDevelopmentStorage=true``), public by design
AZURITE = {
    "AccountName": "devstoreaccount1",
    "AccountKey": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    "BlobEndpoint": "http://127.0.0.1:10000/devstoreaccount1",
}


def azure_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's Azure filesystem for ``abfs[s]://container/path`` (or ``az://``, or
    ``abfs://container@account.dfs.core.windows.net/path``), configured the way the Azure SDKs
    and adlfs are: ``AZURE_STORAGE_CONNECTION_STRING`` (``AccountName``, ``AccountKey`` or
    ``SharedAccessSignature``, ``BlobEndpoint`` for an emulator, ``EndpointSuffix`` for a
    sovereign cloud, ``UseDevelopmentStorage=true`` for Azurite on its default port), else
    ``AZURE_STORAGE_ACCOUNT_NAME`` with ``AZURE_STORAGE_ACCOUNT_KEY`` or
    ``AZURE_STORAGE_SAS_TOKEN``. With neither key nor token, pyarrow's DefaultAzureCredential
    authenticates: workload identity (``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``,
    ``AZURE_FEDERATED_TOKEN_FILE``), a service principal, a managed identity, ..."""
    parts = urlsplit(uri)
    container, _, host = parts.netloc.rpartition("@") if "@" in parts.netloc else (parts.netloc, "", "")
    settings = _azure_settings()
    account = settings.get("AccountName")
    if host:  # account.dfs.core.windows.net (or another cloud's suffix)
        account, _, domain = host.partition(".")
        if settings.get("AccountName", account) != account:
            settings = {}  # the environment's credentials are another account's
        service, _, suffix = domain.partition(".")
        if service in ("blob", "dfs") and suffix and "BlobEndpoint" not in settings:
            settings["EndpointSuffix"] = suffix
    if not account:
        raise ValueError(
            f"{uri}: no storage account; set AZURE_STORAGE_ACCOUNT_NAME or AZURE_STORAGE_CONNECTION_STRING, "
            "or write the URI as abfs://container@account.dfs.core.windows.net/path"
        )
    return _azure(account, tuple(sorted(settings.items()))), f"{container}{parts.path}".rstrip("/")


def _azure_settings() -> dict[str, str]:
    """The connection string's fields (``Key=value;...``), else the account variables'."""
    text = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    fields = dict(field.split("=", 1) for field in text.split(";") if "=" in field)
    if fields.pop("UseDevelopmentStorage", "").lower() == "true":
        fields = {**AZURITE, **fields}
    if not fields:
        fields = {
            "AccountName": os.environ.get("AZURE_STORAGE_ACCOUNT_NAME"),
            "AccountKey": os.environ.get("AZURE_STORAGE_ACCOUNT_KEY"),
            "SharedAccessSignature": os.environ.get("AZURE_STORAGE_SAS_TOKEN"),
        }
    return {key: value for key, value in fields.items() if value}


@functools.lru_cache(maxsize=16)
def _azure(account: str, settings: tuple[tuple[str, str], ...]) -> pafs.AzureFileSystem:
    """One filesystem per configuration: it remembers whether the account has a hierarchical
    namespace, which costs a request to find out."""
    fields = dict(settings)
    scheme = fields.get("DefaultEndpointsProtocol")
    blob = dfs = None
    if "BlobEndpoint" in fields:
        endpoint = urlsplit(fields["BlobEndpoint"])
        scheme = endpoint.scheme
        if endpoint.path.strip("/") == account:  # path-style, as emulators serve it: host:port/account
            blob = dfs = endpoint.netloc  # no Data Lake endpoint: a flat namespace
        elif endpoint.netloc.startswith(f"{account}."):
            blob = endpoint.netloc.removeprefix(account)
            dfs = blob.replace(".blob.", ".dfs.", 1)
        else:
            raise ValueError(f"BlobEndpoint {fields['BlobEndpoint']}: neither {account}.<host> nor <host>/{account}")
    elif "EndpointSuffix" in fields:
        blob, dfs = f".blob.{fields['EndpointSuffix']}", f".dfs.{fields['EndpointSuffix']}"
    options = {
        "account_key": fields.get("AccountKey"),
        "sas_token": fields.get("SharedAccessSignature", "").lstrip("?"),
        "blob_storage_authority": blob,
        "dfs_storage_authority": dfs,
        "blob_storage_scheme": scheme,
        "dfs_storage_scheme": scheme,
    }
    return pafs.AzureFileSystem(account, **{key: value for key, value in options.items() if value})


@dataclass
class Location:
    """One step's output folder."""

    fs: pafs.FileSystem
    path: str
    uri: str
    # ``sha256:<hex>`` of the manifest bytes :meth:`read_manifest` last read (a reader's provenance
    # records it without reading the manifest again); None before
    manifest_digest: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, uri: str) -> Location:
        fs, path = filesystem(uri)
        return cls(fs, path.rstrip("/"), uri)

    def join(self, name: str) -> str:
        return posixpath.join(self.path, name)

    def child(self, name: str) -> Location:
        """The folder ``name`` inside this one, on the same filesystem. Its path is joined, never
        parsed again from a URI: a folder named with ``#``, ``?``, ``%`` or a space (anyone's, in a
        store) would name another folder, or none, as part of ``s3://…/{name}``."""
        return Location(self.fs, self.join(name), f"{self.uri.rstrip('/')}/{name}")

    @property
    def is_local(self) -> bool:
        """Whether the files are on this machine's disk (readable by path, e.g. by DuckDB)."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    def read_manifest(self, producer: str | None = None) -> dict:
        """The committed manifest, checked for shape only (kind, plain file names, digests' form):
        what describes an output. Reading its data goes through :meth:`read_output`."""
        try:
            with self.fs.open_input_stream(self.join(MANIFEST)) as handle:
                data = handle.read(MAX_MANIFEST_BYTES + 1)
        except (FileNotFoundError, OSError) as error:
            raise missing_output(self.uri, producer, error) from None
        manifest = parse(data, self.uri, producer)
        self.manifest_digest = manifest_digest(data)
        return manifest

    def read_output(self, producer: str | None = None, *, contents: bool = True) -> dict:
        """The committed manifest, held to the files it names (:meth:`verified`): what every
        reader of a step's output calls before it reads the data."""
        return self.verified(self.read_manifest(producer), producer, contents=contents)

    def verified(self, manifest: dict, producer: str | None = None, *, contents: bool = True) -> dict:
        """The manifest when the files agree with it, else :class:`BadOutput` naming the producer,
        the file and what disagreed: each file's sha256 (``contents``: a full read of each file, a
        MiB at a time; off only where no data is read, just the schema), and for a table each
        file's Parquet footer, whose schema must be the manifest's and whose rows must add up to
        its ``rows``; for a folder of files (``files``: a command step's, handed over whole), that
        the folder holds nothing else (:meth:`_only_listed`). A manifest of the release before
        digests has none: it is read with a logged warning, its rows and schema still checked."""
        digests = manifest.get("digests")
        if contents and digests is None and manifest["files"]:
            self._unverified(producer)
        for name in manifest["files"] if contents and digests else ():
            self._digest_agrees(name, self._digest(name, producer), digests[name], producer)
        if manifest["kind"] == "table":
            self._footers_agree(manifest, producer)
        elif manifest["kind"] == "object":
            self._pickle_agrees(manifest["files"][0], producer)
        elif manifest["kind"] == "files":
            self._only_listed(manifest, producer)
        return manifest

    def read_object(self, manifest: dict, producer: str | None = None) -> bytes:
        """An ``object`` output's pickle, read once and held to its manifest: the bytes returned
        are the bytes hashed (digest) and whose header was checked, so what gets unpickled is
        what was verified, never a second read of a file that may have changed in between."""
        name = manifest["files"][0]
        try:
            with self.fs.open_input_stream(self.join(name)) as handle:
                data = handle.read()
        except OSError as error:
            raise self._unopened(name, producer, error) from None
        digests = manifest.get("digests")
        if digests is None:
            self._unverified(producer)
        else:
            self._digest_agrees(name, f"{DIGEST}:{hashlib.sha256(data).hexdigest()}", digests[name], producer)
        if not _pickle_header(data[:2]):
            raise refused(self.uri, producer, f"file {name} is not a pickle, which its manifest (kind object) says")
        return data

    def _digest_agrees(self, name: str, actual: str, recorded: str, producer: str | None) -> None:
        if actual != recorded:
            raise refused(
                self.uri, producer,
                f"file {name} has {actual}, its manifest says {recorded} (the file or the manifest changed after "
                "the step committed it)",
            )  # fmt: skip

    def _unverified(self, producer: str | None) -> None:
        log.warning(
            "the output of %s at %s has no digests (written before aq-airflow recorded them): its files are "
            "read unverified; run the step again to record them", f"step `{producer}`" if producer else "a step",
            self.uri,
        )  # fmt: skip

    def _only_listed(self, manifest: dict, producer: str | None) -> None:
        """A folder of files is handed to the next step whole (its path), and only the files its
        manifest lists are hashed: anything else in it (a file added after the commit, a hidden or
        ``_`` file, a folder) would be read unchecked, so the output is refused. The manifest
        itself, and a commit's temporary manifest (there while a commit is under way), are ours."""
        entries = self.fs.get_file_info(pafs.FileSelector(self.path))  # unreachable: an OSError (retry)
        listed = {MANIFEST, *manifest["files"]}
        extra = sorted(
            e.base_name for e in entries if e.base_name not in listed and not TEMP_MANIFEST.fullmatch(e.base_name)
        )
        if extra:
            more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
            raise refused(
                self.uri, producer,
                f"its folder holds {_shown_name(extra[0])}{more}, which its manifest does not list (a folder of files "
                "is handed over whole: nothing in it is read unchecked)",
            )  # fmt: skip

    def _digest(self, name: str, producer: str | None) -> str:
        try:
            return file_digest(self.fs, self.join(name))
        except OSError as error:
            raise self._unopened(name, producer, error) from None

    def _footers_agree(self, manifest: dict, producer: str | None) -> None:
        expected = [list(column) for column in manifest["schema"]]
        rows = 0
        for name in manifest["files"]:
            try:
                with self.fs.open_input_file(self.join(name)) as handle:
                    footer = read_footer(handle)
            except OSError as error:
                raise self._unopened(name, producer, error) from None
            except ValueError as error:
                raise refused(self.uri, producer, f"file {name} is not a readable Parquet file ({error})") from None
            schemas = footer_schemas(footer)
            if expected not in schemas:
                raise refused(
                    self.uri, producer,
                    f"file {name} has schema {_columns(schemas[0])}, its manifest says {_columns(expected)}",
                )  # fmt: skip
            rows += footer.metadata.num_rows
        if rows != manifest["rows"]:
            raise refused(self.uri, producer, f"its files hold {rows} row(s), its manifest says {manifest['rows']}")

    def _pickle_agrees(self, name: str, producer: str | None) -> None:
        """An object's file starts as the pickles our writer makes do (protocol 2 or later): a
        manifest that calls a Parquet part or a report an object is refused, not unpickled."""
        try:
            with self.fs.open_input_file(self.join(name)) as handle:
                head = handle.read_at(2, 0)
        except OSError as error:
            raise self._unopened(name, producer, error) from None
        if not _pickle_header(head):
            raise refused(self.uri, producer, f"file {name} is not a pickle, which its manifest (kind object) says")

    def _unopened(self, name: str, producer: str | None, error: OSError) -> BaseException:
        """What opening a listed file failed with: :class:`BadOutput` when no such file is there (or
        a folder is), else the error itself (the store could not be reached: fail and retry)."""
        try:
            there = self.fs.get_file_info(self.join(name)).type == pafs.FileType.File
        except OSError:
            return error
        return error if there else refused(self.uri, producer, f"its manifest lists {name}, which is not a file there")

    def begin(self) -> str:
        """Start a new attempt: withdraw any committed manifest, return a unique attempt id."""
        self.fs.create_dir(self.path, recursive=True)
        try:
            self.fs.delete_file(self.join(MANIFEST))
        except (FileNotFoundError, OSError):
            pass
        return uuid.uuid4().hex[:12]

    def commit(self, manifest: dict) -> dict:
        """Write the manifest (the commit marker, stamped as our writer's, with a digest for every
        file it lists: those its writer hashed while writing, the others hashed here), then drop
        files of earlier attempts. Returns the manifest as committed."""
        files = manifest.get("files", [])
        known = manifest.get("digests") or {}
        digests = {name: known.get(name) or file_digest(self.fs, self.join(name)) for name in files}
        manifest = {**manifest, "digests": digests, "writer": WRITER}
        temp = self.join(f".{MANIFEST}.{uuid.uuid4().hex[:8]}")
        with self.fs.open_output_stream(temp) as handle:
            handle.write(json.dumps(manifest, indent=2, sort_keys=True).encode())
        try:
            self.fs.move(temp, self.join(MANIFEST))
        except NotImplementedError:  # Azure without a hierarchical namespace (Azurite too): no rename
            self.fs.copy_file(temp, self.join(MANIFEST))  # a server-side copy: whole or not at all
        keep = {MANIFEST, *manifest.get("files", [])}
        for info in self.fs.get_file_info(pafs.FileSelector(self.path)):
            if info.base_name not in keep:
                try:
                    self.fs.delete_file(info.path)
                except OSError:
                    pass
        return manifest


def _pickle_header(head: bytes) -> bool:
    """Whether a file starts as the pickles our writer makes do (protocol 2 or later)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL


def _shown_name(name: str) -> str:
    """A file name in a message: as Python writes it (control characters escaped), cut short."""
    text = repr(name)
    return text if len(text) <= 120 else f"{text[:117]}..."


def file_digest(fs: pafs.FileSystem, path: str) -> str:
    """A file's ``sha256:<hex>``: a local file streamed a MiB at a time; on an object store, ranges
    of :data:`REMOTE_CHUNK` fetched :data:`REMOTE_WINDOW` at a time and hashed in order (one GET
    per MiB made hashing on the S3 emulator 10x slower than reading the table; memory stays at the
    window's 32 MiB whatever the file's size)."""
    digest = hashlib.sha256()
    if isinstance(fs, pafs.LocalFileSystem):
        with fs.open_input_stream(path) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        return f"{DIGEST}:{digest.hexdigest()}"
    from concurrent.futures import ThreadPoolExecutor

    with fs.open_input_file(path) as handle, ThreadPoolExecutor(REMOTE_WINDOW) as pool:
        pending: collections.deque = collections.deque()
        for offset in range(0, handle.size(), REMOTE_CHUNK):
            pending.append(pool.submit(handle.read_at, REMOTE_CHUNK, offset))
            if len(pending) >= REMOTE_WINDOW:
                digest.update(pending.popleft().result())
        while pending:
            digest.update(pending.popleft().result())
    return f"{DIGEST}:{digest.hexdigest()}"


def read_footer(handle: pa.NativeFile) -> pq.ParquetFile:
    """A Parquet file's footer (schema, row counts), fetched in two reads (its length, then the
    footer) and parsed in memory: reaching the store fails with OSError (fail and retry), a file
    that is not Parquet with ValueError, whatever the parser meets (thrift, UTF-8, encryption)."""
    size = handle.size()
    tail = handle.read_at(8, size - 8) if size >= 12 else b""
    if tail[4:] != b"PAR1":
        raise ValueError("no Parquet footer at its end")
    length = int.from_bytes(tail[:4], "little")
    if length > size - 12:
        raise ValueError(f"its footer length {length} passes its size {size}")
    footer = handle.read_at(length, size - 8 - length)
    try:
        parsed = pq.ParquetFile(pa.BufferReader(b"PAR1" + footer + tail))
        parsed.schema_arrow, parsed.metadata.num_rows  # noqa: B018 - parse both here
    except Exception as error:  # in-memory bytes: any parser error means not Parquet
        raise ValueError(f"{type(error).__name__}: {error}") from None
    return parsed


def footer_schemas(footer: pq.ParquetFile) -> list[list[list[str]]]:
    """A Parquet file's schema (as :func:`schema_text`) the two ways a manifest may have recorded
    it: as Arrow reads the file back, and as its writer handed it to pyarrow (the ``ARROW:schema``
    pyarrow stores in the footer). They differ where Parquet has no exact type (``date64`` reads
    back as ``date32``, ``time32[s]`` as ``time32[ms]``, a list's item field is renamed ...), and
    :func:`write_batches` records the writer's."""
    schemas = [schema_text(footer.schema_arrow)]
    stored = (footer.metadata.metadata or {}).get(b"ARROW:schema")
    if stored:
        try:
            schemas.append(schema_text(pa.ipc.read_schema(pa.BufferReader(base64.b64decode(stored)))))
        except (pa.ArrowException, ValueError):  # not what pyarrow wrote: the read-back schema alone
            pass
    return schemas


def _columns(schema: list) -> str:
    text = ", ".join(f"{name} {kind}" for name, kind in schema)
    return f"({text[:300]}{'...' if len(text) > 300 else ''})"


class HashingSink:
    """An output stream that hashes what goes through it: a file's digest without reading it back."""

    def __init__(self, stream: pa.NativeFile):
        self.stream = stream
        self.hash = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.stream.close()

    @property
    def digest(self) -> str:
        return f"{DIGEST}:{self.hash.hexdigest()}"


class TableWriter:
    """Streams record batches into one Parquet file, a row group at a time, hashing the bytes."""

    def __init__(self, location: Location, attempt: str, schema: pa.Schema):
        self.name = f"part-{attempt}.parquet"
        self.schema = schema
        self.stream = HashingSink(location.fs.open_output_stream(location.join(self.name)))
        self.writer = pq.ParquetWriter(self.stream, schema, compression="zstd")
        self.rows = 0

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.schema != self.schema:
            batch = batch.cast(self.schema)
        if isinstance(batch, pa.RecordBatch):
            self.writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
        else:
            self.writer.write_table(batch, row_group_size=ROW_GROUP_ROWS)
        self.rows += batch.num_rows

    def close(self) -> int:
        self.writer.close()
        self.stream.close()
        return self.rows


def write_batches(location: Location, attempt: str, schema: pa.Schema, batches: Iterator) -> dict:
    """Write a stream of record batches; returns the manifest fields of a table output."""
    writer = TableWriter(location, attempt, schema)
    try:
        for batch in batches:
            writer.write(batch)
    finally:
        rows = writer.close()
    return {"kind": "table", "files": [writer.name], "rows": rows, "bytes": writer.stream.size,
            "schema": schema_text(schema), "digests": {writer.name: writer.stream.digest}}  # fmt: skip


def schema_text(schema: pa.Schema) -> list[list[str]]:
    return [[field.name, str(field.type)] for field in schema]


def read_row_groups(fs: pafs.FileSystem, paths: list[str]) -> Iterator[pa.Table]:
    """Parquet files one row group at a time: memory stays at a row group or two whatever the
    table's size (a dataset scan pre-buffers far more). Each row group is pre-buffered (its
    column chunks fetched in a few coalesced reads): on an object store, one request per column
    chunk instead made reading 6x slower (the S3 emulator, 10 columns)."""
    for path in paths:
        with fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle, pre_buffer=True)
            for index in range(parquet.num_row_groups):
                yield parquet.read_row_group(index)


def iter_row_groups(location: Location, manifest: dict) -> Iterator[pa.RecordBatch]:
    """The committed table as record batches, one row group at a time."""
    for group in read_row_groups(location.fs, [location.join(name) for name in manifest["files"]]):
        yield from group.to_batches()


def open_dataset(location: Location, manifest: dict):
    """The committed table files of an output as a lazy pyarrow dataset."""
    import pyarrow.dataset as ds

    return ds.dataset([location.join(f) for f in manifest["files"]], filesystem=location.fs, format="parquet")


def parquet_fields(location: Location, names: list[str], step: str) -> dict:
    """``rows`` and ``schema`` of a table written as Parquet files by someone else's writer (a
    command step's, Spark's), from their footers; :class:`BadOutput` when one is not Parquet or
    two disagree on the schema (one output is one table)."""
    rows, schemas = 0, {}
    for name in names:
        try:
            with location.fs.open_input_file(location.join(name)) as handle:
                footer = read_footer(handle)
        except ValueError as error:
            raise BadOutput(f"step `{step}` wrote {name}, which is not a readable Parquet "
                            f"file ({error}); nothing was committed") from None  # fmt: skip
        rows += footer.metadata.num_rows
        schemas.setdefault(json.dumps(schema_text(footer.schema_arrow)), name)
    if len(schemas) > 1:
        first, other = list(schemas.values())[:2]
        raise BadOutput(
            f"step `{step}` wrote Parquet files of different schemas ({first} and {other}): "
            "one output is one table; write its files with one schema. Nothing was committed"
        )
    return {"rows": rows, "schema": json.loads(next(iter(schemas)))}


def commit_files(location: Location, attempt: str, extra: dict) -> dict:
    """Commit what a ``command`` step wrote into its output folder: a table when every file is
    Parquet (of one schema), otherwise a folder of files. Files the user's code wrote are hashed
    here, at the commit (:meth:`Location.commit`)."""
    entries = location.fs.get_file_info(pafs.FileSelector(location.path))
    infos = [i for i in entries if i.is_file]
    names = sorted(i.base_name for i in infos if not i.base_name.startswith((".", "_")))
    odd = next((name for name in names if not plain_file_name(name)), None)
    if odd is not None:
        raise BadOutput(f"step `{extra.get('step', '?')}` wrote a file named {odd[:300]!r}, which a manifest cannot "
                        "list (a control character, a backslash, or longer than 255 bytes): rename it; nothing was "
                        "committed")  # fmt: skip
    manifest = {"files": names, "bytes": sum(i.size for i in infos), "attempt": attempt, "uri": location.uri}
    if names and all(n.endswith(".parquet") for n in names):
        manifest.update(kind="table", **parquet_fields(location, names, extra.get("step", "?")))
    else:
        manifest.update(kind="files" if names else "none", rows=None)
    if manifest["kind"] == "files":  # handed over whole: every entry is one the manifest lists
        unlisted = sorted(e.base_name for e in entries if e.base_name not in names)
        if unlisted:
            what = "a folder" if not next(e for e in entries if e.base_name == unlisted[0]).is_file else "a file"
            raise BadOutput(
                f"step `{extra.get('step', '?')}` wrote {what} named {_shown_name(unlisted[0])} beside its files: a "
                "folder of files goes to the next step whole, and its manifest lists (and hashes) plain files only, "
                "none starting with `.` or `_`: remove or rename it, or write it outside $AQ_OUTPUT; nothing was "
                "committed"
            )
    manifest.update(extra)
    return location.commit(manifest)


def clear(location: Location) -> str:
    """Start a command step's attempt: withdraw the manifest and remove earlier files."""
    attempt = location.begin()
    location.fs.delete_dir_contents(location.path, missing_dir_ok=True)
    return attempt
