"""Hostile YAML: documents that cost far more to build than to write (alias bombs, recursive
aliases, deep nesting, huge files, thousands of steps), and values a spec cannot hold. Each is
refused before any Python object is built, as a located error that names the limit and how to
fix it, in bounded memory and time, by validate, compile and the loader alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from aq_airflow.live_dags import INVALID_TAG, load_dags
from aq_airflow.pipeline_spec import SpecError, SpecFile, parse_spec
from aq_airflow.pipeline_spec.yamlpos import MAX_DEPTH, MAX_NODES, MAX_SPEC_BYTES
from tests.helpers import shard_import_errors, write

GOOD = "pipeline: {name}\nsteps:\n  a:\n    sql: SELECT 1 AS x\n"
STEPS = "steps:\n  a:\n    sql: SELECT 1\n"


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic: nine lists of nine aliases of the list before, under `params:`; 9^9 values."""
    lines = ["pipeline: lol", "params:", f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n" + STEPS


def issues(text: str, name: str = "pipe.aq.yaml") -> list[str]:
    try:
        parse_spec(SpecFile(name, text))
    except SpecError as error:
        return [str(i) for i in error.issues]
    return []


# Peak RSS is the kernel's high-water mark of this process's memory (VmHWM), which starts afresh
# at exec; ru_maxrss would carry over the forking test process's own peak.
PEAK = "def peak():\n    return int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024\n"
MEASURE = (
    PEAK
    + """
import json, sys, time
from aq_airflow.cli.main import main
before = peak()
started = time.perf_counter()
code = main(sys.argv[1:])
seconds = time.perf_counter() - started
print(json.dumps({"code": code, "seconds": seconds, "before_mb": before, "peak_mb": peak()}), file=sys.stderr)
"""
)


def measured_cli(*argv: str) -> tuple[list[str], dict]:
    """``aq-airflow ARGV`` in a fresh process: its stdout lines and its figures (exit code,
    seconds of the command itself, peak RSS of the whole process, RSS after the imports)."""
    result = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stdout.splitlines(), json.loads(result.stderr.strip().splitlines()[-1])


def test_a_billion_laughs_under_params_is_a_located_error_in_bounded_memory_and_time(tmp_path):
    bomb = tmp_path / "bomb.aq.yaml"
    bomb.write_text(billion_laughs())
    lines, validate = measured_cli("validate", str(bomb))
    assert lines == [
        f"{bomb}:8:17: with the alias `*l4` the document passes the limit of {MAX_NODES:,} values (with its "
        'aliases expanded it has 490,329,074: aliases of nodes that hold aliases multiply, a "billion laughs"); '
        "write the values out, or keep large data out of the spec"
    ]
    lines, compile_ = measured_cli("compile", str(bomb), "--out", str(tmp_path / "out"))
    assert lines[0].startswith(f"{bomb}:8:17: with the alias `*l4`")
    assert list((tmp_path / "out").iterdir()) == []  # no empty or partial .py
    for name, figures in (("validate", validate), ("compile", compile_)):
        print(f"billion laughs, {name}: {figures['seconds'] * 1000:.1f} ms, peak RSS {figures['peak_mb']:.1f} MB "
              f"(after imports {figures['before_mb']:.1f} MB)")  # fmt: skip
        assert figures["code"] == 1
        assert figures["seconds"] < 1.0
        assert figures["peak_mb"] < 100
        assert figures["peak_mb"] - figures["before_mb"] < 20


LOADER_MEASURE = (
    PEAK
    + """
import json, os, sys, time
from aq_airflow.live_dags import load_dags
warm, bomb = sys.argv[1:]
load_dags({"__file__": os.path.join(warm, "aq_dags.py")})  # every import a parse needs, paid first
before = peak()
started = time.perf_counter()
dags = load_dags({"__file__": os.path.join(bomb, "aq_dags.py")})
seconds = time.perf_counter() - started
print(json.dumps({"dags": {d.dag_id: [sorted(d.tags), d.description] for d in dags}, "seconds": seconds,
                  "before_mb": before, "peak_mb": peak()}))
"""
)


def test_the_loader_turns_a_billion_laughs_into_a_placeholder_in_bounded_memory_and_time(tmp_path):
    warm, folder = tmp_path / "warm", tmp_path / "dags"
    warm.mkdir(), folder.mkdir()
    write(warm, "warm.aq.yaml", GOOD.format(name="warm") + "  b:\n    python: m:f\n    inputs: [a]\n")
    write(folder, "bomb.aq.yaml", billion_laughs())
    write(folder, "good.aq.yaml", GOOD.format(name="good"))
    env = {**os.environ, "AQ_AIRFLOW_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", LOADER_MEASURE, str(warm), str(folder)],
                            capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"billion laughs, loader (with one good spec): {figures['seconds'] * 1000:.1f} ms, RSS "
          f"{figures['before_mb']:.1f} -> {figures['peak_mb']:.1f} MB")  # fmt: skip
    assert INVALID_TAG not in figures["dags"]["good"][0]
    tags, description = figures["dags"]["lol"]
    assert tags == [INVALID_TAG]
    assert description.startswith(f"INVALID SPEC: {folder}/bomb.aq.yaml:8:17: with the alias `*l4`")
    assert figures["seconds"] < 1.0
    assert figures["peak_mb"] - figures["before_mb"] < 100


