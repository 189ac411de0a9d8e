"""Retention: `aq-airflow gc` deletes run folders older than `artifacts_ttl`, never a run that
Airflow still has queued or running, and `--dry-run` only lists."""

from __future__ import annotations

import datetime
import os
import time

import pytest

from aq_airflow.cli.gc import collect
from tests.helpers import write

SPEC = """
pipeline: kept_a_week
artifacts: {artifacts}
artifacts_ttl: 7d
steps:
  a: {{sql: SELECT 1}}
"""


def run_folder(root, run_id: str, days_old: float):
    folder = root / "kept_a_week" / run_id / "a"
    folder.mkdir(parents=True)
    (folder / "_manifest.json").write_text("{}")
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
        session.add(DagRun(dag_id="kept_a_week", run_id="long_running", run_type=DagRunType.MANUAL,
                           state=DagRunState.RUNNING, run_after=now, logical_date=started))  # fmt: skip
    yield "long_running"
    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == "kept_a_week").delete()


def test_gc_deletes_expired_runs_but_never_a_running_one(tmp_path, running_run, capsys):
    artifacts = tmp_path / "artifacts"
    dags = tmp_path / "dags"
    dags.mkdir()
    write(dags, "kept.aq.yaml", SPEC.format(artifacts=artifacts))
    old = run_folder(artifacts, "scheduled__old", days_old=10)
    fresh = run_folder(artifacts, "scheduled__fresh", days_old=1)
    running = run_folder(artifacts, running_run, days_old=30)

    assert collect(str(dags), dry_run=True) == 0
    listed = capsys.readouterr().out
    assert f"would delete {old}" in listed and "fresh" not in listed
    assert f"kept    {running}" in listed
    assert old.exists()  # a dry run deletes nothing

    collect(str(dags), dry_run=False)
    assert not old.exists() and fresh.exists() and running.exists()
