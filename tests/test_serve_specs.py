"""`serve:` as users write it, checked by `aq-airflow validate` as they run it (one subprocess over a
folder of specs and its `aq-profiles.yaml`): each problem is located at the line and column of the
value that is wrong (as every spec error is) and says how to fix it; the specs that are right
validate clean."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "aq_airflow.cli"]

PROFILES = """
profiles:
  knative:
    extends: gke
    serving_mode: Knative
  old-serverless:
    extends: gke
    serving_mode: Serverless
  cpu-only:
    extends: gke
    gpu_nodes: false
"""
HEAD = """
pipeline: {name}
cluster: {cluster}
artifacts: s3://acme-ml/aq
defaults: {{image: ghcr.io/acme/churn:1}}
steps:
  features:
    sql: SELECT 1 AS tenure, 2.5 AS spend
"""
TRAIN = """
  train:
    python: churn.train:fit
    inputs: [features]
"""

# name: (cluster, the steps after `features`, then what validate says: line, column, message parts)
CASES: dict[str, tuple[str, str, tuple[int, int, tuple[str, ...]] | None]] = {
    "on_sql": ("gke", """
  scores:
    sql: SELECT 1
    serve: {endpoint: churn, format: sklearn}
""", (10, 12, ("a `sql` step's output is not one", "put `serve` on the python (or ray) step"))),
    "on_command": ("gke", """
  scores:
    command: [python, score.py]
    serve: {endpoint: churn, format: sklearn}
""", (10, 12, ("a `command` step's output is not one", "put `serve` on the python (or ray) step"))),
    "on_spark": ("gke", """
  scores:
    spark: churn.train:fit
    serve: {endpoint: churn, format: sklearn}
""", (10, 12, ("a `spark` step's output is not one", "put `serve` on the python (or ray) step"))),
    "with_foreach": ("gke", TRAIN + """    foreach: [us, eu]
    serve: {endpoint: churn, format: sklearn}
""", (12, 12, ("this step runs per item", "serve from a step that picks one of its items' models"))),
    "bad_endpoint": ("gke", TRAIN + """    serve: {endpoint: Churn_Model, format: sklearn}
""", (11, 23, ("`Churn_Model` cannot name an endpoint", "lower-case letters, digits and `-`", "e.g. `churn-model`"))),
    "unknown_format": ("gke", TRAIN + """    serve: {endpoint: churn, format: pytorch}
""", (11, 38, ("expected `sklearn`, `xgboost`, `lightgbm`, `onnx` or `mlflow`", "`pytorch`"))),
    "same_endpoint": ("gke", TRAIN + """    serve: {endpoint: churn, format: sklearn}
  retrain:
    python: churn.train:fit
    inputs: [features]
    serve: {endpoint: churn, format: sklearn}
""", (15, 23, ("step `train` serves endpoint `churn` already", "name another endpoint"))),
    "canary_standard": ("gke", TRAIN + """    serve: {endpoint: churn, format: sklearn, canary: 10}
""", (11, 55, ("KServe's Standard mode, which ignores `canary`", "remove `canary`", "`serving_mode: Knative`"))),
    "canary_knative": ("knative", TRAIN + """    serve: {endpoint: churn, format: sklearn, canary: 10}
""", None),
    "canary_old_serverless": ("old-serverless", TRAIN + """    serve: {endpoint: churn, format: sklearn, canary: 10}
""", None),  # KServe's older name for Knative
    "canary_local": ("local", TRAIN + """    serve: {endpoint: churn, format: sklearn, canary: 10}
""", None),  # the local model repository has no traffic split to ignore
    "no_input": ("gke", """
  train:
    python: churn.train:fit
    serve: {endpoint: churn, format: sklearn}
""", (10, 12, ("`train` has no input", "add `sample: <step>`"))),
    "sample_after": ("gke", TRAIN + """    serve: {endpoint: churn, format: sklearn, sample: later}
  later:
    sql: SELECT 2 AS b
    depends_on: [train]
""", (11, 55, ("`sample: later` must name a step `train` runs after", "name one of its inputs"))),
    "sample_mapped": ("gke", """
  regions:
    python: churn.train:fit
    inputs: [features]
    foreach: [us, eu]
  train:
    python: churn.train:fit
    inputs: [regions]
    serve: {endpoint: churn, format: sklearn, sample: regions}
""", (15, 55, ("`regions` runs per item", "name a step with one table as `sample`"))),
    "replicas": ("gke", TRAIN + """    serve: {endpoint: churn, format: sklearn, replicas: {min: 3, max: 1}}