def test_a_billion_laughs_through_merge_keys_is_a_located_error():
    lines = ["params:", "  m0: &m0 {a: 1, b: 2, c: 3}"]
    lines += [f"  m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 8)}], k{i}: 1}}" for i in range(1, 10)]
    (issue,) = issues("\n".join(lines) + "\n" + STEPS)
    assert issue.startswith("pipe.aq.yaml:")
    assert f"the document passes the limit of {MAX_NODES:,} values" in issue and '"billion laughs"' in issue


@pytest.mark.parametrize(
    ("text", "where"),
    [("params: &r [1, *r]\n", "1:16"), ("params: &r {a: {b: [*r]}}\n", "1:21"), ("x: &r [*r]\n", "1:8")],
)
def test_a_recursive_alias_is_a_located_error_not_a_recursion_error(text, where):
    assert issues(text + STEPS) == [
        f"pipe.aq.yaml:{where}: the alias `*r` is inside the node `&r` it names, which makes the document "
        "infinite; name a node outside it"
    ]


def test_nesting_deeper_than_the_limit_is_a_located_error():
    """Mappings and lists inside one another count (the document's own mapping is level 1);
    scalars do not. The first list or mapping past the limit, or the alias that takes its node
    past it, is the place reported."""
    message = f"nested more than {MAX_DEPTH} levels deep (mappings and lists inside one another); flatten the structure"
    # levels: the document 1, params' mapping 2, then one a bracket: the 63rd bracket is level 65
    flow = "params: {x: " + "[" * 70 + "1" + "]" * 70 + "}\n"
    assert issues(flow + STEPS) == [f"pipe.aq.yaml:1:{12 + 63}: this list is {message}"]
    # levels: the document 1, params' mapping 2 (line 2), k{i}'s mapping 3 + i (line 3 + i)
    block = "params:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(70)) + " " * 71 + "v: 1\n"
    assert issues(block + STEPS) == [f"pipe.aq.yaml:65:65: this mapping is {message}"]
    aliased = "params:\n  a: &a " + "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2) + "\n  b: [*a]\n"
    assert issues(aliased + STEPS) == [f"pipe.aq.yaml:3:7: the alias `*a` is {message}"]
    at_the_limit = "params: {x: " + "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2) + "}\n"
    assert issues(at_the_limit + STEPS) == []


def test_ten_thousand_levels_of_brackets_are_a_located_error_not_a_crash():
    assert issues("params: " + "[" * 10_000 + "]" * 10_000 + "\n" + STEPS) == [
        "pipe.aq.yaml:1:1008: YAML syntax: exceeded maximum nesting depth"
    ]


