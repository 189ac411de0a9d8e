"""``aq-airflow``: validate, compile, schema, init, run, demo-ui, results, show, diff, package, serve, gc (and dagbag,
doctor: deployment preflights).

``validate``, ``compile`` and ``schema`` import nothing of Airflow, so they run in editors and
CI without an Airflow installation or metadata database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence

from aq_airflow.cli.params import HELP as PARAMS_HELP
from aq_airflow.cli.specs import check, deep_check, written_by_init
from aq_airflow.cli.terminal import visible
from aq_airflow.devstack.loader_file import loader_files
from aq_airflow.pipeline_spec import SpecIssue

# Measured with the real dag-processor (bench/dag_processor.py, 2 cores): 10,000 specs in 64
# shards parse at most 6.0 s a file cold (32 shards: 11.3 s). An empty shard costs Airflow's
# per-file overhead (~0.3 s a parse cycle); small deployments can take `--shards 8`.
DEFAULT_SHARDS = 64
SCHEMA_FILE = "aq-airflow.schema.json"


def cmd_validate(args: argparse.Namespace) -> int:
    compiled = check(args.paths)
    deep_check(compiled)
    issues = [issue for spec in compiled for issue in spec.issues]
    if args.format == "json":
        print(json.dumps({"files": len(compiled), "errors": [i.as_dict() for i in issues]}, indent=2))
    else:
        for issue in issues:  # a name or value quoted from the spec may hold ESC, CR, bidi overrides
            print(visible(str(issue), newlines=True))
        bad = len({i.file for i in issues})
        print(f"{len(compiled)} spec(s) checked, {len(issues)} error(s) in {bad} file(s)", file=sys.stderr)
    if not compiled:
        print("no *.aq.yaml files found in " + " ".join(args.paths), file=sys.stderr)
        return 1
    return 1 if issues else 0


def _write_file(target: str, text: str) -> None:
    """Write ``text`` to ``target`` whole or not at all: a temporary file in the same folder
    (hidden, not ``.py``: Airflow never parses it), renamed over the target."""
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=os.path.dirname(target) or ".", prefix=f".{os.path.basename(target)}.",
        suffix=".tmp", delete=False,
    )  # fmt: skip
    try:
        with handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)  # what open() would have given it
        os.replace(handle.name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise


def cmd_compile(args: argparse.Namespace) -> int:
    from aq_airflow.codegen import render_dag

    os.makedirs(args.out, exist_ok=True)
    failed = False
    for spec in check(args.paths):
        if spec.plan is not None and not spec.issues:
            target = os.path.join(args.out, f"{spec.plan.dag_id}.py")
            try:
                source = render_dag(spec.plan)
            except Exception as error:  # a bug of ours: a located issue, not a traceback
                message = f"internal error while generating its DAG file (please report it): {error!r}"
                spec.issues = [SpecIssue(spec.path, 1, 1, message)]
            else:
                _write_file(target, source)
                print(f"{spec.path} -> {target}", file=sys.stderr)
                continue
        failed = True
        for issue in spec.issues:  # a duplicate dag_id among them: neither file is written
            print(visible(str(issue), newlines=True))
    return 1 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from aq_airflow.pipeline_spec import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from aq_airflow.pipeline_spec import json_schema

    if args.shards < 1:
        print("--shards must be at least 1", file=sys.stderr)
        return 2
    os.makedirs(args.dags_folder, exist_ok=True)
    wanted = loader_files(args.shards)
    for name in sorted(os.listdir(args.dags_folder)):  # loaders of an earlier init (another shard count)
        path = os.path.join(args.dags_folder, name)
        if name.startswith("aq_dags") and name.endswith(".py") and name not in wanted and written_by_init(path):
            os.remove(path)
            print(f"removed {path} (an earlier aq-airflow loader)", file=sys.stderr)
    kept = 0
    for name, source in wanted.items():
        path = os.path.join(args.dags_folder, name)
        if os.path.exists(path) and not args.force and not written_by_init(path):
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


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aq_airflow.cli.run import run_pipeline

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"--param {item}: write it as key=value", file=sys.stderr)
            return 2
        params[key] = value  # text: read as the spec declares the param (cli.params)
    return run_pipeline(
        Path(args.spec), args.date, params, args.warehouse, Path(args.workdir), args.verbose, args.artifacts,
        from_step=args.from_step, steps=args.steps,
    )  # fmt: skip


def cmd_demo_ui(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aq_airflow.cli.demo_ui import demo_ui

    return demo_ui([Path(p) for p in args.specs], args.warehouse, Path(args.workdir), args.port, args.first_date,
                   args.days, args.conf)  # fmt: skip


def cmd_results(args: argparse.Namespace) -> int:
    from aq_airflow.cli.results import show

    return show(args.pipeline, args.warehouse, args.step, args.last, args.schema, args.format)


def cmd_package(args: argparse.Namespace) -> int:
    from aq_airflow.cli.package import main as package_main

    return package_main(args.spec, args.upload, args.json)


def cmd_show(args: argparse.Namespace) -> int:
    from aq_airflow.cli.show import show

    return show(args.pipeline, args.run, args.artifacts, args.warehouse, args.schema, args.json,
                workdir=args.workdir)  # fmt: skip


def cmd_diff(args: argparse.Namespace) -> int:
    from aq_airflow.cli.diff import diff

    return diff(args.pipeline, args.run_a, args.run_b, args.artifacts, args.warehouse, args.schema, args.patch,
                args.json, workdir=args.workdir)  # fmt: skip


def _run_reader(sub, name: str, help_: str, runs: tuple[str, ...]) -> argparse.ArgumentParser:
    """The arguments ``show`` and ``diff`` share: the pipeline, its runs, the store, the warehouse."""
    reader = sub.add_parser(name, help=help_)
    reader.add_argument(
        "pipeline", metavar="SPEC|PIPELINE",
        help="a spec file (its pipeline, artifact store and warehouse are read from it), or a dag_id",
    )  # fmt: skip
    for run in runs:
        reader.add_argument(run, metavar=run.upper(), help="a run id, `latest`, or `latest~N` (N runs before it)")
    reader.add_argument(
        "--workdir", metavar="DIR",
        help="the --workdir of an `aq-airflow run`: its runs in DIR/artifacts, its metrics in DIR/warehouse.duckdb",
    )  # fmt: skip
    reader.add_argument(
        "--artifacts",
        help="the artifact store holding the runs (default: --workdir's, else the spec's artifacts:, else "
        "$AQ_ARTIFACTS, else .aq-run/artifacts, where `aq-airflow run` keeps them)",
    )
    reader.add_argument(
        "--warehouse", help="where the metrics are: a DuckDB file, or an Airflow connection URI/JSON (as for results)"
    )
    reader.add_argument("--schema", help="schema of the results tables (default: a spec's results_schema)")
    reader.add_argument("--json", action="store_true", help="one JSON document instead of text")
    return reader


def cmd_serve(args: argparse.Namespace) -> int:
    from aq_airflow.cli.serve import serve

    return serve(args.pipelines, args.artifacts, args.workdir, args.host, args.port)


def cmd_gc(args: argparse.Namespace) -> int:
    from aq_airflow.cli.gc import main as gc_main

    return gc_main(args.dags_folder, args.dry_run)


def cmd_dagbag(args: argparse.Namespace) -> int:
    """Load a dags folder the way Airflow's DAG processor does and list what it finds."""
    from aq_airflow.cli.dagbag import show_dagbag

    return show_dagbag(args.dags_folder)


