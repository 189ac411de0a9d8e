"""``aq-airflow``: validate, compile, schema, init (and dagbag, a deployment preflight).

``validate``, ``compile`` and ``schema`` import nothing of Airflow, so they run in editors and
CI without an Airflow installation or metadata database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from aq_airflow.spec import SpecError, SpecIssue, spec_paths

LOADER_MARK = "(written by `aq-airflow init`)"
LOADER_SHARD = f'''"""aq-airflow loader, shard {{index}} of {{shards}} {LOADER_MARK}.

Builds the *.aq.yaml pipelines under this folder whose path hashes into this shard. Airflow
parses the shards in parallel; a new spec is picked up by its shard at the next parse.
"""

from aq_airflow.build import load_dags

load_dags(globals(), shard=({{index}}, {{shards}}))
'''
# Measured with the real dag-processor (bench/dag_processor.py, 2 cores): 10,000 specs in 64
# shards parse at most 6.0 s a file cold (32 shards: 11.3 s). An empty shard costs Airflow's
# per-file overhead (~0.3 s a parse cycle); small deployments can take `--shards 8`.
DEFAULT_SHARDS = 64
SCHEMA_FILE = "aq-airflow.schema.json"


def _spec_files(paths: Sequence[str]) -> list[tuple[str, str | None]]:
    """(spec file, the dags folder it belongs to): a folder given is a dags folder, whose
    profiles and paths hold for the specs in its subfolders too, as they do for the loader."""
    files: list[tuple[str, str | None]] = []
    for path in paths:
        files += [(spec, path) for spec in spec_paths(path)] if os.path.isdir(path) else [(path, None)]
    return files


def _compile(path: str, dags_folder: str | None):
    """Plan one spec file, or the issues that stop it (unreadable files included)."""
    from aq_airflow.plan import compile_spec

    try:
        return compile_spec(path, dags_folder), []
    except SpecError as error:
        return None, error.issues
    except OSError as error:
        return None, [SpecIssue(path, 1, 1, f"cannot read the file: {error.strerror}")]


def _deep_check(path: str, dags_folder: str | None, notes: set[str]) -> list[SpecIssue]:
    """The spec's issues; for one that plans, what only validate checks: its SQL parsed with
    sqlglot and its `expect:` checks looked up in Great Expectations (slow imports the loader
    never pays for)."""
    from aq_airflow.spec import SpecFile
    from aq_airflow.spec.deep import deep_issues

    plan, issues = _compile(path, dags_folder)
    return issues if plan is None else deep_issues(SpecFile.read(path), notes)


def cmd_validate(args: argparse.Namespace) -> int:
    files = _spec_files(args.paths)
    notes: set[str] = set()
    issues = [issue for path, folder in files for issue in _deep_check(path, folder, notes)]
    for note in sorted(notes):
        print(f"note: {note}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps({"files": len(files), "errors": [i.as_dict() for i in issues]}, indent=2))
    else:
        for issue in issues:
            print(issue)
        bad = len({i.file for i in issues})
        print(f"{len(files)} spec(s) checked, {len(issues)} error(s) in {bad} file(s)", file=sys.stderr)
    if not files:
        print("no *.aq.yaml files found in " + " ".join(args.paths), file=sys.stderr)
        return 1
    return 1 if issues else 0


def cmd_compile(args: argparse.Namespace) -> int:
    from aq_airflow.codegen import render_dag

    os.makedirs(args.out, exist_ok=True)
    failed = False
    for path, folder in _spec_files(args.paths):
        plan, issues = _compile(path, folder)
        if plan is None:
            failed = True
            for issue in issues:
                print(issue)
            continue
        target = os.path.join(args.out, f"{plan.dag_id}.py")
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(render_dag(plan))
        print(f"{path} -> {target}", file=sys.stderr)
    return 1 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from aq_airflow.spec import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def loader_files(shards: int) -> dict[str, str]:
    """The loader shards ``init`` writes: file name -> source."""
    width = len(str(shards - 1))
    return {f"aq_dags_{i:0{width}d}.py": LOADER_SHARD.format(index=i, shards=shards) for i in range(shards)}


def cmd_init(args: argparse.Namespace) -> int:
    from aq_airflow.spec import json_schema

    if args.shards < 1:
        print("--shards must be at least 1", file=sys.stderr)
        return 2
    os.makedirs(args.dags_folder, exist_ok=True)
    wanted = loader_files(args.shards)
    for name in sorted(os.listdir(args.dags_folder)):  # loaders of an earlier init (another shard count)
        path = os.path.join(args.dags_folder, name)
        if name.startswith("aq_dags") and name.endswith(".py") and name not in wanted and _written_by_init(path):
            os.remove(path)
            print(f"removed {path} (an earlier aq-airflow loader)", file=sys.stderr)
    kept = 0
    for name, source in wanted.items():
        path = os.path.join(args.dags_folder, name)
        if os.path.exists(path) and not args.force and not _written_by_init(path):
            print(f"{path} exists and is not an aq-airflow loader; leaving it (use --force)", file=sys.stderr)
            kept += 1
            continue
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
    print(f"wrote {len(wanted) - kept} loader file(s) aq_dags_*.py into {args.dags_folder}", file=sys.stderr)
    schema = os.path.join(args.dags_folder, SCHEMA_FILE)
    with open(schema, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {schema} (point editors at it: # yaml-language-server: $schema={SCHEMA_FILE})", file=sys.stderr)
    return 0


def _written_by_init(path: str) -> bool:
    """Whether a file is a loader this command wrote (now or in an earlier version)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        head = handle.read(400)
    return "written by `aq-airflow init`" in head


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aq_airflow.cli.run import run_pipeline

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"--param {item}: write it as key=value", file=sys.stderr)
            return 2
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return run_pipeline(
        Path(args.spec), args.date, params, args.warehouse, Path(args.workdir), args.verbose, args.artifacts
    )


