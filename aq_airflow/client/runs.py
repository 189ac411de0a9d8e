"""A pipeline's runs in an artifact store: the one listing that the client, ``aq-airflow run
--from`` (resume) and ``aq-airflow gc`` read, and the one rule for which files in it are
aq-airflow's.

A run's outputs live under ``{root}/{dag_id}/{run_id}/``: one folder per step holding its
committed manifest (``_manifest.json``), or for a mapped (``foreach:``) step ``_items.json`` and
one folder per item (``0/``, ``1/``, ...) holding the item's manifest. ``aq-airflow run`` also
leaves a run record, ``_run.json``, saying how the run ended (Airflow's own record of it goes with
the temporary Airflow home).

**A run folder** is a folder directly under ``{root}/{dag_id}/`` with one of our files *where a run
has it* (:func:`place`): ``_run.json`` or ``_code.json`` (the run's code pin) at its top;
``{step}/_manifest.json``, ``{step}/_items.json`` or a killed attempt's file
(``artifacts.store.ATTEMPT_FILE``) in a step folder named as the spec names steps; the same in
``{step}/{index}/`` beside a ``{step}/_items.json``. A file deeper or elsewhere
(``projectX/tests/fixtures/_manifest.json``) makes nothing a run. That is what :func:`list_runs`
lists: one recursive listing per run (even on a store), and besides it only the run record
(``_run.json``) and each mapped step's ``_items.json`` are read. On a disk the listing does not
follow symbolic links (:func:`listing`): what a link in a run folder points to is never taken for
part of the run.

**What aq-airflow wrote** in a run folder (:func:`contents`, which reads them) is narrower: a
manifest at a step's place that our writer committed (``artifacts.manifest.is_ours``) and the files
it names, a mapped step's ``_items.json``, a ``_run.json`` naming this run, a ``_code.json`` pinning
a code package, and the files of attempts that never committed. ``aq-airflow gc`` deletes only
those, and only in a folder whose name is a run id Airflow generates (:func:`airflow_run_id`). The
code packages themselves, ``{root}/_code/``, are no run's: never listed, never deleted (they are
kept).
"""

from __future__ import annotations

import datetime
import json
import os
import posixpath
import re
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from aq_airflow.artifacts.code_package import confined
from aq_airflow.artifacts.item_refs import ITEMS_FOLDER
from aq_airflow.artifacts.items import ITEMS_FILE, ItemList
from aq_airflow.artifacts.manifest import is_ours
from aq_airflow.artifacts.root import CODE_FOLDER, RUN_PIN
from aq_airflow.artifacts.store import ATTEMPT_FILE, MANIFEST, Location, MissingArtifact

RUN_RECORD = "_run.json"

# The run types of Airflow 3 (``airflow.utils.types.DagRunType``; a test holds the two equal) and
# the ids it generates (``DagRunType.generate_run_id``): ``<type>__<run_after in ISO form>``; with
# ``_<8 letters or digits>`` after it when the run has no logical date, or ``__<partition
# key>__<8 ...>`` (a partitioned timetable). ``aq-airflow run`` names its runs the same way
# (``manual__...``). A run triggered through the REST API with a run_id of its own has none of these
# forms: gc leaves its folder and says so (it cannot be told from a user's folder by its name).
# The partition key is held to the characters of Airflow's own run_id rule (``allowed_run_id_pattern``,
# ``[A-Za-z0-9_.~:+-]``): no ``#``, ``?``, ``%`` or space, which a store URI would read as another
# folder's name or not at all; gc leaves a folder so named and says why.
RUN_TYPES = ("backfill", "scheduled", "manual", "operator_triggered", "asset_triggered", "asset_materialization")
_ISO_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[+-]\d{2}:\d{2}|Z)?"
_PARTITION_KEY = r"[A-Za-z0-9_.~:+-]+"
AIRFLOW_RUN_ID = re.compile(
    rf"(?:{'|'.join(RUN_TYPES)})__{_ISO_TIME}(?:_[A-Za-z0-9]{{8}}|__{_PARTITION_KEY}__[A-Za-z0-9]{{8}})?"
)
# a step folder's name: the spec's step name rule (``pipeline_spec.types.StepName``; a test holds
# the two equal); an item folder's: its map index
STEP_FOLDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
ITEM_FOLDER = re.compile(r"0|[1-9][0-9]*")


