"""Retention: `aq-airflow gc` deletes run folders older than `artifacts_ttl`, never a run that
Airflow still has queued or running, and `--dry-run` only lists; in a local folder and on the
S3, GCS and Azure emulators."""

from __future__ import annotations

import datetime
import os
import time

import pyarrow.fs as pafs
import pytest

from aq_airflow.artifacts.store import Location
from aq_airflow.cli.gc import collect, survey
from tests.helpers import write

SPEC = """
pipeline: kept_a_week
artifacts: {artifacts}
artifacts_ttl: 7d
steps:
  a: {{sql: SELECT 1}}
"""


# run ids as Airflow generates them (gc deletes in no other folder)
OLD, FRESH, RUNNING = (
    "scheduled__2026-01-01T00:00:00+00:00", "scheduled__2026-01-08T00:00:00+00:00", "manual__2025-12-01T00:00:00+00:00"
)  # fmt: skip


def run_folder(root, run_id: str, days_old: float):
    """A run folder with one step output committed by our writer, its files ``days_old``."""
    folder = root / "kept_a_week" / run_id / "a"
    location = Location.of(str(folder))
    location.begin()
    location.commit({"kind": "none", "files": []})
    stamp = time.time() - days_old * 86400
    os.utime(folder / "_manifest.json", (stamp, stamp))
    return folder.parent


@pytest.fixture
def running_run(airflow_db):
    """A run Airflow's metadata DB has as running (its outputs must survive gc)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    now = datetime.datetime.now(datetime.timezone.utc)
    started = now - datetime.timedelta(days=30)
    with create_session() as session:
        session.add(DagRun(dag_id="kept_a_week", run_id=RUNNING, run_type=DagRunType.MANUAL,
                           state=DagRunState.RUNNING, run_after=now, logical_date=started))  # fmt: skip
    yield RUNNING
    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == "kept_a_week").delete()


def test_gc_deletes_expired_runs_but_never_a_running_one(tmp_path, running_run, capsys):
    artifacts = tmp_path / "artifacts"
    dags = tmp_path / "dags"
    dags.mkdir()
    write(dags, "kept.aq.yaml", SPEC.format(artifacts=artifacts))
    old = run_folder(artifacts, OLD, days_old=10)
    fresh = run_folder(artifacts, FRESH, days_old=1)
    running = run_folder(artifacts, running_run, days_old=30)

    assert collect(str(dags), dry_run=True) == 0
    listed = capsys.readouterr().out
    assert f"would delete {old}" in listed and FRESH not in listed
    assert f"kept    {running}" in listed
    assert old.exists()  # a dry run deletes nothing

    collect(str(dags), dry_run=False)
    assert not old.exists() and fresh.exists() and running.exists()


def run_folders(root: str) -> dict:
    """The folders gc counts as runs of the pipeline whatever their age, by run id: gc's own survey
    with the cutoff at the end of time, which every run is older than."""
    end_of_time = datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
    return {expired.run.run_id: expired.run for expired in survey(root, "kept_a_week", end_of_time).expired}


def store_run(root: str, run_id: str) -> str:
    """A run folder in an object store with one committed step output; its URI."""
    location = Location.of(f"{root}/kept_a_week/{run_id}/a")
    location.begin()
    location.commit({"kind": "none", "files": []})
    return f"{root}/kept_a_week/{run_id}"


def test_gc_on_each_object_store(object_store, running_run, tmp_path, capsys):
    """The same on S3, GCS and Azure (a flat namespace) emulators: run folders are listed as the
    store's prefixes, aged by their newest object, and deleted with everything under them."""
    scheme, bucket = object_store
    bucket("retention")
    root = f"{scheme}://retention/aq"
    dags = tmp_path / "dags"
    dags.mkdir()
    write(dags, "kept.aq.yaml", SPEC.format(artifacts=root))
    old = store_run(root, OLD)
    running = store_run(root, running_run)
    written = max(folder.newest for folder in run_folders(root).values())
    time.sleep(2.1)  # the stores' times are whole seconds
    fresh = store_run(root, FRESH)
    now = written + datetime.timedelta(days=7, seconds=1)  # old and running have expired, fresh has not

    assert collect(str(dags), dry_run=True, now=now) == 0
    listed = capsys.readouterr().out
    assert f"would delete {old} (7 days old)" in listed and FRESH not in listed
    assert f"kept    {running} (the run is still queued or running)" in listed
    assert set(run_folders(root)) == {OLD, FRESH, running_run}

    collect(str(dags), dry_run=False, now=now)
    assert f"deleted {old}" in capsys.readouterr().out
    assert set(run_folders(root)) == {FRESH, running_run}
    store = Location.of(root)
    left = {i.path for i in store.fs.get_file_info(pafs.FileSelector(store.path, recursive=True))}
    assert not {path for path in left if OLD in path}, left  # nothing under it is left
    assert Location.of(f"{fresh}/a").read_manifest() and Location.of(f"{running}/a").read_manifest()


def test_gc_without_an_airflow_metadata_database_deletes_nothing_and_says_why(tmp_path):
    """A laptop with no Airflow set up: gc cannot tell which runs are running, so it deletes
    nothing, says so, and does not create a metadata database on the way."""
    import subprocess
    import sys
    from pathlib import Path

    artifacts, dags, home = tmp_path / "artifacts", tmp_path / "dags", tmp_path / "home"
    dags.mkdir()
    write(dags, "kept.aq.yaml", SPEC.format(artifacts=artifacts))
    old = run_folder(artifacts, OLD, days_old=10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")} | {"AIRFLOW_HOME": str(home)}
    gc = subprocess.run([Path(sys.executable).parent / "aq-airflow", "gc", str(dags)], env=env,
                        capture_output=True, text=True)  # fmt: skip
    assert gc.returncode == 2, gc.stderr
    assert "there is no Airflow metadata database at" in gc.stderr and "deletes nothing" in gc.stderr
    assert "Traceback" not in gc.stderr and old.exists()
    assert not (home / "airflow.db").exists()


def test_gc_never_deletes_a_folder_no_step_wrote(tmp_path, running_run, capsys):
    """`artifacts:` pointed at a folder holding other files: only run folders go (a hostile
    tester's `thesis/` under `{artifacts}/{dag_id}/` was deleted as an expired run)."""
    artifacts, dags = tmp_path / "artifacts", tmp_path / "dags"
    dags.mkdir()
    write(dags, "kept.aq.yaml", SPEC.format(artifacts=artifacts))
    thesis = artifacts / "kept_a_week" / "thesis"
    thesis.mkdir(parents=True)
    (thesis / "chapter1.tex").write_text("years of work")
    stamp = time.time() - 2000 * 86400
    os.utime(thesis / "chapter1.tex", (stamp, stamp))
    old = run_folder(artifacts, OLD, days_old=10)
    collect(str(dags), dry_run=False)
    assert (thesis / "chapter1.tex").exists() and not old.exists()
    assert f"left alone {thesis}: not a run folder" in capsys.readouterr().out
