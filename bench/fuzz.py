"""`make fuzz`: a fuzz campaign over the spec front end: mutated and generated specs through
`aq-airflow validate`, `aq-airflow compile` and the dags-folder loader under Airflow's DagBag.

Each spec comes from a seeded mutator (reproducible: `--seed`), one of:

- a structural mutation of an example spec (`example_dags/*.aq.yaml`): values replaced by
  hostile scalars, keys deleted, added or misspelt, types swapped;
- a text mutation of an example: bytes flipped or inserted (invalid UTF-8 too), lines dropped,
  duplicated, swapped or re-indented, the file cut short, a hostile snippet spliced in (alias
  bombs, recursive aliases, deep nesting, YAML tags, control characters, surrogate escapes,
  document markers, complex keys, thousands of steps, more than the size limit);
- generated YAML from scratch over the spec's vocabulary;
- a reserved name: an example whose python step (now and then made a `foreach:` step) gets an
  `args:` key or an input called `item` or a context name (`ds`, `params`, ...); validate must
  refuse it with an error located at that name (`Campaign.check_names`);
- now and then a hostile file system entry: a broken symlink, a folder or a FIFO named like a
  spec, a file name that gives no dag_id, two specs of one dag_id.

Specs are written in batches into a dags folder (with a one-shard loader and the example
profiles), then:

1. `aq-airflow validate --format json FOLDER` (in this process): every issue must be located
   in its spec (`file:line:col`, line within the file), none an internal error;
2. `aq-airflow compile FOLDER --out OUT`: exactly the valid specs give a file, each whole and
   valid Python; one in `--exec-every` is executed and must define its DAG;
3. Airflow's DagBag over the folder: no import error of a loader file (a broken spec is one of
   its own file), one DAG per spec path, a placeholder (`aq:invalid`) exactly for the specs
   validate rejected (and duplicate ids), every DAG serialized as the dag-processor does.

A failure is an uncaught exception, a traceback, an internal error, a misplaced location, or
validate, compile and the loader disagreeing. The run prints a summary table (specs, errors by
kind, failures, peak RSS, seconds) and exits 1 on any failure (each kept under `--out`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import random
import re
import resource
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="aq-fuzz-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

EXAMPLES = REPO / "example_dags"
SPEC_ORIGINS = {"benign", "structural", "textual", "generated", "names"}
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$", re.S)
KEYS = ["pipeline", "steps", "inputs", "python", "sql", "table", "command", "checks", "metrics", "resources", "gpu",
        "gpu_type", "between", "column", "publish", "mode", "keys", "schedule", "cluster", "retries", "timeout",
        "env", "args", "depends_on", "name", "severity", "history", "bounds", "params", "defaults", "image",
        "memory", "cpu", "not_null", "unique", "row_count", "min", "max", "window", "max_zscore", "after", "table",
        "warehouse", "artifacts", "start_date", "end_date", "catchup", "tags", "owner", "sensitive", "expect",
        "kwargs", "where", "mostly", "freshness", "expression", "accepted_values", "max_change", "on_failure",
        "results_schema", "artifacts_ttl", "pool", "retry_delay", "secret", "key", "description", "input",
        "sqll"]  # fmt: skip
HOSTILE_SCALARS = [
    None, True, False, 0, -1, 1, 2**63, -(2**64), 1e308, float("inf"), float("nan"), 0.5, "",
    " ", "x" * 5000, "1d", "0s", "-5m", "99999999999d", "5m", "0 6 * * *", "@daily", "@nope", "* * * * * *",
    "a100-80gb", "gke", "eks", "aks", "nvidia", "local", "onprem-a100", "m:f", "pkg.mod:fn", "2Gi", "500m", "-1Gi",
    "merge", "append", "replace", "{{ ds }}", "{% for x in y %}", "{{ params.min_rows }}", "x.y.z.w", "../../etc",
    "..", ".", "a/b", "my pipe", "café", "\u202e", "\x00", "\ud800", "'''", '"""', "\\", "'; DROP TABLE t; --",
    "SELECT 1", "s3://b/p", "file:///etc", "ghcr.io/x:1", "customer_id", "churn_probability", "features",
    "customers", "train", "orders", "scores", "2026-01-01", "2026-02-30", "1e999", "0x1F", "~", "null", "yes",
]  # fmt: skip
SNIPPETS = {
    "tag_python": "params: !!python/object/apply:os.system ['echo pwned']\n",
    "tag_binary": "params: {blob: !!binary aGVsbG8=}\n",
    "tag_set": "params: {s: !!set {a, b}}\n",
    "tag_omap": "params: !!omap [{a: 1}, {b: 2}]\n",
    "tag_custom": "params: !custom {a: 1}\n",
    "tag_timestamp": "start_date: !!timestamp 2026-01-01T00:00:00Z\n",
    "tag_float": "params: {n: !!float .nan, i: .inf, j: -.inf}\n",
    "surrogate": 'params: {s: "\\ud800"}\n',
    "nul_escape": 'params: {s: "a\\0b"}\n',
    "control": "params: {s: a\x07b}\n",
    "bom_middle": "params: {s: a\ufeffb}\n",
    "nel": "params: {s: a\x85b}\n",
    "line_sep": "params: {s: a\u2028b}\n",
    "complex_key": "params: {[a, b]: 1}\n",
    "map_key": "? {a: 1}\n: 2\n",
    "null_key": "steps: {null: {sql: SELECT 1}}\n",
    "int_step": "steps: {1: {sql: SELECT 1}}\n",
    "duplicate_key": "params: {a: 1, a: 2}\n",
    "documents": "---\npipeline: a\n---\npipeline: b\n",
    "directive": "%YAML 1.1\n%TAG ! tag:x,2000:\n---\n",
    "end_marker": "...\n",
    "merge": "defaults: &d {retries: 1}\nparams: {<<: *d, x: 1}\n",
    "undefined_alias": "params: *nowhere\n",
    "anchor_reuse": "params: {a: &x 1, b: &x 2, c: *x}\n",
    "tabs": "steps:\n\ta:\n\t\tsql: SELECT 1\n",
    "crlf": "pipeline: crlf\r\nsteps:\r\n  a:\r\n    sql: SELECT 1\r\n",
    "huge_int": "max_active_runs: 99999999999999999999999999999999999999\n",
    "neg_retries": "defaults: {retries: -5}\n",
    "jinja_injection": "description: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"\n",
    "python_injection": "description: \"'''); import os; os.system('x') #\"\n",
    "long_line": "description: " + "y" * 200_000 + "\n",
}