def airflow_run_id(name: str) -> bool:
    """Whether a folder's name is a run id Airflow generates (see :data:`AIRFLOW_RUN_ID`)."""
    return AIRFLOW_RUN_ID.fullmatch(name) is not None


def run_id_time(run_id: str) -> datetime.datetime | None:
    """The time an Airflow-generated run id carries (the run's ``run_after``:
    ``scheduled__2026-01-01T00:00:00+00:00``, with or without its suffix), aware UTC; None for an
    id of another form."""
    if not airflow_run_id(run_id):
        return None
    stamp = re.match(_ISO_TIME, run_id.split("__", 1)[1])
    try:
        return as_utc(datetime.datetime.fromisoformat(stamp.group(0)))
    except (AttributeError, ValueError):  # a time the pattern admits that is none (month 13)
        return None


@dataclass(frozen=True)
class StepFolder:
    """What a run folder holds of one step.

    ``committed``: the step's manifest is there; for a mapped step, its item list and every
    item's manifest. ``items``: a mapped step's item count (None: not mapped), of which
    ``committed_items`` have a manifest."""

    name: str
    committed: bool
    items: int | None = None
    committed_items: int = 0

    @property
    def mapped(self) -> bool:
        return self.items is not None


@dataclass(frozen=True)
class RunFolder:
    """One run's folder: its steps, its newest file's time, the run record, if any, and every file
    in it (the one listing that :func:`contents` sorts). ``links``: on a disk, the symbolic links in
    it (paths inside the run folder), which the listing did not follow: nothing they point to is
    among ``files``."""

    run_id: str
    location: Location
    newest: datetime.datetime  # the newest file's modification time, UTC
    steps: dict[str, StepFolder] = field(default_factory=dict)
    record: dict | None = None  # `_run.json`: how `aq-airflow run` ended it
    files: tuple[pafs.FileInfo, ...] = field(default=(), repr=False, compare=False)
    links: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def state(self) -> str | None:
        """``success`` or ``failed`` as the run record says; None without one (a run made by a
        deployed Airflow, whose metadata DB knows)."""
        return (self.record or {}).get("state")

    @property
    def written(self) -> datetime.datetime:
        """When the run ended: its record's ``finished`` time, else its newest file's."""
        finished = (self.record or {}).get("finished")
        try:
            return as_utc(datetime.datetime.fromisoformat(finished)) if finished else self.newest
        except (TypeError, ValueError):
            return self.newest

    def relative(self, info: pafs.FileInfo) -> str:
        """A file's path inside the run folder (``step/_manifest.json``)."""
        return info.path[len(self.location.path) :].strip("/")


