"""No message names an internal class: every pydantic error path of the spec, walked.

A baseline spec holds every spec model (and every form of every union) with every field set;
each of its values, in turn, is replaced by values of the wrong type, each mapping gets an
unknown key and loses each key, and the real loader's messages are read. None may name one of
our model classes or pydantic's internals (union tags, "instance of", error type names).
"""

from __future__ import annotations

import copy
import re

import pydantic
import pytest
import yaml

from aq_airflow.pipeline_spec import SpecError, SpecFile, conditions, engines, foreach, models, parse_spec, serving
from tests.helpers import issues_of

BASELINE = """
pipeline: every_model
description: every model and every field of the spec
schedule: {after: [shop.orders]}
start_date: 2026-01-01
end_date: 2026-12-31T06:00:00+02:00
catchup: false
owner: data
tags: [demo]
params: {go: true, segments: [low, high], limit: 3}
warehouse: aq_warehouse
artifacts: /tmp/aq-artifacts
artifacts_ttl: 30d
cluster: local
code: .
code_max_size: 100MB
defaults:
  code: .
  image: python:3.12
  resources: {cpu: 1, memory: 2Gi, gpu: 1, gpu_type: t4, ephemeral_storage: 10Gi}
  env: {MODE: fast, TOKEN: {secret: api, key: token}}
  retries: 2
  retry_delay: 5m
  timeout: 1h
  pool: default_pool
on_failure: pkg.alerts:notify
max_active_runs: 1
timeout: 2h
results_schema: quality
steps:
  source:
    table: shop.orders
  orders:
    sql: SELECT * FROM shop.orders
    sensitive: [email]
    checks:
      - {name: c_not_null, not_null: id, where: id > 0, severity: warning, mostly: 0.9, description: d}
      - {name: c_unique, unique: [id, day]}
      - {name: c_between, column: amount, between: [0, 100]}
      - {name: c_accepted, accepted_values: {column: status, values: [new, paid]}}
      - {name: c_rows, row_count: {min: 1, max: 10}}
      - {name: c_fresh, freshness: {column: day, max_age: 1d}}
      - {name: c_expr, expression: amount >= 0}
      - {name: c_schema, schema: {id: integer}}
      - {name: c_drift, schema_change: {on: [added, retyped]}}
      - {name: c_expect, expect: expect_column_to_exist, kwargs: {column: id}}
      - {name: c_sql, sql: SELECT true}
    metrics:
      - {name: m_count, count: "*", where: id > 0, bounds: {min: 1, max: 9}, severity: error, description: d}
      - {name: m_mean, mean: amount, history: {window: 7, max_zscore: 3, min_history: 3}}
      - {name: m_min, min: amount, max_change: 20%}
      - {name: m_max, max: amount}
      - {name: m_sum, sum: amount}
      - {name: m_stddev, stddev: amount}
      - {name: m_nulls, null_fraction: amount}
      - {name: m_distinct, distinct_count: amount}
      - {name: m_q, quantile: {column: amount, q: 0.5}}
      - {name: m_expr, expression: sum(amount)}
    publish: {table: shop.clean_orders, mode: merge, keys: [id]}
    when:
      all:
        - {param: go}
        - {param: limit, equals: {param: limit}}
        - any: [{metric: score.auc, above: {recorded: champion}}, {metric: score.auc, below: 2}]
        - not: {check: score.ok, passed: false}
        - {metric: score.auc, at_least: 0.1}
        - {metric: score.auc, at_most: 1}
  score:
    python: pkg.mod:score
    inputs: [source]
    depends_on: [source]
    args: {alpha: 1}
    image: python:3.12
    resources: {cpu: 500m, memory: 1073741824}
    env: {MODE: slow}
    retries: 0
    retry_delay: 30s
    timeout: 10m
    pool: default_pool
    metrics: [{name: auc, expression: avg(x)}]
    checks: [{name: ok, expression: x > 0, severity: warning}]
    serve:
      endpoint: churn
      format: sklearn
      canary: 10
      replicas: {min: 1, max: 2}
      resources: {cpu: 1, memory: 1Gi, gpu: 1, gpu_type: t4}
      sample: source
      columns: [x]
      smoke_rows: 5
  per_item:
    python: pkg.mod:each
    foreach: [a, b]
    max_parallel: 2
  per_segment:
    command: [run, --fast]
    inputs: {data: source}
    foreach: {param: segments}
  per_row:
    command: echo hi
    foreach: {step: orders, column: id}
  wait:
    operator: airflow.providers.standard.sensors.time_delta.TimeDeltaSensor
    args: {delta: 60}
  features:
    spark: pkg.spark_jobs:features
    inputs: [source]
    driver: {cpu: 1, memory: 2Gi}
    executors: {instances: 2, cpu: 2, memory: 4Gi, gpu: 1, gpu_type: t4}
    spark_conf: {spark.sql.shuffle.partitions: 8, spark.sql.adaptive.enabled: true}
  aggregate:
    spark: {file: jobs/aggregate.py, args: [--day, "{{ ds }}"]}
    dynamic_allocation: {min: 1, max: 4}
  tune:
    ray: pkg.ray_jobs:tune
    inputs: [features]
    head: {cpu: 1, memory: 2Gi}
    workers: {replicas: 2, cpu: 1, memory: 2Gi, gpu: 1, gpu_type: t4}
    runtime_env: {env_vars: {MODE: tune}}
"""