def test_a_sparse_ten_gigabyte_spec_is_refused_without_reading_it(dags_folder):
    huge = dags_folder / "huge.aq.yaml"
    with open(huge, "wb") as handle:
        handle.write(GOOD.format(name="huge").encode())
        handle.truncate(10 * 1024**3)  # sparse: no disk used, but 10 GB to read
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good"))
    started = time.perf_counter()
    dags = {d.dag_id: d for d in load_dags({"__file__": str(dags_folder / "aq_dags.py")})}
    seconds = time.perf_counter() - started
    assert seconds < 5, seconds
    assert INVALID_TAG not in dags["good"].tags
    assert dags["huge"].description == (
        f"INVALID SPEC: {huge}:1:1: the file is 10,737,418,240 bytes, more than the limit of {MAX_SPEC_BYTES:,}; "
        "a spec describes a pipeline, not its data: move large values into a file the step reads, or split the "
        "pipeline"
    )


def test_a_spec_just_over_the_size_limit_is_a_located_error_and_one_under_it_loads(tmp_path):
    padding = "#" * (MAX_SPEC_BYTES - len(STEPS) - 1) + "\n"
    assert issues(padding + STEPS) == []
    (issue,) = issues(padding + "#" + STEPS)
    assert issue.startswith(f"pipe.aq.yaml:1:1: the file is {MAX_SPEC_BYTES + 1:,} bytes, more than the limit")


def test_more_values_than_the_limit_without_any_alias_is_a_located_error():
    values = ", ".join(["1"] * (MAX_NODES + 10))  # about 600 KB of text: under the size limit
    (issue,) = issues(f"params: {{x: [{values}]}}\n" + STEPS)
    assert issue.startswith("pipe.aq.yaml:1:")
    assert issue.endswith(
        f"the document has more than {MAX_NODES:,} values; a spec describes a pipeline, not its data: move large "
        "values into a file the step reads, or split the pipeline"
    )


def test_more_steps_than_the_limit_is_a_located_error_at_steps():
    steps = "".join(f"  s{i}:\n    sql: SELECT {i}\n" for i in range(1001))
    assert issues("pipeline: wide\nsteps:\n" + steps) == [
        "pipe.aq.yaml:2:1: 1,001 steps, more than the limit of 1,000 in one pipeline; split it into pipelines"
    ]


def test_anchors_aliases_and_merge_keys_within_the_limits_still_work():
    text = textwrap.dedent("""\
        pipeline: anchored
        params: {regions: &regions [eu, us, apac]}
        steps:
          a:
            sql: SELECT 1 AS x
            checks:
              - {name: regions, accepted_values: {column: x, values: *regions}}
          b:
            python: m:f
            inputs: [a]
            resources: &small {cpu: 1, memory: 1Gi}
          c:
            python: m:f
            inputs: [b]
            resources: {<<: *small, memory: 2Gi}
    """)
    pipeline = parse_spec(SpecFile("anchored.aq.yaml", text))
    assert pipeline.params == {"regions": ["eu", "us", "apac"]}
    assert pipeline.steps["c"].resources.memory == "2Gi" and str(pipeline.steps["c"].resources.cpu) == "1"


def test_a_control_character_after_non_ascii_text_is_located_by_character():
    assert issues("description: éé café\x07\n" + STEPS) == [
        "pipe.aq.yaml:1:21: YAML syntax: character U+0007 is not allowed in YAML; remove it, or write it escaped "
        '(`"\\u0007"` in a double-quoted string)'
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("!!set {a, b}", "1:13: `!!set` makes a set, which a spec cannot hold"),
        ("!!binary aGk=", "1:13: `!!binary` makes bytes, which a spec cannot hold"),
        ("!!omap [{a: 1}]", "1:13: `!!omap` makes ordered pairs, which a spec cannot hold"),
        ("!!pairs [{a: 1}]", "1:13: `!!pairs` makes pairs, which a spec cannot hold"),
        ("{true: 1}", "1:14: the key `true` is read as bool, and keys are text in a spec"),
        ("{1: a}", "1:14: the key `1` is read as int, and keys are text in a spec"),
        ("{null: a}", "1:14: the key `null` is read as NoneType, and keys are text in a spec"),
    ],
)
def test_yaml_values_json_cannot_hold_are_located_errors(value, expected):
    """A spec's values go through JSON (the plan cache, Airflow's serialized DAG, params): a set,
    bytes or a non-text key would fail there or come back changed."""
    (issue,) = issues(f"params: {{p: {value}}}\n" + STEPS)
    assert issue.startswith(f"pipe.aq.yaml:{expected}")