def as_utc(moment: datetime.datetime) -> datetime.datetime:
    """A listed file's time as an aware UTC time (a store may give it naive, meaning UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _epoch() -> datetime.datetime:
    return datetime.datetime.fromtimestamp(0, datetime.timezone.utc)


def place(path: str, mapped: set[str]) -> str | None:
    """What a file of a run folder is by where it sits (``path`` relative to the run folder):
    ``record``, ``pin`` (the run's code version), ``manifest``, ``items``, ``item`` (a large
    item's file, ``{step}/_items/{index}.json``) or ``attempt``; None where aq-airflow never
    writes one. ``mapped``: the step folders holding a ``_items.json`` (whose item folders
    count)."""
    parts = path.split("/")
    if parts == [RUN_RECORD]:
        return "record"
    if parts == [RUN_PIN]:
        return "pin"
    if len(parts) < 2 or not STEP_FOLDER.fullmatch(parts[0]):
        return None
    if len(parts) == 2 and parts[1] == ITEMS_FILE:
        return "items"
    if len(parts) == 3 and parts[0] in mapped and parts[1] == ITEMS_FOLDER:
        stem, _, suffix = parts[2].partition(".")
        return "item" if suffix == "json" and ITEM_FOLDER.fullmatch(stem) else None
    if len(parts) == 3 and not (parts[0] in mapped and ITEM_FOLDER.fullmatch(parts[1])):
        return None
    if len(parts) > 3:
        return None
    if parts[-1] == MANIFEST:
        return "manifest"
    return "attempt" if ATTEMPT_FILE.fullmatch(parts[-1]) else None


def _mapped(paths: set[str]) -> set[str]:
    return {path.split("/")[0] for path in paths if path.count("/") == 1 and path.endswith(f"/{ITEMS_FILE}")}


def pipeline_entries(root: str, dag_id: str) -> list[tuple[str, Location]]:
    """Each folder directly under ``{root}/{dag_id}/`` (a run's, or anyone's): its name and
    location, from one listing of that folder (nothing under them is listed). A folder's location
    is joined to the pipeline's by path (``Location.child``), never parsed from a URI again: a name
    with ``#``, ``?``, ``%`` or a space is that folder, not another one nor an error. The store's
    folder of code packages (``_code``) is no pipeline's: nothing under it is listed."""
    if dag_id == CODE_FOLDER:
        return []
    pipeline = Location.of(f"{root.rstrip('/')}/{dag_id}")
    try:
        entries = pipeline.fs.get_file_info(pafs.FileSelector(pipeline.path, allow_not_found=True))
    except (OSError, ValueError):
        return []
    return [
        (entry.base_name, pipeline.child(entry.base_name))
        for entry in sorted(entries, key=lambda e: e.base_name)
        if entry.type == pafs.FileType.Directory
    ]


@dataclass(frozen=True)
class Listing:
    """Everything under a folder, from one recursive listing: its files, its folders (paths) and,
    on a disk, its symbolic links (paths; neither followed nor counted among files or folders)."""

    files: list[pafs.FileInfo]
    folders: list[str]
    links: list[str]


def listing(location: Location) -> Listing:
    """One recursive listing of a folder (none when it is not there). On a disk it does not follow
    symbolic links, which pyarrow's recursive listing does: a link in a run folder to a folder
    elsewhere would make that folder's files look like the run's, to be deleted with it."""
    if location.is_local:
        return _local_listing(location.path)
    listed = location.fs.get_file_info(pafs.FileSelector(location.path, recursive=True, allow_not_found=True))
    return Listing(
        [f for f in listed if f.type == pafs.FileType.File],
        [f.path for f in listed if f.type == pafs.FileType.Directory],
        [],
    )


def _local_listing(top: str) -> Listing:
    files, folders, links = [], [], []
    pending = [top]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:  # not there (or gone since its parent was listed)
            continue
        for entry in entries:
            if entry.is_symlink():
                links.append(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
                pending.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted since the folder was listed
                    continue
                info = pafs.FileInfo(entry.path, pafs.FileType.File, mtime_ns=stat.st_mtime_ns, size=stat.st_size)
                files.append(info)
    return Listing(files, folders, links)


def read_run(name: str, location: Location) -> RunFolder | None:
    """The run folder at ``location`` (one recursive listing), or None when none of its files is
    where a run has one (:func:`place`): not a run. On a disk, a symbolic link inside it (to a
    step folder, a file) is not followed: it is in :attr:`RunFolder.links`, what it points to is
    not among the run's files."""
    try:
        found = listing(location)
    except (OSError, ValueError):
        return None
    files = found.files
    run = RunFolder(name, location, _epoch())
    paths = {run.relative(f): f for f in files}
    mapped = _mapped(set(paths))
    if not any(place(path, mapped) for path in paths):
        return None
    times = [as_utc(f.mtime) for f in files if f.mtime]
    record = _read_json(location, RUN_RECORD) if RUN_RECORD in paths else None
    links = tuple(sorted(path[len(location.path) :].strip("/") for path in found.links))
    steps = _steps(location, set(paths))
    return RunFolder(name, location, max(times, default=_epoch()), steps, record, tuple(files), links)


def list_runs(root: str, dag_id: str) -> list[RunFolder]:
    """The run folders of ``dag_id`` under the store ``root`` (a folder, or an ``s3://``,
    ``gs://``, ``abfs://`` URI), oldest first by :attr:`RunFolder.written`. One recursive
    listing per run; a mapped step's ``_items.json`` is read for its item count. A run triggered
    with a run_id of its own is listed too (reading is harmless; ``aq-airflow gc`` leaves it)."""
    runs = [read_run(name, location) for name, location in pipeline_entries(root, dag_id)]
    return sorted((run for run in runs if run is not None), key=lambda r: r.written)


def _steps(location: Location, paths: set[str]) -> dict[str, StepFolder]:
    """Each step folder's state from the run's file paths (``step/_manifest.json``,
    ``step/_items.json``, ``step/3/_manifest.json``)."""
    names = sorted({path.split("/")[0] for path in paths if "/" in path and STEP_FOLDER.fullmatch(path.split("/")[0])})
    steps = {}
    for name in names:
        if f"{name}/{ITEMS_FILE}" in paths:
            listed = _item_list(location, name)  # None: not an item list (the step is not committed)
            count = listed.count if listed else 0
            done = sum(f"{name}/{index}/{MANIFEST}" in paths for index in range(count))
            steps[name] = StepFolder(name, listed is not None and done == count, count, done)
        else:
            steps[name] = StepFolder(name, f"{name}/{MANIFEST}" in paths)
    return steps


@dataclass(frozen=True)
class Contents:
    """A run folder's files sorted by who wrote them (:func:`contents`)."""

    outputs: tuple[pafs.FileInfo, ...]  # committed: our manifests, the files they name, `_items.json`, `_run.json`
    attempts: tuple[pafs.FileInfo, ...]  # an attempt's files that no manifest of ours names (it never committed)
    others: tuple[pafs.FileInfo, ...]  # anything else: not aq-airflow's
    committed: bool  # a manifest our writer committed, or the run record, is among the outputs


def contents(run: RunFolder) -> Contents:
    """Sort the files of a run folder (its listing, not a new one): what aq-airflow wrote there
    and the rest. Reads every manifest at a step's place (:func:`place`), the item lists and the
    run record; a file that cannot be read is not ours."""
    paths = {run.relative(f): f for f in run.files}
    mapped = _mapped(set(paths))
    outputs: set[str] = set()
    committed = False
    for path in sorted(paths):
        kind = place(path, mapped)
        if kind == "manifest":
            manifest = _read_json(run.location, path)
            if is_ours(manifest):
                folder = posixpath.dirname(path)
                outputs |= {path} | {f"{folder}/{name}" for name in manifest["files"]} & set(paths)
                committed = True
        elif kind == "items":
            step = posixpath.dirname(path)
            listed = _item_list(run.location, step)
            if listed is not None:
                outputs.add(path)
                # its large items' files, by index
                outputs |= {f"{step}/{ITEMS_FOLDER}/{i}.json" for i in range(listed.count)} & set(paths)
        elif kind == "record":
            record = _read_json(run.location, path)
            if record is not None and record.get("run_id") == run.run_id:
                outputs.add(path)
                committed = True
        elif kind == "pin" and _is_pin(_read_json(run.location, path)):
            outputs.add(path)
            committed = True
    attempts = {path for path in paths if path not in outputs and place(path, mapped) == "attempt"}
    others = set(paths) - outputs - attempts
    return Contents(*(tuple(paths[p] for p in sorted(group)) for group in (outputs, attempts, others)), committed)


def _is_pin(record: dict | None) -> bool:
    """Whether a ``_code.json`` is the pin a task wrote (``code_package.confined``)."""
    return record is not None and confined(record.get("uri"), record.get("digest"))


def _item_list(location: Location, step: str) -> ItemList | None:
    """A step folder's ``_items.json`` as the runtime reads it (:class:`ItemList`), or None when
    it cannot be read or is not an item list our items task wrote."""
    try:
        return ItemList.read(Location(location.fs, location.join(step), f"{location.uri}/{step}"), step)
    except MissingArtifact:  # unreadable, or not an item list (BadOutput)
        return None


def _read_json(location: Location, name: str) -> dict | None:
    """A small JSON file of the run folder, or None when it is unreadable or not an object."""
    try:
        with location.fs.open_input_stream(location.join(name)) as handle:
            value = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_record(root: str, dag_id: str, run_id: str, record: dict) -> str:
    """Write a run's record (how ``aq-airflow run`` ended it) into its folder; returns its URI."""
    location = Location.of(f"{root.rstrip('/')}/{dag_id}/{run_id}")
    location.fs.create_dir(location.path, recursive=True)
    with location.fs.open_output_stream(location.join(RUN_RECORD)) as handle:
        handle.write(json.dumps(record, indent=2, sort_keys=True, default=str).encode())
    return f"{location.uri}/{RUN_RECORD}"
