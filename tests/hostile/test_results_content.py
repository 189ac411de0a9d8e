"""Hostile and odd content of the results tables, through `aq-airflow results` as users run it
(its entry point, output captured): tables made by hand with text where numbers belong, NULL
everywhere, a map index of "abc" or -5, NaN and numbers no float holds, dates no driver
converts, bytes that are no UTF-8, escape sequences, megabytes of message.

Each test writes such rows into a real results table (a DuckDB file; PostgreSQL for the column
types it has and DuckDB lacks) and asserts what is printed: no traceback, every control shown
escaped in the table (nothing a terminal would act on reaches it), long values cut with a marker
and the whole value in `--format json`, which stays valid JSON. Speed is measured in
bench/results_cli.py (no timing here); the bounds on output size below hold only if values are
cut before anything wraps or pads them.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid

import duckdb
import pytest

from aq_airflow.cli.main import main
from aq_airflow.cli.results import CELL_CHARS, CLI_CONN_ID, MESSAGE_CHARS, MESSAGE_LINES, _message_lines
from aq_airflow.cli.terminal import ELLIPSIS, bounded, visible
from aq_airflow.quality.numbers import number
from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.results.rows import COLUMNS
from aq_airflow.warehouse import Warehouse

DATE = datetime.datetime(2026, 3, 1)
# what a terminal acts on: C0 controls (but the newline), DEL and C1 controls, bidi embeddings,
# overrides, isolates and marks, zero-width characters, line and paragraph separators
_ACTIVE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
HOSTILE = ("red\x1b[31malert\x1b[0m\rOVERWRITE\x07bell\x9b31mcsi\u202eevil\u2066iso\u2069\u200bzw\u2028ls"
           "\ttab\x00nul\x7fdel\x1b]0;title\x07")  # fmt: skip
HOSTILE_SHOWN = ("red\\x1b[31malert\\x1b[0m\\rOVERWRITE\\x07bell\\x9b31mcsi\\u202eevil\\u2066iso\\u2069\\u200bzw"
                 "\\u2028ls\\ttab\\x00nul\\x7fdel\\x1b]0;title\\x07")  # fmt: skip


# --- the CLI, as users run it ---------------------------------------------------------------------


@pytest.fixture
def results(capsys, monkeypatch):
    """`aq-airflow results ARGS...` through the CLI's entry point: (exit code, stdout, stderr).
    The connection the CLI defines for --warehouse is removed again after the test."""
    monkeypatch.setenv("AIRFLOW_CONN_" + CLI_CONN_ID.upper(), "unset-after-the-test")
    monkeypatch.setenv("COLUMNS", "400")  # a wide terminal: a message of 250 characters is one line

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["results", *args])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, out + err
        return code, out, err

    return run


def _strict_json(text: str) -> dict:
    """JSON as the standard has it: NaN and Infinity are not JSON (Python's json accepts them)."""

    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _active(text: str) -> list[str]:
    return sorted({repr(c) for c in _ACTIVE.findall(text)})


# --- tables made by hand --------------------------------------------------------------------------


def _hand_made(conn, schema: str, types: dict[str, str] | None = None, default: str = "VARCHAR") -> None:
    """Both results tables with every column of this version, typed ``default`` (text) unless
    ``types`` says otherwise: what a table made by hand, or altered, may hold."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table, columns in COLUMNS.items():
        defs = ", ".join(f"{name} {(types or {}).get(name, default)}" for name, _ in columns)
        conn.execute(f"CREATE TABLE {schema}.{table} ({defs})")


def _insert(conn, schema: str, table: str, rows: list[dict], mark: str = "?") -> None:
    for row in rows:
        names = ", ".join(row)
        conn.execute(f"INSERT INTO {schema}.{table} ({names}) VALUES ({', '.join([mark] * len(row))})",
                     list(row.values()))  # fmt: skip


def _row(**values) -> dict:
    return {"dag_id": "odd", "run_id": "r1", "step": "s", "name": "n", **values}


def _metric_lines(out: str) -> list[str]:
    after = out.split("metrics (aq_metric_results), newest first\n", 1)[1]
    return after.splitlines()[1:]  # under the header


# --- text where numbers belong, NULL everywhere ---------------------------------------------------

TEXT_ROWS = [
    _row(map_index="abc", value="not a number", logical_date="yesterday", created_at="z9"),
    _row(map_index="", name="empty index"),
    _row(map_index="2.5", name="half"),
    _row(map_index="-5", name="negative"),
    _row(map_index="99999999999999999999999", name="huge"),
    _row(map_index="10", name="ten", value="1e999"),
    _row(map_index="2", name="two"),
    _row(map_index="-1", name="not mapped"),
    {"dag_id": "odd"},  # NULL in every other column
]


def test_text_in_every_column_prints_as_it_is(tmp_path, results):
    path = tmp_path / "text.duckdb"
    with duckdb.connect(str(path)) as conn:
        _hand_made(conn, "aq")
        _insert(conn, "aq", METRICS_TABLE, TEXT_ROWS)
        _insert(conn, "aq", CHECKS_TABLE, [_row(map_index="abc", failing_rows="many", total_rows="all",
                                                sample="not json", message="plain"), {"dag_id": "odd"}])  # fmt: skip
    code, out, _ = results("odd", "--warehouse", str(path), "--schema", "aq")
    assert code == 0
    steps = [line[47:75].strip() for line in _metric_lines(out)]
    # whole numbers by number (text though the column is), then the rest by its text; -1 not mapped;
    # the row of NULLs last, an empty line
    assert steps == ["s[-5]", "s", "s[2]", "s[10]", "s[99999999999999999999999]", "s[]", "s[2.5]", "s[abc]", ""]
    assert _metric_lines(out)[7].split() == ["yesterday", "r1", "s[abc]", "n", "not", "a", "number"]
    assert "1e999" in _metric_lines(out)[3] and _metric_lines(out)[8] == ""
    assert "s[abc]        n" in out and "many     plain" in out
    document = _strict_json(results("odd", "--warehouse", str(path), "--schema", "aq", "--format", "json")[1])
    assert [m["map_index"] for m in document["metrics"]] == ["-5", "-1", "2", "10", "99999999999999999999999", "",
                                                             "2.5", "abc", None]  # fmt: skip
    assert [m["value"] for m in document["metrics"]] == [None, None, None, "1e999", None, None, None, "not a number",
                                                         None]  # fmt: skip
    assert [(c["failing_rows"], c["sample"]) for c in document["checks"]] == [("many", None), (None, None)]


# --- odd types: NaN, huge numbers, bytes, dates past Python's --------------------------------------


def test_odd_types_print_and_stay_valid_json(tmp_path, results):
    path = tmp_path / "typed.duckdb"
    deep = "[" * 5000 + "]" * 5000  # nests past the recursion limit: no sample
    nested = json.dumps([{"v": json.loads("[" * 300 + "1" + "]" * 300)}])  # deep but readable
    with duckdb.connect(str(path)) as conn:
        _hand_made(conn, "aq", {"value": "DOUBLE", "map_index": "DOUBLE", "message": "BLOB", "failing_rows": "HUGEINT",
                                "item_label": "INTEGER", "logical_date": "TIMESTAMP",
                                "created_at": "TIMESTAMP"})  # fmt: skip
        metrics = [
            _row(name="nan", value=float("nan"), map_index=float("nan"), message=b"\xff\xfe not utf-8 \x1b[2J"),
            _row(name="inf", value=float("inf"), map_index=float("inf"), item_label=7),
            _row(name="big", value=1.7e308, map_index=1e300, logical_date="infinity"),
            _row(name="whole", value=-0.0, map_index=3.0, logical_date="20000-01-01 00:00:00"),
        ]
        _insert(conn, "aq", METRICS_TABLE, metrics)
        checks = [
            _row(name="huge", failing_rows=170141183460469231731687303715884105727, sample=deep, message=b"ok"),
            _row(name="nested", outcome="failed", sample=nested, logical_date="-infinity"),
        ]  # fmt: skip
        _insert(conn, "aq", CHECKS_TABLE, checks)
    code, out, _ = results("odd", "--warehouse", str(path), "--schema", "aq")
    assert code == 0
    assert _active(out) == []
    assert "s[nan]" in out and "s[inf:7]" in out and "s[3]" in out
    assert "\\xff\\xfe not utf-8 \\x1b[2J" in out  # bytes that are no UTF-8, and the escape in them, shown
    assert "170141183460469231731687303715884105727" in out and "20000-01-01" in out
    document = _strict_json(results("odd", "--warehouse", str(path), "--schema", "aq", "--format", "json")[1])
    by_name = {row["name"]: row for row in document["metrics"] + document["checks"]}
    assert (by_name["nan"]["value"], by_name["inf"]["value"], by_name["big"]["value"]) == ("nan", "inf", 1.7e308)
    assert by_name["nan"]["message"] == "\\xff\\xfe not utf-8 \x1b[2J"
    assert by_name["huge"]["failing_rows"] == 170141183460469231731687303715884105727
    assert by_name["huge"]["sample"] is None
    assert by_name["whole"]["logical_date"].startswith("20000-01-01")
    value, kept = by_name["nested"]["sample"]["rows"][0][0], 0
    while isinstance(value, list):  # nested as JSON arrays for 100 levels of the document, then as text
        (value,), kept = value, kept + 1
    rest = json.loads(value)
    for _ in range(300 - kept):
        (rest,) = rest
    assert kept > 90 and rest == 1  # every level there, the 1 at the bottom


def test_numbers_past_a_float_print_as_magnitudes():
    import decimal

    assert number(10**5000) == "1e+5000" and number(-(2 * 10**5000)) == "-2e+5000"
    assert number(decimal.Decimal("1E+999999999")) == "1e+999999999"  # never turned into an int
    assert number(decimal.Decimal("1.5E-400")) == "1.5e-400" and number(decimal.Decimal("sNaN")) == "nan"
    assert number(decimal.Decimal("-Infinity")) == "-inf"


# --- controls -------------------------------------------------------------------------------------


def test_controls_are_shown_escaped_and_json_escapes_them(tmp_path, results):
    store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(tmp_path / "wh.duckdb"))), "aq")
    store.ensure_tables()
    key = {"dag_id": "odd", "run_id": "r\x1b[1m", "step": "s\u202e", "map_index": -1, "logical_date": DATE}
    common = {**key, "try_number": 1, "created_at": DATE, "kind": "sum", "outcome": "failed", "severity": "error"}
    sample = json.dumps([{"key\x1b[5m": "val\r\x07ue", "long": "x" * 1000, "lines": "a\nb\rc\x85d"}])
    store.replace(CHECKS_TABLE, key, [{**common, "name": "c\x9b", "message": HOSTILE, "sample": sample}])
    store.replace(METRICS_TABLE, key, [{**common, "name": "m", "message": "first line\nsecond line", "value": 1}])
    code, out, _ = results("odd", "--warehouse", str(tmp_path / "wh.duckdb"), "--schema", "aq")
    assert code == 0
    assert _active(out) == []
    assert HOSTILE_SHOWN in out
    assert "r\\x1b[1m" in out and "s\\u202e" in out and "c\\x9b" in out
    assert "key\\x1b[5m" in out and "val \\x07ue" in out  # a failing row's value on one line
    assert "a b c d" in out and "x" * 23 + ELLIPSIS in out
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.endswith("first line"))
    assert lines[at + 1].strip() == "second line" and lines[at + 1].startswith(" " * 40)  # under the message
    raw = results("odd", "--warehouse", str(tmp_path / "wh.duckdb"), "--schema", "aq", "--format", "json")[1]
    assert _ACTIVE.search(raw) is None  # JSON escapes them (\u001b)
    document = _strict_json(raw)
    (check,) = document["checks"]
    assert check["message"] == HOSTILE and check["run_id"] == "r\x1b[1m" and check["step"] == "s\u202e"
    assert check["sample"]["rows"][0] == ["val\r\x07ue", "x" * 1000, "a\nb\rc\x85d"]


def test_visible_escapes_what_a_terminal_acts_on_and_keeps_text():
    assert visible("plain café 東京 ½ — ok") == "plain café 東京 ½ — ok"
    assert visible("a\u00a0b\u3000c") == "a\u00a0b\u3000c"  # spaces of other scripts are only spaces
    assert visible(HOSTILE) == HOSTILE_SHOWN
    assert visible("a\nb") == "a\\nb" and visible("a\nb", newlines=True) == "a\nb"
    assert visible("\ud800\U000e0001\U0010ffff") == "\\ud800\\U000e0001\\U0010ffff"  # surrogate, tag, unassigned
    assert _active(visible("".join(map(chr, range(0x3000))), newlines=True)) == []


# --- long values ----------------------------------------------------------------------------------


def test_long_values_are_cut_in_the_table_and_whole_in_json(tmp_path, results):
    path = tmp_path / "long.duckdb"
    message = ("lorem ipsum " * 600_000)[:6_000_000]
    name = "n" * 300_000
    lines = "line\n" * 10_000
    with duckdb.connect(str(path)) as conn:
        _hand_made(conn, "aq")
        _insert(conn, "aq", METRICS_TABLE, [_row(name=name, message=message), _row(name="lines", message=lines),
                                            _row(name="controls", message="\x1b" * 1_000_000)])  # fmt: skip
    code, out, _ = results("odd", "--warehouse", str(path), "--schema", "aq")
    assert code == 0
    assert len(out) < 3 * (MESSAGE_CHARS * 4 + (MESSAGE_LINES + 1) * 400)  # three rows, cut before wrapping
    assert "n" * (CELL_CHARS - 1) + ELLIPSIS in out and "n" * CELL_CHARS not in out
    assert f"{ELLIPSIS} (6,000,000 characters; --format json shows the whole message)" in out
    assert f"{ELLIPSIS} (50,000 characters; --format json shows the whole message)" in out
    assert f"{ELLIPSIS} (1,000,000 characters; --format json shows the whole message)" in out
    assert "\\x1b" * 10 in out and _active(out) == []
    document = _strict_json(results("odd", "--warehouse", str(path), "--schema", "aq", "--format", "json")[1])
    whole = {row["name"]: row["message"] for row in document["metrics"]}
    assert whole == {name: message, "lines": lines, "controls": "\x1b" * 1_000_000}


def test_a_message_is_cut_before_it_is_wrapped():
    """The lines of a 20 MB message are those of its first MESSAGE_CHARS characters: what
    wrapping sees is bounded, whatever the message's size (textwrap over 20 MB takes minutes)."""
    for message in ("word " * 4_000_000, "\n" * 20_000_000, "\x1b" * 20_000_000, "x" * 20_000_000):
        lines = _message_lines(message, 40)
        assert len(lines) <= MESSAGE_LINES + 1
        assert sum(map(len, lines)) <= MESSAGE_CHARS + 100
        assert lines[-1] == f"{ELLIPSIS} (20,000,000 characters; --format json shows the whole message)"
    assert _message_lines("short\nmessage", 40) == ["short", "message"]


def test_bounded_never_splits_an_escape_and_marks_a_cut():
    assert bounded("abc", 3) == ("abc", False)
    assert bounded("abcd", 3) == ("ab" + ELLIPSIS, True)
    assert bounded("a\x1bbcdef", 6) == ("a\\x1b" + ELLIPSIS, True)
    assert bounded("a\x1bbcdef", 5) == ("a" + ELLIPSIS, True)  # not `a\x1`
    assert bounded("ab", 5, more=True) == ("ab" + ELLIPSIS, True)


# --- order and names ------------------------------------------------------------------------------


def test_a_mapped_steps_rows_are_in_map_index_order(tmp_path, results):
    """Items finish in any order: the rows of one run of a `foreach:` step are shown together, by
    map index (10 after 9), where the newest of them is; another step's rows keep their place."""
    store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(tmp_path / "wh.duckdb"))), "aq")
    store.ensure_tables()
    finished = [7, 11, 0, 3, 10, 1, 9, 2, 5, 4, 8, 6]
    base = {"dag_id": "odd", "run_id": "r1", "logical_date": DATE, "try_number": 1, "kind": "max",
            "severity": "warning", "outcome": "passed"}  # fmt: skip
    rows = [{**base, "step": "prepare", "map_index": -1, "name": "rows", "value": 1, "created_at": DATE}]
    for order, index in enumerate(finished, start=1):
        at = DATE + datetime.timedelta(minutes=order)
        rows.append({**base, "step": "evaluate", "map_index": index, "item_label": f"r{index}", "name": "auc",
                     "value": index, "created_at": at})  # fmt: skip
    rows.append({**base, "step": "publish", "map_index": -1, "name": "sent", "value": 1,
                 "created_at": DATE + datetime.timedelta(hours=1)})  # fmt: skip
    for row in rows:
        key = {k: row[k] for k in ("dag_id", "run_id", "step", "map_index", "logical_date")}
        store.replace(METRICS_TABLE, key, [row])
    code, out, _ = results("odd", "--warehouse", str(tmp_path / "wh.duckdb"), "--schema", "aq")
    assert code == 0
    shown = [line.split()[3] for line in _metric_lines(out)]
    assert shown == ["publish", *(f"evaluate[{i}:r{i}]" for i in range(12)), "prepare"]
    document = _strict_json(results("odd", "--warehouse", str(tmp_path / "wh.duckdb"), "--schema", "aq",
                                    "--format", "json")[1])  # fmt: skip
    assert [m["map_index"] for m in document["metrics"]] == [-1, *range(12), -1]


