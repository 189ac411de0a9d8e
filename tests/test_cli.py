"""The aq-airflow command line, run as users run it: a subprocess of the installed script."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aq_airflow.pipeline_spec import json_schema
from tests.conftest import EXAMPLES
from tests.helpers import write

CLI = [sys.executable, "-m", "aq_airflow.cli"]


def run(*args, cwd=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.slow
def test_validate_accepts_the_examples():
    result = run("validate", str(EXAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "7 spec(s) checked, 0 error(s)" in result.stderr


def test_validate_prints_one_line_per_error_and_fails(tmp_path):
    write(tmp_path, "bad.aq.yaml", "steps:\n  a:\n    python: m:f\n    input: [x]\n    retries: -1\n")
    write(tmp_path, "good.aq.yaml", "steps:\n  a:\n    sql: SELECT 1\n")
    result = run("validate", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{tmp_path}/bad.aq.yaml:4:5: unknown key `input`; did you mean `inputs`?",
        f"{tmp_path}/bad.aq.yaml:5:14: steps.a.retries: Input should be greater than or equal to 0",
    ]
    assert "2 spec(s) checked, 2 error(s) in 1 file(s)" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_json_for_tools(tmp_path):
    path = write(tmp_path, "bad.aq.yaml", "steps:\n  a:\n    python: nope\n")
    result = run("validate", "--format", "json", str(path))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["files"] == 1
    (error,) = report["errors"]
    assert (error["file"], error["line"], error["col"]) == (str(path), 3, 13)
    assert "module.function" in error["message"] or "module:function" in error["message"]


def test_validate_missing_file_is_an_error_not_a_traceback(tmp_path):
    result = run("validate", str(tmp_path / "nope.aq.yaml"))
    assert result.returncode == 1
    assert result.stdout.strip() == f"{tmp_path}/nope.aq.yaml:1:1: cannot read the file: No such file or directory"


def test_compile_writes_one_file_per_spec(tmp_path):
    result = run("compile", str(EXAMPLES), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == [
        "churn_alerts.py", "churn_at_scale.py", "churn_champion.py", "churn_scoring.py", "fraud_training.py",
        "image_embeddings.py",
        "region_training.py",
    ]  # fmt: skip
    first = (tmp_path / "out" / "churn_scoring.py").read_bytes()
    run("compile", str(EXAMPLES), "--out", str(tmp_path / "again"))
    assert (tmp_path / "again" / "churn_scoring.py").read_bytes() == first


def test_compile_reports_errors_and_still_writes_the_good_ones(tmp_path):
    write(tmp_path, "bad.aq.yaml", "steps: {}\n")
    write(tmp_path, "good.aq.yaml", "steps:\n  a:\n    sql: SELECT 1\n")
    result = run("compile", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{tmp_path}/bad.aq.yaml:1:8: steps: Dictionary should have at least 1 item")
    assert os.listdir(tmp_path / "out") == ["good.py"]


def test_schema_is_the_models_schema():
    result = run("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == json.loads(json.dumps(json_schema()))


def test_init_writes_loader_shards_and_the_schema(tmp_path):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "aq_dags.py").write_text('"""Builds every *.aq.yaml (written by `aq-airflow init`)."""\n')  # v1's loader
    result = run("init", str(folder), "--shards", "4")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.glob("*.py")) == [f"aq_dags_{i}.py" for i in range(4)]  # v1's is gone
    code = [line for line in (folder / "aq_dags_2.py").read_text().splitlines() if line and line[0].isalpha()]
    assert code == ["Builds the *.aq.yaml pipelines under this folder whose path hashes into this shard. Airflow",
                    "parses the shards in parallel; a new spec is picked up by its shard at the next parse.",
                    "from aq_airflow.live_dags import load_dags", "load_dags(globals(), shard=(2, 4))"]  # fmt: skip
    assert json.loads((folder / "aq-airflow.schema.json").read_text())["title"] == "aq-airflow pipeline spec"
    run("init", str(folder), "--shards", "2")  # fewer shards: the extra loaders go
    assert sorted(p.name for p in folder.glob("*.py")) == ["aq_dags_0.py", "aq_dags_1.py"]
    (folder / "aq_dags_0.py").write_text("# mine\n")
    run("init", str(folder), "--shards", "2")
    assert (folder / "aq_dags_0.py").read_text() == "# mine\n"  # a file of ours is never overwritten without --force


def test_dagbag_preflight_lists_dags_and_invalid_specs(tmp_path):
    folder = tmp_path / "dags"
    run("init", str(folder))
    write(folder, "ok.aq.yaml", "steps:\n  a:\n    sql: SELECT 1\n")
    write(folder, "bad.aq.yaml", "steps:\n  a:\n    sql: SELECT 1\n    retries: x\n")
    result = run("dagbag", str(folder))
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.split(" ")[0] in ("ok", "INVALID")]
    assert [line.split()[:2] for line in lines] == [["INVALID", "bad"], ["ok", "ok"]]
    assert "2 DAG(s), 1 invalid spec(s), 0 import error(s)" in result.stdout


RUN_SPEC = """
pipeline: cli_run
cluster: gke
artifacts: s3://never-reached/aq
defaults: {image: "ghcr.io/acme/x:1", retries: 3, retry_delay: 10m}
steps:
  numbers:
    sql: SELECT range AS n FROM range(25)
    checks: [{name: enough, row_count: {min: "{{ params.min_rows }}"}}]
  doubled:
    python: cli_steps:double
    inputs: [numbers]
params: {min_rows: 10}
"""


@pytest.mark.slow
def test_run_executes_a_production_spec_locally_and_summarizes(tmp_path):
    """`aq-airflow run` as users run it: a GKE/S3 spec runs here (local steps, local artifacts,
    no retries), prints each task and the results read back from the DuckDB warehouse."""
    (tmp_path / "cli_steps.py").write_text(
        "import pyarrow.compute as pc\n\n"
        "def double(numbers):\n"
        "    if numbers.num_rows < 20:\n        raise ValueError('too few numbers')\n"
        "    return numbers.set_column(0, 'n', pc.multiply(numbers.column('n'), 2))\n"
    )
    spec = write(tmp_path, "cli_run.aq.yaml", RUN_SPEC)
    work = tmp_path / "work"
    result = run("run", str(spec), "--date", "2026-03-01", "--workdir", str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "cli_run: success" in out
    assert "[ 3/3] ok      doubled.run" in out
    assert f"table: 25 rows, {work}/artifacts/cli_run/" in out
    assert "enough                  row_count        check  passed" in out  # read back from the warehouse
    failed = run("run", str(spec), "--date", "2026-03-01", "--workdir", str(work), "--param", "min_rows=100")
    assert failed.returncode == 1
    assert "numbers.checks failed:" in failed.stderr
    assert "enough: 25 rows; expected at least 100" in failed.stderr
    assert "doubled.run                  upstream_failed" in failed.stdout


def test_run_reports_an_invalid_spec_without_running(tmp_path):
    spec = write(tmp_path, "bad.aq.yaml", "steps:\n  a:\n    sql: SELECT 1\n    retries: soon\n")
    result = run("run", str(spec), "--workdir", str(tmp_path / "work"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"{spec}:4:14: steps.a.retries: expected a whole number, not the text `soon`"
