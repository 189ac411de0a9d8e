"""`aq-airflow show` and `aq-airflow diff` as users run them (a subprocess of the CLI), over an
artifact store written through the real store (``Location.begin``/``commit``, manifests carrying
``Provenance(...).to_json()``), code packages built, uploaded and pinned by
``artifacts.code_package``, and a DuckDB warehouse holding the runs' metrics as the operators
write them. Then the errors (unknown pipeline, run, a deleted package, no warehouse), and a real
run of `aq-airflow`'s DAG whose manifests may predate provenance."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from aq_airflow.artifacts import code_package
from aq_airflow.artifacts.items import write_items
from aq_airflow.artifacts.provenance import (
    PROVENANCE,
    CodeVersion,
    GitState,
    ImageVersion,
    InputVersion,
    Provenance,
)  # fmt: skip
from aq_airflow.artifacts.store import MANIFEST, Location, file_digest, write_batches
from aq_airflow.results import METRICS_TABLE, ResultsStore
from aq_airflow.warehouse import Warehouse

CLI = [sys.executable, "-m", "aq_airflow.cli"]
DAG = "shop"
RUN_A, RUN_B, RUN_OLD = (f"manual__2026-03-0{d}T00:00:00+00:00" for d in (1, 2, 3))
SPEC = """
pipeline: shop
warehouse: shop_wh
results_schema: aq
steps:
  orders:
    python: shop.steps:orders
  scores:
    python: shop.steps:scores
    inputs: [orders]
  evaluate:
    python: shop.steps:evaluate
    foreach: [us, eu]
"""
STEPS_A = "def orders():\n    return 1\n\n\ndef scores(orders):\n    return orders * 2\n"
STEPS_B = "def orders():\n    return 1\n\n\ndef scores(orders):\n    return orders * 3\n"
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40
RMSE = {RUN_A: 0.25, RUN_B: 0.125}


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AQ_ARTIFACTS"))}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env={**environment, **(env or {})},
                          timeout=300)  # fmt: skip


def commit(root: Path, run_id: str, step: str, table: pa.Table | None, provenance: Provenance | None,
           map_index: int | None = None) -> str:  # fmt: skip
    """Commit one output through the store as the runtime does; returns its manifest's sha256."""
    location = Location.of(f"{root}/{DAG}/{run_id}/{step}" + ("" if map_index is None else f"/{map_index}"))
    attempt = location.begin()
    if table is None:
        fields = {"kind": "none", "files": [], "rows": None, "bytes": 0}
    else:
        fields = write_batches(location, attempt, table.schema, iter(table.to_batches()))
    extra = {PROVENANCE: provenance.to_json()} if provenance else {}
    location.commit({**fields, "step": step, "attempt": attempt, "uri": location.uri, **extra})
    return file_digest(location.fs, location.join(MANIFEST))


def package(folder: Path, root: Path, run_id: str, commit_sha: str) -> CodeVersion:
    built = code_package.build(str(folder))
    uri = code_package.upload(built, str(root))
    code_package.pin(
        f"{root}/{DAG}/{run_id}", code_package.PinnedCode(built.digest, uri, {"commit": commit_sha, "dirty": False})
    )
    return CodeVersion(built.digest, uri, GitState(commit_sha, commit_sha == COMMIT_B))


