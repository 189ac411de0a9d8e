"""``aq-airflow diff PIPELINE RUN_A RUN_B``: what changed between two runs of a pipeline.

- **code**: the files of the two runs' code packages (``client.provenance.package_files``):
  added, removed, changed (by each file's sha256); ``--patch`` adds a unified diff of each changed
  text file;
- **image** of each step (as named, and its digest where the pod reported one), the **spec's
  hash**, the run's **params** and each step's **args**;
- each step output's **schema** (columns added, removed, retyped) and **rows**;
- **metric values** (and check outcomes) from the results warehouse, when it can be read.

Read from the two runs' manifests, pins and packages only; nothing is run. Exit codes: 0 the
difference shown (none is a difference too); 1 shown, but a run's code package is gone, so the
code files were not compared (the line says why and what to do); 2 no such pipeline, store or run.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import sys
from typing import Any, TextIO

from aq_airflow.artifacts.code_package import PinnedCode
from aq_airflow.cli.run_lookup import STORE_ERRORS, WAREHOUSE_FILE, LookupFailed, find_run, resolve, store_failed
from aq_airflow.cli.show import latest_by_name, run_results
from aq_airflow.cli.terminal import visible
from aq_airflow.client.provenance import MissingPackage, StepRecord, file_digest, package_files, run_code, step_records
from aq_airflow.client.provenance import short_digest as short

SHOWN, PARTIAL, NOT_FOUND = 0, 1, 2
PATCH_LINES = 2000  # lines of one file's unified diff shown (the rest: counted)


def code_changes(a: PinnedCode | None, b: PinnedCode | None, root: str, patch: bool) -> dict[str, Any]:
    """The code packages' files compared: ``added``, ``removed``, ``changed`` paths (each changed
    text file's unified diff under ``patches`` with ``patch``); ``problem`` when a package could
    not be read, ``note`` when a run recorded no package."""
    found: dict[str, Any] = {"a": a.digest if a else None, "b": b.digest if b else None, "added": [], "removed": [],
                             "changed": [], "patches": {}, "note": None, "problem": None}  # fmt: skip
    if a is None or b is None:
        which = " and ".join(name for name, code in (("A", a), ("B", b)) if code is None)
        found["note"] = f"run {which} recorded no code package (the image's own code, or a run from before packages)"
        return found
    if a.digest == b.digest:
        return found
    try:
        old, new = package_files(a, root), package_files(b, root)
    except MissingPackage as error:
        found["problem"] = str(error)
        return found
    found["added"] = sorted(set(new) - set(old))
    found["removed"] = sorted(set(old) - set(new))
    found["changed"] = sorted(p for p in set(old) & set(new) if file_digest(old[p]) != file_digest(new[p]))
    if patch:
        found["patches"] = {path: _patch(path, old.get(path, b""), new.get(path, b""))
                            for path in [*found["changed"], *found["added"], *found["removed"]]}  # fmt: skip
    return found


def _patch(path: str, old: bytes, new: bytes) -> str:
    try:
        before, after = old.decode("utf-8"), new.decode("utf-8")
    except UnicodeDecodeError:
        return f"Binary file {path} differs ({len(old)} → {len(new)} bytes)\n"
    lines = list(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                      f"a/{path}", f"b/{path}"))  # fmt: skip
    lines = [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]
    if len(lines) > PATCH_LINES:
        lines = [*lines[:PATCH_LINES], f"... {len(lines) - PATCH_LINES} more lines\n"]
    return "".join(lines)


def _by_name(records: list[StepRecord]) -> dict[str, StepRecord]:
    return {record.name if record.map_index is None else f"{record.step}[{record.map_index}]": record
            for record in records}  # fmt: skip


def _image(record: StepRecord) -> str | None:
    p = record.provenance
    if p is None or p.image is None:
        return None
    return p.image.name + (f"@{p.image.digest}" if p.image.digest else "")


def _changed(a: Any, b: Any) -> dict | None:
    return None if a == b else {"a": a, "b": b}


def schema_changes(a: list[tuple[str, str]] | None, b: list[tuple[str, str]] | None) -> dict[str, Any] | None:
    """Columns added, removed and retyped between two table schemas; None when equal or not tables."""
    if a is None or b is None or a == b:
        return None
    old, new = dict(a), dict(b)
    change = {
        "added": [[c, t] for c, t in b if c not in old],
        "removed": [[c, t] for c, t in a if c not in new],
        "retyped": [[c, old[c], t] for c, t in b if c in old and old[c] != t],
    }
    return change if any(change.values()) else {"added": [], "removed": [], "retyped": [], "reordered": True}


def steps_changes(a: list[StepRecord], b: list[StepRecord]) -> dict[str, dict[str, Any]]:
    """Per step output (per item), what differs: presence, image, args, schema, rows, kind."""
    old, new = _by_name(a), _by_name(b)
    found: dict[str, dict[str, Any]] = {}
    for name in sorted(set(old) | set(new)):
        if name not in old or name not in new:
            found[name] = {"only_in": "B" if name not in old else "A"}
            continue
        x, y = old[name], new[name]
        px, py = x.provenance, y.provenance
        change = {
            "kind": _changed(x.kind, y.kind),
            "image": _changed(_image(x), _image(y)),
            "args": _changed(px.args if px else None, py.args if py else None) if px and py else None,
            "schema": schema_changes(x.schema, y.schema),
            "rows": _changed(x.rows, y.rows),
        }
        change = {key: value for key, value in change.items() if value is not None}
        if (px is None) != (py is None):
            change["provenance"] = {"a": px is not None, "b": py is not None}
        if change:
            found[name] = change
    return found


def _run_level(records: list[StepRecord], field: str) -> Any:
    """A value every output records alike (params, spec hash): the first recorded."""
    return next((getattr(r.provenance, field) for r in records if r.provenance is not None), None)


def metric_changes(a: dict | None, b: dict | None) -> dict[str, Any] | None:
    """Each metric's value and each check's outcome that differs between the runs; None when the
    warehouse was not read."""
    if a is None or b is None:
        return None
    found: dict[str, Any] = {}
    for title, field in (("metrics", "value"), ("checks", "outcome")):
        old, new = latest_by_name(a[title]), latest_by_name(b[title])
        found[title] = {
            key: {"a": old[key].get(field) if key in old else None, "b": new[key].get(field) if key in new else None}
            for key in sorted(set(old) | set(new))
            if key not in old or key not in new or old[key].get(field) != new[key].get(field)
        }
    return found


def compare(pipeline: str, run_a: str, run_b: str, artifacts: str | None, warehouse: str | None,
            schema: str | None, patch: bool, workdir: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The difference between two runs, as ``--json`` prints it. Raises LookupFailed (a store that
    fails while the runs are read too)."""
    target = resolve(pipeline, artifacts, workdir)
    a, b = find_run(target, run_a), find_run(target, run_b)
    try:
        records_a, records_b = step_records(a), step_records(b)
    except STORE_ERRORS as error:
        raise LookupFailed(store_failed(target.root, target.where, error)) from None
    results, note = run_results(pipeline, warehouse, schema, list(dict.fromkeys([a.run_id, b.run_id])))
    return {
        "pipeline": target.dag_id, "store": target.pipeline.uri, "a": a.run_id, "b": b.run_id,
        "code": code_changes(run_code(a, records_a), run_code(b, records_b), target.root, patch),
        "spec_hash": _changed(_run_level(records_a, "spec_hash"), _run_level(records_b, "spec_hash")),
        "params": _dict_changes(_run_level(records_a, "params") or {}, _run_level(records_b, "params") or {}),
        "steps": steps_changes(records_a, records_b),
        "results": metric_changes(results.get(a.run_id), results.get(b.run_id)),
        "results_note": note,
    }  # fmt: skip


