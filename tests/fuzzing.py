"""`make fuzz` (`python -m tests.fuzzing`): a fuzz campaign over the spec front end: mutated and generated specs through
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

Then the manifest campaign (`ManifestFuzz`, `--manifests N`): committed step outputs (a table, a
command step's two Parquet files, a pickled object, plain files) whose `_manifest.json` is
mutated (odd or shuffled `files`, wrong rows, schema, digests or kind, deep or non-JSON text) or
whose files change (bytes flipped, cut short, another schema, a pickle that runs code), each read
as a downstream step reads it. Every read must refuse (BadOutput / MissingArtifact) or give back
exactly the committed value; another exception, changed data read as whole, or a pickle that ran
is a failure.
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
sys.path.insert(0, str(REPO))  # run as a file too: `python tests/fuzzing.py`

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
            step.pop("serve", None)  # one model per step: `serve` with `foreach` is an error of its own
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


# --- manifests: mutated `_manifest.json` files (and the files they list) fed to the readers ----

# names a manifest's `files` may hold: paths elsewhere, odd and non-string entries
HOSTILE_FILE_NAMES = [
    "../secret.parquet", "../../secret.parquet", "{secret}", "a/b.parquet", "a\\b.parquet", "..", ".", "",
    "\x00", "part\x00.parquet", "_manifest.json", "_items.json", ".hidden", "x" * 5000, "café.parquet",
    "\u202e.parquet", "\ud800", " ", "sub", 1, None, True, [], {}, ["a"], 1.5,
]  # fmt: skip
HOSTILE_VALUES = [None, True, False, 0, -1, 1.5, 2**70, float("nan"), float("inf"), "", "3", "x" * 3000, [], {},
                  [[]], {"a": 1}, [None], ["n", "int64"]]  # fmt: skip


@dataclass
class ManifestTally:
    cases: int = 0
    refused: Counter = field(default_factory=Counter)  # by what the refusal said
    read: int = 0  # harmless mutations (unknown keys, the file order, no digests) that read the committed value
    by_mutation: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)


class ManifestFuzz:
    """Committed outputs (a table, a two-file table a command step wrote, a pickled object, a
    command step's plain files) whose manifest or files are mutated, then read as a downstream
    step reads them (``read_input``) and checked for shape as ``aq-airflow gc`` does (``is_ours``).
    A read either refuses (BadOutput or MissingArtifact) or gives back exactly the committed value
    (a harmless mutation); any other exception, a changed value read as whole, or a swapped
    pickle that ran is a failure."""

    def __init__(self, count: int, seed: int):
        self.count, self.random = count, random.Random(seed)
        self.work = Path(tempfile.mkdtemp(prefix="aq-fuzz-manifests-"))
        self.tally = ManifestTally()

    def bases(self) -> dict:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from aq_airflow.artifacts.store import MANIFEST, Location, commit_files
        from aq_airflow.artifacts.values import write_output

        pq.write_table(pa.table({"password": ["hunter2"]}), self.work / "secret.parquet")
        table = pa.table({"n": [1, 2, 3], "s": ["a", "b", "c"]})
        bases = {}
        for kind, value in (("table", table), ("object", {"weight": [1, 2, 3]})):
            location = Location.of(str(self.work / "base" / kind))
            location.commit(write_output(location, location.begin(), value))
            bases[kind] = value
        parts = Location.of(str(self.work / "base" / "parts"))
        parts.begin()
        pq.write_table(table.slice(0, 2), parts.join("a.parquet"))
        pq.write_table(table.slice(2), parts.join("b.parquet"))
        commit_files(parts, "fuzz", {"step": "producer"})
        bases["parts"] = table
        files = Location.of(str(self.work / "base" / "files"))
        files.begin()
        Path(files.join("report.md")).write_text("# report\n")
        commit_files(files, "fuzz", {"step": "producer"})
        bases["files"] = None  # a command step's files read as their folder's URI
        self.saved = {
            kind: {p.name: p.read_bytes() for p in (self.work / "base" / kind).iterdir()} for kind in bases
        }  # fmt: skip
        self.manifest_name = MANIFEST
        return bases

    def mutate_manifest(self, manifest: dict) -> str:
        """Change the parsed manifest in place; returns the mutation's name."""
        r = self.random
        files = manifest.get("files") if isinstance(manifest.get("files"), list) else []
        choice = r.randrange(12)
        if choice == 0 and len(files) > 1:
            r.shuffle(files)
            manifest["files"] = files
            return "files reordered"
        if choice <= 1:
            name = r.choice(HOSTILE_FILE_NAMES)
            name = str(self.work / "secret.parquet") if name == "{secret}" else name
            how = r.randrange(3)
            if how == 0 or not files:
                manifest["files"] = [*files, name]
            elif how == 1:
                manifest["files"] = [name, *files[1:]]
            else:
                manifest["files"] = name if r.random() < 0.5 else {"a": name}
            if r.random() < 0.5 and isinstance(manifest.get("digests"), dict) and isinstance(name, str):
                manifest["digests"][name] = "sha256:" + "0" * 64
            return "odd files entry"
        if choice == 4 and r.random() < 0.3:
            manifest["schema"] = r.choice(HOSTILE_VALUES)
            return "wrong schema"
        if choice == 2:
            manifest["files"] = files + files if files else ["x"]
            return "files doubled"
        if choice == 3:
            manifest["rows"] = r.choice([999, 0, (manifest.get("rows") or 0) + 1, *HOSTILE_VALUES])
            return "wrong rows"
        if choice == 4:
            schema = manifest.get("schema")
            if isinstance(schema, list) and schema and all(isinstance(c, list) and len(c) == 2 for c in schema):
                column = r.randrange(len(schema))
                how = r.randrange(4)
                if how == 0:
                    schema[column] = [schema[column][0], r.choice(["string", "int32", "double", "binary", ""])]
                elif how == 1:
                    schema[column] = [schema[column][0] + "_x", schema[column][1]]
                elif how == 2:
                    del schema[column]
                else:
                    schema.append(["extra", "int64"])
            else:
                manifest["schema"] = r.choice(HOSTILE_VALUES)
            return "wrong schema"
        if choice == 5:
            digests = manifest.get("digests")
            how = r.randrange(5)
            if how == 0 and isinstance(digests, dict) and digests:
                name = r.choice(sorted(digests))
                value = digests[name]
                at = r.randrange(len("sha256:"), len("sha256:") + 64)
                if isinstance(value, str) and len(value) > at:
                    digests[name] = value[:at] + ("0" if value[at] != "0" else "1") + value[at + 1 :]
            elif how == 1 and isinstance(digests, dict) and digests:
                name = r.choice(sorted(digests))
                value = str(digests[name])
                digests[name] = r.choice(["md5:" + "0" * 32, value.upper(), value[:20], 7, None])
            elif how == 2 and isinstance(digests, dict):
                digests[r.choice(["extra.parquet", "../x"])] = "sha256:" + "0" * 64
            elif how == 3:
                manifest["digests"] = r.choice(HOSTILE_VALUES)
            else:
                manifest.pop("digests", None)
                return "no digests"
            return "wrong digests"
        if choice == 6:
            manifest["kind"] = r.choice(["table", "object", "files", "none", "tables", "", None, 1, ["table"]])
            return "other kind"
        if choice == 7:
            manifest.pop(r.choice(["kind", "files", "rows", "schema"]), None)
            return "key removed"
        if choice == 8:
            key = r.choice(["files", "rows", "schema", "digests", "kind"])
            depth = r.choice([10, 200, 900])
            manifest[key] = json.loads("[" * depth + "1" + "]" * depth)
            return "deep value"
        if choice == 9:
            manifest[r.choice(["writer", "python_type", "bytes", "uri", "note"])] = r.choice(HOSTILE_VALUES)
            return "other keys"
        if choice == 10:
            return self.mutate_manifest(manifest) + " + " + self.mutate_manifest(manifest)
        manifest.pop("digests", None)
        manifest.pop("writer", None)
        return "no digests"

    def mutate_text(self, data: bytes) -> tuple[bytes, str]:
        r = self.random
        choice = r.randrange(8)
        if choice == 0:
            return data[: r.randrange(len(data))], "manifest cut short"
        if choice == 1:
            changed = bytearray(data)
            for _ in range(r.randint(1, 4)):
                changed[r.randrange(len(changed))] ^= r.randint(1, 255)
            return bytes(changed), "manifest bytes flipped"
        if choice == 2:
            depth = r.choice([1000, 100_000])
            return b"[" * depth + b"]" * depth, "deeply nested JSON"
        if choice == 3:
            texts = [b"", b"null", b"[]", b'"x"', b"1e999", b"NaN", b"{}", b"\xff\xfe{", b"true"]
            return r.choice(texts), "not a manifest"
        if choice == 4:
            return b"\xef\xbb\xbf" + data, "byte order mark"
        if choice == 5:
            return data.decode().encode("utf-16"), "UTF-16"
        if choice == 6:
            return data[:-1] + b', "kind": "object"}', "duplicate key"
        return data.replace(b'"rows": ', b'"rows": 1e999, "x": ', 1), "rows as infinity"

    def mutate_files(self, folder: Path, manifest: dict) -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        r = self.random
        names = [n for n in manifest["files"] if (folder / n).is_file()]
        if not names:
            return "no file to change"
        target = folder / r.choice(names)
        data = target.read_bytes()
        choice = r.randrange(6)
        if choice == 0:
            changed = bytearray(data)
            changed[r.randrange(len(changed))] ^= r.randint(1, 255)
            target.write_bytes(bytes(changed))
            return "file byte flipped"
        if choice == 1:
            target.write_bytes(data[: r.randrange(len(data))])
            return "file cut short"
        if choice == 2:
            target.write_bytes(data + b"\x00" * r.randint(1, 100))
            return "file grown"
        if choice == 3:
            pq.write_table(pa.table({"n": ["x"], "other": [1.5]}), target)
            return "file of another schema"
        if choice == 4:
            target.unlink()
            return "file removed"
        import pickle

        marker = self.work / "a swapped pickle ran"

        class Payload:
            def __reduce__(self):
                return os.mkdir, (str(marker),)

        target.write_bytes(pickle.dumps(Payload()))
        return "file swapped for a pickle that runs code"

    def case(self, kind: str, expected) -> None:
        from aq_airflow.artifacts.manifest import is_ours
        from aq_airflow.artifacts.store import Location, MissingArtifact
        from aq_airflow.artifacts.values import read_input

        r = self.random
        folder = self.work / "case"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for name, data in self.saved[kind].items():
            (folder / name).write_bytes(data)
        manifest_path = folder / self.manifest_name
        manifest = json.loads(manifest_path.read_bytes())
        choice = r.random()
        if choice < 0.6:
            mutation = self.mutate_manifest(manifest)
            data = json.dumps(manifest).encode()
        elif choice < 0.8:
            data, mutation = self.mutate_text(manifest_path.read_bytes())
        else:
            mutation = self.mutate_files(folder, manifest)
            data = manifest_path.read_bytes()
        changed_file = choice >= 0.8 and mutation != "no file to change"
        manifest_path.write_bytes(data)
        self.tally.cases += 1
        self.tally.by_mutation[mutation if " + " not in mutation else "two or more of the above"] += 1
        where = f"{kind}: {mutation}: {data[:300]!r}"
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            parsed = None
        try:
            is_ours(parsed)
        except Exception:
            self.tally.failures.append(("is_ours", where, traceback.format_exc()[-2000:]))
        try:
            value = read_input(Location.of(str(folder)), "producer", None)
        except MissingArtifact as refused:
            self.tally.refused[_refusal(str(refused))] += 1
        except Exception:
            self.tally.failures.append(("read_input", where, traceback.format_exc()[-2000:]))
        else:
            # a manifest that says `files` hands over the folder (whose files' digests held)
            as_folder = isinstance(parsed, dict) and parsed.get("kind") == "files"
            if changed_file:
                self.tally.failures.append(("read_input", where, "a changed file read as whole"))
            elif not (value == str(folder) if as_folder else _same(value, expected)):
                self.tally.failures.append(("read_input", where, f"read, but not the committed value: {value!r:.500}"))
            else:
                self.tally.read += 1
        if (self.work / "a swapped pickle ran").exists():
            self.tally.failures.append(("read_input", where, "a swapped pickle was unpickled"))
            (self.work / "a swapped pickle ran").rmdir()

    def run(self) -> ManifestTally:
        logging.disable(logging.CRITICAL)  # each manifest without digests logs a warning
        started = time.perf_counter()
        try:
            bases = self.bases()
            kinds = sorted(bases)
            for _ in range(self.count):
                kind = self.random.choice(kinds)
                self.case(kind, bases[kind])
        finally:
            logging.disable(logging.NOTSET)
            shutil.rmtree(self.work, ignore_errors=True)
        self.seconds = time.perf_counter() - started
        return self.tally


def _same(value, expected) -> bool:
    if hasattr(expected, "sort_by"):
        return hasattr(value, "sort_by") and value.sort_by("n").equals(expected.sort_by("n"))
    return value == expected


def _refusal(message: str) -> str:
    """What a refusal said, without its paths and values: the tally's key."""
    for pattern, kind in (
        ("not valid JSON", "not JSON"), ("larger than", "too large"), ("not a plain file name", "not a plain name"),
        ("lists a file twice", "a file twice"), ("has no kind", "no kind"), ("is none of", "unknown kind"),
        ("lists ", "files for the kind, or a file not there"), ("row count", "rows not a count"),
        ("schema is not", "schema not pairs"), ("digests are not", "digests not one per file"),
        ("digest of", "digest not sha256"), ("has sha256:", "digest differs"), ("has schema", "schema differs"),
        ("row(s), its manifest", "rows differ"), ("not a readable Parquet", "not Parquet"),
        ("failed before committing", "no manifest"), ("is not a pickle", "not a pickle"),
        ("not a whole pickle", "pickle cut short"), ("but has no digests", "stamped, no digests"),
        ("its folder holds", "a file not listed"),
    ):  # fmt: skip
        if pattern in message:
            return kind
    return "other: " + message[:120]


def manifest_summary(fuzz: ManifestFuzz) -> str:
    tally = fuzz.tally
    rows = [
        ("manifest cases", f"{tally.cases:,}"),
        *[(f"  {mutation}", f"{count:,}") for mutation, count in tally.by_mutation.most_common()],
        ("refused (BadOutput / MissingArtifact)", f"{sum(tally.refused.values()):,}"),
        *[(f"  {kind}", f"{count:,}") for kind, count in tally.refused.most_common()],
        ("read as committed (harmless mutation)", f"{tally.read:,}"),
        ("FAILURES (other exception, changed data read, pickle ran)", f"{len(tally.failures):,}"),
        ("seconds", f"{fuzz.seconds:,.1f}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    for where, case, detail in tally.failures[:20]:
        lines.append(f"\nFAILURE in {where} ({case})\n{detail[:3000]}")
    return "\n".join(lines)


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
    parser.add_argument("--out", default=str(REPO / ".fuzz"), help="failing specs go here")
    parser.add_argument("--manifests", type=int, default=5_000, help="mutated step outputs fed to the readers")
    args = parser.parse_args(argv)
    campaign = Campaign(args.specs, args.seed, args.batch, args.exec_every, Path(args.out))
    campaign.run()
    print(summary(campaign, args.max_rss_mb))
    manifests = ManifestFuzz(args.manifests, args.seed)
    manifests.run()
    print("\n" + manifest_summary(manifests))
    too_big = _peak_rss_mb() > args.max_rss_mb
    return 1 if campaign.tally.failures or manifests.tally.failures or too_big else 0


if __name__ == "__main__":
    sys.exit(main())