def test_word_boolean_keys_are_text_as_yaml_1_2_reads_them():
    """`schema_change: {on: [added]}`: a plain `on`, `off`, `yes` or `no` key is the word (YAML 1.1
    would make it a boolean, which no spec key can be); `true` and `false` stay refused (above)."""
    from aq_airflow.pipeline_spec.yamlpos import load_yaml_node

    value, _ = load_yaml_node("{on: 1, Off: 2, yes: 3, NO: 4, 'true': 5}")
    assert value == {"on": 1, "Off": 2, "yes": 3, "NO": 4, "true": 5}
    assert load_yaml_node("a: on")[0] == {"a": True}  # a value stays YAML's: only keys are read as text


def test_a_python_object_tag_is_a_located_error_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    (issue,) = issues(f"params: !!python/object/apply:os.system ['touch {marker}']\n" + STEPS)
    assert issue.startswith("pipe.aq.yaml:1:9: YAML syntax: could not determine a constructor for the tag")
    assert not marker.exists()


def test_a_billion_laughs_in_the_profiles_file_marks_the_specs_and_hides_nothing(dags_folder):
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good"))
    lines = ["x: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    write(dags_folder, "aq-profiles.yaml", "\n".join(lines) + "\nprofiles: {}\n")
    bag = DagBag(dag_folder=str(dags_folder))
    assert shard_import_errors(bag) == {}
    dag = bag.dags["good"]
    assert dag.tags == {INVALID_TAG}
    assert dag.description.startswith(f"INVALID SPEC: {dags_folder}/aq-profiles.yaml:6:15: ")
    assert "the document passes the limit of" in dag.description and "YAML syntax" not in dag.description


@pytest.mark.slow
def test_a_fuzz_smoke_run_of_300_specs_has_no_failure(tmp_path):
    """`make fuzz` in small: 300 mutated and generated specs (and hostile paths) through
    validate, compile and the loader under DagBag; no uncaught exception, traceback, internal
    error, unlocated error or disagreement between the three."""
    from tests.fuzzing import Campaign, summary

    campaign = Campaign(specs=300, seed=1, batch=150, exec_every=5, out=tmp_path / "fuzz")
    tally = campaign.run(progress=False)
    report = summary(campaign, max_rss_mb=1500)
    print(report)
    assert tally.failures == [], report
    assert tally.specs == 300 and tally.dags == 300 and tally.serialized == 300
    assert 0 < tally.valid <= tally.compiled < 300  # validate alone also parses SQL


def test_the_fuzz_campaign_stays_out_of_the_test_run():
    """`make fuzz` (10,000 specs, minutes) is its own target; `make test` runs the smoke run."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    fuzz = makefile.split("\nfuzz:", 1)[1].split("\n\n", 1)[0]
    assert "tests.fuzzing" in fuzz
    test = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "fuzz" not in test


def test_thousands_of_checks_on_one_step_are_a_located_error():
    """A 1 MiB spec of 29,000 `not_null` checks took 16 s to load and hid its shard's other DAGs
    behind the parse timeout (found by a hostile tester): a step holds at most 200."""
    from aq_airflow.pipeline_spec import SpecError, SpecFile, parse_spec

    lines = ["steps:", "  a:", "    sql: SELECT 1 AS x", "    checks:"]
    lines += [f"      - {{name: c{i}, not_null: x}}" for i in range(201)]
    with pytest.raises(SpecError) as error:
        parse_spec(SpecFile("many.aq.yaml", "\n".join(lines) + "\n"))
    (issue,) = error.value.issues
    assert (issue.line, issue.col) == (5, 7) and "at most 200 items" in issue.message
