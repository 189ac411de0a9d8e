"""The published JSON schema agrees with the loader, as an editor or CI sees it.

An independent validator (check-jsonschema: the rules yaml-language-server applies, its own YAML
loader, format checks on) runs as a subprocess over every spec in the repo and a set of specs
written here; `aq-airflow validate` runs over the same files. Everything validate accepts, the
schema accepts; typos, wrong types and bad enum values are refused by both. What validate refuses
for reasons a JSON schema cannot express (references between steps) is listed with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.test_spec_messages import BASELINE

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCHEMA = EXAMPLES / "aq-airflow.schema.json"

# Refused by validate, accepted by the schema: rules between parts of a spec, which a JSON schema
# does not express.
CROSS_FIELD = {
    "deploy_broken.aq.yaml": "its `inputs:` names a step the pipeline does not have",
    "cross_unknown_param.aq.yaml": "its `when:` names a param the pipeline does not declare",
    "cross_two_kinds.aq.yaml": "a step needs exactly one of sql, python, command, table",
    "cross_serve_on_sql.aq.yaml": "`serve:` is refused by the kind of its step (a `sql` step returns no model)",
    "cross_serve_canary_standard.aq.yaml": "`canary:` is refused by the cluster profile's serving mode",
    "cross_serve_replicas.aq.yaml": "`replicas:` min above max compares two values",
}

STEP = "steps:\n  a:\n    python: pkg.mod:score\n"
# Specs the schema must accept as validate does: short forms and the forms YAML gives values in.
VALID = {
    "every_model.aq.yaml": BASELINE,
    "dates_and_times.aq.yaml": "start_date: 2026-01-01 06:00\nend_date: 2026-06-01T06:00:00Z\n" + STEP,
    "date_with_offset.aq.yaml": "start_date: 2026-01-01T06:00:00.5+02:00\nschedule: '0 6 * * *'\n" + STEP,
    "quantities.aq.yaml": STEP + "    resources: {cpu: 0.5, memory: 1073741824, ephemeral_storage: 1Gi, gpu: 2}\n",
    "short_forms.aq.yaml": "schedule: '@daily'\nsteps:\n  a: {sql: SELECT 1 AS x}\n"
    "  b: {command: echo hi, inputs: [a], foreach: [1, x, true]}\n"
    "  c: {command: [run], inputs: {data: a}, checks: [{name: n, not_null: x}], when: {not: {param: go}}}\n"
    "params: {go: false}\n",
    "cross_unknown_param.aq.yaml": STEP + "    when: {param: nope}\n",
    "cross_two_kinds.aq.yaml": STEP + "    sql: SELECT 1\n",
    "serve_every_field.aq.yaml": "cluster: local\nsteps:\n  f: {sql: SELECT 1 AS x}\n  a:\n    python: pkg.mod:score\n"
    "    inputs: [f]\n    serve:\n      endpoint: churn-v2\n      format: onnx\n      canary: 10\n"
    "      replicas: {min: 0, max: 3}\n      resources: {cpu: 0.5, memory: 1Gi, gpu: 1, gpu_type: l4}\n"
    "      sample: f\n      columns: [x]\n      smoke_rows: 20\n",
    "cross_serve_on_sql.aq.yaml": "steps:\n  a:\n    sql: SELECT 1\n    serve: {endpoint: churn, format: sklearn}\n",
    "cross_serve_canary_standard.aq.yaml": "cluster: gke\nartifacts: s3://b/aq\ndefaults: {image: i}\n"
    "steps:\n  f: {sql: SELECT 1 AS x}\n  a:\n    python: pkg.mod:score\n    inputs: [f]\n"
    "    serve: {endpoint: churn, format: sklearn, canary: 10}\n",
    "cross_serve_replicas.aq.yaml": "steps:\n  f: {sql: SELECT 1 AS x}\n  a:\n    python: pkg.mod:score\n"
    "    inputs: [f]\n    serve: {endpoint: churn, format: sklearn, replicas: {min: 3, max: 1}}\n",
}
SERVE = "steps:\n  f: {sql: SELECT 1 AS x}\n  a:\n    python: pkg.mod:score\n    inputs: [f]\n    serve: "
# Specs both must refuse: typos, wrong types, bad enum values.
INVALID = {
    "typo_step_key.aq.yaml": "steps:\n  a:\n    pyton: pkg.mod:score\n",
    "typo_top_key.aq.yaml": "schedul: '@daily'\n" + STEP,
    "typo_check_kind.aq.yaml": STEP + "    checks: [{name: c, not_nul: x}]\n",
    "typo_metric_kind.aq.yaml": STEP + "    metrics: [{name: m, meen: x}]\n",
    "typo_condition.aq.yaml": "params: {go: true}\n" + STEP + "    when: {param: go, equal: true}\n",
    "typo_resources.aq.yaml": STEP + "    resources: {cpus: 1}\n",
    "typo_foreach.aq.yaml": STEP + "    foreach: {stpe: b}\n",
    "typo_step_name.aq.yaml": "steps:\n  a-b:\n    python: pkg.mod:score\n",
    "type_retries_text.aq.yaml": STEP + "    retries: many\n",
    "type_retries_quoted.aq.yaml": STEP + "    retries: '3'\n",
    "type_catchup_quoted.aq.yaml": "catchup: 'yes'\n" + STEP,
    "type_env_list.aq.yaml": STEP + "    env: [A]\n",
    "type_tags.aq.yaml": "tags: [1]\n" + STEP,
    "type_foreach_text.aq.yaml": "params: {segments: [a]}\n" + STEP + "    foreach: segments\n",
    "type_when_text.aq.yaml": "params: {go: true}\n" + STEP + "    when: go == true\n",
    "type_count.aq.yaml": STEP + "    metrics: [{name: m, count: 5}]\n",
    "date_number.aq.yaml": "start_date: 20260101\n" + STEP,
    "date_word.aq.yaml": "start_date: tomorrow\n" + STEP,
    "quantity_cpu.aq.yaml": STEP + "    resources: {cpu: -1}\n",
    "quantity_memory.aq.yaml": STEP + "    resources: {memory: 2GB}\n",
    "enum_severity.aq.yaml": STEP + "    checks: [{name: c, not_null: x, severity: fatal}]\n",
    "enum_publish_mode.aq.yaml": STEP + "    publish: {table: t, mode: upsert}\n",
    "serve_endpoint_upper.aq.yaml": SERVE + "{endpoint: Churn, format: sklearn}\n",
    "serve_endpoint_long.aq.yaml": SERVE + "{endpoint: " + "a" * 46 + ", format: sklearn}\n",
    "serve_format.aq.yaml": SERVE + "{endpoint: churn, format: pytorch}\n",
    "serve_no_format.aq.yaml": SERVE + "{endpoint: churn}\n",
    "serve_canary_100.aq.yaml": SERVE + "{endpoint: churn, format: sklearn, canary: 100}\n",
    "serve_typo.aq.yaml": SERVE + "{endpoint: churn, format: sklearn, replica: {max: 2}}\n",
    "serve_smoke_rows.aq.yaml": SERVE + "{endpoint: churn, format: sklearn, smoke_rows: 0}\n",
    "serve_gpu_type.aq.yaml": SERVE + "{endpoint: churn, format: onnx, resources: {gpu: 1, gpu_type: A100}}\n",
    "enum_recorded.aq.yaml": "steps:\n  m:\n    sql: SELECT 1 AS x\n    metrics: [{name: n, count: '*'}]\n"
    "  a:\n    python: pkg.mod:score\n    when: {metric: m.n, above: {recorded: latest}}\n",
}


def _repo_specs() -> list[Path]:
    return sorted({*EXAMPLES.glob("*.aq.yaml"), *(ROOT / "tests").rglob("*.aq.yaml")})


def _schema_verdicts(paths: list[Path]) -> dict[str, bool]:
    """File name -> whether check-jsonschema accepts it, as an editor's validator would."""
    run = subprocess.run(
        [BIN / "check-jsonschema", "-o", "json", "--schemafile", SCHEMA, *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(run.stdout)
    assert not report["parse_errors"], report["parse_errors"]
    refused = {Path(e["filename"]).name for e in report["errors"]}
    return {path.name: path.name not in refused for path in paths}


def _validate_verdicts(paths: list[Path]) -> dict[str, bool]:
    """File name -> whether `aq-airflow validate` accepts it."""
    run = subprocess.run(
        [BIN / "aq-airflow", "validate", "--format", "json", *paths],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    report = json.loads(run.stdout)
    assert report["files"] == len(paths), run.stderr
    refused = {Path(e["file"]).name for e in report["errors"]}
    return {path.name: path.name not in refused for path in paths}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory) -> dict[str, tuple[bool, bool]]:
    """File name -> (validate accepts, the schema accepts), for the repo's specs and those above."""
    folder = tmp_path_factory.mktemp("specs")
    (folder / "pkg").mkdir()
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "mod.py").write_text("def score():\n    return 1\n\n\ndef each(item):\n    return item\n")
    (folder / "pkg" / "alerts.py").write_text("def notify(context):\n    pass\n")
    (folder / "jobs").mkdir()  # the baseline's spark script
    (folder / "jobs" / "aggregate.py").write_text("print('aggregate')\n")
    written = []
    for name, text in {**VALID, **INVALID}.items():
        written.append(folder / name)
        written[-1].write_text("# yaml-language-server: $schema=aq-airflow.schema.json\n" + text)
    paths = _repo_specs() + written
    assert len({p.name for p in paths}) == len(paths)
    loader, schema = _validate_verdicts(paths), _schema_verdicts(paths)
    return {name: (loader[name], schema[name]) for name in loader}


def test_the_repo_has_specs_to_check(verdicts):
    names = set(verdicts)
    assert {p.name for p in EXAMPLES.glob("*.aq.yaml")} <= names and len(names) >= 6 + len(VALID) + len(INVALID)


def test_the_schema_accepts_every_spec_validate_accepts(verdicts):
    assert sorted(name for name, (loader, schema) in verdicts.items() if loader and not schema) == []
    assert all(verdicts[name] == (True, True) for name in VALID if name not in CROSS_FIELD)
    assert all(verdicts[p.name] == (True, True) for p in EXAMPLES.glob("*.aq.yaml"))


def test_typos_wrong_types_and_bad_values_are_refused_by_both(verdicts):
    assert {name: verdicts[name] for name in INVALID} == {name: (False, False) for name in INVALID}


def test_only_the_listed_cross_field_rules_are_left_to_validate(verdicts):
    """Validate refuses them, the schema cannot: exactly the listed ones, each for its reason."""
    left = {name for name, (loader, schema) in verdicts.items() if schema and not loader}
    assert left == set(CROSS_FIELD)
