"""Hostile manifests and changed files in the artifact store. A step's ``_manifest.json`` names
its files, their sha256, a table's rows and schema; every reader a downstream step uses (the
runtime's inputs, the checks and publish tasks, the client, ``run --from``) holds the files to it
first. A manifest that points outside its folder, claims other rows or another schema, or a file
whose bytes changed (a swapped pickle too) is refused with BadOutput naming the producer, the file
and what disagreed, and nothing of it is read."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from aq_airflow.artifacts.store import MANIFEST, BadOutput, Location, MissingArtifact, file_digest
from aq_airflow.artifacts.values import read_input, write_output

CLI = [sys.executable, "-m", "aq_airflow.cli"]
HOSTILE_NAMES = ["../../elsewhere/secret.parquet", "{secret}", "sub/part.parquet", "..", "_manifest.json", ".hidden"]


def committed(location: Location, value) -> dict:
    """``value`` committed as a step's output at ``location`` (what the runtime does)."""
    manifest = write_output(location, location.begin(), value)
    location.commit(manifest)
    return location.read_manifest()


def rewrite(location: Location, change) -> None:
    """Rewrite the committed manifest through ``change(manifest)`` (a confused or hostile writer)."""
    path = location.join(MANIFEST)
    with location.fs.open_input_stream(path) as handle:
        manifest = json.loads(handle.read())
    change(manifest)
    with location.fs.open_output_stream(path) as handle:
        handle.write(json.dumps(manifest).encode())


def replace_file(location: Location, name: str, data: bytes) -> None:
    with location.fs.open_output_stream(location.join(name)) as handle:
        handle.write(data)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


# --- files outside the output's folder -------------------------------------------------------


def _refuses_paths(root: str, name: str) -> None:
    secret = Location.of(f"{root}/elsewhere")
    secret.fs.create_dir(secret.path, recursive=True)
    replace_file(secret, "secret.parquet", parquet_bytes(pa.table({"password": ["hunter2"]})))
    output = Location.of(f"{root}/dag/run/producer")
    committed(output, pa.table({"n": [1]}))
    hostile = name.format(secret=secret.join("secret.parquet"))
    rewrite(output, lambda m: m.update(files=[hostile], digests={hostile: digest(b"")}))
    with pytest.raises(BadOutput) as refused:
        read_input(output, "producer", None)
    message = str(refused.value)
    assert "step `producer`" in message and output.uri in message, message
    assert "not a plain file name in the output's folder" in message, message
    assert "hunter2" not in message


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_path_in_a_manifests_files_is_refused_naming_the_producer(tmp_path, name):
    _refuses_paths(str(tmp_path / "store"), name)


@pytest.mark.parametrize("name", ["../../elsewhere/secret.parquet", "{secret}", "sub/part.parquet"])
def test_a_path_in_a_manifests_files_is_refused_on_s3(s3_emulator, name):
    s3_emulator("hostile")
    _refuses_paths("s3://hostile/aq", name)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m.update(files="part.parquet"), "not a plain file name"),
        (lambda m: m.update(files=m["files"] * 2, digests=m["digests"]), "lists a file twice"),
        (lambda m: m.update(kind="tables"), "kind 'tables' is none of table, object, files, none"),
        (lambda m: m.pop("kind"), "its manifest has no kind"),
        (lambda m: m.update(rows="999"), "rows '999' is not a row count"),
        (lambda m: m.update(rows=-1), "rows -1 is not a row count"),
        (lambda m: m.update(schema=[["n"]]), "schema is not a list of [column, type] pairs"),
        (lambda m: m.update(digests={}), "digests are not one for each of its files"),
        (lambda m: m.update(digests={f: "md5:00" for f in m["files"]}), "is not sha256:<64 hex digits>"),
    ],
)
def test_a_manifest_of_another_shape_is_refused(tmp_path, change, expected):
    output = Location.of(str(tmp_path / "producer"))
    committed(output, pa.table({"n": [1]}))
    rewrite(output, change)
    with pytest.raises(BadOutput, match="step `producer`") as refused:
        read_input(output, "producer", None)
    assert expected in str(refused.value)