# pydantic's internals that must never reach a user
INTERNALS = ("instance of", "model_type", "union_tag", "function-after", "function-before", "function-wrap",
             "function-plain", "lax-or-strict", "json-or-python", "Value error", "[type=", "list[", "dict[",
             "tuple[", "constrained-str", "tagged-union")  # fmt: skip
WRONG_VALUES = (3.5, -1, True, "not it", ["a"], {"zz": 1}, None)


def _our_models() -> dict[str, type[pydantic.BaseModel]]:
    """Every pydantic model class the spec modules define."""
    return {
        name: value
        for module in (models, conditions, foreach, engines, serving)
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, pydantic.BaseModel) and value.__module__ == module.__name__
    }


def _covered(value, seen: dict[type, set[str]]) -> None:
    """Every model instance in a validated value, with the fields the spec set."""
    if isinstance(value, pydantic.BaseModel):
        seen.setdefault(type(value), set()).update(value.model_fields_set)
        for name in type(value).model_fields:
            _covered(getattr(value, name), seen)
    elif isinstance(value, dict):
        for item in value.values():
            _covered(item, seen)
    elif isinstance(value, list | tuple):
        for item in value:
            _covered(item, seen)


def _places(node, path=()):
    """Every (path, value) below a YAML document, mappings and lists included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), value
            yield from _places(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*path, index), value
            yield from _places(value, (*path, index))


def _with(data, path, value=None, *, drop=False):
    changed = copy.deepcopy(data)
    node = changed
    for part in path[:-1]:
        node = node[part]
    if drop:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return changed


def _messages(data) -> list[str]:
    try:
        parse_spec(SpecFile("every_model.aq.yaml", yaml.safe_dump(data, sort_keys=False)))
    except SpecError as error:
        return [i.message for i in error.issues]
    return []


def test_the_baseline_is_valid_and_sets_every_field_of_every_model():
    pipeline = parse_spec(SpecFile("every_model.aq.yaml", BASELINE))
    seen: dict[type, set[str]] = {}
    _covered(pipeline, seen)
    ours = _our_models()
    # base classes only (StepSettings: the settings a step and `defaults` share) are seen through their subclasses
    assert {cls.__name__ for cls in seen} == set(ours) - {"Model", "_Model", "StepSettings"}
    unset = {cls.__name__: sorted(set(cls.model_fields) - fields) for cls, fields in seen.items()}
    assert {name: fields for name, fields in unset.items() if fields} == {}


@pytest.mark.slow
def test_no_message_names_a_model_class_or_pydantic_internals():
    data = yaml.safe_load(BASELINE)
    names = sorted(_our_models())
    leak = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b|" + "|".join(map(re.escape, INTERNALS)))
    variants = []
    for path, value in _places(data):
        variants += [_with(data, path, wrong) for wrong in WRONG_VALUES if wrong != value]
        if isinstance(path[-1], str):
            variants.append(_with(data, path, drop=True))  # a missing key (required or not)
        if isinstance(value, dict):
            variants.append(_with(data, path, {**value, "zz_unknown": 1}))
    variants.append({**data, "zz_unknown": 1})
    leaks, refused = [], 0
    for variant in variants:
        messages = _messages(variant)
        refused += bool(messages)
        leaks += [m for m in messages if leak.search(m)]
    assert len(variants) > 1000 and refused > len(variants) // 2  # the walk did reach the models' errors
    assert leaks == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "    foreach: segments",
            "pipe.aq.yaml:6:14: steps.b.foreach: expected a list, `{param: ...}` or `{step: ...}`, not the text "
            "`segments`; write `{param: segments}` (`segments` is a param of this pipeline)",
        ),
        (
            "    foreach: a",
            "pipe.aq.yaml:6:14: steps.b.foreach: expected a list, `{param: ...}` or `{step: ...}`, not the text `a`; "
            "write `{step: a}` (`a` is a step of this pipeline)",
        ),
        (
            "    foreach: regions",
            "pipe.aq.yaml:6:14: steps.b.foreach: expected a list, `{param: ...}` or `{step: ...}`, not the text "
            "`regions`; write a list (`[regions]`), `{param: name}` or `{step: name}`",
        ),
        (
            "    when: publish_enabled == true",
            "pipe.aq.yaml:6:11: steps.b.when: a condition is a mapping, not the text `publish_enabled == true`; "
            "write `{param: publish_enabled, equals: true}`",
        ),
        (
            "    when: publish_enabled",
            "pipe.aq.yaml:6:11: steps.b.when: a condition is a mapping, not the text `publish_enabled`; write "
            "`{param: publish_enabled}` (true when the param is)",
        ),
        (
            "    when: a.rows > 10",
            "pipe.aq.yaml:6:11: steps.b.when: a condition is a mapping, not the text `a.rows > 10`; write "
            "`{metric: a.rows, above: 10}`",
        ),
        (
            "    when: 1",
            f"pipe.aq.yaml:6:11: steps.b.when: a condition is a mapping, not the number `1`: {conditions.FORMS}",
        ),
        (
            "    when: {param: publish_enabled, equal: true}",
            "pipe.aq.yaml:6:36: unknown key `equal`; did you mean `equals`?",
        ),
        ("    when: {all: [{parm: publish_enabled}]}", "pipe.aq.yaml:6:19: unknown key `parm`; did you mean `param`?"),
        ("    checks: [{name: c, not_nul: x}]", "pipe.aq.yaml:6:24: unknown key `not_nul`; did you mean `not_null`?"),
        ("    checks: [{name: c, uniq: x}]", "pipe.aq.yaml:6:24: unknown key `uniq`; did you mean `unique`?"),
        ("    metrics: [{name: m, meen: x}]", "pipe.aq.yaml:6:25: unknown key `meen`; did you mean `mean`?"),
        (
            "    metrics: [{name: m, quantile: {colum: x, q: 0.5}}]",
            "pipe.aq.yaml:6:36: unknown key `colum`; did you mean `column`?",
        ),
        (
            "    env: {TOKEN: {secrte: s, key: k}}",
            "pipe.aq.yaml:6:19: unknown key `secrte`; did you mean `secret`?",
        ),
        (
            "    resources: 2",
            "pipe.aq.yaml:6:16: steps.b.resources: expected a mapping, not the number `2`",
        ),
        (
            "    retries: '3'",
            "pipe.aq.yaml:6:14: steps.b.retries: expected a whole number, not the text `3`",
        ),
        (
            "    metrics: [{name: m, count: 5}]",
            "pipe.aq.yaml:6:32: steps.b.metrics.0.count: expected `*` or text, not the number `5`",
        ),
    ],
)
def test_hints_for_the_forms_a_value_takes(extra, expected):
    text = f"params: {{segments: [low], publish_enabled: true}}\nsteps:\n  a:\n    python: m:f\n  b:\n{extra}\n"
    assert expected in issues_of(text + "    python: m:g\n")


def test_a_key_is_suggested_from_the_keys_of_its_place():
    """`image` is a key of steps and `defaults`, not of the pipeline: no suggestion leads there."""
    (issue,) = issues_of("imag: x\nsteps:\n  a:\n    python: m:f\n")
    assert issue == "pipe.aq.yaml:1:1: unknown key `imag`; remove it or check the spec reference"