SPEC = """
pipeline: odd
warehouse: odd_wh
results_schema: aq
steps:
  orders:
    sql: SELECT 1 AS id
    metrics: [{name: total, sum: id}]
  evaluate:
    sql: SELECT 1 AS auc
    metrics: [{name: auc, max: auc}]
"""


def test_a_step_typo_suggests_the_closest_step(tmp_path, results):
    store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(tmp_path / "wh.duckdb"))), "aq")
    store.ensure_tables()
    key = {"dag_id": "odd", "run_id": "r1", "step": "orders", "map_index": -1, "logical_date": DATE}
    store.replace(METRICS_TABLE, key, [{**key, "name": "total", "value": 1, "try_number": 1, "created_at": DATE}])
    spec = tmp_path / "odd.aq.yaml"
    spec.write_text(SPEC)
    warehouse = str(tmp_path / "wh.duckdb")
    code, out, err = results("odd", "--warehouse", warehouse, "--schema", "aq", "--step", "ordrs")
    assert code == 1 and "metrics: nothing recorded yet for odd, step ordrs" in out
    assert "--step ordrs: pipeline `odd` has no step of that name; did you mean `orders`? (steps: orders)" in err
    code, _, err = results(str(spec), "--warehouse", warehouse, "--step", "evalute")  # the spec's, none recorded
    assert code == 1 and "did you mean `evaluate`? (steps: orders, evaluate)" in err
    code, _, err = results(str(spec), "--warehouse", warehouse, "--step", "evaluate")  # a step, nothing yet
    assert code == 1 and "has no step" not in err
    code, _, err = results("odd", "--warehouse", warehouse, "--schema", "aq", "--step", "zzz\x1b[2J")
    assert code == 1 and "--step zzz\\x1b[2J: pipeline `odd` has no step of that name (steps: orders)" in err