def write_run(root: Path, run_id: str, code: CodeVersion, image: str, threshold: int, orders: pa.Table) -> None:
    def provenance(step: str, started: str, inputs=None, args=None) -> Provenance:
        return Provenance(
            code=code, image=ImageVersion(image, "sha256:" + "c" * 64 if "1.5" in image else None),
            spec_hash="sha256:" + "d" * 64, args=args or {}, params={"threshold": threshold}, inputs=inputs or {},
            run_id=run_id, logical_date=run_id[8:33], try_number=1 + (run_id == RUN_B),
            started=f"2026-03-01T00:00:{started}+00:00", finished=f"2026-03-01T00:00:{started}.5+00:00",
        )  # fmt: skip

    digest = commit(root, run_id, "orders", orders, provenance("orders", "01"))
    scores = pa.table({"id": orders["id"], "score": pa.array([0.5] * len(orders), pa.float64())})
    used = {"orders": InputVersion("orders", f"{root}/{DAG}/{run_id}/orders", digest)}
    commit(root, run_id, "scores", scores, provenance("scores", "02", used, {"alpha": threshold / 10}))
    evaluate = Location.of(f"{root}/{DAG}/{run_id}/evaluate")
    write_items(evaluate, ["us", "eu"])
    for index in range(2):
        commit(root, run_id, "evaluate", pa.table({"rmse": [0.1 * index]}), provenance("evaluate", "03"), index)


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """A project folder: the spec, `artifacts/` with runs A and B (code, image, params, schema and
    rows changed between them) and an old run without provenance or pin, `wh.duckdb` with metrics."""
    base = tmp_path_factory.mktemp("shop")
    (base / "shop.aq.yaml").write_text(textwrap.dedent(SPEC).lstrip())
    root = base / "artifacts"
    code = base / "code"
    (code / "shop").mkdir(parents=True)
    (code / "shop" / "steps.py").write_text(STEPS_A)
    (code / "shop" / "old.py").write_text("GONE = True\n")
    code_a = package(code, root, RUN_A, COMMIT_A)
    orders_a = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "amount": pa.array([1.0, 2.0, 3.0]),
                         "note": ["x", "y", "z"]})  # fmt: skip
    write_run(root, RUN_A, code_a, "ghcr.io/acme/shop:1.4", 5, orders_a)
    (code / "shop" / "steps.py").write_text(STEPS_B)
    (code / "shop" / "old.py").unlink()
    (code / "shop" / "util.py").write_text("HELP = 1\n")
    code_b = package(code, root, RUN_B, COMMIT_B)
    orders_b = pa.table({"id": pa.array([1.0, 2.0, 3.0, 4.0]), "amount": pa.array([1.0, 2.0, 3.0, 4.0]),
                         "region": ["us", "eu", "us", "eu"]})  # fmt: skip
    write_run(root, RUN_B, code_b, "ghcr.io/acme/shop:1.5", 6, orders_b)
    commit(root, RUN_OLD, "orders", orders_a, None)  # a release before provenance: no record, no pin
    store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: duckdb.connect(str(base / "wh.duckdb"))), "aq")
    store.ensure_tables()
    for day, run_id in enumerate((RUN_A, RUN_B), start=1):
        date = datetime.datetime(2026, 3, day)
        key = {"dag_id": DAG, "run_id": run_id, "step": "scores", "map_index": -1, "logical_date": date}
        row = {**key, "item_label": None, "try_number": 1, "created_at": date, "name": "rmse", "kind": "mean",
               "outcome": "passed", "severity": "warning", "message": "", "value": RMSE[run_id]}  # fmt: skip
        store.replace(METRICS_TABLE, key, [row])
    return base


def test_show_prints_each_steps_code_image_inputs_output_and_metrics(shop):
    shown = cli("show", "shop.aq.yaml", RUN_B, "--artifacts", "artifacts", "--warehouse", "wh.duckdb", cwd=shop)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    text = shown.stdout
    pinned = code_package.read_pin(str(shop / "artifacts" / DAG / RUN_B))
    assert f"code     {pinned.digest}  git {COMMIT_B[:12]}" in text
    assert 'params   {"threshold": 6}' in text
    lines = text.splitlines()
    at = lines.index("scores  (try 2, 00:00:02 → 00:00:02)")
    block = lines[at : at + 8]
    assert block[1] == f"  code     {pinned.digest[7:19]}  git {COMMIT_B[:12]} (dirty: files differ from the commit)"
    assert block[2] == f"  image    ghcr.io/acme/shop:1.5 @ {'c' * 12}"
    orders_manifest = (shop / "artifacts" / DAG / RUN_B / "orders" / MANIFEST).read_bytes()
    assert block[3] == f"  inputs   orders ← orders {__import__('hashlib').sha256(orders_manifest).hexdigest()[:12]}"
    assert block[4] == '  args     {"alpha": 0.6}'
    assert block[5].startswith("  output   table, 4 rows, ") and block[6] == "  schema   id double, score double"
    assert lines.index("orders  (try 2, 00:00:01 → 00:00:01)") < at  # in the order they ran
    assert "evaluate[0:us]  (try 2" in text and "evaluate[1:eu]  (try 2" in text  # each item of a foreach step
    assert "  scores.rmse = 0.125  (passed)" in text