def bomb(levels: int, width: int, merge: bool = False) -> str:
    """An alias bomb under params: ``levels`` lists (or merge mappings), each ``width`` aliases
    of the one before."""
    if merge:
        lines = ["params:", "  l0: &l0 {a: 1, b: 2}"]
        lines += [f"  l{i}: &l{i} {{<<: [{', '.join([f'*l{i - 1}'] * width)}], k{i}: 1}}" for i in range(1, levels)]
    else:
        lines = ["params:", f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
        lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def deep(depth: int, flow: bool) -> str:
    if flow:
        return "params: {x: " + "[" * depth + "1" + "]" * depth + "}\n"
    return "params:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(depth)) + " " * (depth + 1) + "v: 1\n"


def many_steps(count: int) -> str:
    return "steps:\n" + "".join(f"  s{i}:\n    sql: SELECT {i}\n" for i in range(count))


class Mutator:
    """Seeded spec texts (or bytes), and what a batch's file system holds."""

    def __init__(self, seed: int):
        self.random = random.Random(seed)
        self.examples = {p.name: p.read_text() for p in sorted(EXAMPLES.glob("*.aq.yaml"))}
        self.trees = {}
        for name, text in self.examples.items():
            tree = yaml.safe_load(text)
            tree["start_date"] = str(tree["start_date"])
            self.trees[name] = tree

    # -- values --------------------------------------------------------------------------------
    def scalar(self):
        pick = self.random.random()
        if pick < 0.6:
            return self.random.choice(HOSTILE_SCALARS)
        if pick < 0.8:
            return self.random.randint(-(10**6), 10**6)
        return "".join(self.random.choice("aZ09_ .-/:{}[]#&*!|>'\"%@`\\é\t") for _ in range(self.random.randint(0, 12)))

    def value(self, depth: int = 0):
        pick = self.random.random()
        if depth > 3 or pick < 0.6:
            return self.scalar()
        if pick < 0.8:
            return [self.value(depth + 1) for _ in range(self.random.randint(0, 3))]
        return {self.key(): self.value(depth + 1) for _ in range(self.random.randint(0, 3))}

    def key(self):
        return self.random.choice(KEYS) if self.random.random() < 0.8 else self.scalar()

    # -- structural ----------------------------------------------------------------------------
    def _paths(self, node, prefix=()):
        yield prefix
        if isinstance(node, dict):
            for key, value in node.items():
                yield from self._paths(value, (*prefix, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from self._paths(value, (*prefix, index))

    def structural(self, dag_id: str) -> str:
        tree = json.loads(json.dumps(self.trees[self.random.choice(sorted(self.trees))]))
        tree["pipeline"] = dag_id
        for _ in range(self.random.randint(1, 4)):
            path = self.random.choice(list(self._paths(tree)))
            if not path:
                continue
            parent = tree
            for part in path[:-1]:
                parent = parent[part]
            action = self.random.random()
            if action < 0.45:
                parent[path[-1]] = self.value()
            elif action < 0.7:
                del parent[path[-1]]
            elif isinstance(parent[path[-1]], dict):
                parent[path[-1]][self.key()] = self.value()
            elif isinstance(parent[path[-1]], list):
                parent[path[-1]].append(self.value())
        try:
            return yaml.safe_dump(tree, sort_keys=False, allow_unicode=self.random.random() < 0.5)
        except (yaml.YAMLError, UnicodeError, ValueError):
            return yaml.safe_dump({"pipeline": dag_id, "steps": {"a": {"sql": "SELECT 1"}}})

    # -- benign: valid changes with hostile text in them ---------------------------------------
    def text_value(self) -> str:
        """Text a valid spec may carry anywhere free text goes: quotes, backslashes, Jinja,
        Python and SQL syntax, non-ASCII, control characters YAML can escape."""
        parts = ["'", '"', "'" * 3, '"' * 3, "\\", "{{ ds }}", "{%", "%}", "#", "\n", "\t", "é", "\u202e", "😀",
                 "\x00", "\x1b[31m", "; DROP TABLE t; --", "${HOME}", "$(id)", "`id`", "</script>", "\\x41", "%s",
                 "a", "b", " "]  # fmt: skip
        return "".join(self.random.choice(parts) for _ in range(self.random.randint(0, 8)))

    def json_value(self, depth: int = 0):
        pick = self.random.random()
        if depth > 3 or pick < 0.5:
            return self.random.choice([self.text_value(), self.random.randint(-(2**53), 2**53), 0.1, True, None])
        if pick < 0.75:
            return [self.json_value(depth + 1) for _ in range(self.random.randint(0, 3))]
        return {self.text_value() or "k": self.json_value(depth + 1) for _ in range(self.random.randint(0, 3))}

    def benign(self, dag_id: str) -> str:
        tree = json.loads(json.dumps(self.trees[self.random.choice(sorted(self.trees))]))
        tree["pipeline"] = dag_id
        changes = [
            lambda: tree.update(description=self.text_value()),
            lambda: tree.update(params={self.text_value() or "p": self.json_value() for _ in range(3)}),
            lambda: tree.update(tags=[self.text_value() or "t" for _ in range(2)]),
            lambda: tree.update(owner=self.text_value() or "o"),
            lambda: tree.update(schedule=self.random.choice(["@daily", "@hourly", None, "*/5 * * * *", "0 0 1 1 *"])),
            lambda: tree.update(catchup=self.random.random() < 0.5),
            lambda: tree.update(max_active_runs=self.random.randint(1, 100)),
            lambda: tree.update(timeout=self.random.choice(["1s", "59m", "3650d"])),
        ]
        for step in tree["steps"].values():
            changes += [
                lambda step=step: step.update(retries=self.random.randint(0, 10)),
                lambda step=step: step.pop("checks", None),
                lambda step=step: step.pop("metrics", None),
                lambda step=step: step.pop("publish", None),
                lambda step=step: step.update(env={"PLAIN": self.text_value(), "OTHER": self.text_value()}),
            ]
            if "sql" in step:
                changes.append(lambda step=step: step.update(sql=f"SELECT '{self.text_value()}' AS x"))
            if "python" in step:
                changes.append(lambda step=step: step.update(args={"a": self.text_value(), "b": self.json_value()}))
        for change in self.random.sample(changes, self.random.randint(1, min(4, len(changes)))):
            change()
        return yaml.safe_dump(tree, sort_keys=False, allow_unicode=self.random.random() < 0.5)

    # -- text ----------------------------------------------------------------------------------
    def snippet(self) -> str:
        pick = self.random.random()
        if pick < 0.25:
            return bomb(self.random.randint(2, 12), self.random.randint(2, 10), merge=self.random.random() < 0.2)
        if pick < 0.3:
            return "params: &r {a: [1, *r]}\n" if self.random.random() < 0.5 else "params: &r [*r]\n"
        if pick < 0.4:
            return deep(self.random.randint(20, 120), flow=self.random.random() < 0.5)
        if pick < 0.43:
            return many_steps(self.random.choice([999, 1000, 1001, 1500]))
        if pick < 0.44:
            return "description: " + "z" * (1024 * 1024) + "\n"  # over the size limit
        return self.random.choice(list(SNIPPETS.values()))

    def textual(self, dag_id: str) -> str | bytes:
        text = self.examples[self.random.choice(sorted(self.examples))]
        text = re.sub(r"^pipeline:.*$", f"pipeline: {dag_id}", text, count=1, flags=re.M)
        lines = text.splitlines(keepends=True)
        for _ in range(self.random.randint(1, 3)):
            action = self.random.random()
            spot = self.random.randrange(len(lines) + 1)
            if action < 0.35:
                snippet = self.snippet()
                if self.random.random() < 0.5:  # replace a top-level key, or splice anywhere
                    key = snippet.split(":", 1)[0] + ":"
                    lines = [line for line in lines if not line.startswith(key)]
                lines.insert(min(spot, len(lines)), snippet)
            elif action < 0.5 and lines:
                del lines[min(spot, len(lines) - 1)]
            elif action < 0.6 and lines:
                lines.insert(spot, self.random.choice(lines))
            elif action < 0.7 and len(lines) > 1:
                a, b = self.random.randrange(len(lines)), self.random.randrange(len(lines))
                lines[a], lines[b] = lines[b], lines[a]
            elif action < 0.8 and lines:
                index = min(spot, len(lines) - 1)
                lines[index] = " " * self.random.randint(0, 6) + lines[index].lstrip(" ")
            elif action < 0.85:
                lines = lines[: self.random.randrange(len(lines) + 1)]
            else:
                raw = bytearray("".join(lines).encode())
                for _ in range(self.random.randint(1, 4)):
                    where = self.random.randrange(len(raw) + 1)
                    byte = self.random.choice([0x00, 0x09, 0x0D, 0x22, 0x27, 0x3A, 0x7B, 0x80, 0xC3, 0xE9, 0xFF])
                    if self.random.random() < 0.5 and where < len(raw):
                        raw[where] = byte
                    else:
                        raw.insert(where, byte)
                try:
                    lines = raw.decode("utf-8").splitlines(keepends=True)
                except UnicodeDecodeError:
                    return bytes(raw)  # invalid UTF-8: written as it is
        return "".join(lines)

    # -- generated -----------------------------------------------------------------------------
    def generated(self, dag_id: str) -> str:
        tree = {self.key(): self.value() for _ in range(self.random.randint(0, 6))}
        if self.random.random() < 0.7:
            steps = {}
            for index in range(self.random.randint(1, 5)):
                kind = self.random.choice(["sql", "python", "command", "table", "nothing"])
                step = {} if kind == "nothing" else {kind: self.random.choice(["SELECT 1", "m:f", "x.y", "echo"])}
                for _ in range(self.random.randint(0, 3)):
                    step[self.key()] = self.value()
                steps[f"s{index}" if self.random.random() < 0.9 else str(self.scalar())] = step
            tree["steps"] = steps
        if self.random.random() < 0.8:
            tree["pipeline"] = dag_id
        try:
            return yaml.safe_dump(tree, sort_keys=False)
        except (yaml.YAMLError, UnicodeError, ValueError, TypeError):
            return "steps: {a: {sql: SELECT 1}}\n"

    # -- names: an arg or input of a python step named after what its function already gets ---
    def reserved_names(self, dag_id: str) -> str:
        """An example with one python step (made a `foreach:` step now and then) given an `args:`
        key or an input (map key, or list entry naming a step) called `item` (on a foreach step)
        or a context name (`ds`, `params`, ...; inputs in any case, as they bind): validate must
        refuse it with a located error at that name (:meth:`Campaign.check_names`)."""
        from aq_airflow.runtime.contract import CONTEXT_NAMES, ITEM_NAME

        tree = json.loads(json.dumps(self.trees[self.random.choice(sorted(self.trees))]))
        tree["pipeline"] = dag_id
        python = [name for name, step in tree["steps"].items() if "python" in step]
        step = tree["steps"][self.random.choice(python)]
        if "foreach" not in step and self.random.random() < 0.6:
            step["foreach"] = ["a", "b"]
        names = [*CONTEXT_NAMES, *([ITEM_NAME] if "foreach" in step else [])]
        name = self.random.choice(names)
        where = self.random.choice(["args", "inputs map", "inputs list"])
        if where == "args":
            step["args"] = {**(step.get("args") or {}), name: self.random.choice(["hello", 1, "{{ ds }}"])}
            return yaml.safe_dump(tree, sort_keys=False)
        name = self.random.choice([name, name.upper(), name.capitalize()])  # inputs bind ignoring case
        producer = next(n for n, other in tree["steps"].items() if other is not step)
        if where == "inputs map":
            inputs = step.get("inputs") or {}
            inputs = dict(inputs) if isinstance(inputs, dict) else {i: i for i in inputs}
            step["inputs"] = {**inputs, name: producer}
        else:
            tree["steps"][name] = {"sql": "SELECT 1 AS x"}  # a step named like the value it would hide
            inputs = step.get("inputs") or []
            step["inputs"] = [*(inputs if isinstance(inputs, list) else inputs.values()), name]
        return yaml.safe_dump(tree, sort_keys=False)

    def spec(self, dag_id: str) -> tuple[str, str | bytes]:
        if self.random.random() < 0.05:
            return "names", self.reserved_names(dag_id)
        pick = self.random.random()
        if pick < 0.3:
            return "benign", self.benign(dag_id)
        if pick < 0.55:
            return "structural", self.structural(dag_id)
        if pick < 0.9:
            return "textual", self.textual(dag_id)
        return "generated", self.generated(dag_id)

    def file_name(self, index: int) -> str:
        pick = self.random.random()
        if pick < 0.97:
            return f"f{index:05d}.aq.yaml"
        return self.random.choice(
            [
                f"my pipe {index}.aq.yaml",
                f"..{index}..aq.yaml",
                f"-{index}.aq.yaml",
                f"café{index}.aq.yaml",
                f"ok{index}.aq.yml",
                f"latin1-caf\udce9{index}.aq.yaml",
            ]
        )  # fmt: skip  (a byte 0xe9, not UTF-8)


@dataclass
class Tally:
    specs: int = 0
    valid: int = 0
    by_origin: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    compiled: int = 0
    executed: int = 0
    dags: int = 0
    placeholders: int = 0
    serialized: int = 0


ERROR_KINDS = [
    ("path not UTF-8", re.compile(r"path is not UTF-8")),
    ("encoding", re.compile(r"not UTF-8|UTF-16")),
    ("unreadable path", re.compile(r"cannot read the file|is a folder|not a regular file")),
    ("limit: size", re.compile(r"bytes, more than the limit")),
    ("limit: aliases", re.compile(r"with the alias `\*|is inside the node")),
    ("limit: values", re.compile(r"the document has more than")),
    ("limit: nesting", re.compile(r"nested more than")),
    ("limit: steps", re.compile(r"steps, more than the limit")),
    ("YAML syntax", re.compile(r"^YAML syntax")),
    ("file name", re.compile(r"^the file name")),
    ("duplicate dag_id", re.compile(r"is also the dag_id of")),
    ("not a mapping", re.compile(r"a spec is a mapping")),
    ("unknown key", re.compile(r"^unknown key")),
    ("missing key", re.compile(r"^missing required key")),
    ("step references", re.compile(r"is not a step of this pipeline|cycle|cannot depend on itself")),
    ("internal error", re.compile(r"internal error")),
    ("reserved names", re.compile(r"would replace every item|would hide the run's")),
]


def error_kind(message: str) -> str:
    return next((kind for kind, pattern in ERROR_KINDS if pattern.search(message)), "value or type")


def _peak_rss_mb() -> float:
    """This process's peak resident memory: the kernel's high-water mark (VmHWM, which starts
    afresh at exec, unlike ru_maxrss that keeps the forking parent's), or ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as status:
            return int(status.read().split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Campaign:
    def __init__(self, specs: int, seed: int, batch: int, exec_every: int, out: Path):
        self.total, self.seed, self.batch, self.exec_every, self.out = specs, seed, batch, exec_every, out
        self.mutator = Mutator(seed)
        self.tally = Tally()
        self.work = Path(tempfile.mkdtemp(prefix="aq-fuzz-"))

    def fail(self, where: str, detail: str, path: Path | None = None) -> None:
        self.tally.failures.append((where, detail, str(path) if path else ""))
        if path is not None and path.is_file() and len(self.tally.failures) <= 50:
            keep = self.out / "failures"
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, keep / f"{len(self.tally.failures):03d}-{path.name}")

    def write_batch(self, start: int, count: int) -> tuple[Path, dict[str, str]]:
        """The batch's dags folder and {path: origin} of every spec path in it."""
        from aq_airflow.cli.main import loader_files

        folder = self.work / f"batch{start:06d}" / "dags"
        folder.mkdir(parents=True)
        for name, source in loader_files(1).items():
            (folder / name).write_text(source)
        shutil.copy(EXAMPLES / "aq-profiles.yaml", folder / "aq-profiles.yaml")
        origins: dict[str, str] = {}
        random_ = self.mutator.random
        for index in range(start, start + count):
            name = self.mutator.file_name(index)
            path = folder / name
            if path.exists():
                continue
            special = random_.random()
            if special < 0.004:
                path.symlink_to(folder / "nowhere.aq.yaml")
                origins[str(path)] = "broken symlink"
                continue
            if special < 0.008:
                path.mkdir()
                origins[str(path)] = "folder"
                continue
            if special < 0.010:
                os.mkfifo(path)
                origins[str(path)] = "fifo"
                continue
            # mostly unique ids; some shared, to meet duplicate dag_ids
            dag_id = f"fz{index:05d}" if random_.random() < 0.97 else f"shared{random_.randint(0, 2)}"
            origin, content = self.mutator.spec(dag_id)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_bytes(content.encode("utf-8", "surrogatepass"))
            origins[str(path)] = origin
        return folder, origins

    def run_cli(self, argv: list[str]) -> tuple[int, str, str]:
        from aq_airflow.cli.main import main as cli

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli(argv)
        return code, out.getvalue(), err.getvalue()

    def check_issue(self, issue: dict, texts: dict[str, bytes]) -> None:
        path = issue["file"]
        if path not in texts:
            self.fail("validate", f"an issue located outside the specs given: {issue}")
            return
        raw = texts[path]
        lines = raw.count(b"\n") + raw.count(b"\r") + raw.count("\u2028".encode()) + raw.count(b"\xc2\x85") + 2
        if not (1 <= issue["line"] <= lines and issue["col"] >= 1):
            self.fail("validate", f"position out of the file: {issue}", Path(path))
        message = issue["message"]
        if not message or "Traceback" in message or "internal error" in message:
            self.fail("validate", f"not a located spec error: {issue}", Path(path))

    def check_names(self, errors: list[dict], origins: dict[str, str], texts: dict[str, bytes]) -> None:
        """Each `names` spec is refused with a reserved-name error whose position is the name
        itself (the `args:` or `inputs:` key, or the list entry)."""
        pattern = re.compile(r"^(arg|input) `([^`]+)`.* would (replace every item|hide the run's)")
        found: dict[str, list[dict]] = {}
        for issue in errors:
            if pattern.match(issue["message"]):
                found.setdefault(issue["file"], []).append(issue)
        for path, origin in origins.items():
            if origin != "names":
                continue
            if path not in found:
                self.fail("validate", f"a reserved arg or input name was not refused: {path}", Path(path))
                continue
            lines = texts[path].decode("utf-8", "replace").splitlines()
            for issue in found[path]:
                name = pattern.match(issue["message"]).group(2)
                line = lines[issue["line"] - 1] if issue["line"] <= len(lines) else ""
                if not line[issue["col"] - 1 :].lstrip("'\"").startswith(name):
                    self.fail("validate", f"not located at `{name}`: {issue} (line: {line!r})", Path(path))

    def batch_run(self, start: int, count: int) -> None:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.serialization.serialized_objects import DagSerialization

        from aq_airflow.live_dags import INVALID_TAG
        from aq_airflow.pipeline_spec import SPEC_SUFFIXES
        from aq_airflow.pipeline_spec.errors import printable
        from aq_airflow.plan import compile as plan_compile

        tally = self.tally
        folder, origins = self.write_batch(start, count)
        texts = {path: Path(path).read_bytes() if origin in SPEC_ORIGINS else b"" for path, origin in origins.items()}
        # what validate and the loader print: a name's undecodable bytes as U+FFFD
        origins = {printable(path): origin for path, origin in origins.items()}
        texts = {printable(path): text for path, text in texts.items()}
        tally.specs += len(origins)
        tally.by_origin.update(origins.values())

        # 1. validate. Its checks past planning (SQL parsed, GX looked up) are validate's alone;
        # compile and the loader are held to the rest (`check`, which validate runs first).
        from aq_airflow.cli.specs import check

        rejected: dict[str, list[str]] = {}
        try:
            core = {printable(c.path): {i.message for i in c.issues} for c in check([str(folder)]) if c.issues}
            code, out, err = self.run_cli(["validate", "--format", "json", str(folder)])
            report = json.loads(out)
            if code not in (0, 1) or report["files"] != len(origins) or "Traceback" in err:
                self.fail("validate", f"exit {code}, {report['files']} files for {len(origins)}: {err[-2000:]}")
            self.check_names(report["errors"], origins, texts)
            for issue in report["errors"]:
                self.check_issue(issue, texts)
                rejected.setdefault(issue["file"], []).append(issue["message"])
                deep = issue["message"] not in core.get(issue["file"], ())
                tally.kinds["validate-only (SQL, GX)" if deep else error_kind(issue["message"])] += 1
            if accepted := sorted(set(core) - set(rejected)):
                self.fail("validate", f"validate accepts what its own checks reject: {accepted}")
            tally.valid += len(origins) - len(rejected)
            rejected = {path: sorted(messages) for path, messages in core.items()}
        except Exception:
            self.fail("validate", traceback.format_exc())
        duplicates = {p for p, messages in rejected.items() if any("is also the dag_id of" in m for m in messages)}

        # 2. compile
        out_folder = folder.parent / "compiled"
        try:
            code, out, err = self.run_cli(["compile", str(folder), "--out", str(out_folder)])
            if "Traceback" in out + err:
                self.fail("compile", out[-2000:] + err[-2000:])
            written = {p.name for p in out_folder.iterdir()}
            printed = {
                line.split(" -> ", 1)[0]: line.split(" -> ", 1)[1] for line in err.splitlines() if " -> " in line
            }
            if set(printed) != set(origins) - set(rejected):
                self.fail("compile", f"compiled {sorted(set(printed) ^ (set(origins) - set(rejected)))[:5]} "
                          "differently from what validate accepted")  # fmt: skip
            if len(written) != len(printed) or any(n.startswith(".") for n in written):
                self.fail("compile", f"{len(written)} files for {len(printed)} specs: {sorted(written)[:5]}")
            for index, (spec, target) in enumerate(sorted(printed.items())):
                source = Path(target).read_text()
                if not source.strip():
                    self.fail("compile", f"empty file {target}", Path(spec))
                    continue
                code_object = compile(source, target, "exec")
                tally.compiled += 1
                if index % self.exec_every == 0:
                    namespace: dict = {"__file__": target}
                    exec(code_object, namespace)  # our own generated file
                    tally.executed += 1
                    dag_id = Path(target).stem
                    if not any(getattr(v, "dag_id", None) == dag_id for v in namespace.values()):
                        self.fail("compile", f"{target} defines no DAG {dag_id}", Path(spec))
        except Exception:
            self.fail("compile", traceback.format_exc())

        # 3. the loader, as Airflow's DAG processor runs it
        plan_compile._PLANS.clear()  # each parse is a fresh process
        plan_compile._PROFILES.clear()
        os.environ["AQ_AIRFLOW_CACHE"] = str(folder.parent / "cache")
        try:
            bag = DagBag(dag_folder=str(folder))
            # a broken spec is an import error of its own file, which hides nothing; one of a
            # loader file would hide every DAG of its shard
            failed = {p: e for p, e in bag.import_errors.items() if not p.endswith(SPEC_SUFFIXES)}
            if failed:
                self.fail("loader", f"import errors: {json.dumps(failed)[:3000]}")
            if len(bag.dags) != len(origins):
                self.fail("loader", f"{len(bag.dags)} DAGs for {len(origins)} spec paths")
            tally.dags += len(bag.dags)
            for dag in bag.dags.values():
                source = re.search(r"From the aq-airflow spec `(.*?)`:", dag.doc_md or "")
                path = str(folder / source.group(1)) if source else None
                invalid = INVALID_TAG in dag.tags
                tally.placeholders += invalid
                if invalid and "internal error" in (dag.description or ""):
                    self.fail("loader", f"{dag.dag_id}: {dag.description}", Path(path) if path else None)
                if path is None or path not in origins:
                    self.fail("loader", f"{dag.dag_id}: no spec path in its docs")
                elif invalid != (path in rejected) and path not in duplicates:
                    self.fail("loader", f"{path}: loader {'rejects' if invalid else 'accepts'} what validate "
                              f"{'accepts' if invalid else 'rejects'}: {dag.description}", Path(path))  # fmt: skip
                try:
                    DagSerialization.to_dict(dag)
                    tally.serialized += 1
                except Exception:
                    self.fail("serialize", f"{dag.dag_id}: {traceback.format_exc()[-2000:]}", Path(path or ""))
        except Exception:
            self.fail("loader", traceback.format_exc())
        for name, module in list(sys.modules.items()):  # DagBag keeps each loader module it imports
            if str(getattr(module, "__file__", None) or "").startswith(str(folder)):
                del sys.modules[name]
        shutil.rmtree(folder.parent, ignore_errors=True)

    def run(self, progress: bool = True) -> Tally:
        logging.disable(logging.CRITICAL)  # every invalid spec logs an error; the tally counts them
        started = time.perf_counter()
        for start in range(0, self.total, self.batch):
            self.batch_run(start, min(self.batch, self.total - start))
            if progress:
                elapsed = time.perf_counter() - started
                print(f"  {self.tally.specs:6d} specs  {len(self.tally.failures)} failure(s)  "
                      f"{_peak_rss_mb():7.0f} MB peak  {elapsed:6.0f} s", file=sys.stderr, flush=True)  # fmt: skip
        self.seconds = time.perf_counter() - started
        logging.disable(logging.NOTSET)
        shutil.rmtree(self.work, ignore_errors=True)
        return self.tally


def summary(campaign: Campaign, max_rss_mb: float) -> str:
    tally = campaign.tally
    rows = [
        ("specs (paths)", f"{tally.specs:,}"),
        *[(f"  from {origin}", f"{count:,}") for origin, count in sorted(tally.by_origin.items())],
        ("valid (validate)", f"{tally.valid:,}"),
        ("rejected (located errors)", f"{tally.specs - tally.valid:,}"),
        ("errors reported", f"{sum(tally.kinds.values()):,}"),
        *[(f"  {kind}", f"{count:,}") for kind, count in tally.kinds.most_common()],
        ("compiled files (valid Python)", f"{tally.compiled:,}"),
        ("  executed, DAG defined", f"{tally.executed:,}"),
        ("loader DAGs (DagBag)", f"{tally.dags:,}"),
        ("  placeholders (aq:invalid)", f"{tally.placeholders:,}"),
        ("  serialized", f"{tally.serialized:,}"),
        ("FAILURES (uncaught, traceback, unlocated, disagreement)", f"{len(tally.failures):,}"),
        ("peak RSS", f"{_peak_rss_mb():,.0f} MB (bound {max_rss_mb:,.0f} MB)"),
        ("seconds", f"{campaign.seconds:,.1f} ({tally.specs / max(campaign.seconds, 1e-9):,.0f} specs/s)"),
        ("seed", str(campaign.seed)),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    for where, detail, path in tally.failures[:20]:
        lines.append(f"\nFAILURE in {where} {path}\n{detail[:3000]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--batch", type=int, default=250, help="specs per dags folder (one DagBag each)")
    parser.add_argument("--exec-every", type=int, default=5, help="execute one compiled file in N")
    parser.add_argument("--max-rss-mb", type=float, default=1500, help="fail above this peak RSS")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "fuzz"), help="failing specs go here")
    args = parser.parse_args(argv)
    campaign = Campaign(args.specs, args.seed, args.batch, args.exec_every, Path(args.out))
    campaign.run()
    print(summary(campaign, args.max_rss_mb))
    too_big = _peak_rss_mb() > args.max_rss_mb
    return 1 if campaign.tally.failures or too_big else 0


if __name__ == "__main__":
    sys.exit(main())