def test_a_manifest_that_is_not_json_or_too_deep_is_refused(tmp_path):
    output = Location.of(str(tmp_path / "producer"))
    committed(output, pa.table({"n": [1]}))
    for data in (b"{not json", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b'{"kind": "table"' + b" " * 10):
        replace_file(output, MANIFEST, data)
        with pytest.raises(BadOutput, match=r"step `producer` .*: its manifest is not valid JSON"):
            read_input(output, "producer", None)


# --- rows, schema, bytes ---------------------------------------------------------------------


def test_a_manifest_claiming_999_rows_for_a_1_row_file_fails_the_downstream_step(tmp_path):
    """A real ``aq-airflow run``: a confused command step rewrites its input's manifest (999 rows);
    the python step downstream of both fails naming the producer, its file and the two counts."""
    (tmp_path / "tamper_steps.py").write_text(
        "import pyarrow as pa\n\n"
        "def one_row():\n    return pa.table({'n': [1]})\n\n"
        "def total(source, tamper=None):\n    return {'total': sum(source.column('n').to_pylist())}\n"
    )
    (tmp_path / "tamper_edit.py").write_text(
        "import json, os\n"
        "path = os.path.join(os.environ['AQ_INPUT_SOURCE'], '_manifest.json')\n"
        "with open(path) as handle:\n    manifest = json.load(handle)\n"
        "manifest['rows'] = 999\n"
        "with open(path, 'w') as handle:\n    json.dump(manifest, handle)\n"
    )
    spec = tmp_path / "tampered.aq.yaml"
    spec.write_text(
        textwrap.dedent("""
        pipeline: tampered
        steps:
          source:
            python: tamper_steps:one_row
          tamper:
            command: [python, -m, tamper_edit]
            inputs: [source]
          total:
            python: tamper_steps:total
            inputs: [source, tamper]
        """)
    )
    result = subprocess.run([*CLI, "run", str(spec), "--date", "2026-03-01", "--workdir", str(tmp_path / "work")],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    [folder] = (tmp_path / "work" / "artifacts" / "tampered").glob("*/source")
    [part] = json.loads((folder / MANIFEST).read_text())["files"]
    assert "total.run failed" in result.stderr, result.stderr[-3000:]
    assert (
        f"step `total`, input `source`: the output of step `source` at {folder}: its files hold 1 row(s), its "
        "manifest says 999; it is not read. Run step `source` again"
    ) in result.stderr, result.stderr[-3000:]
    assert part.startswith("part-") and "Traceback" not in result.stderr.split("total.run failed")[1]


def test_a_file_replaced_by_another_schemas_is_refused(tmp_path, caplog):
    output = Location.of(str(tmp_path / "producer"))
    [part] = committed(output, pa.table({"n": [1, 2, 3]}))["files"]
    other = parquet_bytes(pa.table({"n": ["a", "b", "c"], "extra": [1.0, 2.0, 3.0]}))
    replace_file(output, part, other)
    with pytest.raises(BadOutput) as refused:  # its bytes are not the committed ones
        read_input(output, "producer", None)
    assert f"file {part} has sha256:{hashlib.sha256(other).hexdigest()}, its manifest says sha256:" in str(
        refused.value
    )
    rewrite(output, lambda m: m["digests"].update({part: digest(other)}))  # a writer that re-hashed it
    with pytest.raises(BadOutput) as refused:
        read_input(output, "producer", None)
    assert str(refused.value) == (
        f"the output of step `producer` at {output.uri}: file {part} has schema (n string, extra double), its "
        "manifest says (n int64); it is not read. Run step `producer` again"
    )
    rewrite(output, lambda m: (m.pop("digests"), m.pop("writer")))  # a manifest of the release before digests
    with caplog.at_level(logging.WARNING, logger="aq_airflow.artifacts.store"):
        with pytest.raises(BadOutput, match=r"has schema \(n string, extra double\)"):
            read_input(output, "producer", None)
    assert "has no digests (written before aq-airflow recorded them)" in caplog.text


def test_a_manifest_without_digests_still_reads_with_a_warning(tmp_path, caplog):
    """The release before digests wrote none: its outputs read, logged, rows and schema checked."""
    output = Location.of(str(tmp_path / "producer"))
    table = pa.table({"n": [1, 2, 3]})
    committed(output, table)
    rewrite(output, lambda m: (m.pop("digests"), m.pop("writer")))
    with caplog.at_level(logging.WARNING, logger="aq_airflow.artifacts.store"):
        assert read_input(output, "producer", None).equals(table)
    assert f"the output of step `producer` at {output.uri} has no digests" in caplog.text
    rewrite(output, lambda m: m.update(rows=4))
    with pytest.raises(BadOutput, match=r"its files hold 3 row\(s\), its manifest says 4"):
        read_input(output, "producer", None)


def test_a_listed_file_that_is_gone_or_not_parquet_is_refused(tmp_path):
    output = Location.of(str(tmp_path / "producer"))
    [part] = committed(output, pa.table({"n": [1]}))["files"]
    rewrite(output, lambda m: (m.pop("digests"), m.pop("writer")))  # the release before digests
    replace_file(output, part, b"PAR1 not really")
    with pytest.raises(BadOutput, match=rf"file {part} is not a readable Parquet file"):
        read_input(output, "producer", None)
    os.remove(output.join(part))
    with pytest.raises(BadOutput, match=rf"its manifest lists {part}, which is not a file there"):
        read_input(output, "producer", None)
    os.mkdir(output.join(part))  # a folder of that name
    with pytest.raises(BadOutput, match=rf"its manifest lists {part}, which is not a file there"):
        read_input(output, "producer", None)


def test_a_swapped_pickle_is_never_unpickled(tmp_path):
    """A pickle runs code when loaded: one whose bytes are not the committed ones is not loaded."""
    output = Location.of(str(tmp_path / "model"))
    [name] = committed(output, {"weight": 3})["files"]
    assert read_input(output, "model", None) == {"weight": 3}
    ran = tmp_path / "the swapped pickle ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(ran),)

    replace_file(output, name, pickle.dumps(Payload()))
    with pytest.raises(BadOutput, match=rf"step `model` .*: file {name} has sha256:\w+, its manifest says sha256:"):
        read_input(output, "model", None)
    assert not ran.exists()


def test_changed_bytes_on_s3_are_refused(s3_emulator):
    """An object store's file is hashed in ranges fetched in parallel (larger than one range here)."""
    s3_emulator("changed")
    output = Location.of("s3://changed/aq/dag/run/producer")
    blob = os.urandom(20 * 2**20)
    [name] = committed(output, blob)["files"]
    with output.fs.open_input_stream(output.join(name)) as handle:
        stored = handle.read()
    assert file_digest(output.fs, output.join(name)) == digest(stored)
    assert read_input(output, "producer", None) == blob
    changed = bytearray(stored)
    changed[-100] ^= 1
    replace_file(output, name, bytes(changed))
    with pytest.raises(BadOutput, match=rf"step `producer` at s3://changed/aq/dag/run/producer: file {name} has"):
        read_input(output, "producer", None)


# --- the checks and publish tasks ------------------------------------------------------------

CHECKED = """
pipeline: {name}
steps:
  scores:
    python: manifest_steps:scores
    checks: [{{name: enough, row_count: {{min: 1}}}}]
    publish: {{table: hostile.{name}, mode: replace}}
"""


@pytest.fixture
def manifest_steps(tmp_path, monkeypatch):
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "manifest_steps.py").write_text(
        "import pyarrow as pa\n\ndef scores():\n    return pa.table({'id': [1, 2, 3], 'score': [0.1, 0.5, 0.9]})\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def test_the_checks_and_publish_tasks_refuse_a_changed_output(run_dag, duckdb_warehouse, manifest_steps, tmp_path):
    """dag.test() commits a step, checks it and publishes it; then its file changes, and the DAG's
    own checks and publish operators, run again in that DAG run, refuse it: checks record and
    raise the error (no verdict on data that is not the step's), publish loads nothing."""
    import duckdb
    from airflow.exceptions import AirflowException
    from airflow.utils.session import create_session

    name = "hostile_checked"
    dag, dag_run, states = run_dag(name, CHECKED.format(name=name))
    assert set(states.values()) == {"success"}, states
    output = Location.of(str(tmp_path / "artifacts" / name / dag_run.run_id / "scores"))
    [part] = output.read_output("scores")["files"]
    with create_session() as session:
        instances = {ti.task_id: ti for ti in dag_run.get_task_instances(session=session)}

    def execute(task_id: str):
        context = {"ti": instances[task_id], "run_id": dag_run.run_id, "logical_date": dag_run.logical_date,
                   "dag_run": dag_run, "dag": dag}  # fmt: skip
        return dag.get_task(task_id).execute(context)

    assert execute("scores.checks") == {"checks": 1, "passed": 1}  # as committed, it reads
    original = Path(output.join(part)).read_bytes()
    changed = parquet_bytes(pa.table({"id": [1, 2, 3], "score": [0.1, 0.5, 0.99]}))  # one value changed
    Path(output.join(part)).write_bytes(changed)
    with pytest.raises(AirflowException) as failed:
        execute("scores.checks")
    assert f"could not read the data: the output of step `scores` at {output.uri}: file {part} has " in str(
        failed.value
    )
    with duckdb.connect(str(duckdb_warehouse), read_only=True) as conn:
        [(outcome, message)] = conn.execute(
            "SELECT outcome, message FROM aq_check_results WHERE dag_id = ? AND run_id = ?", [name, dag_run.run_id]
        ).fetchall()
    assert outcome == "error" and f"file {part} has {digest(changed)}, its manifest says {digest(original)}" in message

    # a writer that re-hashed its own file of another schema: publish refuses it, the table keeps its rows
    other = parquet_bytes(pa.table({"id": ["x"], "score": ["high"]}))
    Path(output.join(part)).write_bytes(other)
    rewrite(output, lambda m: m["digests"].update({part: digest(other)}))
    with pytest.raises(MissingArtifact) as refused:
        execute("scores.publish")
    assert f"file {part} has schema (id string, score string), its manifest says (id int64, score double)" in str(
        refused.value
    )
    with duckdb.connect(str(duckdb_warehouse), read_only=True) as conn:
        assert conn.execute(f"SELECT sum(id) FROM hostile.{name}").fetchone() == (6,)


# --- a normal run, the client and resume -----------------------------------------------------

STEPS = """
import os
import pyarrow as pa


def double(numbers):
    return pa.table({"n": [2 * v for v in numbers.column("n").to_pylist()]})


def fit(doubled):
    return {"weight": sum(doubled.column("n").to_pylist())}


def per_region(model, item):
    return pa.table({"region": [item], "score": [model["weight"] * len(item)]})


def total(per_region):
    return per_region
"""

WRITE_FILES = """
import os
import pyarrow as pa
import pyarrow.parquet as pq

out = os.environ["AQ_OUTPUT"]
pq.write_table(pa.table({"n": [1, 2]}), os.path.join(out, "a.parquet"))
pq.write_table(pa.table({"n": [3]}), os.path.join(out, "b.parquet"))
"""

SPEC = """
pipeline: digests
params: {regions: [eu, us]}
steps:
  numbers:
    sql: SELECT * FROM (VALUES (1), (2), (3)) t(n)
  doubled:
    python: digest_steps:double
    inputs: [numbers]
  model:
    python: digest_steps:fit
    inputs: [doubled]
  per_region:
    python: digest_steps:per_region
    foreach: {param: regions}
    inputs: [model]
  total:
    python: digest_steps:total
    inputs: [per_region]
  parts:
    command: [python, -m, digest_parts]
    inputs: [doubled]
  report:
    command: [python, -c, "import os; open(os.path.join(os.environ['AQ_OUTPUT'], 'report.md'), 'w').write('# ok')"]
    inputs: [parts]
"""


@pytest.fixture(scope="module")
def digests_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digests")
    (folder / "digest_steps.py").write_text(STEPS)
    (folder / "digest_parts.py").write_text(WRITE_FILES)
    (folder / "digests.aq.yaml").write_text(SPEC)
    result = aq_run(folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


def aq_run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "run", str(folder / "digests.aq.yaml"), "--date", "2026-03-01", "--workdir", str(folder / "work"),
         *args], capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def manifests(folder: Path) -> dict[str, dict]:
    """Every committed manifest under the folder's runs, by its folder relative to the runs' root."""
    root = folder / "work" / "artifacts" / "digests"
    return {str(p.parent.relative_to(root)): json.loads(p.read_text()) for p in root.rglob(MANIFEST)}


def test_a_normal_runs_manifests_carry_digests_that_verify(digests_run):
    found = manifests(digests_run)
    kinds = {path.split("/", 1)[1]: m["kind"] for path, m in found.items()}
    assert kinds == {"numbers": "table", "doubled": "table", "model": "object", "per_region/0": "table",
                     "per_region/1": "table", "total": "table", "parts": "table", "report": "files"}  # fmt: skip
    for path, manifest in found.items():
        folder = digests_run / "work" / "artifacts" / "digests" / path
        assert manifest["writer"] == "aq-airflow" and manifest["files"], path
        assert manifest["digests"] == {name: digest((folder / name).read_bytes()) for name in manifest["files"]}, path
        assert Location.of(str(folder)).read_output(path) == manifest
    parts = next(m for path, m in found.items() if path.endswith("/parts"))
    assert parts["files"] == ["a.parquet", "b.parquet"] and parts["rows"] == 3  # command step files, hashed at commit


def test_the_client_refuses_a_changed_output(digests_run, tmp_path):
    from aq_airflow.client import MissingOutput, Store

    copy = tmp_path / "artifacts"
    shutil.copytree(digests_run / "work" / "artifacts", copy)
    run = Store(copy).pipeline("digests").latest_run()
    assert run.step("doubled").read().column("n").to_pylist() == [2, 4, 6]
    output = run.step("doubled").location
    rewrite(output, lambda m: m.update(schema=[["n", "string"]]))
    with pytest.raises(MissingOutput) as refused:
        run.step("doubled").read()
    [part] = run.step("doubled").manifest["files"]
    assert str(refused.value) == (
        f"step `doubled` of run `{run.run_id}` of pipeline `digests`: the output of step `doubled` at "
        f"{output.uri}: file {part} has schema (n int64), its manifest says (n string); it is not read. "
        "Run step `doubled` again"
    )
    model = run.step("model").location
    [name] = run.step("model").manifest["files"]
    replace_file(model, name, pickle.dumps({"weight": 0}))
    with pytest.raises(MissingOutput, match=rf"step `model` of run .*: file {name} has sha256:"):
        run.step("model").read()


@pytest.mark.slow
def test_resume_refuses_to_reuse_a_changed_output_and_reused_ones_keep_valid_digests(digests_run):
    before = set(manifests(digests_run))
    result = aq_run(digests_run, "--from", "total")  # reuses numbers, doubled, model and per_region's items
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    resumed = {path: m for path, m in manifests(digests_run).items() if path not in before}
    reused = {path.split("/", 1)[1] for path, m in resumed.items() if "reused_from" in m}
    assert reused == {"numbers", "doubled", "model", "per_region/0", "per_region/1"}, sorted(resumed)
    for path, manifest in resumed.items():  # the copies' digests hold
        assert set(manifest["digests"]) == set(manifest["files"]), path
        assert Location.of(str(digests_run / "work" / "artifacts" / "digests" / path)).read_output(path) == manifest
    [source] = [p for p in resumed if p.endswith("/model")]
    model = Location.of(str(digests_run / "work" / "artifacts" / "digests" / source))
    [name] = resumed[source]["files"]
    replace_file(model, name, pickle.dumps({"weight": -1}))
    result = aq_run(digests_run, "--from", "total")  # the latest successful run is the resumed one
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"step `model`: run {source.split('/')[0]}'s output is not reused: the output of step `model` at " in (
        result.stderr
    )
    assert f"file {name} has sha256:" in result.stderr and "Traceback" not in result.stderr
    # the changed file is the source run's, named as such; the refused copy leaves nothing behind
    assert f"at {model.uri}" in result.stderr, result.stderr[-3000:]
    after = {str(p) for p in (digests_run / "work" / "artifacts" / "digests").rglob("*") if p.is_file()}
    leftovers = [p for p in after if p.endswith(f"/model/{name}") and f"/{source.split('/')[0]}/" not in p]
    assert not [p for p in leftovers if not os.path.exists(os.path.join(os.path.dirname(p), "_manifest.json"))]


def test_a_manifest_fuzz_smoke_run_has_no_failure():
    """`make fuzz`'s manifest campaign in small: mutated manifests and files of every kind of
    output, read as a downstream step reads them; each refused (BadOutput / MissingArtifact) or
    read as committed, never another exception, changed data read as whole, or a pickle run."""
    from tests.fuzzing import ManifestFuzz, manifest_summary

    fuzz = ManifestFuzz(300, seed=1)
    tally = fuzz.run()
    report = manifest_summary(fuzz)
    assert tally.failures == [], report
    assert tally.cases == 300 and sum(tally.refused.values()) + tally.read == 300, report
    assert tally.read > 0 and tally.refused["digest differs"] > 0 and tally.refused["not a plain name"] > 0, report


def test_a_command_steps_parquet_of_two_schemas_or_not_parquet_is_not_committed(tmp_path):
    """What a command step's user code wrote is hashed and committed by the worker; Parquet files
    that are not one table (two schemas), or a `.parquet` that is not Parquet, commit nothing."""
    from aq_airflow.artifacts.store import clear, commit_files

    output = Location.of(str(tmp_path / "parts"))
    attempt = clear(output)
    pq.write_table(pa.table({"n": [1]}), output.join("a.parquet"))
    pq.write_table(pa.table({"n": ["x"]}), output.join("b.parquet"))
    with pytest.raises(BadOutput, match=r"step `parts` wrote Parquet files of different schemas \(a.parquet and b"):
        commit_files(output, attempt, {"step": "parts"})
    Path(output.join("b.parquet")).write_text("not parquet")
    with pytest.raises(BadOutput, match=r"step `parts` wrote b.parquet, which is not a readable Parquet file"):
        commit_files(output, attempt, {"step": "parts"})
    with pytest.raises(MissingArtifact, match="failed before committing"):
        output.read_manifest("parts")
    os.remove(output.join("b.parquet"))
    Path(output.join("tab\there.txt")).write_text("odd")
    with pytest.raises(BadOutput, match=r"step `parts` wrote a file named 'tab\\there.txt', which a manifest cannot"):
        commit_files(output, attempt, {"step": "parts"})
    os.remove(output.join("tab\there.txt"))
    manifest = commit_files(output, attempt, {"step": "parts"})
    assert manifest["digests"] == {"a.parquet": digest(Path(output.join("a.parquet")).read_bytes())}
    assert read_input(output, "parts", None).column("n").to_pylist() == [1]


# --- a stamped manifest without digests, a folder of files, a pickle read once, resume ----------


def test_a_manifest_stamped_by_our_writer_without_digests_is_refused(tmp_path):
    """The writer stamp and the digests came in one release: a manifest that claims our writer
    and has no digests was edited (its digests dropped to get a changed file read), not legacy."""
    from aq_airflow.artifacts.manifest import is_ours

    output = Location.of(str(tmp_path / "producer"))
    [part] = committed(output, pa.table({"n": [1, 2]}))["files"]
    replace_file(output, part, parquet_bytes(pa.table({"n": [7, 8]})))  # same rows and schema, other values
    rewrite(output, lambda m: m.pop("digests"))
    with pytest.raises(BadOutput) as refused:
        read_input(output, "producer", None)
    assert str(refused.value) == (
        f'the output of step `producer` at {output.uri}: its manifest says our writer made it ("writer": '
        '"aq-airflow") but has no digests, which our writer records in every manifest it stamps; it is not read. '
        "Run step `producer` again"
    )
    with pytest.raises(BadOutput, match="but has no digests"):
        output.read_manifest("producer")  # its shape already: the client's `.manifest`, resume's check
    assert not is_ours(json.loads(Path(output.join(MANIFEST)).read_text()))  # gc: not one of ours either


def _files_output(folder: Path, names: dict[str, str]) -> Location:
    """A command step's folder of files committed as the worker commits it."""
    from aq_airflow.artifacts.store import clear, commit_files

    output = Location.of(str(folder))
    attempt = clear(output)
    for name, text in names.items():
        Path(output.join(name)).write_text(text)
    manifest = commit_files(output, attempt, {"step": "report"})
    assert manifest["kind"] == "files", manifest
    return output


@pytest.mark.parametrize(
    ("extra", "shown"),
    [("later.md", "'later.md'"), ("_SUCCESS", "'_SUCCESS'"), (".hidden", "'.hidden'"), ("sub/", "'sub'")],
)
def test_a_folder_of_files_holding_anything_its_manifest_does_not_list_is_refused(tmp_path, extra, shown):
    """A `files` output is handed to the next step whole (its folder), but only the files its
    manifest lists are hashed: a file added after the commit, a `_`/`.` file, a folder, would be
    read unchecked. Refused, naming it; the commit's own temporary manifest name is ours."""
    output = _files_output(tmp_path / "report", {"report.md": "# ok\n", "data.csv": "a\n1\n"})
    assert read_input(output, "report", None) == output.uri
    Path(output.join("._manifest.json.0123abcd")).write_text("{}")  # a commit under way (or one that left it)
    assert read_input(output, "report", None) == output.uri
    if extra.endswith("/"):
        os.mkdir(output.join(extra.rstrip("/")))
    else:
        Path(output.join(extra)).write_text("unchecked")
    with pytest.raises(BadOutput) as refused:
        read_input(output, "report", None)
    assert str(refused.value) == (
        f"the output of step `report` at {output.uri}: its folder holds {shown}, which its manifest does not list "
        "(a folder of files is handed over whole: nothing in it is read unchecked); it is not read. Run step "
        "`report` again"
    )


@pytest.mark.parametrize(("extra", "what"), [("_SUCCESS", "a file named '_SUCCESS'"), ("sub/", "a folder named 'sub'")])
def test_a_command_step_writing_a_hidden_file_or_a_folder_beside_its_files_commits_nothing(tmp_path, extra, what):
    """What a reader would refuse is refused at the commit, saying what to do: nothing committed."""
    from aq_airflow.artifacts.store import clear, commit_files

    output = Location.of(str(tmp_path / "report"))
    attempt = clear(output)
    Path(output.join("report.md")).write_text("# ok\n")
    if extra.endswith("/"):
        os.mkdir(output.join(extra.rstrip("/")))
    else:
        Path(output.join(extra)).write_text("")
    with pytest.raises(BadOutput) as refused:
        commit_files(output, attempt, {"step": "report"})
    assert str(refused.value) == (
        f"step `report` wrote {what} beside its files: a folder of files goes to the next step whole, and its "
        "manifest lists (and hashes) plain files only, none starting with `.` or `_`: remove or rename it, or write "
        "it outside $AQ_OUTPUT; nothing was committed"
    )
    with pytest.raises(MissingArtifact, match="failed before committing"):
        output.read_manifest("report")


class _SwappingStore(pafs.FileSystemHandler):
    """A local folder as a pyarrow filesystem whose `.pkl` files change after their first read:
    a store written to between a reader's hash and its unpickling."""

    def __init__(self, payload: bytes):
        self.local, self.payload, self.opened = pafs.LocalFileSystem(), payload, []

    def _input(self, path: str):
        self.opened.append(path)
        if path.endswith(".pkl") and self.opened.count(path) > 1:
            return pa.BufferReader(self.payload)
        return self.local.open_input_file(path)

    def open_input_stream(self, path):
        return self._input(path)

    def open_input_file(self, path):
        return self._input(path)

    def get_type_name(self):
        return "swapping"

    def equals(self, other):
        return self is other

    def normalize_path(self, path):
        return path

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.local.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.local.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise NotImplementedError

    def delete_file(self, path):
        self.local.delete_file(path)

    def move(self, src, dest):
        self.local.move(src, dest)

    def copy_file(self, src, dest):
        self.local.copy_file(src, dest)

    def open_output_stream(self, path, metadata):
        return self.local.open_output_stream(path)

    def open_append_stream(self, path, metadata):
        return self.local.open_append_stream(path)


def test_a_pickle_is_unpickled_from_the_bytes_that_were_hashed(tmp_path):
    """The pickle is read once: the digest is of the bytes unpickled. A store whose file changes
    after a first read (hashed, then read again to unpickle) cannot slip code in between."""
    ran = tmp_path / "the swapped pickle ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(ran),)

    plain = Location.of(str(tmp_path / "model"))
    committed(plain, {"weight": 3})
    handler = _SwappingStore(pickle.dumps(Payload()))
    store = Location(pafs.PyFileSystem(handler), plain.path, plain.uri)
    assert read_input(store, "model", None) == {"weight": 3}
    assert not ran.exists()
    [name] = store.read_manifest("model")["files"]
    assert handler.opened.count(store.join(name)) == 1  # read once, hashed and unpickled from those bytes


def test_resume_checks_a_source_without_digests_before_copying_and_says_so(tmp_path):
    """A reused output of the release before digests: held to its rows and schema before anything
    is copied (one that disagrees is not reused, and nothing lands in the new run), and its copy,
    which the commit hashes, says it was checked for rows and schema only, as the run prints."""
    from aq_airflow.cli.resume import UNVERIFIED, ResumeError, _copy

    source = Location.of(str(tmp_path / "old_run" / "scores"))
    committed(source, pa.table({"n": [1, 2, 3]}))
    rewrite(source, lambda m: (m.pop("digests"), m.pop("writer")))
    target = Location.of(str(tmp_path / "new_run" / "scores"))
    notes = _copy(source, target, "scores", "old_run")
    assert notes == [
        f"step `scores`: reused {source.uri} with its {UNVERIFIED}; its copy's digests are of the bytes copied"
    ]
    copy = target.read_output("scores")
    assert copy["reused_from"] == {"run_id": "old_run", "uri": source.uri, "verified": UNVERIFIED}
    assert read_input(target, "scores", None).column("n").to_pylist() == [1, 2, 3]

    rewrite(source, lambda m: m.update(rows=4))  # a legacy manifest that disagrees with its file
    elsewhere = Location.of(str(tmp_path / "third_run" / "scores"))
    with pytest.raises(ResumeError) as refused:
        _copy(source, elsewhere, "scores", "old_run")
    assert str(refused.value).startswith(
        f"step `scores`: run old_run's output is not reused: the output of step `scores` at {source.uri}: its files "
        "hold 3 row(s), its manifest says 4"
    )
    assert not Path(elsewhere.path).exists()  # checked before anything was copied
