"""Runs made with ``dag.test()`` (``aq-airflow run``, ``demo-ui``'s ``aq_airflow.devstack.history``)
record when they really started (aq_airflow.devstack.dagrun): Airflow's own ``dag.test()`` starts a run at its
logical date, so a run for a past date lasted months in the UI. The demo's history runs are
checked through the REST API in tests/ui/test_api.py."""

from __future__ import annotations

import datetime
import re
import textwrap

import pendulum
import pytest

from tests.test_cli import run

UTC = datetime.timezone.utc
TINY = 'steps:\n  hello:\n    command: "echo {{ ds }}"\n'


def _recorded(run_id: str):
    """The DagRun row as the metadata DB holds it."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(DagRun).filter_by(run_id=run_id).one()
        session.expunge(row)
    return row


def test_a_run_for_a_past_date_starts_now_and_keeps_its_logical_date(run_dag):
    from aq_airflow.devstack.dagrun import dag_test

    dag, plain, _ = run_dag("times_tiny", TINY, date="2025-02-01")
    # Airflow's dag.test() alone: the run "started" at its logical date (why dagrun.py exists; if this
    # fails, Airflow records the real start itself and dag_test's event can go)
    assert _recorded(plain.run_id).start_date == pendulum.datetime(2025, 2, 1)
    before = datetime.datetime.now(UTC)
    dag_run = dag_test(dag, pendulum.datetime(2025, 3, 1))
    after = datetime.datetime.now(UTC)
    row = _recorded(dag_run.run_id)
    assert row.state == "success"
    assert row.logical_date == pendulum.datetime(2025, 3, 1)
    assert before <= row.start_date <= row.end_date <= after
    assert row.run_after <= row.start_date  # asked for, then started
    assert row.duration == (row.end_date - row.start_date).total_seconds()  # what the UI shows
    assert dag_run.start_date == row.start_date  # the object dag.test() returns says the same


def test_a_run_started_outside_dag_test_keeps_its_own_start(run_dag):
    """Only the run dag_test() makes is touched: a run created for the same DAG in the usual way
    keeps the start its creator gave it."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    from aq_airflow.devstack.dagrun import _started_now

    dag, _, _ = run_dag("times_other", TINY, date="2025-02-01")
    given = pendulum.datetime(2025, 4, 1, 6)
    by_hand = DagRun(dag_id=dag.dag_id, run_id="by_hand", run_type=DagRunType.MANUAL, start_date=given,
                     logical_date=pendulum.datetime(2025, 4, 1), triggered_by=DagRunTriggeredByType.UI)  # fmt: skip
    with _started_now(dag.dag_id), create_session() as session:
        session.add(by_hand)
    assert _recorded("by_hand").start_date == given


@pytest.mark.slow
def test_aq_airflow_run_reports_the_real_start_and_takes_a_comma_separated_list(tmp_path):
    """`aq-airflow run` for an old --date: the summary's start and duration are the DagRun's own
    (read back from the metadata DB before the run's Airflow home is deleted), within the wall clock
    of the command; `--param segments=low,mid` arrives as a list (one item each) and `min_rows=1`
    as a number the check compares with."""
    (tmp_path / "times_steps.py").write_text(
        "import pyarrow as pa\n\ndef rows(item):\n    return pa.table({'segment': [item]})\n"
    )
    spec = tmp_path / "times_cli.aq.yaml"
    spec.write_text(
        textwrap.dedent("""
        params: {segments: [all], min_rows: 5}
        steps:
          per_segment:
            python: times_steps:rows
            foreach: {param: segments}
          numbers:
            sql: SELECT range AS n FROM range(3)
            checks: [{name: enough, row_count: {min: "{{ params.min_rows }}"}}]
        """)
    )
    before = datetime.datetime.now(UTC).replace(microsecond=0)
    result = run("run", str(spec), "--date", "2025-01-01", "--workdir", str(tmp_path / "work"),
                 "--param", "segments=low,mid", "--param", "min_rows=1")  # fmt: skip
    after = datetime.datetime.now(UTC)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "running times_cli for 2025-01-01" in result.stdout
    found = re.search(r"times_cli: success in ([\d.]+)s, started (\S+ \S+) UTC", result.stdout)
    assert found, result.stdout
    seconds = float(found.group(1))
    started = datetime.datetime.fromisoformat(found.group(2)).replace(tzinfo=UTC)
    assert before <= started <= after
    assert started + datetime.timedelta(seconds=seconds) <= after + datetime.timedelta(seconds=0.1)  # .1f rounding
    items = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("per_segment.run")]
    assert items == ["success", "success"], result.stdout
    assert "enough                  row_count        check  passed" in result.stdout  # 3 rows, at least 1