# --- PostgreSQL: a map index of text, dates past year 9999, NUMERIC past any float ------------------


def test_postgres_text_map_index_and_odd_values(postgres_dsn, results):
    import psycopg2

    schema = f"aq_odd_{uuid.uuid4().hex[:8]}"
    types = {"map_index": "TEXT", "logical_date": "TIMESTAMP", "value": "NUMERIC", "message": "BYTEA",
             "created_at": "TIMESTAMP"}  # fmt: skip
    conn = psycopg2.connect(postgres_dsn)
    try:
        with conn, conn.cursor() as cursor:
            _hand_made(cursor, schema, types, default="TEXT")
            rows = [
                _row(name="abc", map_index="abc", value="NaN", message=psycopg2.Binary(b"\xff\x1b[2J"),
                     logical_date="20000-01-01", created_at="2026-01-01"),
                _row(name="ten", map_index="10", value="1e131071", logical_date="0044-03-15 BC",
                     created_at="2026-01-02"),
                _row(name="two", map_index="2", value="0.8476", logical_date="2026-03-01", created_at="2026-01-03"),
                _row(name="neg", map_index="-5", value=None, message=HOSTILE.replace("\x00", "")),
            ]  # fmt: skip
            _insert(cursor, schema, METRICS_TABLE, rows, mark="%s")
        code, out, err = results("odd", "--warehouse", postgres_dsn, "--schema", schema)
        assert code == 0, err
        assert _active(out) == []
        names = [re.search(r" (s\[\S*\]) ", line).group(1) for line in _metric_lines(out) if line.strip()]
        assert names == ["s[-5]", "s[2]", "s[10]", "s[abc]"]  # whole numbers by number, then text
        assert "20000-01-01 00:00:00" in out and "0044-03-15 00:00:00 BC" in out  # as the server writes them
        assert "\\xff\\x1b[2J" in out and "1e+131071" in out and "0.8476" in out
        assert HOSTILE_SHOWN.replace("\\x00", "") in out
        raw = results("odd", "--warehouse", postgres_dsn, "--schema", schema, "--format", "json")[1]
        document = _strict_json(raw)
        by_name = {m["name"]: m for m in document["metrics"]}
        assert by_name["abc"]["map_index"] == "abc" and by_name["abc"]["value"] == "nan"
        assert by_name["ten"]["value"] == "1" + "0" * 131071 and by_name["two"]["value"] == 0.8476
        assert by_name["abc"]["logical_date"].startswith("20000-01-01")
        assert by_name["neg"]["message"] == HOSTILE.replace("\x00", "")
    finally:
        conn.close()
        with psycopg2.connect(postgres_dsn) as cleanup, cleanup.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_masking_a_hostile_json_document_keeps_it_whole():
    """The URI-password mask runs over everything the CLI prints (JSON of megabytes of messages);
    its pattern looks for a scheme only where a run of scheme characters starts (the old one tried
    again after every dot: quadratic; bench/results_cli.py times it)."""
    from aq_airflow.warehouse.secrets import mask

    text = "a." * 50_000 + " postgres://me:pw@host " + "1." * 1000 + "x://u:" + "p" * 1000
    assert mask(text) == text.replace(":pw@", ":***@")
    assert mask("jdbc.postgresql://u:secret@h/db") == "jdbc.postgresql://u:***@h/db"
    assert mask("see s3://key:sec@bucket and 9.x://u:p@h") == "see s3://key:***@bucket and 9.x://u:***@h"


