"""Code packages: a pipeline's step code folder as one deterministic archive in the artifact
store, addressed by its digest, so that code reaches pods as data, not as an image.

- **Built** on the worker from the code folder (:func:`build`): the files :func:`scan` keeps
  (``.gitignore`` and ``.aqignore`` honoured; hidden folders, ``__pycache__`` and bytecode left
  out; files that look like credentials, a symlink out of the folder and a package over the size
  limit refused with :class:`PackageRefused`), in sorted order with fixed times and owners, as an
  uncompressed tar whose sha256 is the package's digest, stored gzip-compressed without a
  timestamp.
- **Stored** once at ``<artifacts>/_code/<hex>`` (:func:`upload`): written under a temporary
  name and moved into place, as a manifest is committed. Its name is its content, so a second
  writer, concurrent or later, writes the same bytes or nothing.
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
import shutil
import tarfile
import tempfile
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

from aq_airflow.artifacts.store import Location, filesystem

CODE_FOLDER = "_code"  # <artifacts>/_code/<hex>: every package of every pipeline on this store
RUN_PIN = "_code.json"  # <artifacts>/<dag_id>/<run_id>/_code.json: the run's one code version
DEFAULT_SIZE_LIMIT = 50 * 2**20
DIGEST_PREFIX = "sha256:"
# What the archive's entries all get, whoever built it where: the digest is the files' paths,
# contents and executable bits only.
_MTIME = 0
_OWNER = 0
_FILE_MODE = 0o644
_EXEC_MODE = 0o755


class PackageRefused(Exception):
    """The code folder cannot become a package: ``path`` (relative to the folder, or None for the
    package as a whole) and ``why``, which says how to fix it."""

    def __init__(self, folder: str, path: str | None, why: str):
        self.folder = folder
        self.path = path
        self.why = why
        where = f"{path} in the code folder {folder}" if path else f"the code folder {folder}"
        super().__init__(f"{where}: {why}")


class PackageMismatch(Exception):
    """A fetched package is not the bytes its digest names (changed, truncated, or another's)."""


@dataclass(frozen=True, slots=True)
class PackageFile:
    """One file the package holds: its path in the folder (``/``-separated), size, modification
    time and whether it is executable (the cache key is the sizes and times; the archive keeps
    the executable bit only)."""

    path: str
    size: int
    mtime_ns: int
    executable: bool


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


def scan(folder: str, size_limit: int = DEFAULT_SIZE_LIMIT) -> list[PackageFile]:
    """The files of ``folder`` a package holds, in sorted path order. Never follows a symlink:
    one to a file inside the folder is packaged as that file's contents; one that leads out of
    the folder is refused."""
    root = os.path.realpath(folder)
    found: list[PackageFile] = []
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _skipped_folder(d))
        for name in files:
            if _skipped_file(name):
                continue
            full = os.path.join(current, name)
            relative = os.path.relpath(full, root).replace(os.sep, "/")
            if os.path.islink(full):
                target = os.path.realpath(full)
                if os.path.commonpath([root, target]) != root:
                    raise PackageRefused(
                        folder, relative,
                        "is a symbolic link out of the code folder, which a package does not follow: copy the file "
                        "in, or list the link in .aqignore",
                    )  # fmt: skip
            stat = os.stat(full)
            found.append(PackageFile(relative, stat.st_size, stat.st_mtime_ns, bool(stat.st_mode & 0o111)))
    found.sort(key=lambda f: f.path)
    total = sum(f.size for f in found)
    if total > size_limit:
        largest = ", ".join(f"{f.path} ({f.size / 2**20:.1f} MiB)" for f in sorted(found, key=lambda f: -f.size)[:3])
        raise PackageRefused(
            folder, None,
            f"its files come to {total / 2**20:.1f} MiB, over the package limit of {size_limit / 2**20:.0f} MiB "
            f"(largest: {largest}): keep data out of the code folder (in the artifact store or the warehouse), "
            "or list it in .aqignore",
        )  # fmt: skip
    return found


