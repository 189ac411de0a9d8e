"""``aq-airflow run --param NAME=VALUE`` read as the spec declares the param (aq_airflow.cli.params):
each type, both list forms, and the located refusals the command prints (exit 2, nothing run)."""

from __future__ import annotations

import pytest

from aq_airflow.cli.params import TOO_MANY_DIGITS, Refused, kind, parse, typed_params
from tests.helpers import write


@pytest.mark.parametrize(
    ("default", "text", "value"),
    [
        (True, "false", False), (False, "TRUE", True), (False, "Yes", True), (True, "no", False),
        (False, "1", True), (True, "0", False),
        (1000, "10", 10), (1000, "-3", -3), (1000, "+7", 7), (1000, "0", 0),
        (0.5, "0.25", 0.25), (0.5, "2", 2.0), (0.5, "-1e-3", -0.001), (0.5, ".5", 0.5), (1.0, "3.", 3.0),
        ("2026-01-01", "2025-12-31", "2025-12-31"),
        ("eu", "123", "123"), ("eu", "true", "true"), ("eu", '["a"]', '["a"]'), ("eu", " spaced ", " spaced "),
        ("eu", "", ""), ("eu", "low,mid", "low,mid"), ("not a date", "x", "x"),
        (["low", "mid"], "low,mid", ["low", "mid"]), (["low"], " low , mid ", ["low", "mid"]),
        (["low"], '["low", "mid"]', ["low", "mid"]), (["low"], "high", ["high"]), (["low"], "", []),
        (["low"], "[]", []), (["low"], "123,true", ["123", "true"]),
        ([1, 2], "3,4", [3, 4]), ([1, 2], "[3, 4]", [3, 4]), ([0.5, 1], "1,2.5", [1.0, 2.5]),
        ([0.5], "[1, 2.5]", [1, 2.5]), ([True], "yes,0", [True, False]),
        (["2026-01-01"], "2026-01-02,2026-01-03", ["2026-01-02", "2026-01-03"]),
        ([], "eu,us", ["eu", "us"]), ([], "[1, {\"a\": 2}]", [1, {"a": 2}]), ([1, "a"], "1,a", ["1", "a"]),
        ([{"a": 1}], '[{"a": 2}, {"b": 3}]', [{"a": 2}, {"b": 3}]),
        ({"a": 1}, '{"a": 2, "b": [1]}', {"a": 2, "b": [1]}), ({}, "{}", {}),
        (None, "5", 5), (None, "[1,2]", [1, 2]), (None, "text", "text"), (None, "null", None),
    ],
)  # fmt: skip
def test_a_value_is_read_as_its_declared_type(default, text, value):
    parsed = parse(text, default)
    assert parsed == value
    assert type(parsed) is type(value)  # 2.0 for a number param, not 2; True, not 1


@pytest.mark.parametrize(
    ("default", "text", "detail"),
    [
        (True, "maybe", ""), (True, "", ""), (True, "2", ""), (True, "on", ""),
        (1000, "ten", ""), (1000, "0; DROP TABLE x", ""), (1000, "1.5", ""), (1000, "1e3", ""), (1000, "", ""),
        (1000, "1_000", ""), (1000, " 42 ", 'no blanks around it: write "42"'),
        (1000, "5 ", 'no blanks around it: write "5"'),
        (1000, "\uff11", "ASCII digits 0-9 only"), (0.5, "\u0661.5", "ASCII digits 0-9 only"),
        (True, " false ", 'no blanks around it: write "false"'),
        ("2026-01-01", " 2024-02-29 ", 'no blanks around it: write "2024-02-29"'),
        (None, "NaN", "NaN is not a JSON number (JSON has no NaN or infinity); write a number, or "
         '"NaN" in quotes as text'),
        ({"eu": 5}, '{"eu": -Infinity}', "-Infinity is not a JSON number (JSON has no NaN or infinity); write a "
         'number, or "-Infinity" in quotes as text'),
        ({"eu": 5}, '{"eu": 1e999}', "1e999 is too large for a number"), ([0.5], "[1, NaN]", "NaN is not a JSON number "
         '(JSON has no NaN or infinity); write a number, or "NaN" in quotes as text'),
        (1000, "9" * 5000, TOO_MANY_DIGITS),
        (0.5, "half", ""), (0.5, "nan", ""), (0.5, "inf", ""), (0.5, "1e999", "too large for a number"),
        (0.5, "0x10", ""),
        ("2026-01-01", "yesterday", ""), ("2026-01-01", "2026-02-30", ""), ("2026-01-01", "20260101", ""),
        ("2026-01-01", "2026-01-01T00:00:00", ""),
        (["low"], "low,,mid", "item 2 is empty"), (["low"], "low,", "item 2 is empty"),
        (["low"], '["low", 1]', "item 2, 1, is not text"),
        (["low"], "[low]", "not JSON: Expecting value at character 2"),
        ([1, 2], "3,x", 'item 2, "x", is not a whole number'),
        ([1, 2], "[3, 4.5]", "item 2, 4.5, is not a whole number"),
        ([1, 2], "[true]", "item 1, true, is not a whole number"), ([0.5], "1,two", 'item 2, "two", is not a number'),
        ([True], "yes,maybe", 'item 2, "maybe", is not true or false'),
        (["2026-01-01"], '["2026-13-01"]', 'item 1, "2026-13-01", is not a date, YYYY-MM-DD'),
        ([{"a": 1}], "a,b", "not JSON: write the list as JSON, e.g. [{...}, {...}]"),
        ([{"a": 1}], "[1]", "item 1, 1, is not an object or a list"),
        ({"a": 1}, "[1]", "a JSON list, not an object"), ({"a": 1}, '"a"', "a JSON string, not an object"),
        ({"a": 1}, "{a: 1}", "not JSON: Expecting property name enclosed in double quotes at character 2"),
        ({"a": 1}, "", "not JSON: Expecting value at character 1"),
    ],
)  # fmt: skip
def test_a_value_that_does_not_fit_is_refused_with_the_reason(default, text, detail):
    with pytest.raises(Refused) as refused:
        parse(text, default)
    assert refused.value.detail == detail