def test_show_json_carries_the_provenance_records(shop):
    shown = cli("show", "shop", "latest", "--artifacts", "artifacts", "--warehouse", "wh.duckdb", "--json", cwd=shop)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["run_id"] == RUN_OLD  # the newest run: written last
    prefix = cli("show", "shop", RUN_A[:18], "--artifacts", "artifacts", "--json", cwd=shop)  # one run starts so
    assert json.loads(prefix.stdout)["run_id"] == RUN_A, prefix.stderr
    shown = cli("show", "shop", "latest~1", "--artifacts", "artifacts", "--warehouse", "wh.duckdb", "--schema", "aq",
                "--json", cwd=shop)  # fmt: skip
    document = json.loads(shown.stdout)
    assert document["run_id"] == RUN_B and document["code"]["git"] == {"commit": COMMIT_B, "dirty": False}
    steps = {s["name"]: s for s in document["steps"]}
    assert set(steps) == {"orders", "scores", "evaluate[0:us]", "evaluate[1:eu]"}
    scores = Provenance.from_json(steps["scores"]["provenance"])
    assert scores.inputs["orders"].step == "orders" and scores.image.name == "ghcr.io/acme/shop:1.5"
    assert steps["orders"]["schema"] == [["id", "double"], ["amount", "double"], ["region", "string"]]
    assert steps["orders"]["rows"] == 4 and steps["evaluate[1:eu]"]["map_index"] == 1
    assert [m["value"] for m in document["results"]["metrics"]] == [0.125] and document["results_note"] is None


def test_an_output_without_provenance_shows_as_not_recorded(shop):
    shown = cli("show", "shop.aq.yaml", RUN_OLD, "--artifacts", "artifacts", "--warehouse", "wh.duckdb", cwd=shop)
    assert shown.returncode == 0, shown.stderr
    assert "code     not recorded" in shown.stdout
    assert "  provenance  not recorded (an output written before aq-airflow recorded provenance)" in shown.stdout
    assert (
        "  output   table, 3 rows" in shown.stdout and "  schema   id int64, amount double, note string" in shown.stdout
    )
    assert "metrics and checks: none recorded for this run" in shown.stdout


def test_diff_names_changed_code_image_params_schemas_rows_and_metrics(shop):
    shown = cli("diff", "shop.aq.yaml", RUN_A, RUN_B, "--artifacts", "artifacts", "--warehouse", "wh.duckdb",
                cwd=shop)  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    assert "  changed  shop/steps.py" in lines and "  added    shop/util.py" in lines
    assert "  removed  shop/old.py" in lines
    assert "param threshold: 5 → 6" in lines
    assert f"image: ghcr.io/acme/shop:1.4 → ghcr.io/acme/shop:1.5@sha256:{'c' * 64}  (steps: evaluate[0], " \
           "evaluate[1], orders, scores)" in lines  # fmt: skip
    assert 'step scores args: {"alpha": 0.5} → {"alpha": 0.6}' in lines
    assert "step orders schema: +region string, -note string, ~id int64 → double" in lines
    assert "step orders rows: 3 → 4" in lines and "step scores rows: 3 → 4" in lines
    assert "metric scores.rmse: 0.25 → 0.125" in lines
    assert "return orders * 3" not in shown.stdout  # the patch only with --patch
    patched = cli("diff", "shop", RUN_A, RUN_B, "--artifacts", "artifacts", "--patch", "--json", cwd=shop)
    assert patched.returncode == 0, patched.stderr
    found = json.loads(patched.stdout)
    assert "-    return orders * 2\n+    return orders * 3\n" in found["code"]["patches"]["shop/steps.py"]
    assert found["code"]["patches"]["shop/util.py"].endswith("+HELP = 1\n")
    assert found["steps"]["orders"]["schema"] == {"added": [["region", "string"]], "removed": [["note", "string"]],
                                                  "retyped": [["id", "int64", "double"]]}  # fmt: skip
    assert found["results"] is None and "metrics and checks not shown" in patched.stderr  # no warehouse here
    assert "Traceback" not in patched.stderr


def test_diff_of_a_run_with_itself_and_with_an_old_run(shop):
    same = cli("diff", "shop", RUN_B, RUN_B, "--artifacts", "artifacts", "--warehouse", "wh.duckdb", cwd=shop)
    assert same.returncode == 0 and same.stdout.splitlines()[1:] == [
        f"code: same package {code_package.read_pin(str(shop / 'artifacts' / DAG / RUN_B)).digest[7:19]}",
        "no differences recorded",
    ]  # fmt: skip
    old = cli("diff", "shop", RUN_A, RUN_OLD, "--artifacts", "artifacts", cwd=shop)
    assert old.returncode == 0, old.stderr
    assert "code: run B recorded no code package" in old.stdout
    assert "step orders: run B's output records no provenance" in old.stdout
    assert "step scores: only in run A" in old.stdout