def _skipped_folder(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


def _skipped_file(name: str) -> bool:
    return name.endswith((".pyc", ".pyo"))


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
            with open(os.path.join(root, *entry.path.split("/")), "rb") as handle:
                tar.addfile(info, handle)
    data = buffer.getvalue()
    return data, DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def compress(tar: bytes) -> bytes:
    """gzip without a name or timestamp, so the stored bytes depend on the tar only."""
    return gzip.compress(tar, compresslevel=6, mtime=0)


def build(folder: str, size_limit: int = DEFAULT_SIZE_LIMIT) -> Package:
    """The package of ``folder`` (see :func:`scan` for what it holds and refuses)."""
    files = scan(folder, size_limit)
    tar, digest = archive(folder, files)
    return Package(digest, tuple(files), compress(tar))


def location(root: str, digest: str) -> str:
    """Where the package of ``digest`` is kept in the store at ``root``."""
    return f"{root.rstrip('/')}/{CODE_FOLDER}/{digest.removeprefix(DIGEST_PREFIX)}"


def upload(package: Package, root: str) -> str:
    """Store ``package`` under the store ``root`` unless it is there already; its location."""
    uri = location(root, package.digest)
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
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
    return uri


def default_cache() -> str:
    return os.path.join(tempfile.gettempdir(), "aq-airflow-code")


def fetch(uri: str, digest: str, cache: str | None = None) -> str:
    """The folder holding package ``digest`` extracted: from the cache when an earlier step on
    this machine extracted it, else downloaded from ``uri``, checked against ``digest``, and
    extracted into a temporary folder that is renamed into place (a concurrent step that renamed
    first wins; both hold the same files)."""
    cache = cache or default_cache()
    target = os.path.join(cache, digest.removeprefix(DIGEST_PREFIX))
    if os.path.isdir(target):
        return target
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as handle:
        compressed = handle.read()
    tar = gzip.decompress(compressed)
    actual = DIGEST_PREFIX + hashlib.sha256(tar).hexdigest()
    if actual != digest:
        raise PackageMismatch(
            f"the code package at {uri} is not the package {digest} (its bytes hash to {actual}): it was changed "
            f"after it was stored; delete it, and the next task stores it again"
        )
    os.makedirs(cache, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", dir=cache)
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive_:
            archive_.extractall(staging, filter="data")
        try:
            os.rename(staging, target)
        except OSError:  # another step renamed its copy first
            if not os.path.isdir(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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
    task recorded one first, else ``code``, recorded now. On a local disk the record is created
    exclusively (two first tasks agree); an object store has no create-if-absent, so two first
    tasks racing there may each keep their own, if the dags folder changed between them."""
    recorded = Location.of(run_folder)
    path = recorded.join(RUN_PIN)
    existing = _read_pin(recorded.fs, path)
    if existing is not None:
        return existing
    recorded.fs.create_dir(recorded.path, recursive=True)
    if recorded.is_local:
        try:
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(code.to_json())
            return code
        except FileExistsError:
            return _read_pin(recorded.fs, path) or code
    with recorded.fs.open_output_stream(path) as handle:
        handle.write(code.to_json().encode())
    return _read_pin(recorded.fs, path) or code


def read_pin(run_folder: str | Location) -> PinnedCode | None:
    """The code version pinned in a run's folder (a URI, or its :class:`Location` as a listing
    found it); None when the run pinned none (no python or command step ran in a pod, or the run
    is older than code packages) or its record is unreadable."""
    folder = run_folder if isinstance(run_folder, Location) else Location.of(run_folder)
    return _read_pin(folder.fs, folder.join(RUN_PIN))


def _read_pin(fs: pafs.FileSystem, path: str) -> PinnedCode | None:
    try:
        with fs.open_input_stream(path) as handle:
            record = json.loads(handle.read(64 * 1024))
    except (FileNotFoundError, OSError, ValueError):
        return None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("digest", "uri")):
        return None
    return PinnedCode(record["digest"], record["uri"], record.get("git"))