def _dict_changes(a: dict, b: dict) -> dict[str, dict]:
    return {
        key: {"a": a.get(key), "b": b.get(key)} for key in sorted(set(a) | set(b), key=str) if a.get(key) != b.get(key)
    }


def _value(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, sort_keys=True, default=str)


def print_text(found: dict[str, Any], out: TextIO) -> None:
    say = lambda text="": print(visible(text), file=out)  # noqa: E731 - names, paths, values: escaped
    say(f"diff of {found['pipeline']}: A = {found['a']}  B = {found['b']}")
    code = found["code"]
    if code["note"]:
        say(f"code: {code['note']}")
    elif code["a"] == code["b"]:
        say(f"code: same package {short(code['a'])}")
    else:
        say(f"code: {short(code['a'])} → {short(code['b'])}")
        if code["problem"]:
            say(f"  files not compared: {code['problem']}")
        for what in ("changed", "added", "removed"):
            for path in code[what]:
                say(f"  {what:<8} {path}")
    if found["spec_hash"]:
        say(f"spec: {short(found['spec_hash']['a'])} → {short(found['spec_hash']['b'])}")
    for key, change in found["params"].items():
        say(f"param {key}: {_value(change['a'])} → {_value(change['b'])}")
    images: dict[tuple, list[str]] = {}  # one line per image change, naming the steps it applies to
    for name, change in found["steps"].items():
        if "image" in change:
            images.setdefault((change["image"]["a"], change["image"]["b"]), []).append(name)
    for (a, b), names in images.items():
        say(f"image: {a or '(none)'} → {b or '(none)'}  (steps: {', '.join(names)})")
    for name, change in found["steps"].items():
        if "only_in" in change:
            say(f"step {name}: only in run {change['only_in']}")
            continue
        for key in ("kind", "args", "rows"):
            if key in change:
                say(f"step {name} {key}: {_value(change[key]['a'])} → {_value(change[key]['b'])}")
        if "schema" in change:
            columns = change["schema"]
            parts = [f"+{c} {t}" for c, t in columns["added"]] + [f"-{c} {t}" for c, t in columns["removed"]]
            parts += [f"~{c} {t0} → {t1}" for c, t0, t1 in columns["retyped"]]
            say(f"step {name} schema: " + (", ".join(parts) if parts else "columns reordered"))
        if "provenance" in change:
            which = "A" if not change["provenance"]["a"] else "B"
            say(f"step {name}: run {which}'s output records no provenance (written before aq-airflow recorded it)")
    results = found["results"]
    if results is not None:
        for key, change in results["metrics"].items():
            say(f"metric {key}: {_value(change['a'])} → {_value(change['b'])}")
        for key, change in results["checks"].items():
            say(f"check {key}: {change['a'] or '(none)'} → {change['b'] or '(none)'}")
    quiet = not (found["params"] or found["steps"] or found["spec_hash"] or (results and any(results.values())))
    if quiet and code["a"] == code["b"] and not code["note"]:
        say("no differences recorded")
    for text in code["patches"].values():  # last, as `git show` puts a patch after its summary
        out.write("\n" + "\n".join(visible(line) for line in text.splitlines()) + "\n")


