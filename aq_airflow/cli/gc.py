"""``aq-airflow gc``: delete run folders older than each pipeline's ``artifacts_ttl``.

A run's outputs live under ``{artifacts}/{dag_id}/{run_id}/``. Only folders a step wrote (a
manifest or a table part in them) are run folders; anything else under the root is left alone.
A run folder goes when its newest file is older than the TTL and Airflow's metadata DB has no
queued or running run of that id: a long run's early outputs are never taken from under its
later steps.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass

from aq_airflow.client.runs import pipeline_folders, written_by_a_step
from aq_airflow.runners.local import artifacts_root
from aq_airflow.runtime.artifacts import Location


@dataclass(frozen=True)
class RunFolder:
    run_id: str
    location: Location
    newest: datetime.datetime  # the newest file's modification time, UTC


def run_folders(root: str, dag_id: str) -> list[RunFolder]:
    """The run folders of a pipeline in an artifact store, with their newest file's time: the
    folders holding a file a step wrote (someone else's files under the store root are never
    touched)."""
    folders = [
        RunFolder(name, location, newest)
        for name, location, files, newest in pipeline_folders(root, dag_id)
        if any(written_by_a_step(f.base_name) for f in files)
    ]
    return sorted(folders, key=lambda f: f.newest)


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


def collect(dags_folder: str, dry_run: bool, now: datetime.datetime | None = None) -> int:
    """Delete (or with ``dry_run`` list) the expired run folders of every spec under the folder."""
    from aq_airflow.pipeline_spec import SpecError, spec_paths
    from aq_airflow.plan import compile_spec

    now = now or datetime.datetime.now(datetime.timezone.utc)
    removed = kept = 0
    for path in spec_paths(dags_folder):
        try:
            plan = compile_spec(path, dags_folder)
        except SpecError as error:
            print(f"skipped {path}: invalid spec ({error.issues[0]})", file=sys.stderr)
            continue
        if plan.artifacts_ttl is None:
            continue
        cutoff = now - datetime.timedelta(seconds=plan.artifacts_ttl.value)
        expired = [f for f in run_folders(artifacts_root(plan.artifacts), plan.dag_id) if f.newest < cutoff]
        try:
            running = active_runs(plan.dag_id) if expired else set()
        except NoMetadataDatabase as error:
            print(
                f"{error}: aq-airflow gc asks it which runs are still running, so it deletes nothing. Run it "
                "where Airflow runs (the same AIRFLOW_HOME or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN). The outputs "
                "of `aq-airflow run` live in its --workdir (or --artifacts): delete that folder instead.",
                file=sys.stderr,
            )
            return 2
        for folder in expired:
            if folder.run_id in running:
                kept += 1
                print(f"kept    {folder.location.uri} (the run is still queued or running)")
                continue
            age = _age((now - folder.newest).total_seconds())
            print(f"{'would delete' if dry_run else 'deleted'} {folder.location.uri} ({age} old)")
            if not dry_run:
                folder.location.fs.delete_dir(folder.location.path)
            removed += 1
    verb = "would be deleted" if dry_run else "deleted"
    print(f"{removed} run folder(s) {verb}, {kept} kept while running", file=sys.stderr)
    return 0


def main(dags_folder: str, dry_run: bool) -> int:
    if not os.path.isdir(dags_folder):
        print(f"{dags_folder}: not a folder", file=sys.stderr)
        return 2
    return collect(dags_folder, dry_run)
