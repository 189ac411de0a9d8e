"""``aq-airflow gc``: delete what aq-airflow wrote in run folders older than each pipeline's
``artifacts_ttl``, and nothing else.

Under ``{artifacts}/{dag_id}/`` it considers only folders whose name is a run id Airflow generates
(``manual__<time>``, ``scheduled__<time>``, ...: ``client.runs.airflow_run_id``) holding a manifest
our writer committed at a step's place, or our run record (``client.runs.contents``). In such a
folder, once its newest file is older than the TTL and Airflow's metadata DB has no queued or
running run of that id, it deletes file by file what the listing showed to be ours (committed
outputs, their manifests, item lists and large items' files, the run record and code pin; a killed
attempt's files older than the cutoff), then the folders that left empty. The code packages the runs
pinned (``{artifacts}/_code/``) are kept: gc never lists nor deletes them. Everything else (a folder
that is not a run, a run triggered with a run_id of its own, a user's file inside a run folder, a
symbolic link on a disk) is left where it is, and each is reported on a ``left alone`` line saying
why.

A run folder written to while gc runs keeps what is new: the folder is listed again just before
deleting and left whole when anything in it changed. After that second listing gc deletes the
listed paths one by one, so a file at a new path is never touched, but one a step rewrites at a
listed path in that window (a re-run's ``_manifest.json``) is deleted: paths are deleted, not the
versions listed. On a disk no symbolic link is followed, in the listing nor in deleting
(:func:`_unlink_under`, from the pipeline's folder down): a pipeline's or a run's folder that is a
link is left alone. The store's root itself may be a link (``/data -> /mnt/disk``): it is the
store, chosen by whoever set it. On an object store a folder is a name prefix, and pyarrow removes an
empty folder's marker only by deleting the prefix with whatever is under it: gc does that only
when a listing just before finds no file under it (:func:`_remove_if_empty`).
"""

from __future__ import annotations

import datetime
import os
import posixpath
import sys
from collections import defaultdict
from dataclasses import dataclass

import pyarrow.fs as pafs

from aq_airflow.artifacts.item_refs import ITEMS_FOLDER
from aq_airflow.artifacts.root import artifacts_root
from aq_airflow.artifacts.store import Location
from aq_airflow.client.runs import (
    ITEM_FOLDER,
    STEP_FOLDER,
    Contents,
    RunFolder,
    airflow_run_id,
    as_utc,
    contents,
    listing,
    pipeline_entries,
    read_run,
)
from aq_airflow.pipeline_spec.roots import unsafe_root
from aq_airflow.runtime.contract import ARTIFACTS

NOT_A_RUN_ID = (
    "not a run folder: its name is not a run id Airflow generates (manual__<time>, scheduled__<time>, ...). "
    "A run triggered with a run_id of its own is left too: delete its folder by hand when done with it"
)
NO_RUN_FILES = (
    "not a run folder: no file aq-airflow writes is where a run has one ({step}/_manifest.json, _run.json, _code.json)"
)
NOT_OURS = (
    "not a run folder: no output manifest written by aq-airflow in it (a `{step}/_manifest.json` saying "
    '"writer": "aq-airflow"), nor its run record or code pin'
)
LINK = (
    "a symbolic link: gc follows no link out of the store, so neither it nor what it points to is touched; "
    "delete the link by hand when done with it"
)


@dataclass(frozen=True)
class Expired:
    """A run folder past the TTL, with its files sorted by who wrote them."""

    run: RunFolder
    found: Contents


@dataclass(frozen=True)
class Survey:
    expired: list[Expired]  # oldest first
    left: list[tuple[str, str]]  # (folder URI, why it is left alone)


