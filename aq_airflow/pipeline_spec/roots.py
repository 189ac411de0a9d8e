"""Where an artifact store may not be rooted: the filesystem's root, a home folder, a system folder.

Steps write ``{root}/{dag_id}/{run_id}/...`` and ``aq-airflow gc`` looks for run folders under
``{root}/{dag_id}/``. A root shared with the machine's or a user's own files makes a pipeline's
folder one of theirs (``artifacts: /`` with ``pipeline: etc`` is ``/etc``). gc deletes only what
aq-airflow wrote (``client.runs``), but a store among someone else's files is a mistake whatever
gc does: ``validate`` refuses such a root in a spec (a located error), and ``aq-airflow run``
(``--artifacts``, ``--workdir``) and ``aq-airflow gc`` refuse it wherever it comes from.

Refused (see :func:`unsafe_root`): ``/``; the user's home (``~``, ``$HOME``); the folders in
:data:`SHARED_FOLDERS` themselves (a folder of its own inside them is fine: ``/var/lib/aq``,
``/mnt/data/aq``, ``/tmp/aq``); the system trees in :data:`SYSTEM_TREES` and ``/lib*``, and
anything inside them. An object store's bucket or container root (``s3://bucket``) is a store of
its own: allowed. A root is judged as the store will use it: a ``file://`` URI percent-decoded, no
``$VAR`` or ``~`` expanded (refused: the store expands neither), through its symbolic links.
"""

from __future__ import annotations

import os
import posixpath
from urllib.parse import urlsplit

# folders that hold everyone's folders: never a store themselves
SHARED_FOLDERS = frozenset(
    {
        "/home", "/root", "/tmp", "/var", "/var/lib", "/var/tmp", "/var/cache", "/var/log", "/var/spool",  # noqa: S108
        "/opt", "/srv", "/mnt", "/media", "/run", "/snap", "/nix",
        # macOS
        "/Users", "/Volumes", "/Library", "/Applications", "/private", "/private/tmp", "/private/var",
    }
)  # fmt: skip
# the operating system's own trees: neither they nor anything inside them
SYSTEM_TREES = ("/etc", "/usr", "/bin", "/sbin", "/boot", "/dev", "/proc", "/sys", "/System", "/private/etc")


def _homes() -> set[str]:
    homes = {os.path.expanduser("~"), os.environ.get("HOME") or ""}
    try:
        import pwd

        homes.add(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError, OSError):
        pass
    return {posixpath.normpath(home) for home in homes if home.startswith("/")}


def _why(path: str, homes: set[str]) -> str | None:
    """Why the absolute, normalised local ``path`` is no store's root, or None."""
    if path == "/":
        return "the filesystem's root"
    if path in homes:
        return "your home folder"
    if path in SHARED_FOLDERS:
        return "a folder shared by the whole system"
    top = "/" + path.split("/")[1]
    if any(path == tree or path.startswith(f"{tree}/") for tree in SYSTEM_TREES) or top.startswith("/lib"):
        return "a system folder"
    return None


# schemes of object stores (pyarrow's, and ``az://``): judged without building their filesystem,
# which would reach the network (an S3 bucket's region)
OBJECT_STORES = ("s3://", "gs://", "gcs://", "hdfs://", "viewfs://", "abfs://", "abfss://", "az://")
NO_EXPANSION = "the store does not expand variables or ~: write the path out"


def _local_path(root: str) -> tuple[str | None, str | None]:
    """The path on this machine's disk the store would use for ``root``, or None for a store
    elsewhere; and why ``root`` is no URI the store can open, or None. It is what the store's own
    :func:`aq_airflow.artifacts.store.filesystem` makes of it, so a ``file://`` URI is judged
    percent-decoded (``file:///%65tc`` is /etc) and a path with ``://`` inside as the path it is."""
    from aq_airflow.artifacts.store import filesystem  # the store's reading of a URI, only when one is judged

    try:
        fs, path = filesystem(root)
    except (ValueError, OSError, TypeError) as error:
        return None, f"`{root}` is not a location the artifact store can open ({error}): write a folder's absolute path"
    return (path if type(fs).__name__ == "LocalFileSystem" else None), None


def unsafe_root(root: str, *, relative: bool = True) -> str | None:
    """Why ``root`` (a local path, a ``file://`` URI, or an object-store URI) cannot be an
    artifact store's root, saying how to fix it; None when it can.

    A root is judged as the store reads it (:func:`_local_path`): as written, never with ``$VARS``
    or ``~`` expanded, for the store expands neither (``$`` or a leading ``~`` is refused: the
    store would make a folder of that name), and as it resolves (through symlinks). A relative
    path is judged against this process's working folder; ``relative=False`` lets it pass instead
    (``validate`` cannot know the folder a scheduler resolves it in; gc and ``aq-airflow run``
    judge the path they resolved)."""
    if "$" in root or root.startswith("~"):
        return f"`{root}`: {NO_EXPANSION}"
    if root.startswith(OBJECT_STORES):
        parts = urlsplit(root)
        if not (parts.netloc or parts.path.strip("/")):
            return f"`{root}` names no bucket or container: write it as {parts.scheme}://BUCKET/PREFIX"
        return None  # a bucket or container of its own, or a prefix in one
    if "://" not in root and not os.path.isabs(root) and not relative:
        return None
    local, unreadable = _local_path(root)
    if unreadable or local is None:
        return unreadable
    absolute = posixpath.normpath(local)
    homes = _homes()
    for path in dict.fromkeys((absolute, posixpath.normpath(os.path.realpath(absolute)))):
        why = _why(path, homes)
        if why:
            shown = root if path == root else f"{root} (which is {path})"
            example = "/var/lib/aq-artifacts" if why == "a system folder" or path == "/" else f"{path}/aq-artifacts"
            return (
                f"`{shown}` is {why}: steps would write run folders among files that are not the pipeline's, and "
                f"`aq-airflow gc` looks for runs to delete there; give the store a folder of its own, e.g. "
                f"{example}, or an object store (s3://BUCKET/aq)"
            )
    return None
