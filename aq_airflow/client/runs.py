"""A pipeline's runs in an artifact store: the listing that the client and ``aq-airflow run
--from`` (resume) read. (``aq-airflow gc`` still lists run folders its own way; moving it onto
this listing is part of making gc recognise only what aq wrote.)

A run's outputs live under ``{root}/{dag_id}/{run_id}/``: one folder per step holding its
committed manifest (``_manifest.json``), or for a mapped (``foreach:``) step ``_items.json`` and
one folder per item. ``aq-airflow run`` also leaves a run record, ``_run.json``, saying how the
run ended (Airflow's own record of it goes with the temporary Airflow home). Folders under the
root that no step wrote are not runs and are never listed.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from aq_airflow.runtime.artifacts import MANIFEST, Location
from aq_airflow.runtime.items import ITEMS_FILE

RUN_RECORD = "_run.json"


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
    """One run's folder: its steps, its newest file's time and the run record, if any."""

    run_id: str
    location: Location
    newest: datetime.datetime  # the newest file's modification time, UTC
    steps: dict[str, StepFolder] = field(default_factory=dict)
    record: dict | None = None  # `_run.json`: how `aq-airflow run` ended it

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
            return _utc(datetime.datetime.fromisoformat(finished)) if finished else self.newest
        except (TypeError, ValueError):
            return self.newest


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _epoch() -> datetime.datetime:
    return datetime.datetime.fromtimestamp(0, datetime.timezone.utc)


def written_by_a_step(name: str) -> bool:
    """A step's commit marker, or a table part of a step's (possibly killed) attempt."""
    return name == MANIFEST or (name.startswith("part-") and name.endswith(".parquet"))


def pipeline_folders(root: str, dag_id: str) -> Iterator[tuple[str, Location, list[pafs.FileInfo], datetime.datetime]]:
    """Each folder directly under ``{root}/{dag_id}/`` (a run's, or anyone's): its name, its
    location, the files in it (one recursive listing) and its newest file's time, UTC. What
    counts as a run is the caller's: :func:`list_runs` here, ``aq-airflow gc`` its own."""
    pipeline = Location.of(f"{root.rstrip('/')}/{dag_id}")
    try:
        entries = pipeline.fs.get_file_info(pafs.FileSelector(pipeline.path, allow_not_found=True))
    except OSError:
        return
    for entry in entries:
        if entry.type != pafs.FileType.Directory:
            continue
        location = Location.of(f"{pipeline.uri}/{entry.base_name}")
        files = [
            f for f in location.fs.get_file_info(pafs.FileSelector(location.path, recursive=True))
            if f.type == pafs.FileType.File
        ]  # fmt: skip
        times = [_utc(f.mtime) for f in files if f.mtime]
        yield entry.base_name, location, files, max(times, default=_utc(entry.mtime) if entry.mtime else _epoch())


def list_runs(root: str, dag_id: str) -> list[RunFolder]:
    """The run folders of ``dag_id`` under the store ``root`` (a folder, or an ``s3://``,
    ``gs://``, ``abfs://`` URI), oldest first by :attr:`RunFolder.written`. One recursive
    listing per run; a mapped step's ``_items.json`` is read for its item count."""
    runs = [
        _run_folder(name, location, files, newest)
        for name, location, files, newest in pipeline_folders(root, dag_id)
        if any(written_by_a_step(f.base_name) or f.base_name in (RUN_RECORD, ITEMS_FILE) for f in files)
    ]  # someone else's files under the store root are no run
    return sorted(runs, key=lambda r: r.written)


def _run_folder(name: str, location: Location, files: list[pafs.FileInfo], newest: datetime.datetime) -> RunFolder:
    relative = {f.path[len(location.path) :].strip("/"): f for f in files}
    record = _read_json(location, RUN_RECORD) if RUN_RECORD in relative else None
    return RunFolder(name, location, newest, _steps(location, set(relative)), record)


def _steps(location: Location, paths: set[str]) -> dict[str, StepFolder]:
    """Each step folder's state from the run's file paths (``step/_manifest.json``,
    ``step/_items.json``, ``step/3/_manifest.json``)."""
    names = sorted({path.split("/")[0] for path in paths if "/" in path})
    steps = {}
    for name in names:
        if f"{name}/{ITEMS_FILE}" in paths:
            listed = _read_json(location, f"{name}/{ITEMS_FILE}") or {}
            count = len(listed.get("items", [])) if isinstance(listed.get("items"), list) else 0
            done = sum(f"{name}/{index}/{MANIFEST}" in paths for index in range(count))
            steps[name] = StepFolder(name, bool(listed) and done == count, count, done)
        else:
            steps[name] = StepFolder(name, f"{name}/{MANIFEST}" in paths)
    return steps


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
