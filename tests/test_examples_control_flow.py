"""The control-flow examples end to end through `aq-airflow run`, as `make demo` runs an example:
region_training (`foreach:` one model per region, map -> map evaluation, a fan-in that picks the
best). churn_champion (`when:`) runs in tests/test_conditions.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import duckdb
import pytest

from tests.conftest import EXAMPLES

REGIONS = ["apac", "eu", "us"]  # the items, in the order the `regions` step gives them


def seed(path) -> None:
    module_spec = importlib.util.spec_from_file_location("seed_warehouse", EXAMPLES / "seed_warehouse.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    module.seed(str(path), customers=2000, order_events=20_000)


@pytest.mark.slow
def test_region_training_trains_one_model_per_region_and_publishes_the_best(tmp_path):
    work = tmp_path / "work"
    seed(work / "warehouse.duckdb")
    command = [sys.executable, "-m", "aq_airflow.cli", "run", str(EXAMPLES / "region_training.aq.yaml"),
               "--date", "2026-03-01", "--workdir", str(work)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "region_training: success" in result.stdout
    # one name per item everywhere: the task (or step), its map index and its region
    for index, region in enumerate(REGIONS):  # one task instance per region
        for task in ("train.run", "evaluate.run", "evaluate.metrics"):
            name = f"{task}[{index}:{region}]"
            assert any(line.split()[:2] == [name, "success"] for line in lines), result.stdout  # the summary
            assert any(line.endswith(f"] start   {name}") for line in lines), result.stdout  # progress
        # the printed results name the item's rows the same way
        assert any(f" evaluate[{index}:{region}] " in line and " auc " in line for line in lines), result.stdout
    assert any(" best " in line and " best_auc " in line for line in lines), result.stdout  # not mapped
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as conn:
        per_item = conn.execute(
            "SELECT name, map_index, value, outcome, item_label FROM aq_metric_results "
            "WHERE dag_id = 'region_training' AND step = 'evaluate' ORDER BY name, map_index"
        ).fetchall()
        best_auc = conn.execute(
            "SELECT value, outcome FROM aq_metric_results WHERE dag_id = 'region_training' AND name = 'best_auc'"
        ).fetchall()
        board = conn.execute(
            "SELECT region, rank, is_best, auc, accuracy, map_index, version FROM ml.region_models ORDER BY rank"
        ).fetchall()
    # per item: an auc and an accuracy row for each map index
    assert [(name, index) for name, index, *_ in per_item] == [
        *(("accuracy", i) for i in range(3)), *(("auc", i) for i in range(3))
    ]  # fmt: skip
    assert {outcome for *_, outcome, _ in per_item} == {"passed"}
    assert [label for *_, label in per_item] == REGIONS * 2  # each row carries its item's label
    auc = {REGIONS[index]: value for name, index, value, *_ in per_item if name == "auc"}
    accuracy = {REGIONS[index]: value for name, index, value, *_ in per_item if name == "accuracy"}
    assert all(0.6 < value <= 1 for value in auc.values()), auc
    # the fan-in ranked every region; the best is the region whose item recorded the highest AUC
    winner = max(auc, key=auc.get)
    assert [row[0] for row in board] == sorted(auc, key=auc.get, reverse=True)
    assert [row[1:3] for row in board] == [(1, True), (2, False), (3, False)]
    assert board[0][0] == winner and board[0][3] == auc[winner]
    for region, _, _, region_auc, region_accuracy, map_index, version in board:
        assert (region_auc, region_accuracy) == (auc[region], accuracy[region])
        assert REGIONS[map_index] == region and version == "2026-03-01"
    assert best_auc == [(auc[winner], "passed")]