@pytest.mark.parametrize("last", ["99999999999999999999", "1000001", "0", "\uff15", "-3"])
def test_results_last_is_a_bounded_positive_whole_number(tmp_path, capsys, last):
    """`--last 99999999999999999999` reached the warehouse: "cannot read the results table ...
    ConversionException". argparse refuses it now, exit 2, saying the range."""
    with pytest.raises(SystemExit) as exited:
        main(["results", "p", "--warehouse", str(tmp_path / "x.duckdb"), "--last", last])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "is not a whole number from 1 to 1,000,000" in err and "Traceback" not in err


def test_results_from_a_duckdb_uri_with_no_file_says_so(tmp_path, capsys):
    """`--warehouse duckdb:///tmp/nowhere.duckdb` opened an empty in-memory database (the hook
    reads the path from the host, empty here): "nothing recorded yet", exit 1."""
    assert main(["results", "p", "--warehouse", "duckdb:///tmp/nowhere.duckdb"]) == 2
    err = capsys.readouterr().err
    assert "names no file" in err and "in-memory" in err, err
    missing = tmp_path / "nowhere.duckdb"
    uri = json.dumps({"conn_type": "duckdb", "host": str(missing)})
    assert main(["results", "p", "--warehouse", uri]) == 2
    assert capsys.readouterr().err.strip() == f"no such warehouse file: {missing}"
    assert not missing.exists()  # nothing created by looking