def survey(root: str, dag_id: str, cutoff: datetime.datetime) -> Survey:
    """The run folders of a pipeline past ``cutoff`` that gc may clean, and the folders under
    ``{root}/{dag_id}/`` it leaves alone, with why. A folder whose name is not a run id is not
    even listed inside (a home folder's project trees are never walked)."""
    expired, left = [], []
    pipeline = Location.of(f"{root.rstrip('/')}/{dag_id}")
    if pipeline.is_local and os.path.islink(pipeline.path):  # the store's root may be one; its folders not
        return Survey([], [(pipeline.uri, f"{LINK} (it points to {os.path.realpath(pipeline.path)})")])
    for name, location in pipeline_entries(root, dag_id):
        if not airflow_run_id(name):
            left.append((location.uri, NOT_A_RUN_ID))
            continue
        if location.is_local and os.path.islink(location.path):
            left.append((location.uri, f"{LINK} (it points to {os.path.realpath(location.path)})"))
            continue
        run = read_run(name, location)
        if run is None:
            left.append((location.uri, NO_RUN_FILES))
            continue
        if run.newest >= cutoff:
            continue
        found = contents(run)
        if not found.committed:
            left.append((location.uri, NOT_OURS))
            continue
        expired.append(Expired(run, found))
    return Survey(sorted(expired, key=lambda e: e.run.newest), left)


def changed_since_listed(run: RunFolder) -> bool:
    """Whether a file appeared in the run folder, or one changed, since it was listed (a step is
    writing there), or on a disk a symbolic link appeared or went: then nothing in it is deleted."""
    listed = {f.path: (f.mtime, f.size) for f in run.files}
    try:
        now = listing(run.location)
    except (OSError, ValueError):
        return True
    links = tuple(sorted(path[len(run.location.path) :].strip("/") for path in now.links))
    return links != run.links or any(listed.get(f.path) != (f.mtime, f.size) for f in now.files)


def doomed(expired: Expired, cutoff: datetime.datetime) -> list[pafs.FileInfo]:
    """What gc deletes of an expired run folder: its committed outputs, and a killed attempt's
    files older than ``cutoff``."""
    old_attempts = [f for f in expired.found.attempts if f.mtime and as_utc(f.mtime) < cutoff]
    return [*expired.found.outputs, *old_attempts]


def remove(location: Location, files: list[pafs.FileInfo]) -> list[str]:
    """Delete the listed ``files`` by path, one by one, then the folders at a step's place and the
    run folder if they are left empty; returns the paths that could not be deleted. A file at a
    path not in ``files`` is never touched, whenever it was written; a file written at a listed
    path after the listing (a re-run rewriting its ``_manifest.json``) is deleted, as the path is.
    On a disk nothing is deleted through a symbolic link (:func:`_unlink_under`)."""
    failed = []
    for info in files:
        try:
            if location.is_local:
                _unlink_under(*_from_pipeline(location, info.path))
            else:
                location.fs.delete_file(info.path)
        except FileNotFoundError:
            pass
        except OSError as error:
            failed.append(f"{info.path} ({error})")
    _prune(location)
    return failed


def _from_pipeline(location: Location, path: str) -> tuple[str, str]:
    """``path`` inside a run folder on a disk, as the pipeline's folder and the path below it:
    deletion starts from the pipeline's folder, so neither it nor the run folder may be a link."""
    pipeline, run = posixpath.split(location.path)
    return pipeline, posixpath.join(run, path[len(location.path) :].strip("/")).rstrip("/")