def cmd_results(args: argparse.Namespace) -> int:
    from aq_airflow.cli.results import show

    return show(args.pipeline, args.warehouse, args.step, args.last, args.schema, args.format)


def cmd_gc(args: argparse.Namespace) -> int:
    from aq_airflow.cli.gc import main as gc_main

    return gc_main(args.dags_folder, args.dry_run)


def cmd_dagbag(args: argparse.Namespace) -> int:
    """Load a dags folder the way Airflow's DAG processor does and list what it finds."""
    from aq_airflow.cli.dagbag import show_dagbag

    return show_dagbag(args.dags_folder)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="aq-airflow", description="Declarative pipelines compiled to Airflow DAGs.")
    sub = main.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check specs; errors as file:line:col: message")
    validate.add_argument("paths", nargs="+", help="spec files or folders")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.set_defaults(func=cmd_validate)
    compile_ = sub.add_parser("compile", help="write one Python DAG file per spec")
    compile_.add_argument("paths", nargs="+", help="spec files or folders")
    compile_.add_argument("--out", required=True, help="folder for the generated .py files")
    compile_.set_defaults(func=cmd_compile)
    schema = sub.add_parser("schema", help="print the JSON schema of the spec")
    schema.add_argument("--out", help="write it to this file instead")
    schema.set_defaults(func=cmd_schema)
    init = sub.add_parser("init", help="write the loader files and the JSON schema into a dags folder")
    init.add_argument("dags_folder")
    init.add_argument(
        "--shards", type=int, default=DEFAULT_SHARDS, help=f"loader files to spread the specs over ({DEFAULT_SHARDS})"
    )
    init.add_argument("--force", action="store_true", help="overwrite files of the same names that are not ours")
    init.set_defaults(func=cmd_init)
    run = sub.add_parser("run", help="run one pipeline end to end on this machine (local runner, DuckDB)")
    run.add_argument("spec")
    run.add_argument("--date", help="logical date, YYYY-MM-DD (default: today)")
    run.add_argument("--param", action="append", default=[], help="k=v, overrides a spec param (repeatable)")
    run.add_argument(
        "--warehouse", help="a DuckDB file, or an Airflow connection URI/JSON (default: WORKDIR/warehouse.duckdb)"
    )
    run.add_argument("--workdir", default=".aq-run", help="artifacts and the DuckDB warehouse go here")
    run.add_argument(
        "--artifacts", help="where step outputs go: a folder, or s3://, gs://, abfs:// (default: WORKDIR/artifacts)"
    )
    run.add_argument("--verbose", action="store_true", help="also show Airflow's own logs")
    run.set_defaults(func=cmd_run)
    results = sub.add_parser("results", help="print a pipeline's check and metric history from the warehouse")
    results.add_argument(
        "pipeline", metavar="SPEC|PIPELINE",
        help="a spec file (its pipeline, warehouse connection and results_schema are read from it), or a dag_id",
    )  # fmt: skip
    results.add_argument("--step")
    results.add_argument("--last", type=int, default=20, help="rows per table (default 20)")
    results.add_argument(
        "--warehouse",
        help="a DuckDB file, or an Airflow connection URI/JSON (default: a spec's connection if Airflow defines "
        "it, else .aq-run/warehouse.duckdb, where `aq-airflow run` keeps its warehouse)",
    )
    results.add_argument("--schema", help="schema of the results tables (default: a spec's results_schema)")
    results.add_argument("--format", choices=("text", "json"), default="text", help="a table, or one JSON document")
    results.set_defaults(func=cmd_results)
    gc = sub.add_parser("gc", help="delete run outputs older than each pipeline's artifacts_ttl")
    gc.add_argument("dags_folder")
    gc.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    gc.set_defaults(func=cmd_gc)
    dagbag = sub.add_parser("dagbag", help="load a dags folder as Airflow would; list DAGs and errors")
    dagbag.add_argument("dags_folder")
    dagbag.set_defaults(func=cmd_dagbag)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