def test_unknown_pipelines_runs_and_stores_are_one_line_each(shop, tmp_path):
    unknown = cli("show", "nosuch", "latest", "--artifacts", "artifacts", cwd=shop)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines()[-1].startswith("pipeline `nosuch` has no runs in ")
    assert "pass --artifacts ROOT" in unknown.stderr and "Traceback" not in unknown.stderr
    run = cli("diff", "shop", RUN_A, "manual__2027", "--artifacts", "artifacts", cwd=shop)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"pipeline `shop` has no run `manual__2027` in {shop / 'artifacts' / DAG} (runs, newest first: {RUN_OLD}, " \
           f"{RUN_B}, {RUN_A}); name a run id, `latest` or `latest~1`" in run.stderr  # fmt: skip
    far = cli("show", "shop", "latest~9", "--artifacts", "artifacts", cwd=shop)
    assert far.returncode == 2 and "has 3 run(s)" in far.stderr
    nowhere = cli("show", "shop.aq.yaml", "latest", cwd=shop)  # .aq-run/artifacts: not there
    assert nowhere.returncode == 2 and ".aq-run/artifacts, where `aq-airflow run` keeps them" in nowhere.stderr


def test_a_deleted_package_is_named_and_the_rest_still_compared(shop, tmp_path):
    """The pins name the packages where the runs stored them; runs copied to another store find
    theirs under its `_code/`; a package in neither place is one line, and the rest is compared."""
    import shutil

    copy = tmp_path / "artifacts"
    shutil.copytree(shop / "artifacts", copy)
    pinned = code_package.read_pin(str(copy / DAG / RUN_A))
    original, copied = (code_package.location(str(store), pinned.digest) for store in (shop / "artifacts", copy))
    assert pinned.uri == original
    kept = tmp_path / "kept"
    shutil.move(original, kept)
    try:
        moved = cli("diff", "shop", RUN_A, RUN_B, "--artifacts", str(copy), cwd=shop)
        os.remove(copied)
        gone = cli("diff", "shop", RUN_A, RUN_B, "--artifacts", str(copy), cwd=shop)
    finally:
        shutil.move(kept, original)
    assert moved.returncode == 0 and "  changed  shop/steps.py" in moved.stdout, moved.stderr
    assert gone.returncode == 1, gone.stderr
    assert gone.stderr.strip().splitlines()[-1] == (
        f"code files not compared: the code package {pinned.digest} is not at {original} nor at {copied}: it was "
        "deleted, or the runs were made on another store (pass --artifacts ROOT); its files cannot be compared"
    )
    assert "Traceback" not in gone.stderr and "param threshold: 5 → 6" in gone.stdout
    assert f"  files not compared: the code package {pinned.digest}" in gone.stdout


RUN_SPEC = """
pipeline: show_real
steps:
  numbers:
    sql: SELECT range AS n FROM range(10)
  doubled:
    python: show_steps:doubled
    inputs: [numbers]
"""