def _unlink_under(top: str, relative: str, folder: bool = False) -> None:
    """Delete the file (``folder``: the empty folder) at ``relative`` inside ``top`` on a disk
    without following a symbolic link on the way: ``top`` and each folder below it are opened with
    ``O_NOFOLLOW``, so one swapped for a link since the listing stops the deletion (an OSError)
    rather than let it reach outside the store; ``unlink`` takes a link itself, never its target."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    *folders, name = relative.split("/")
    handle = os.open(top, flags)
    try:
        for part in folders:
            inner = os.open(part, flags, dir_fd=handle)
            os.close(handle)
            handle = inner
        (os.rmdir if folder else os.unlink)(name, dir_fd=handle)
    finally:
        os.close(handle)


def _prune(location: Location) -> None:
    """Remove the run folder's empty folders at a step's place (``{step}/``, ``{step}/{index}/``,
    ``{step}/_items/``), deepest first, then the run folder itself if empty. On a disk ``rmdir``
    refuses a folder that is not empty at that instant, and no link is followed; on an object
    store see :func:`_remove_if_empty`."""
    try:
        folders = listing(location).folders
    except (OSError, ValueError):
        return
    prunable = []
    for path in folders:
        parts = path[len(location.path) :].strip("/").split("/")
        if STEP_FOLDER.fullmatch(parts[0]) and (
            len(parts) == 1 or (len(parts) == 2 and (ITEM_FOLDER.fullmatch(parts[1]) or parts[1] == ITEMS_FOLDER))
        ):
            prunable.append(path)
    for path in sorted(prunable, key=lambda p: p.count("/"), reverse=True):
        if location.is_local:
            try:
                _unlink_under(*_from_pipeline(location, path), folder=True)
            except OSError:  # not empty (or gone, or a link now): left
                pass
        else:
            _remove_if_empty(location.fs, path)
    if location.is_local:
        try:  # from the pipeline's folder, opened without following a link
            _unlink_under(*_from_pipeline(location, location.path), folder=True)
        except OSError:
            pass
    else:
        _remove_if_empty(location.fs, location.path)


def _remove_if_empty(fs: pafs.FileSystem, path: str) -> None:
    """On an object store, remove a folder's marker when a listing finds no file under it. A
    folder there is a name prefix, and pyarrow's only way to remove its marker is ``delete_dir``,
    which deletes the prefix with everything under it: a file written under the folder between
    this listing and the delete (a request apart) would go with it."""
    try:
        under = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        if not any(entry.type == pafs.FileType.File for entry in under):
            fs.delete_dir(path)
    except OSError:
        pass


def left_files(expired: Expired) -> list[str]:
    """``left alone`` lines for the files of a run folder that aq-airflow did not write, one per
    folder holding them, and for each symbolic link in it (on a disk)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for info in expired.found.others:
        groups[posixpath.dirname(expired.run.relative(info))].append(info.base_name)
    lines = []
    for folder, names in sorted(groups.items()):
        uri = f"{expired.run.location.uri}/{folder}".rstrip("/")
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        lines.append(f"left alone {uri}/: {len(names)} file(s) aq-airflow did not write ({shown})")
    for link in expired.run.links:
        lines.append(f"left alone {expired.run.location.uri}/{link}: {LINK}")
    return lines


class NoMetadataDatabase(Exception):
    """Airflow's metadata DB cannot say which runs are active, so nothing may be deleted."""


def active_runs(dag_id: str) -> set[str]:
    """Run ids of the pipeline that Airflow has queued or running.

    Raises :class:`NoMetadataDatabase` where there is no migrated metadata DB to ask (a laptop
    without Airflow set up): without it a running run's outputs could be taken.
    """
    from airflow.configuration import conf
    from sqlalchemy.exc import SQLAlchemyError

    url = conf.get("database", "sql_alchemy_conn")
    if url.startswith("sqlite:///") and not os.path.exists(url.removeprefix("sqlite:///")):
        raise NoMetadataDatabase(f"there is no Airflow metadata database at {url.removeprefix('sqlite:///')}")
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    try:
        with create_session() as session:
            query = session.query(DagRun.run_id).filter(
                DagRun.dag_id == dag_id, DagRun.state.in_([DagRunState.QUEUED, DagRunState.RUNNING])
            )
            return {run_id for (run_id,) in query}
    except SQLAlchemyError as error:
        raise NoMetadataDatabase(f"Airflow's metadata database cannot be read ({type(error).__name__})") from None


def _age(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} seconds"


@dataclass
class Tally:
    removed: int = 0
    kept: int = 0
    left: int = 0
    failed: int = 0