""", (11, 57, ("`min` (3) is above `max` (1)", "swap them"))),
    "gpu_on_cpu_only": ("cpu-only", TRAIN + """    serve: {endpoint: churn, format: sklearn, resources: {gpu: 1}}
""", (11, 64, ("profile `cpu-only` has no GPU nodes", "remove `gpu:`"))),
    "unknown_gpu_type": ("gke", TRAIN + """    serve:
      endpoint: churn
      format: onnx
      resources: {gpu: 1, gpu_type: tpu-v9}
""", (14, 37, ("profile `gke` has no GPU type `tpu-v9`", "it knows: ", "l4", "t4"))),
    "gpu_type_alone": ("gke", TRAIN + """    serve: {endpoint: churn, format: onnx, resources: {gpu_type: t4}}
""", (11, 55, ("`gpu_type` is set but `gpu` is not", "add `gpu: 1`"))),
    "zero_standard": ("gke", TRAIN + """    serve: {endpoint: churn, format: sklearn, replicas: {min: 0, max: 2}}
""", (11, 63, ("KServe's Standard mode, which does not scale to zero", "set `min: 1`", "`serving_mode: Knative`"))),
    "zero_knative": ("knative", TRAIN + """    serve: {endpoint: churn, format: sklearn, replicas: {min: 0, max: 2}}
""", None),
    "gpu_ok": ("gke", TRAIN + """    serve:
      endpoint: churn
      format: onnx
      replicas: {min: 1, max: 2}
      resources: {gpu: 1, gpu_type: l4}
""", None),
}  # fmt: skip


@pytest.fixture(scope="module")
def validated(tmp_path_factory) -> tuple[Path, dict[str, list[dict]]]:
    """Every case in one folder (with the step code and the profiles beside them), validated once."""
    folder = tmp_path_factory.mktemp("serve_specs")
    (folder / "aq-profiles.yaml").write_text(textwrap.dedent(PROFILES).lstrip())
    (folder / "churn").mkdir()
    (folder / "churn" / "__init__.py").write_text("")
    (folder / "churn" / "train.py").write_text("def fit(features):\n    return None\n")
    for name, (cluster, steps, _) in CASES.items():
        text = HEAD.format(name=name, cluster=cluster).lstrip() + steps.lstrip("\n")
        (folder / f"{name}.aq.yaml").write_text(text)
    (folder / "reserved.aq.yaml").write_text("pipeline: _models\nsteps:\n  a:\n    sql: SELECT 1\n")
    shown = subprocess.run([*CLI, "validate", "--format", "json", str(folder)], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert "Traceback" not in shown.stderr, shown.stderr
    report = json.loads(shown.stdout)
    assert report["files"] == len(CASES) + 1
    by_file: dict[str, list[dict]] = {}
    for error in report["errors"]:
        by_file.setdefault(Path(error["file"]).name.removesuffix(".aq.yaml"), []).append(error)
    return folder, by_file


@pytest.mark.parametrize("name", list(CASES))
def test_each_serve_problem_is_located_and_says_how_to_fix_it(validated, name):
    folder, by_file = validated
    expected = CASES[name][2]
    if expected is None:
        assert name not in by_file, by_file.get(name)
        return
    (error,) = by_file.get(name, [None])
    assert error is not None, f"{name} validated clean"
    line, col, parts = expected
    assert (error["line"], error["col"]) == (line, col), error
    for part in parts:
        assert part in error["message"], (part, error["message"])
    spelled = (folder / f"{name}.aq.yaml").read_text().splitlines()[line - 1]
    assert re.search(
        r"\b(serve|endpoint|format|canary|sample|replicas|min|resources|gpu|gpu_type): $", spelled[: col - 1]
    ), (spelled, col)  # fmt: skip - at the value of the key that is wrong


def test_models_is_no_pipeline_name(validated):
    _, by_file = validated
    (error,) = by_file["reserved"]
    assert (error["line"], error["col"]) == (1, 11)
    assert "`_models` is the name of the artifact store's folder of served models" in error["message"]
    assert "give the pipeline another name" in error["message"]


def test_the_text_form_is_file_line_col_message(validated):
    folder, _ = validated
    shown = subprocess.run([*CLI, "validate", str(folder / "canary_standard.aq.yaml")], capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert shown.returncode == 1
    assert shown.stdout.startswith(f"{folder}/canary_standard.aq.yaml:11:55: profile `gke` deploys endpoints in ")
