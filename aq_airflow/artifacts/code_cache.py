"""The build cache of code packages: unchanged code is not read, scanned, archived nor
compressed again, so building the package of a folder nobody edited costs the walk that stats
its files (``code_files.scan``) and one small read.

A package is keyed by the folder (its real path), each file's path, size, modification time
(nanoseconds) and executable bit, and the rules a build applies (:data:`RULES`): a file edited,
added, removed, renamed or made executable is another key. Two caches hold what the key maps to
(the digest and the compressed bytes): a dict in this process (a worker builds the same folder
for many tasks) and a folder on disk for the processes after it (each task runs in its own),
``$XDG_CACHE_HOME/aq-airflow/code`` (``~/.cache/...``), or, where there is no home, a folder of
this user's in the temporary folder. The folder and its files are private (0700, 0600; a folder
another user owns or may write is not used), written by rename so a reader sees a whole entry or
none, checked against their recorded sha256 when read, and pruned to the newest
:data:`DISK_ENTRIES` keys.

What a key cannot see: a file rewritten with the same size within the same modification time
(nanoseconds on the filesystems a worker uses); ``touch`` any file of the folder to rebuild.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections import OrderedDict

from aq_airflow.artifacts.code_files import (
    DEFAULT_SIZE_LIMIT,
    PackageFile,
    refuse_credentials,
    rules_fingerprint,
    scan,
)

CACHE_FORMAT = 1
MEMORY_ENTRIES = 16
DISK_ENTRIES = 32
_MEMORY: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
RULES = rules_fingerprint()


def key(root: str, files: list[PackageFile]) -> str:
    """The cache key of the package of ``files`` in the folder at real path ``root``."""
    listed = [[f.path, f.size, f.mtime_ns, f.executable] for f in files]
    text = json.dumps([CACHE_FORMAT, RULES, root, listed], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def default_folder() -> str:
    """Where this user's build cache lives (see the module's docstring)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base) or not private(os.path.join(base, "aq-airflow", "code")):
        return os.path.join(tempfile.gettempdir(), f"aq-airflow-{os.getuid()}", "code")
    return os.path.join(base, "aq-airflow", "code")


def private(folder: str) -> bool:
    """Creates ``folder`` (0700) if need be; whether it is this user's and no one else's to
    write: a folder someone else could write into could hand this process another's code."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder, follow_symlinks=False)
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o022 and os.path.isdir(folder)


def load(cache_key: str, folder: str | None) -> tuple[str, bytes] | None:
    """(digest, compressed bytes) of a package built before with this key, or None."""
    found = _MEMORY.get(cache_key)
    if found is not None:
        _MEMORY.move_to_end(cache_key)
        return found
    if folder is None or not private(folder):
        return None
    try:
        with open(os.path.join(folder, f"{cache_key}.json"), encoding="utf-8") as handle:
            entry = json.load(handle)
        with open(os.path.join(folder, f"{entry['sha256']}.tar.gz"), "rb") as handle:
            data = handle.read()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if hashlib.sha256(data).hexdigest() != entry["sha256"] or not isinstance(entry.get("digest"), str):
        return None  # damaged: built again
    _remember(cache_key, entry["digest"], data)
    return entry["digest"], data


def store(cache_key: str, digest: str, data: bytes, folder: str | None) -> None:
    """Remember a built package under ``cache_key``, in this process and in ``folder``."""
    _remember(cache_key, digest, data)
    if folder is None or not private(folder):
        return
    sha = hashlib.sha256(data).hexdigest()
    with contextlib.suppress(OSError):
        if not os.path.exists(os.path.join(folder, f"{sha}.tar.gz")):
            _write(folder, f"{sha}.tar.gz", data)
        _write(folder, f"{cache_key}.json", json.dumps({"digest": digest, "sha256": sha}).encode())
        _prune(folder)


def _remember(cache_key: str, digest: str, data: bytes) -> None:
    _MEMORY[cache_key] = (digest, data)
    _MEMORY.move_to_end(cache_key)
    while len(_MEMORY) > MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)


def _write(folder: str, name: str, data: bytes) -> None:
    """A private file (0600) written whole or not at all."""
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp, os.path.join(folder, name))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _prune(folder: str) -> None:
    """Keep the newest :data:`DISK_ENTRIES` keys and the packages they name."""
    entries = sorted(
        (e for e in os.scandir(folder) if e.name.endswith(".json") and not e.name.startswith(".")),
        key=lambda e: e.stat().st_mtime_ns,
    )
    for entry in entries[:-DISK_ENTRIES]:
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
    kept = set()
    for entry in entries[-DISK_ENTRIES:]:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError), open(entry.path, encoding="utf-8") as h:
            kept.add(f"{json.load(h)['sha256']}.tar.gz")
    for entry in os.scandir(folder):
        if entry.name.endswith(".tar.gz") and entry.name not in kept:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def check(folder: str, size_limit: int | None = DEFAULT_SIZE_LIMIT) -> list[PackageFile]:
    """What ``code_package.build`` would package of ``folder``, or the ``PackageRefused`` it
    would raise, without archiving (``validate``; no pyarrow imported): the credential check is
    skipped for files a cached package already holds."""
    files = scan(folder, DEFAULT_SIZE_LIMIT if size_limit is None else size_limit)
    if load(key(os.path.realpath(folder), files), default_folder()) is None:
        refuse_credentials(folder, files)
    return files