def diff(pipeline: str, run_a: str, run_b: str, artifacts: str | None, warehouse: str | None, schema: str | None,
         patch: bool, as_json: bool, out: TextIO | None = None, workdir: str | None = None) -> int:  # fmt: skip
    """``aq-airflow diff``: print what changed between two runs. ``workdir``: as for ``show``."""
    out = out or sys.stdout
    warehouse = warehouse or (os.path.join(workdir, WAREHOUSE_FILE) if workdir else None)
    if "airflow" not in sys.modules:
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    from aq_airflow.cli.connection import masked_output

    with masked_output(warehouse), contextlib.redirect_stdout(sys.stderr):
        try:
            found = compare(pipeline, run_a, run_b, artifacts, warehouse, schema, patch, workdir)
        except LookupFailed as error:
            print(visible(str(error), newlines=True), file=sys.stderr)
            return NOT_FOUND
        if found["results_note"]:
            print(visible(found["results_note"], newlines=True), file=sys.stderr)
        if found["code"]["problem"]:
            print(visible(f"code files not compared: {found['code']['problem']}", newlines=True), file=sys.stderr)
        if as_json:
            print(json.dumps(found, indent=2, default=str), file=out)
        else:
            print_text(found, out)
    return PARTIAL if found["code"]["problem"] else SHOWN
