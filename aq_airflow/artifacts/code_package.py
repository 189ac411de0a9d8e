"""Code packages: a pipeline's step code folder as one deterministic archive in the artifact
store, addressed by its digest, so that code reaches pods as data, not as an image.

- **Built** on the worker from the code folder (:func:`build`): the files :func:`scan` keeps
  (``artifacts.code_files``: ``.gitignore`` and ``.aqignore`` honoured; hidden folders,
  ``__pycache__`` and bytecode left out; files that look like credentials, a symlink out of the
  folder and a package over the size limit refused with :class:`PackageRefused`), in sorted order
  with fixed times and owners, as an uncompressed tar whose sha256 is the package's digest,
  stored gzip-compressed without a timestamp. Unchanged files (by path, size, time and
  executable bit) are not read again: ``artifacts.code_cache``.
- **Stored** once at ``<artifacts>/_code/<hex>`` (:func:`upload`): written under a temporary
  name and moved into place, as a manifest is committed. Its name is its content, so a second
  writer, concurrent or later, writes the same bytes or nothing; a process that stored a
  package there once does not ask again. Packages are kept: ``aq-airflow gc`` never deletes
  them.
- **Pinned** per DAG run (:func:`pin`): the first task of a run that needs the package records
  its digest in the run's folder (``_code.json``); every later task and retry of the run uses
  that digest, whatever the dags folder holds by then.
- **Fetched** where the step runs (:func:`fetch`): downloaded, its digest checked while it is
  decompressed, extracted once per digest into a cache folder shared by the steps on a node, by
  an atomic rename.

No Airflow here: the runtime in the step's container uses this module too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow.fs as pafs

from aq_airflow.artifacts import code_cache
from aq_airflow.artifacts.code_cache import check
from aq_airflow.artifacts.code_files import (
    DEFAULT_SIZE_LIMIT,
    PackageFile,
    PackageRefused,
    open_file,
    refuse_credentials,
    scan,
)
from aq_airflow.artifacts.root import CODE_FOLDER, RUN_PIN
from aq_airflow.artifacts.store import Location, filesystem

__all__ = [
    "CODE_FOLDER",
    "DEFAULT_SIZE_LIMIT",
    "RUN_PIN",
    "Package",
    "PackageFile",
    "PackageMismatch",
    "PackageRefused",
    "PinnedCode",
    "archive",
    "build",
    "check",
    "fetch",
    "location",
    "pin",
    "scan",
    "upload",
]  # fmt: skip

DIGEST_PREFIX = "sha256:"
MAX_TAR = 2 * 2**30  # what fetch decompresses at most: above the largest `code_max_size` a spec may set (1 GiB)
# What the archive's entries all get, whoever built it where: the digest is the files' paths,
# contents and executable bits only.
_MTIME = 0
_OWNER = 0
_FILE_MODE = 0o644
_EXEC_MODE = 0o755


class PackageMismatch(Exception):
    """A fetched package is not the bytes its digest names (changed, truncated, or another's)."""


@dataclass(frozen=True, slots=True)
class Package:
    """A built package: its digest (``sha256:<hex>`` of the tar), files and compressed bytes."""

    digest: str
    files: tuple[PackageFile, ...]
    data: bytes  # the gzip-compressed tar, as stored

    @property
    def size(self) -> int:
        """The bytes of the files it holds (what the size limit counts)."""
        return sum(f.size for f in self.files)

    @property
    def hex(self) -> str:
        return self.digest.removeprefix(DIGEST_PREFIX)


def archive(folder: str, files: list[PackageFile]) -> tuple[bytes, str]:
    """The uncompressed tar of ``files`` (fixed times, owners and modes) and its digest."""
    root = os.path.realpath(folder)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in files:
            info = tarfile.TarInfo(entry.path)
            info.size = entry.size
            info.mtime = _MTIME
            info.uid = info.gid = _OWNER
            info.uname = info.gname = ""
            info.mode = _EXEC_MODE if entry.executable else _FILE_MODE
            with open_file(folder, root, entry.path) as handle:
                try:
                    tar.addfile(info, handle)
                    unchanged = os.fstat(handle.fileno()).st_size == entry.size and not handle.read(1)
                except OSError:  # tarfile's "unexpected end of data": it shrank
                    unchanged = False
            if not unchanged:  # a package holding part of a file would run code nobody wrote
                raise PackageRefused(
                    folder, entry.path, "changed while it was being packaged: package again once nothing writes to it"
                )
    data = buffer.getvalue()
    return data, DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def compress(tar: bytes) -> bytes:
    """gzip without a name or timestamp, so the stored bytes depend on the tar only."""
    return gzip.compress(tar, compresslevel=6, mtime=0)


def build(
    folder: str, size_limit: int | None = DEFAULT_SIZE_LIMIT, *, cache: str | bool = True, exclude: Iterable[str] = ()
) -> Package:
    """The package of ``folder`` (see :func:`scan` for what it holds and refuses): from the build
    cache when no file changed since it was built (``artifacts.code_cache``), else read, scanned
    for credentials, archived and compressed. ``size_limit``: bytes (None: the default).
    ``cache``: True for this user's cache folder, a folder, or False for none (the in-process
    cache too). ``exclude``: folders never packaged (see :func:`scan`)."""
    never = frozenset(os.path.realpath(path) for path in exclude)
    files = scan(folder, DEFAULT_SIZE_LIMIT if size_limit is None else size_limit, never)
    folder_cache = code_cache.default_folder() if cache is True else cache or None
    key = code_cache.key(os.path.realpath(folder), files)
    cached = code_cache.load(key, folder_cache) if cache is not False else None
    if cached is not None:
        return Package(cached[0], tuple(files), cached[1])
    refuse_credentials(folder, files)
    tar, digest = archive(folder, files)
    package = Package(digest, tuple(files), compress(tar))
    if cache is not False:
        code_cache.store(key, digest, package.data, folder_cache)
    return package


def is_digest(digest: object) -> bool:
    """Whether ``digest`` is a package digest, ``sha256:`` and 64 lowercase hex digits."""
    return isinstance(digest, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", digest) is not None


def confined(uri: object, digest: str) -> bool:
    """Whether ``uri`` is where some store keeps the package ``digest`` (``<root>/_code/<hex>``):
    a pin or a provenance record naming anything else (another file, a local path such as a pipe
    that never ends) is not followed."""
    return isinstance(uri, str) and is_digest(digest) and uri.endswith(f"/{CODE_FOLDER}/{digest[len(DIGEST_PREFIX) :]}")


def location(root: str, digest: str) -> str:
    """Where the package of ``digest`` is kept in the store at ``root``."""
    return f"{root.rstrip('/')}/{CODE_FOLDER}/{digest.removeprefix(DIGEST_PREFIX)}"


# (location) of the packages this process stored or found stored: not asked about again
_STORED: set[str] = set()


def upload(package: Package, root: str) -> str:
    """Store ``package`` under the store ``root`` unless it is there already; its location. A
    package this process stored (or found) there before costs no request."""
    uri = location(root, package.digest)
    if uri in _STORED:
        return uri
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
        _STORED.add(uri)
        return uri
    fs.create_dir(posixpath.dirname(path), recursive=True)
    temp = f"{posixpath.dirname(path)}/.{posixpath.basename(path)}.{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(temp) as handle:
        handle.write(package.data)
    try:
        fs.move(temp, path)
    except NotImplementedError:  # Azure without a hierarchical namespace: a server-side copy
        fs.copy_file(temp, path)
        fs.delete_file(temp)
    _STORED.add(uri)
    return uri


def default_cache() -> str:
    """This user's folder of extracted packages in the temporary folder (0700). Where it is not
    this user's own (someone else made it, or may write into it: they could plant code under a
    digest's name), a new private folder of this process's instead."""
    folder = os.path.join(tempfile.gettempdir(), f"aq-airflow-code-{os.getuid()}")
    return folder if code_cache.private(folder) else tempfile.mkdtemp(prefix="aq-airflow-code-")


def fetch(uri: str, digest: str, cache: str | None = None) -> str:
    """The folder holding package ``digest`` extracted: from the cache when an earlier step on
    this machine extracted it, else downloaded from ``uri``, checked against ``digest``, and
    extracted into a temporary folder that is renamed into place (a concurrent step that renamed
    first wins; both hold the same files). A ``cache`` folder that is not this user's alone (see
    :func:`default_cache`) is not used; a file or link where the digest's folder belongs is
    replaced."""
    if not is_digest(digest):  # its hex names a folder: `sha256:/usr/lib` must not be one
        raise PackageMismatch(f"{digest!r} is not a package digest (sha256:<64 hex digits>)")
    if not cache or (os.path.lexists(cache) and not code_cache.private(cache)):
        cache = default_cache()  # a folder another may write into could hold their code under this digest's name
    target = os.path.join(cache, digest.removeprefix(DIGEST_PREFIX))
    if os.path.isdir(target) and not os.path.islink(target):
        return target
    fs, path = filesystem(uri)
    with tempfile.TemporaryFile() as tar:
        with fs.open_input_stream(path) as handle:
            actual = unpack(uri, handle, tar)
        if actual != digest:
            raise PackageMismatch(
                f"the code package at {uri} is not the package {digest} (its bytes hash to {actual}): it was "
                "changed after it was stored; delete it, and the next task stores it again"
            )
        tar.seek(0)
        os.makedirs(cache, mode=0o700, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", dir=cache)
        try:
            try:
                with tarfile.open(fileobj=tar, mode="r:") as archive_:
                    archive_.extractall(staging, filter="data")  # no path out of the folder, no device, no link out
            except tarfile.TarError as error:
                raise PackageMismatch(
                    f"the code package at {uri} cannot be extracted ({error}): it is not a package aq-airflow stored"
                ) from None
            if os.path.islink(target) or (os.path.lexists(target) and not os.path.isdir(target)):
                os.unlink(target)  # not an extracted package (a stray file or link): the package takes its place
            try:
                os.rename(staging, target)
            except OSError:  # another step renamed its copy first
                if not os.path.isdir(target):
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def unpack(uri: str, source: BinaryIO, out: BinaryIO) -> str:
    """The tar a stored package (``source``, read from ``uri``) holds, written to ``out`` a chunk
    at a time, and its digest: read no further than :data:`MAX_TAR` bytes (a package is at most
    its size limit plus the tar's headers: a bigger one, or bytes that are not gzip, is not a
    package aq-airflow stored, and a few MiB that decompress to far more never fill memory)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with gzip.GzipFile(fileobj=source) as stream:
            while chunk := stream.read(2**20):
                size += len(chunk)
                if size > MAX_TAR:
                    raise PackageMismatch(f"the code package at {uri} holds over {MAX_TAR} bytes: it is not a package")
                digest.update(chunk)
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise PackageMismatch(f"the code package at {uri} is not a gzip archive ({error}): delete it") from None
    return DIGEST_PREFIX + digest.hexdigest()


@dataclass(frozen=True, slots=True)
class PinnedCode:
    """A run's one code version: the package's digest and location (``_code.json``)."""

    digest: str
    uri: str
    git: dict | None = None  # {"commit": sha, "dirty": bool} when the folder was a git checkout

    def to_json(self) -> str:
        return json.dumps({"digest": self.digest, "uri": self.uri, "git": self.git}, sort_keys=True)


def pin(run_folder: str, code: PinnedCode) -> PinnedCode:
    """The code version of the run whose folder is ``run_folder``: the one recorded there when a
    task recorded one first, else ``code``, recorded now. On a local disk the record is written
    whole under a temporary name and linked into place, which fails if it exists: two first tasks
    agree, and no reader ever sees half a record. An object store has no create-if-absent, so two
    first tasks racing there may each keep their own, if the dags folder changed between them.
    A record that cannot be read, or is not one :func:`pin` wrote, raises :class:`PackageMismatch`
    (the task fails and retries; it never pins other code over it)."""
    recorded = Location.of(run_folder)
    path = recorded.join(RUN_PIN)
    existing = _read_pin(recorded.fs, path, strict=True)
    if existing is not None:
        return existing
    recorded.fs.create_dir(recorded.path, recursive=True)
    if recorded.is_local:
        temp = f"{path}.{uuid.uuid4().hex[:8]}"
        with open(temp, "x", encoding="utf-8") as handle:
            handle.write(code.to_json())
        try:
            os.link(temp, path)
            return code
        except FileExistsError:
            return _read_pin(recorded.fs, path, strict=True) or code
        finally:
            os.unlink(temp)
    with recorded.fs.open_output_stream(path) as handle:
        handle.write(code.to_json().encode())
    return _read_pin(recorded.fs, path, strict=True) or code


def read_pin(run_folder: str | Location, *, strict: bool = False) -> PinnedCode | None:
    """The code version pinned in a run's folder (a URI, or its :class:`Location` as a listing
    found it); None when the run pinned none (no python or command step ran, or the run is older
    than code packages). A record that cannot be read or is not a pin: None for readers (``show``,
    ``diff``), :class:`PackageMismatch` with ``strict`` (a task, which must not take a store's
    passing error for "no pin" and pin other code)."""
    folder = run_folder if isinstance(run_folder, Location) else Location.of(run_folder)
    return _read_pin(folder.fs, folder.join(RUN_PIN), strict=strict)


def _read_pin(fs: pafs.FileSystem, path: str, strict: bool = False) -> PinnedCode | None:
    try:
        with fs.open_input_stream(path) as handle:
            data = handle.read(64 * 1024)
    except FileNotFoundError:
        return None
    except OSError as error:
        if strict:
            raise PackageMismatch(
                f"{path}, this run's code pin, cannot be read ({' '.join(str(error).split())}): the task tries again; "
                f"if the file is damaged, delete it (the next task pins the code folder as it is then)"
            ) from None
        return None
    try:
        record = json.loads(data)
    except ValueError:  # not JSON, or cut short: a record larger than any pin
        record = None
    if not isinstance(record, dict) or not confined(record.get("uri"), record.get("digest")):
        if strict:
            raise PackageMismatch(
                f"{path} is not a code pin aq-airflow wrote (not JSON naming a digest and its package under "
                f"`{CODE_FOLDER}/`): start a new run, or delete it to pin this run's code anew"
            )
        return None
    git = record.get("git")
    return PinnedCode(record["digest"], record["uri"], git if isinstance(git, dict) else None)