def test_the_type_comes_from_the_default():
    assert [kind(v) for v in (True, 1, 1.5, "2026-01-01", "2026-02-30", "eu", [1], {"a": 1}, None)] == [
        "boolean", "integer", "number", "date", "string", "string", "list", "object", "any",
    ]  # fmt: skip


BLOCK_SPEC = """
pipeline: typed
description: typed params
schedule: "@daily"
params:
  segments: [low, mid]
  sizes: [1, 2]
  min_rows: 1000
  ratio: 0.5
  publish: true
  day: 2026-01-01
  region: eu
  limits: {eu: 1}
  note: ~
steps:
  a:
    sql: SELECT 1
"""


def test_refusals_name_the_declaration_file_line_col(tmp_path):
    spec = write(tmp_path, "spec.aq.yaml", BLOCK_SPEC)
    from aq_airflow.plan import compile_spec

    declared = compile_spec(spec).params
    given = {"min_rows": "ten", "ratio": "half", "publish": "maybe", "day": "01/02/2026", "sizes": "1,two",
             "limits": "eu=2", "segments": "low,mid", "region": "123", "note": "[1]"}  # fmt: skip
    values, refused = typed_params(spec, declared, given)
    assert refused == [
        f'--param min_rows=ten: min_rows is a whole number (declared 1000 at {spec}:7:13); got "ten"',
        f'--param ratio=half: ratio is a number (declared 0.5 at {spec}:8:10); got "half"',
        f"--param publish=maybe: publish is true or false (also yes/no, 1/0) (declared true at {spec}:9:12); "
        'got "maybe"',
        f'--param day=01/02/2026: day is a date, YYYY-MM-DD (declared "2026-01-01" at {spec}:10:8); got "01/02/2026"',
        f"--param sizes=1,two: sizes is a list of whole numbers, as JSON or comma-separated (1,2) (declared [1, 2] "
        f'at {spec}:6:10); got "1,two" (item 2, "two", is not a whole number)',
        f'--param limits=eu=2: limits is an object, as JSON (declared {{"eu": 1}} at {spec}:12:11); got "eu=2" '
        "(not JSON: Expecting value at character 1)",
    ]
    assert values == {"segments": ["low", "mid"], "region": "123", "note": [1]}  # the ones that fit


def test_a_long_default_is_shown_cut_short(tmp_path):
    spec = write(tmp_path, "spec.aq.yaml", "params:\n  tags: [alpha, beta, gamma, delta, epsilon, zeta]\n"
                 "steps:\n  a:\n    sql: SELECT 1\n")  # fmt: skip
    _, refused = typed_params(spec, {"tags": ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]}, {"tags": "[1]"})
    assert refused == [
        f'--param tags=[1]: tags is a list, as JSON or comma-separated (a,b) (declared ["alpha", "beta", "gamma", '
        f'"delta", "... at {spec}:2:9); got "[1]" (item 1, 1, is not text)'
    ]


def test_the_command_refuses_a_bad_value_before_running(tmp_path, capsys):
    from aq_airflow.cli.main import main

    spec = write(tmp_path, "spec.aq.yaml", BLOCK_SPEC)
    work = tmp_path / "work"
    assert main(["run", str(spec), "--workdir", str(work), "--param", "min_rows=ten", "--param", "segments=a,b"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f'--param min_rows=ten: min_rows is a whole number (declared 1000 at {spec}:7:13); got "ten"'
    ]
    assert not work.exists()  # refused when the command is read: no Airflow home, no workdir


def test_an_undeclared_param_is_refused_before_the_types(tmp_path, capsys):
    from aq_airflow.cli.main import main

    spec = write(tmp_path, "spec.aq.yaml", BLOCK_SPEC)
    assert main(["run", str(spec), "--param", "min_row=5", "--param", "min_rows=ten"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{spec}:4:1: --param min_row: `params:` declares no `min_row`; declared: day, limits, min_rows, note, "
        "publish, ratio, region, segments, sizes; did you mean `min_rows`?"
    ]


def test_the_help_says_how_to_write_each_type(capsys):
    from aq_airflow.cli.main import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for form in ("segments=low,mid", 'segments=\'["low","mid"]\'', "min_rows=5000", "publish=no", "day=2026-03-01",
                 "YYYY-MM-DD", "JSON"):  # fmt: skip
        assert form in text, form