def clean(
    expired: Expired,
    cutoff: datetime.datetime,
    now: datetime.datetime,
    dry_run: bool = False,
    tally: Tally | None = None,
) -> None:
    """Delete (or with ``dry_run`` list) what aq-airflow wrote in one expired run folder, as
    :func:`survey` listed it, printing what it deletes and leaves; a folder written to since it
    was listed is kept whole."""
    tally = tally if tally is not None else Tally()
    run = expired.run
    age = _age((now - run.newest).total_seconds())
    others = left_files(expired)
    if not dry_run and changed_since_listed(run):
        tally.kept += 1
        print(f"kept    {run.location.uri} (written to since gc listed it: a step is writing there)")
        return
    what = f"aq-airflow's files in {run.location.uri}" if others else run.location.uri
    print(f"{'would delete' if dry_run else 'deleted'} {what} ({age} old)")
    for line in others:
        print(line)
    tally.removed += 1
    tally.left += bool(others)
    if dry_run:
        return
    failed = remove(run.location, doomed(expired, cutoff))
    for path in failed:
        print(f"could not delete {path}", file=sys.stderr)
    tally.failed += len(failed)


def collect(dags_folder: str, dry_run: bool, now: datetime.datetime | None = None) -> int:
    """Delete (or with ``dry_run`` list) what aq-airflow wrote in the expired run folders of every
    spec under the folder, reporting what it leaves alone."""
    from aq_airflow.pipeline_spec import SpecError, spec_paths
    from aq_airflow.plan import compile_spec

    now = now or datetime.datetime.now(datetime.timezone.utc)
    tally, refused = Tally(), False
    for path in spec_paths(dags_folder):
        try:
            plan = compile_spec(path, dags_folder)
        except SpecError as error:
            print(f"skipped {path}: invalid spec ({error.issues[0]})", file=sys.stderr)
            continue
        if plan.artifacts_ttl is None:
            continue
        root = artifacts_root(plan.artifacts)
        written = plan.artifacts or os.environ.get(ARTIFACTS) or root  # a `~` or `$X` as written
        unsafe = unsafe_root(written) or unsafe_root(root) or unsafe_root(f"{root.rstrip('/')}/{plan.dag_id}")
        if unsafe:  # from $AQ_ARTIFACTS or $AIRFLOW_HOME (a spec's own is refused by validate)
            print(f"skipped {path}: its artifact store {unsafe}", file=sys.stderr)
            refused = True
            continue
        cutoff = now - datetime.timedelta(seconds=plan.artifacts_ttl.value)
        found = survey(root, plan.dag_id, cutoff)
        for uri, why in found.left:
            print(f"left alone {uri}: {why}")
        tally.left += len(found.left)
        try:
            running = active_runs(plan.dag_id) if found.expired else set()
        except NoMetadataDatabase as error:
            print(
                f"{error}: aq-airflow gc asks it which runs are still running, so it deletes nothing. Run it "
                "where Airflow runs (the same AIRFLOW_HOME or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN). The outputs "
                "of `aq-airflow run` live in its --workdir (or --artifacts): delete that folder instead.",
                file=sys.stderr,
            )
            return 2
        for expired in found.expired:
            if expired.run.run_id in running:
                tally.kept += 1
                print(f"kept    {expired.run.location.uri} (the run is still queued or running)")
                continue
            clean(expired, cutoff, now, dry_run, tally)
    verb = "would be deleted" if dry_run else "deleted"
    print(
        f"{tally.removed} run folder(s) {verb}, {tally.kept} kept while running, "
        f"{tally.left} folder(s) with files left alone (see the `left alone` lines)",
        file=sys.stderr,
    )
    return 2 if refused else 1 if tally.failed else 0


def main(dags_folder: str, dry_run: bool) -> int:
    if not os.path.isdir(dags_folder):
        print(f"{dags_folder}: not a folder", file=sys.stderr)
        return 2
    return collect(dags_folder, dry_run)