def cmd_doctor(args: argparse.Namespace) -> int:
    from aq_airflow.cli.doctor import diagnose

    return diagnose(args.dags_folder, args.timeout)


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
    run = sub.add_parser(
        "run", help="run one pipeline end to end on this machine (local runner, DuckDB)", epilog=PARAMS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    run.add_argument("spec")
    run.add_argument("--date", help="logical date, YYYY-MM-DD (default: today)")
    run.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="overrides a param the spec declares, read as its default's type (below; repeatable)",
    )  # fmt: skip
    run.add_argument(
        "--warehouse", help="a DuckDB file, or an Airflow connection URI/JSON (default: WORKDIR/warehouse.duckdb)"
    )
    run.add_argument("--workdir", default=".aq-run", help="artifacts and the DuckDB warehouse go here")
    run.add_argument(
        "--artifacts", help="where step outputs go: a folder, or s3://, gs://, abfs:// (default: WORKDIR/artifacts)"
    )
    run.add_argument("--verbose", action="store_true", help="also show Airflow's own logs")
    resume = run.add_mutually_exclusive_group()
    resume.add_argument(
        "--from", dest="from_step", metavar="STEP",
        help="run STEP and everything downstream of it in a new run, reusing the latest successful run's outputs "
        "for everything upstream",
    )  # fmt: skip
    resume.add_argument(
        "--steps", metavar="A,B", help="run exactly these steps in a new run, reusing everything upstream of them"
    )
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser(
        "demo-ui", help="run pipelines here for several dates, then serve their quality pages (Ctrl-C stops)"
    )
    demo.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (their step code beside them)")
    demo.add_argument(
        "--warehouse", help="a DuckDB file, or an Airflow connection URI/JSON (default: WORKDIR/warehouse.duckdb)"
    )
    demo.add_argument("--workdir", default=".aq-demo-ui", help="the Airflow home, artifacts and warehouse go here")
    demo.add_argument(
        "--port", type=_port, default=0, help="the api-server's port on 127.0.0.1 (default: 8080 if free)"
    )
    demo.add_argument("--first-date", help="the first logical date, YYYY-MM-DD (default: DAYS days ago)")
    demo.add_argument("--days", type=int, default=10, help="consecutive dates to run (default 10)")
    demo.add_argument(
        "--conf", action="append", default=[], metavar="DATE=JSON",
        help="run DATE with these params, e.g. 2026-02-27='{\"min_rows\": 6000}' (repeatable)",
    )  # fmt: skip
    demo.set_defaults(func=cmd_demo_ui)
    results = sub.add_parser("results", help="print a pipeline's check and metric history from the warehouse")
    results.add_argument(
        "pipeline", metavar="SPEC|PIPELINE",
        help="a spec file (its pipeline, warehouse connection and results_schema are read from it), or a dag_id",
    )  # fmt: skip
    results.add_argument("--step", help="one step's rows, its `when:` verdict's (STEP.when) included")
    results.add_argument("--last", type=_positive, default=20, help="rows per table (default 20)")
    results.add_argument(
        "--warehouse",
        help="a DuckDB file, or an Airflow connection URI/JSON (default: a spec's connection if Airflow defines "
        "it, else .aq-run/warehouse.duckdb, where `aq-airflow run` keeps its warehouse)",
    )
    results.add_argument("--schema", help="schema of the results tables (default: a spec's results_schema)")
    results.add_argument("--format", choices=("text", "json"), default="text", help="a table, or one JSON document")
    results.set_defaults(func=cmd_results)
    package = sub.add_parser(
        "package", help="print the code package of a spec's steps: digest, files, size (--upload: store it)"
    )
    package.add_argument("spec")
    package.add_argument(
        "--upload", action="store_true", help="store it in the spec's artifact store now (CI), and print where"
    )
    package.add_argument("--json", action="store_true", help="one JSON document")
    package.set_defaults(func=cmd_package)
    show_ = _run_reader(sub, "show", "print what made each output of a run: code, image, inputs, rows, schema",
                        ("run",))  # fmt: skip
    show_.set_defaults(func=cmd_show)
    diff_ = _run_reader(sub, "diff", "print what changed between two runs: code files, image, params, schemas, "
                        "metrics", ("run_a", "run_b"))  # fmt: skip
    diff_.add_argument("--patch", action="store_true", help="a unified diff of each changed code file")
    diff_.set_defaults(func=cmd_diff)
    serve = sub.add_parser(
        "serve", help="serve the promoted models of a pipeline's `serve:` steps on this machine (Ctrl-C stops)"
    )
    serve.add_argument(
        "pipelines", metavar="SPEC|PIPELINE", nargs="+",
        help="spec files (their `serve:` endpoints), or dag_ids (their promotions in the store)",
    )  # fmt: skip
    serve.add_argument("--workdir", metavar="DIR", help="the --workdir of the `aq-airflow run` that promoted them")
    serve.add_argument("--artifacts", help="the artifact store holding `_models/` (default: as for `show`)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port_or_any, default=8080, help="the HTTP port (default 8080; 0: a free one)")
    serve.set_defaults(func=cmd_serve)
    gc = sub.add_parser("gc", help="delete run outputs older than each pipeline's artifacts_ttl")
    gc.add_argument("dags_folder")
    gc.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    gc.set_defaults(func=cmd_gc)
    dagbag = sub.add_parser("dagbag", help="load a dags folder as Airflow would; list DAGs and errors")
    dagbag.add_argument("dags_folder")
    dagbag.set_defaults(func=cmd_dagbag)
    doctor = sub.add_parser("doctor", help="check that the connections and artifact roots of a folder's specs answer")
    doctor.add_argument("dags_folder")
    doctor.add_argument("--timeout", type=_positive, default=10, help="seconds to wait for each answer (default 10)")
    doctor.set_defaults(func=cmd_doctor)
    return main


MAX_LAST = 1_000_000  # rows per table `results --last` reads; past a BIGINT it was a ConversionException


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 and at most :data:`MAX_LAST` (argparse says
    what was wrong, exit 2). ASCII digits only (``isdigit`` takes fullwidth digits and ``²``)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 7 or not 1 <= int(text) <= MAX_LAST:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {MAX_LAST:,}")
    return int(text)


def _port(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535 (argparse says what was wrong, exit 2)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65535")
    return int(text)


def _port_or_any(text: str) -> int:
    """A port, or 0 for any free one."""
    return 0 if text == "0" else _port(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
