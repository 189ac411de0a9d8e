"""The same step's committed output of an earlier logical date: what a `schema_change` check
compares this run's output with.

The store knows runs only as folders, ``{root}/{dag_id}/{run_id}/{step}/_manifest.json`` (a
`foreach:` item's: ``{step}/{index}/_manifest.json``). Which run is "earlier" is read from each
output's own manifest: its provenance's logical date (``artifacts.provenance``). A manifest
without provenance (an output of a release before it) is dated by its run id instead: the ids
Airflow generates carry the run's ``run_after`` (``scheduled__2026-01-01T00:00:00+00:00``), which
is then compared with this run's ``run_after``, like with like, since a run's ``run_after`` is
the end of its data interval for interval schedules, not its logical date. A manifest with
neither (a run triggered with an id of its own, before provenance) cannot be dated and is passed
over.

Cost: one listing of the pipeline's folder (names only), then one small read per candidate
manifest, newest run id first. A run's logical date is never after its ``run_after`` (Airflow
schedules a run at or after its date), so once an output dated D is found, a run whose id time
is at or before D cannot be later: the search stops there, which for a pipeline run on
schedule means one or two reads whatever its history. Reads are bounded by ``limit``
(:data:`MAX_READS`): a run of an old date among more later runs than that (a backfill of last
year) finds nothing and says so (:attr:`Search.bounded`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pyarrow.fs as pafs

from aq_airflow.artifacts.provenance import Provenance
from aq_airflow.artifacts.store import Location, MissingArtifact
from aq_airflow.client.runs import as_utc, run_id_time

MAX_READS = 100  # manifests read at most per search (each one small GET on an object store)
PROVENANCE, RUN_ID = "provenance", "run id"  # what dated an earlier output


@dataclass(frozen=True)
class EarlierOutput:
    """The output compared with: its run, its manifest, its date and what that date is."""

    run_id: str
    manifest: dict
    date: datetime.datetime  # its logical date (provenance), else its run_after (run id)
    dated_by: str  # PROVENANCE or RUN_ID

    @property
    def by_provenance(self) -> bool:
        return self.dated_by == PROVENANCE

    @property
    def provenance(self) -> Provenance | None:
        return Provenance.of(self.manifest)


@dataclass(frozen=True)
class Search:
    """What a search found (None: no earlier output), how many manifests it read, and whether
    it stopped at its limit with runs left unread."""

    found: EarlierOutput | None
    read: int
    bounded: bool = False


def _moment(text: object) -> datetime.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return as_utc(datetime.datetime.fromisoformat(text))
    except ValueError:
        return None


def _run_folders(pipeline: Location) -> list[str]:
    """The names of the folders in the pipeline's folder: one listing, nothing under them. A
    store that cannot be listed raises (an outage is no verdict on the data: the task retries)."""
    entries = pipeline.fs.get_file_info(pafs.FileSelector(pipeline.path, allow_not_found=True))
    return [entry.base_name for entry in entries if entry.type == pafs.FileType.Directory]


def find_earlier(
    root: str,
    dag_id: str,
    step: str,
    run_id: str,
    logical_date: datetime.datetime,
    run_after: datetime.datetime,
    map_index: int | None = None,
    limit: int = MAX_READS,
) -> Search:
    """The committed output of ``step`` (``map_index``: that item of a `foreach:` step) with the
    greatest date strictly before this run's: its logical date before ``logical_date``, or, for
    an output without provenance, its run id's time before ``run_after`` (see the module)."""
    logical_date, run_after = as_utc(logical_date), as_utc(run_after)
    pipeline = Location.of(f"{root.rstrip('/')}/{dag_id}")
    names = [name for name in _run_folders(pipeline) if name != run_id]
    timed = sorted(((time, n) for n in names if (time := run_id_time(n)) is not None), reverse=True)
    untimed = [(None, n) for n in sorted((n for n in names if run_id_time(n) is None), reverse=True)]
    best: EarlierOutput | None = None
    read = 0
    for candidates in (timed, untimed):
        for time, name in candidates:
            if best is not None and time is not None and time <= best.date:
                break  # every timed run left has an id time, so a logical date, at or before best's
            if read >= limit:
                return Search(best, read, bounded=True)
            read += 1
            output = _dated(pipeline.child(name), name, time, step, map_index)
            if output is not None and output.date < (logical_date if output.dated_by == PROVENANCE else run_after):
                best = output if best is None or output.date > best.date else best
    return Search(best, read)


def _dated(run: Location, run_id: str, time, step: str, map_index: int | None) -> EarlierOutput | None:
    """The step's committed output in one run folder, dated (see the module); None when the run
    has none (not run there, failed before committing, not ours) or it cannot be dated."""
    folder = run.child(step) if map_index is None else run.child(step).child(str(map_index))
    try:
        manifest = folder.read_manifest(step)
    except MissingArtifact:
        return None
    provenance = Provenance.of(manifest)
    date = _moment(provenance.logical_date) if provenance else None
    if date is not None:
        return EarlierOutput(run_id, manifest, date, PROVENANCE)
    return EarlierOutput(run_id, manifest, time, RUN_ID) if time is not None else None