def test_a_real_run_shows_its_outputs(run_dag, duckdb_warehouse, tmp_path, monkeypatch):
    """A run of the real DAG (dag.test() on the local runner): show reads what the runtime
    committed; an output whose manifest holds no provenance (a runtime that records none) says
    so rather than failing, and one that holds it shows it."""
    from aq_airflow.client import Store
    from aq_airflow.client.provenance import step_records

    folder = tmp_path / "steps"
    folder.mkdir()
    (folder / "show_steps.py").write_text(
        "import pyarrow.compute as pc\n\n\ndef doubled(numbers):\n"
        "    return numbers.append_column('twice', pc.multiply(numbers['n'], 2))\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{folder}:{os.environ['PYTHONPATH']}")
    _, dag_run, states = run_dag("show_real", RUN_SPEC)
    assert set(states.values()) == {"success"}, states
    root = tmp_path / "artifacts"
    shown = cli("show", "show_real", "latest", "--artifacts", str(root), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["run_id"] == dag_run.run_id
    assert {s["step"]: (s["rows"], s["schema"]) for s in document["steps"]} == {
        "numbers": (10, [["n", "int64"]]), "doubled": (10, [["n", "int64"], ["twice", "int64"]])}  # fmt: skip
    records = step_records(Store(root).pipeline("show_real").run(dag_run.run_id))
    text = cli("show", "show_real", dag_run.run_id, "--artifacts", str(root), cwd=tmp_path)
    assert text.returncode == 0 and "Traceback" not in text.stderr
    assert "  output   table, 10 rows, " in text.stdout and "  schema   n int64, twice int64" in text.stdout
    unrecorded = sum(record.provenance is None for record in records)
    assert text.stdout.count("provenance  not recorded") == unrecorded
    assert text.stdout.count("  code     ") + text.stdout.count("  image    ") == 2 * (len(records) - unrecorded)


def test_without_a_store_named_show_finds_a_deployed_airflows_runs(shop, tmp_path):
    """No `--artifacts`, no `artifacts:` and no $AQ_ARTIFACTS: `aq-airflow run`'s `.aq-run/artifacts`
    first, else the store a deployed Airflow's workers write to, `$AIRFLOW_HOME/aq-artifacts` (where
    `aq-airflow package --upload` stores packages too)."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    (home / "aq-artifacts").symlink_to(shop / "artifacts")
    found = cli("show", "shop", RUN_B, cwd=tmp_path, env={"AIRFLOW_HOME": str(home)})
    assert found.returncode == 0, found.stderr
    assert RUN_B in found.stdout
    nowhere = cli("show", "shop", "latest", cwd=tmp_path, env={"AIRFLOW_HOME": str(tmp_path / "empty")})
    assert nowhere.returncode == 2 and "where a deployed Airflow's workers keep them" in nowhere.stderr


def test_a_store_that_fails_is_one_line_naming_it_and_the_fix(shop, tmp_path):
    """A store whose file system fails (here a URI pyarrow refuses at once; in the field an S3
    bucket unreachable from a laptop, or Azure's credential chain) is one line naming the store,
    where it came from and the fix for an `aq-airflow run`'s outputs, never a traceback."""
    store = "s3://acme-ml/aq?endpoint_override=127.0.0.1:9&scheme=ftp"
    for args in (["show", "shop", "latest"], ["diff", "shop", "latest~1", "latest"]):
        failed = cli(*args, "--artifacts", store, cwd=tmp_path)
        assert failed.returncode == 2 and failed.stdout == "", failed.stderr
        assert "Traceback" not in failed.stderr
        line = failed.stderr.strip().splitlines()[-1]
        assert line.startswith(f"cannot read the artifact store {store} (the store from --artifacts): "), line
        assert line.endswith("; for an `aq-airflow run` pass --workdir DIR or --artifacts DIR/artifacts"), line


def test_workdir_reads_a_runs_artifacts_and_warehouse(shop, tmp_path):
    """`--workdir DIR` is what `aq-airflow run --workdir DIR` wrote: DIR/artifacts and
    DIR/warehouse.duckdb (the metrics shown come from it)."""
    demo = tmp_path / ".demo"
    demo.mkdir()
    (demo / "artifacts").symlink_to(shop / "artifacts")
    (demo / "warehouse.duckdb").symlink_to(shop / "wh.duckdb")
    shown = cli("show", str(shop / "shop.aq.yaml"), RUN_B, "--workdir", ".demo", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"store    {demo / 'artifacts' / DAG}" in shown.stdout and "scores.rmse = 0.125" in shown.stdout
    changed = cli("diff", "shop", RUN_A, RUN_B, "--workdir", ".demo", "--schema", "aq", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "metric scores.rmse: 0.25 → 0.125" in changed.stdout
    empty = cli("show", "shop", "latest", "--workdir", "elsewhere", cwd=tmp_path)
    assert empty.returncode == 2 and "(the store from --workdir)" in empty.stderr, empty.stderr


def test_runs_of_aq_airflow_run_are_read_before_a_remote_spec_store(shop, tmp_path):
    """A spec naming a remote store whose pipeline's runs are in `.aq-run/artifacts` (where
    `aq-airflow run` wrote them): those are shown, the remote store is not asked (a bucket that
    does not resolve would fail after seconds), and a note says how to read the spec's store."""
    (tmp_path / "far.aq.yaml").write_text(textwrap.dedent(SPEC).lstrip() + "artifacts: s3://acme-ml/aq\n")
    (tmp_path / ".aq-run").mkdir()
    (tmp_path / ".aq-run" / "artifacts").symlink_to(shop / "artifacts")
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_EC2_METADATA_DISABLED": "true"}  # nothing answers there
    shown = cli("show", "far.aq.yaml", RUN_B, cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert RUN_B in shown.stdout
    assert "not asked: pass --artifacts s3://acme-ml/aq for it" in shown.stderr
