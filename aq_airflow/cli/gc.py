"""``aq-airflow gc``: delete what aq-airflow wrote in run folders older than each pipeline's
``artifacts_ttl``, and nothing else.

Under ``{artifacts}/{dag_id}/`` it considers only folders whose name is a run id Airflow generates
(``manual__<time>``, ``scheduled__<time>``, ...: ``client.runs.airflow_run_id``) holding a
manifest our writer committed at a step's place, or our run record (``client.runs.contents``). In
such a folder, once its newest file is older than the TTL and Airflow's metadata DB has no queued
or running run of that id, it deletes file by file what the listing showed to be ours (committed
outputs, their manifests, item lists, the run record; a killed attempt's files older than the
cutoff), then the folders that left empty. Everything else (a folder that is not a run, a run
triggered with a run_id of its own, a user's file inside a run folder) is left where it is, and
each is reported on a ``left alone`` line saying why.

A run folder written to while gc runs keeps what is new: the folder is listed again just before
deleting and left whole when anything in it changed, and deletion never goes beyond the files
listed (no recursive delete of a folder that may hold anything else; on an object store an empty
folder's marker goes only once a listing finds nothing under it).
"""

from __future__ import annotations

import datetime
import os
import posixpath
import sys
from collections import defaultdict
from dataclasses import dataclass

import pyarrow.fs as pafs

from aq_airflow.client.runs import (
    ITEM_FOLDER,
    STEP_FOLDER,
    Contents,
    RunFolder,
    airflow_run_id,
    contents,
    list_files,
    pipeline_entries,
    read_run,
)
from aq_airflow.pipeline_spec.roots import unsafe_root
from aq_airflow.runners.local import artifacts_root
from aq_airflow.runtime.artifacts import Location

NOT_A_RUN_ID = (
    "not a run folder: its name is not a run id Airflow generates (manual__<time>, scheduled__<time>, ...). "
    "A run triggered with a run_id of its own is left too: delete its folder by hand when done with it"
)
NO_RUN_FILES = "not a run folder: no file aq-airflow writes is where a run has one ({step}/_manifest.json, _run.json)"
NOT_OURS = (
    "not a run folder: no output manifest written by aq-airflow in it (a `{step}/_manifest.json` saying "
    '"writer": "aq-airflow"), nor its run record'
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
    for name, location in pipeline_entries(root, dag_id):
        if not airflow_run_id(name):
            left.append((location.uri, NOT_A_RUN_ID))
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


def run_folders(root: str, dag_id: str) -> list[RunFolder]:
    """The folders gc counts as runs of a pipeline (whatever their age), oldest first."""
    far = datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
    return [e.run for e in survey(root, dag_id, far).expired]


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def changed_since_listed(run: RunFolder) -> bool:
    """Whether a file appeared in the run folder, or one changed, since it was listed (a step is
    writing there): then nothing in it is deleted."""
    listed = {f.path: (f.mtime, f.size) for f in run.files}
    try:
        now = list_files(run.location)
    except OSError:
        return True
    return any(listed.get(f.path) != (f.mtime, f.size) for f in now)


def doomed(expired: Expired, cutoff: datetime.datetime) -> list[pafs.FileInfo]:
    """What gc deletes of an expired run folder: its committed outputs, and a killed attempt's
    files older than ``cutoff``."""
    old_attempts = [f for f in expired.found.attempts if f.mtime and _utc(f.mtime) < cutoff]
    return [*expired.found.outputs, *old_attempts]


def remove(location: Location, files: list[pafs.FileInfo]) -> list[str]:
    """Delete exactly ``files`` (listed before), one by one, then the folders at a step's place
    and the run folder if they are left empty; returns the paths that could not be deleted. A
    file not in ``files`` is never touched, whenever it was written."""
    failed = []
    for info in files:
        try:
            location.fs.delete_file(info.path)
        except FileNotFoundError:
            pass
        except OSError as error:
            failed.append(f"{info.path} ({error})")
    _prune(location)
    return failed


def _prune(location: Location) -> None:
    """Remove the run folder's empty folders at a step's place (``{step}/``, ``{step}/{index}/``),
    deepest first, then the run folder itself if empty. On a disk ``rmdir`` refuses a folder that
    is not empty at that instant; on an object store a folder goes only when a listing just
    before finds no file under it."""
    try:
        entries = location.fs.get_file_info(pafs.FileSelector(location.path, recursive=True, allow_not_found=True))
    except OSError:
        return
    folders = []
    for entry in entries:
        if entry.type != pafs.FileType.Directory:
            continue
        parts = entry.path[len(location.path) :].strip("/").split("/")
        if STEP_FOLDER.fullmatch(parts[0]) and (
            len(parts) == 1 or (len(parts) == 2 and ITEM_FOLDER.fullmatch(parts[1]))
        ):
            folders.append(entry.path)
    for path in [*sorted(folders, key=lambda p: p.count("/"), reverse=True), location.path]:
        _remove_if_empty(location.fs, path, location.is_local)


def _remove_if_empty(fs: pafs.FileSystem, path: str, local: bool) -> None:
    if local:
        try:
            os.rmdir(path)
        except OSError:  # not empty (or gone): left
            pass
        return
    try:
        under = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        if not any(entry.type == pafs.FileType.File for entry in under):
            fs.delete_dir(path)  # nothing under it but empty folders' markers
    except OSError:
        pass


def left_files(expired: Expired) -> list[str]:
    """``left alone`` lines for the files of a run folder that aq-airflow did not write, one per
    folder holding them."""
    groups: dict[str, list[str]] = defaultdict(list)
    for info in expired.found.others:
        groups[posixpath.dirname(expired.run.relative(info))].append(info.base_name)
    lines = []
    for folder, names in sorted(groups.items()):
        uri = f"{expired.run.location.uri}/{folder}".rstrip("/")
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        lines.append(f"left alone {uri}/: {len(names)} file(s) aq-airflow did not write ({shown})")
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
        unsafe = unsafe_root(root) or unsafe_root(f"{root.rstrip('/')}/{plan.dag_id}")
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
