"""`make bench` (results_cli): `aq-airflow results` over messages of megabytes, linear or not.

A DuckDB results table holds ROWS metric rows (default 5) whose messages are SMALL (1 MB) or
LARGE (8 MB) of hostile-shaped text: words, escape sequences, CRs, runs of `a.b.c.` (what the
URI-password mask once scanned again after every dot). `aq-airflow results` runs in this process
through its entry point (`aq_airflow.cli.main.main`, Airflow imported once before timing), its
stdout captured:

* table: the default output (each message cut to `MESSAGE_CHARS` before it is escaped and
  wrapped; the rows are still read whole from the warehouse);
* json: `--format json` (every message whole, JSON-escaped, then masked);
* message lines: `_message_lines` of one message alone (the cut-then-wrap step; constant).

Each figure is the median of 3; the ratio LARGE / SMALL is what matters: ~8 (LARGE / SMALL)
when the output is linear in the content, ~1 when it does not depend on it, ~64 if quadratic.
For contrast, the two steps that were quadratic before, at sizes they finish in: textwrap over
a whole message of one long word (what the table did: 18 s for 6 MB) and the earlier
URI-password pattern (what masked JSON: hours for a megabyte of `a.a.a.`).
Nothing here asserts a time; tests/hostile/test_results_content.py checks the output's bounds.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="aq-bench-home-"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
logging.disable(logging.WARNING)

import duckdb  # noqa: E402

from aq_airflow.cli.main import main as cli  # noqa: E402
from aq_airflow.cli.results import _message_lines  # noqa: E402
from aq_airflow.results import METRICS_TABLE, ResultsStore  # noqa: E402
from aq_airflow.warehouse import Warehouse  # noqa: E402
from aq_airflow.warehouse.secrets import mask  # noqa: E402

MB = 1_000_000
DATE = datetime.datetime(2026, 3, 1)
CHUNK = "lorem ipsum a.b.c.d.e.f.g \x1b[31mred\x1b[0m\r over\u202e 12.5% "
# the URI-password pattern before it was made linear (aq_airflow/warehouse/secrets.py), for contrast
OLD_URI_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)(?P<password>[^@\s/]+)(?=@)")


def message(size: int) -> str:
    return (CHUNK * (size // len(CHUNK) + 1))[:size]


def timed(action, rounds: int = 3) -> float:
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def warehouse(folder: Path, rows: int, size: int) -> Path:
    path = folder / f"results_{size}.duckdb"
    store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(path))), "aq")
    store.ensure_tables()
    text = message(size)
    for index in range(rows):
        key = {"dag_id": "bench", "run_id": "r1", "step": "s", "map_index": index, "logical_date": DATE}
        store.replace(METRICS_TABLE, key, [{**key, "name": "m", "kind": "max", "outcome": "failed", "value": 1.0,
                                            "severity": "warning", "message": text, "try_number": 1}])  # fmt: skip
    return path


def results(path: Path, *flags: str) -> int:
    """`aq-airflow results bench --warehouse PATH FLAGS`, stdout captured; its size."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli(["results", "bench", "--warehouse", str(path), "--schema", "aq", *flags])
    if code != 0:
        raise SystemExit(f"aq-airflow results exited {code} on {path}")
    return len(out.getvalue())


def old_wrap(text: str, width: int = 80) -> None:
    """What the table did with a message before: textwrap over all of it (a long word is cut a
    line at a time, each cut copying the rest of the word: quadratic)."""
    for line in text.splitlines():
        textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--small", type=float, default=1, help="MB per message, the baseline")
    parser.add_argument("--large", type=float, default=8, help="MB per message")
    args = parser.parse_args()
    small, large = int(args.small * MB), int(args.large * MB)
    with tempfile.TemporaryDirectory(prefix="aq-bench-results-") as folder:
        paths = {size: warehouse(Path(folder), args.rows, size) for size in (small, large)}
        results(paths[small])  # Airflow's import and the connection's first lookup, not timed
        measured = []
        for name, run in (
            ("table (aq-airflow results)", lambda p: results(p)),
            ("json (aq-airflow results --format json)", lambda p: results(p, "--format", "json")),
        ):
            seconds = {size: timed(lambda path=paths[size], run=run: run(path)) for size in (small, large)}
            sizes = {size: run(paths[size]) for size in (small, large)}
            measured.append((name, seconds[small], seconds[large], f"stdout {sizes[small]:,} / {sizes[large]:,} B"))
        texts = {size: message(size) for size in (small, large)}
        lines = {size: timed(lambda text=text: _message_lines(text, 80)) for size, text in texts.items()}
        measured.append(("message lines of one message (cut, then wrapped)", lines[small], lines[large], ""))
    # the earlier steps, quadratic: at sizes that finish
    wrap = {size: timed(lambda size=size: old_wrap("x" * size), rounds=1) for size in (64_000, 512_000)}
    measured.append(("before: textwrap of a whole one-word message, 64/512 KB", wrap[64_000], wrap[512_000],
                     "contrast"))  # fmt: skip
    dotted = {size: "a." * (size // 2) for size in (8_000, 64_000)}
    old = {size: timed(lambda text=text: OLD_URI_PASSWORD.sub("", text), rounds=1) for size, text in dotted.items()}
    measured.append(("before: URI-password mask of `a.a.a…`, 8/64 KB", old[8_000], old[64_000], "contrast"))
    now = {size: timed(lambda size=size: mask("a." * (size // 2))) for size in (small, large)}
    measured.append(("now: URI-password mask of `a.a.a…`, small/large", now[small], now[large], ""))

    print(f"\naq-airflow results: {args.rows} rows of {args.small:g} MB vs {args.large:g} MB messages; median of 3")
    print(f"(linear: ratio ~{large / small:g}; independent of size: ~1; quadratic: ~{(large / small) ** 2:g})\n")
    print(f"| {'measure':55} | {'small s':>9} | {'large s':>9} | {'ratio':>7} | note")
    print(f"|{'-' * 57}|{'-' * 11}|{'-' * 11}|{'-' * 9}|------")
    for name, first, second, note in measured:
        print(f"| {name:55} | {first:9.4f} | {second:9.4f} | {second / first:7.1f} | {note}")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "results_cli.json").write_text(json.dumps([list(row) for row in measured], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
