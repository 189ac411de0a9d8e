"""Hostile files and names in a dags folder: what is not a readable UTF-8 spec, file names that
give no dag_id, two specs of one dag_id. Each is a located error (``file:line:col: message``
that says how to fix it), a visible placeholder DAG (tag ``aq:invalid``) in Airflow, a clean line
from ``validate`` and ``compile``, and never hides another pipeline."""

from __future__ import annotations

import contextlib
import ctypes
import os
import posixpath
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from aq_airflow.cli.main import main as cli
from aq_airflow.live_dags import INVALID_TAG, load_dags
from aq_airflow.pipeline_spec import SpecError, SpecFile
from aq_airflow.pipeline_spec.types import DAG_ID_PATTERN, DagId, StepName, is_dag_id
from aq_airflow.plan import compile_text
from aq_airflow.plan.model import ArtifactRef
from tests.helpers import shard_import_errors, write

GOOD = "pipeline: {name}\nsteps:\n  a:\n    sql: SELECT 1 AS x\n  b:\n    command: [echo, b]\n    inputs: [a]\n"
NAMELESS = "steps:\n  a:\n    sql: SELECT 1 AS x\n"
AIRFLOW_LOG = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \[")  # Airflow's own log lines, on stdout


def dagbag(folder: Path) -> DagBag:
    """The folder as Airflow's DAG processor loads it; the loader file must never fail to import."""
    bag = DagBag(dag_folder=str(folder))
    assert shard_import_errors(bag) == {}, bag.import_errors
    placeholders = [dag_id for dag_id, dag in bag.dags.items() if INVALID_TAG in dag.tags]
    # one per broken spec, but for a path that is not UTF-8 (no import error can be keyed by it)
    assert len(bag.import_errors) <= len(placeholders), (bag.import_errors, placeholders)
    return bag


def assert_loads(bag: DagBag, *dag_ids: str) -> None:
    for dag_id in dag_ids:
        assert dag_id in bag.dags and INVALID_TAG not in bag.dags[dag_id].tags, sorted(bag.dags)


def placeholder(bag: DagBag, dag_id: str):
    dag = bag.dags[dag_id]
    assert dag.tags == {INVALID_TAG} and dag.task_ids == ["invalid_spec"]
    return dag


def cli_lines(capsys, *argv: str) -> tuple[int, list[str], str]:
    """``aq-airflow ARGV`` in this process: exit code, stdout lines, stderr (no traceback). What
    the test printed before (Airflow's multi-line log of a DagBag's import errors) is left out."""
    capsys.readouterr()
    code = cli(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, [line for line in out.splitlines() if not AIRFLOW_LOG.match(line)], err


@contextlib.contextmanager
def without_root_read_override():
    """File permissions as a non-root dag-processor meets them. Run as root (as here), the
    process reads a mode-000 file anyway (CAP_DAC_OVERRIDE); this drops that capability and
    CAP_DAC_READ_SEARCH from this thread's effective set for the block, so the kernel really
    refuses, then raises them again (they stay in the permitted set)."""
    if os.geteuid() != 0:
        yield
        return

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    assert libc.capget(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())
    saved = data[0].effective
    data[0].effective &= ~((1 << 1) | (1 << 2))  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    assert libc.capset(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())
    try:
        yield
    finally:
        data[0].effective = saved
        assert libc.capset(ctypes.byref(header), data) == 0


# --- what is not a readable UTF-8 spec -------------------------------------------------------


def test_a_non_utf8_spec_is_a_located_error_and_hides_no_other_dag(dags_folder, capsys):
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good"))
    latin1 = dags_folder / "latin1.aq.yaml"
    latin1.write_bytes(b"pipeline: latin1\n# caf\xe9 owner\nsteps:\n  a:\n    sql: SELECT 1\n")
    bag = dagbag(dags_folder)
    assert_loads(bag, "good")
    expected = (
        f"{latin1}:2:6: the file is not UTF-8 text: byte 0xe9 (offset 22 in the file) cannot be decoded; "
        "save the file as UTF-8"
    )
    dag = placeholder(bag, "latin1")  # its declared dag_id cannot be read: named by its file
    assert dag.description == f"INVALID SPEC: {expected}"
    code, lines, err = cli_lines(capsys, "validate", str(dags_folder))
    assert (code, lines) == (1, [expected])
    assert "2 spec(s) checked, 1 error(s) in 1 file(s)" in err
    code, lines, _ = cli_lines(capsys, "compile", str(dags_folder), "--out", str(dags_folder.parent / "out"))
    assert (code, lines) == (1, [expected])
    assert sorted(p.name for p in (dags_folder.parent / "out").iterdir()) == ["good.py"]


def test_a_utf16_spec_is_told_to_save_it_as_utf8(tmp_path, capsys):
    path = tmp_path / "wide.aq.yaml"
    path.write_bytes(NAMELESS.encode("utf-16"))
    code, lines, _ = cli_lines(capsys, "validate", str(path))
    assert (code, lines) == (
        1,
        [f"{path}:1:1: the file is UTF-16 text; aq-airflow reads specs as UTF-8: save it as UTF-8"],
    )


def test_a_broken_symlink_named_like_a_spec_is_a_located_error_and_hides_no_other_dag(dags_folder, capsys):
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good"))
    link = dags_folder / "gone.aq.yaml"
    link.symlink_to(dags_folder / "moved-away.aq.yaml")
    bag = dagbag(dags_folder)
    assert_loads(bag, "good")
    expected = (
        f"{link}:1:1: cannot read the file: it is a symbolic link to `{dags_folder}/moved-away.aq.yaml`, "
        "which does not exist; fix or remove the link"
    )
    assert placeholder(bag, "gone").description == f"INVALID SPEC: {expected}"
    assert cli_lines(capsys, "validate", str(dags_folder))[:2] == (1, [expected])


def test_an_unreadable_spec_is_a_located_error_and_hides_no_other_dag(dags_folder, capsys):
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good"))
    secret = write(dags_folder, "secret.aq.yaml", GOOD.format(name="secret"))
    secret.chmod(0)
    expected = (
        f"{secret}:1:1: cannot read the file: Permission denied; make it readable by the user Airflow runs as "
        "(for example `chmod a+r`)"
    )
    with without_root_read_override():
        with pytest.raises(PermissionError):
            secret.read_bytes()  # the kernel really refuses
        bag = dagbag(dags_folder)
        # the good spec's code package (the dags folder, its command step's code) holds the file too
        package = (
            f"{dags_folder}/good.aq.yaml:1:1: the code package cannot be built: secret.aq.yaml in the code folder "
            f"{dags_folder}: cannot be read (Permission denied): make it readable, or list it in .aqignore"
        )
        assert cli_lines(capsys, "validate", str(dags_folder))[:2] == (1, [package, expected])
    assert_loads(bag, "good")
    assert placeholder(bag, "secret").description == f"INVALID SPEC: {expected}"


def test_a_folder_named_like_a_spec_is_a_located_error_and_its_specs_still_load(dags_folder, capsys):
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good"))
    folder = dags_folder / "team.aq.yaml"
    folder.mkdir()
    write(folder, "inner.aq.yaml", GOOD.format(name="inner"))
    bag = dagbag(dags_folder)
    assert_loads(bag, "good", "inner")
    expected = f"{folder}:1:1: this is a folder, not a spec file; rename it so its name does not end in .aq.yaml"
    assert placeholder(bag, "team").description == f"INVALID SPEC: {expected}"
    assert cli_lines(capsys, "validate", str(dags_folder))[:2] == (1, [expected])


def test_a_fifo_named_like_a_spec_does_not_hang_the_dag_processor(dags_folder):
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good"))
    os.mkfifo(dags_folder / "pipe.aq.yaml")  # opening it to read would block until a writer came
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(dags_folder)!r})\n"
        "print(sorted(bag.dags), sorted(bag.import_errors), bag.dags['pipe'].description)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == (
        f"['good', 'pipe'] ['{dags_folder}/pipe.aq.yaml'] INVALID SPEC: {dags_folder}/pipe.aq.yaml:1:1: "
        "this is not a regular file "
        "(a pipe, socket or device); a spec is a plain text file"
    )


def test_a_file_name_that_is_not_utf8_is_a_located_error_and_hides_no_other_dag(dags_folder, capsys):
    """Linux allows any bytes in a name; Python keeps the undecodable ones as lone surrogates,
    which no UTF-8 output, JSON column or generated file can hold."""
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good"))
    with open(os.fsencode(dags_folder) + b"/caf\xe9.aq.yaml", "w") as handle:  # a latin-1 é
        handle.write(GOOD.format(name="named"))
    bag = dagbag(dags_folder)
    assert bag.import_errors == {}  # logging or storing a key that is not UTF-8 would drop the shard's DAGs
    assert_loads(bag, "good")
    expected = (
        f"{dags_folder}/caf\ufffd.aq.yaml:1:1: the file's path is not UTF-8 text (the bytes shown as \ufffd); rename it"
    )
    dag = placeholder(bag, f"aq_invalid__caf_{zlib.crc32(b'caf' + bytes([0xE9]) + b'.aq.yaml'):08x}")
    assert dag.description == f"INVALID SPEC: {expected}"
    assert "caf\ufffd.aq.yaml" in dag.doc_md
    code, lines, _ = cli_lines(capsys, "compile", str(dags_folder), "--out", str(dags_folder.parent / "out"))
    assert (code, lines) == (1, [expected])


def test_validate_and_compile_print_one_clean_line_per_unreadable_file(tmp_path):
    """As users run them (the installed script): a line each, exit 1, no traceback."""
    (tmp_path / "bad.aq.yaml").write_bytes(b"\xff\xfe\xfd")
    (tmp_path / "link.aq.yaml").symlink_to(tmp_path / "nowhere")
    (tmp_path / "dir.aq.yaml").mkdir()
    write(tmp_path, "good.aq.yaml", NAMELESS)
    for command in (["validate"], ["compile", "--out", str(tmp_path / "out")]):
        result = subprocess.run(
            [sys.executable, "-m", "aq_airflow.cli", *command, str(tmp_path)], capture_output=True, text=True
        )
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert [line.split(": ", 1)[0] for line in result.stdout.splitlines()] == [
            f"{tmp_path}/bad.aq.yaml:1:1",
            f"{tmp_path}/dir.aq.yaml:1:1",
            f"{tmp_path}/link.aq.yaml:1:1",
        ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.py"]


# --- file names and dag ids: one rule -------------------------------------------------------

BAD_NAMES = {
    "...aq.yaml": "the file name `...aq.yaml` gives the dag_id `..`, which is not one",
    "my pipe.aq.yaml": "the file name `my pipe.aq.yaml` gives the dag_id `my pipe`, which is not one",
    ".aq.yaml": "the file name `.aq.yaml` gives the dag_id nothing",
    "-x.aq.yaml": "the file name `-x.aq.yaml` gives the dag_id `-x`, which is not one",
    "a..b.aq.yaml": "the file name `a..b.aq.yaml` gives the dag_id `a..b`, which is not one",
    "café.aq.yaml": "the file name `café.aq.yaml` gives the dag_id `café`, which is not one",
}


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_file_name_that_gives_no_valid_dag_id_is_a_located_error(tmp_path, capsys, name):
    path = write(tmp_path, name, NAMELESS)
    code, lines, _ = cli_lines(capsys, "validate", str(path))
    assert code == 1
    assert lines == [
        f"{path}:1:1: {BAD_NAMES[name]}: a dag_id has letters, digits, `_`, `.` and `-`, does not start with "
        "`.` or `-`, has no `..` and at most 250 characters; rename the file, or set `pipeline:` to the dag_id"
    ]
    code, lines, _ = cli_lines(capsys, "compile", str(path), "--out", str(tmp_path / "out"))
    assert code == 1 and lines[0].startswith(f"{path}:1:1: the file name")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_file_name_that_gives_no_dag_id_is_fine_once_pipeline_is_set(tmp_path, capsys, name):
    path = write(tmp_path, name, "pipeline: named\n" + NAMELESS)
    assert cli_lines(capsys, "validate", str(path))[:2] == (0, [])


def test_a_dotdot_file_name_is_a_placeholder_and_no_dag_writes_outside_the_artifact_root(dags_folder):
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good"))
    write(dags_folder, "...aq.yaml", NAMELESS)
    write(dags_folder, "my pipe.aq.yaml", NAMELESS)
    write(dags_folder, "my+pipe.aq.yaml", NAMELESS)  # the same letters: never the same placeholder id
    write(dags_folder, ".aq.yaml", NAMELESS)
    bag = dagbag(dags_folder)
    assert_loads(bag, "good")
    invalid = sorted(d for d in bag.dags if d != "good")
    nameless = [f"aq_invalid__{zlib.crc32(name):08x}" for name in (b"...aq.yaml", b".aq.yaml")]
    lettered = [f"aq_invalid__my_pipe_{zlib.crc32(name):08x}" for name in (b"my pipe.aq.yaml", b"my+pipe.aq.yaml")]
    assert invalid == sorted([*nameless, *lettered])
    assert ".." not in bag.dags and "" not in bag.dags
    for dag_id in invalid:
        assert "rename the file, or set `pipeline:`" in placeholder(bag, dag_id).description


@pytest.mark.parametrize("declared", ["..", ".x", "a..b", "-x", '"my pipe"', "x/y", "'../../etc'"])
def test_a_declared_dag_id_follows_the_same_rule_as_a_file_name(tmp_path, capsys, declared):
    path = write(tmp_path, "fine.aq.yaml", f"pipeline: {declared}\n" + NAMELESS)
    code, lines, _ = cli_lines(capsys, "validate", str(path))
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"{path}:1:11: pipeline: `")
    assert lines[0].endswith(
        "is not allowed here; expected a dag_id: letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, "
        "no `..`"
    )


# Candidate ids and step names: the patterns' own strings, and text over an alphabet of path
# trouble (separators, dots, spaces, `~`, NUL, non-ASCII); only those the spec accepts are kept.
TROUBLE = st.text(alphabet="aZ09_.-/\\ ~:+%\0é", min_size=0, max_size=12)
DAG_IDS = st.one_of(st.from_regex(DAG_ID_PATTERN, fullmatch=True), TROUBLE, st.just("x" * 250))
STEPS = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]*", fullmatch=True), TROUBLE)
# Run ids come from Airflow, not the spec: its own forms, and anything its default
# `allowed_run_id_pattern` (^[A-Za-z0-9_.~:+-]+$) lets a user trigger, `..` included (allowed
# under `allow_double_dot_in_ids`) and `.`.
RUN_IDS = st.one_of(
    st.sampled_from(["manual__2026-03-01T00:00:00+00:00", "scheduled__2026-03-01T06:00:00+00:00",
                     "asset_triggered__2026-03-01T06:00:00.123456+00:00", ".", "..", "~", "a:b+c"]),
    st.from_regex(r"[A-Za-z0-9_.~:+-]+", fullmatch=True),
    st.text(alphabet="a.~:+-/\\", min_size=1, max_size=8),
)  # fmt: skip
ROOTS = st.sampled_from(["/srv/artifacts", "/srv/artifacts/", "s3://bucket/aq", "gs://b", "abfs://c/d/"])


DAG_ID, STEP_NAME = TypeAdapter(DagId), TypeAdapter(StepName)


def _accepted(adapter: TypeAdapter, value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dag_id=DAG_IDS, step=STEPS, run_id=RUN_IDS, root=ROOTS, map_index=st.none() | st.integers(0, 10**6))
def test_artifact_paths_stay_in_the_pipelines_folder_for_any_valid_dag_id_step_and_airflow_run_id(
    dag_id, step, run_id, root, map_index
):
    """For every dag_id and step name the spec accepts, and every run id Airflow can hand a task,
    the output location, normalized, is under ``root/dag_id/`` (so never outside the artifact
    root, nor in another pipeline's folder); a run id that is not one plain path segment is
    refused."""
    valid_id = _accepted(DAG_ID, dag_id)
    assert valid_id == is_dag_id(dag_id)  # the file-name rule is the same rule
    if not (valid_id and _accepted(STEP_NAME, step)):
        return
    ref = ArtifactRef(dag_id, step, map_index)
    if run_id in (".", "..") or "/" in run_id or "\\" in run_id:
        with pytest.raises(ValueError, match="cannot name an artifact folder"):
            ref.location(root, run_id)
        return
    location = ref.location(root, run_id)
    scheme, _, rest = root.partition("://") if "://" in root else ("", "", root)
    base = posixpath.normpath(rest)
    folder = posixpath.normpath(location.removeprefix(f"{scheme}://") if scheme else location)
    assert folder.startswith(f"{base}/{dag_id}/"), (location, folder)
    assert folder.split("/")[len(base.split("/")) + 1] == run_id  # the run is one folder
    assert folder.endswith(f"/{step}" + ("" if map_index is None else f"/{map_index}"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stem=st.one_of(TROUBLE, st.from_regex(DAG_ID_PATTERN, fullmatch=True)))
def test_any_spec_file_name_gives_a_valid_dag_id_or_a_located_error_at_1_1(stem):
    name = f"/srv/dags/{stem}.aq.yaml"
    if "/" in stem or "\0" in stem:
        return  # not a file name
    try:
        plan = compile_text(SpecFile(name, NAMELESS))
    except SpecError as error:
        (issue,) = error.issues
        assert (issue.file, issue.line, issue.col) == (name, 1, 1)
        assert "rename the file, or set `pipeline:`" in issue.message
        assert not is_dag_id(stem)
        return
    assert plan.dag_id == stem and is_dag_id(stem)


# --- two specs, one dag_id -------------------------------------------------------------------


def test_two_specs_with_one_dag_id_are_reported_by_validate_in_both_files(tmp_path, capsys):
    write(tmp_path, "a.aq.yaml", GOOD.format(name="same"))
    (tmp_path / "team").mkdir()
    write(tmp_path / "team", "b.aq.yaml", "# copied from a\npipeline: same\n" + NAMELESS)
    write(tmp_path, "same.aq.yaml", NAMELESS)  # the file name gives the same id
    code, lines, err = cli_lines(capsys, "validate", str(tmp_path))
    assert code == 1
    a, b, c = f"{tmp_path}/a.aq.yaml:1:11", f"{tmp_path}/team/b.aq.yaml:2:11", f"{tmp_path}/same.aq.yaml:1:1"
    tail = ": Airflow shows one DAG per dag_id; give each pipeline its own `pipeline:` (or file name)"
    assert sorted(lines) == sorted([
        f"{a}: dag_id `same` is also the dag_id of {c}, {b}{tail}",
        f"{c}: dag_id `same` is also the dag_id of {a}, {b}{tail}",
        f"{b}: dag_id `same` is also the dag_id of {a}, {c}{tail}",
    ])  # fmt: skip
    assert "3 spec(s) checked, 3 error(s) in 3 file(s)" in err


def test_a_duplicate_dag_id_counts_an_invalid_spec_too(tmp_path, capsys):
    """An invalid spec still takes its dag_id in Airflow (its placeholder), so it collides too."""
    write(tmp_path, "a.aq.yaml", GOOD.format(name="same"))
    write(tmp_path, "b.aq.yaml", "pipeline: same\nsteps:\n  a:\n    sqll: SELECT 1\n")
    code, lines, _ = cli_lines(capsys, "validate", str(tmp_path))
    assert code == 1
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{tmp_path}/a.aq.yaml:1:11",
        f"{tmp_path}/b.aq.yaml:1:11",
        f"{tmp_path}/b.aq.yaml:4:5",
    ]


def test_a_spec_given_twice_on_the_command_line_is_no_duplicate(tmp_path, capsys):
    path = write(tmp_path, "a.aq.yaml", GOOD.format(name="once"))
    assert cli_lines(capsys, "validate", str(tmp_path), str(path))[:2] == (0, [])


def test_compile_refuses_two_specs_with_one_dag_id_and_overwrites_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    write(tmp_path, "a.aq.yaml", GOOD.format(name="same"))
    assert cli_lines(capsys, "compile", str(tmp_path / "a.aq.yaml"), "--out", str(out))[0] == 0
    before = (out / "same.py").read_text()
    write(tmp_path, "b.aq.yaml", "pipeline: same\nsteps:\n  other:\n    sql: SELECT 2\n")
    write(tmp_path, "c.aq.yaml", GOOD.format(name="other"))
    code, lines, _ = cli_lines(capsys, "compile", str(tmp_path), "--out", str(out))
    assert code == 1
    assert [line.split(": ", 1)[0] for line in lines] == [f"{tmp_path}/a.aq.yaml:1:11", f"{tmp_path}/b.aq.yaml:1:11"]
    assert all("dag_id `same` is also the dag_id of" in line for line in lines)
    assert (out / "same.py").read_text() == before  # neither spec overwrote it
    assert sorted(p.name for p in out.iterdir()) == ["other.py", "same.py"]  # the others still compile


def test_two_specs_with_one_dag_id_in_one_shard_both_show_in_airflow(dags_folder):
    """Two DAGs cannot share an id: the first by path keeps it, the second is a placeholder
    under a derived id whose error names both files; the DagBag has no import error."""
    write(dags_folder, "a.aq.yaml", GOOD.format(name="same"))
    (dags_folder / "team").mkdir()
    write(dags_folder / "team", "b.aq.yaml", "# copied\npipeline: same\n" + NAMELESS)
    write(dags_folder, "other.aq.yaml", GOOD.format(name="other"))
    bag = dagbag(dags_folder)
    assert_loads(bag, "same", "other")
    assert bag.dags["same"].task_ids == ["a.run", "b.run"]  # a.aq.yaml's
    (duplicate,) = [d for d in bag.dags if d.startswith("same__duplicate_")]
    assert duplicate == f"same__duplicate_{zlib.crc32(b'team/b.aq.yaml'):08x}"  # stable: its path's hash
    description = placeholder(bag, duplicate).description
    assert description == (
        f"INVALID SPEC: {dags_folder}/team/b.aq.yaml:2:11: dag_id `same` is already the dag_id of "
        f"{dags_folder}/a.aq.yaml, so this spec is shown as `{duplicate}`: give one of them another "
        "`pipeline:` (or file name)"
    )


def test_a_worker_running_the_duplicate_placeholder_builds_it(dags_folder, monkeypatch):
    write(dags_folder, "a.aq.yaml", GOOD.format(name="same"))
    write(dags_folder, "b.aq.yaml", GOOD.format(name="same"))
    write(dags_folder, "c.aq.yaml", GOOD.format(name="unrelated"))
    (_, duplicate, _) = load_dags({"__file__": str(dags_folder / "aq_dags.py")})
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", duplicate.dag_id)
    built = load_dags({"__file__": str(dags_folder / "aq_dags.py")})
    assert duplicate.dag_id in [d.dag_id for d in built]


def test_a_spec_declaring_a_dag_id_in_flow_style_is_still_built_for_its_worker(dags_folder, monkeypatch):
    """The parsing context skips a spec only when it cannot be the wanted DAG."""
    write(dags_folder, "file_name.aq.yaml", "{pipeline: flowing, steps: {a: {sql: SELECT 1}}}\n")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "flowing")
    (dag,) = load_dags({"__file__": str(dags_folder / "aq_dags.py")})
    assert dag.dag_id == "flowing" and INVALID_TAG not in dag.tags


def test_compile_never_leaves_a_partial_file(tmp_path, capsys, monkeypatch):
    """A failure while generating (here: memory running out) leaves the earlier file whole and
    no temporary file behind."""
    import aq_airflow.codegen

    write(tmp_path, "a.aq.yaml", GOOD.format(name="kept"))
    out = tmp_path / "out"
    assert cli_lines(capsys, "compile", str(tmp_path), "--out", str(out))[0] == 0
    before = (out / "kept.py").read_text()
    write(tmp_path, "a.aq.yaml", GOOD.format(name="kept") + "description: changed\n")

    def exhausted(plan):
        raise MemoryError

    monkeypatch.setattr(aq_airflow.codegen, "render_dag", exhausted)
    code, lines, _ = cli_lines(capsys, "compile", str(tmp_path), "--out", str(out))
    assert code == 1
    assert lines == [f"{tmp_path}/a.aq.yaml:1:1: internal error while generating its DAG file (please report it): "
                     "MemoryError()"]  # fmt: skip
    assert (out / "kept.py").read_text() == before
    assert sorted(p.name for p in out.iterdir()) == ["kept.py"]


@pytest.mark.parametrize(
    "name",
    ['a""";__import__("os").system("touch PWNED");"""', "ends with a backslash \\", "line\nbreak", "quote\"'\\x00"],
)
def test_a_spec_file_name_never_becomes_code_in_a_compiled_file(tmp_path, name):
    """The compiled file's docstring names the spec's path: a file name that closes the
    docstring must stay text (found by a hostile tester: `compile` wrote it raw)."""
    import ast

    from aq_airflow.cli.main import main as cli
    from tests.test_codegen import assert_inert

    spec = tmp_path / f"{name}.aq.yaml"
    spec.write_text("pipeline: innocent_looking\nsteps:\n  a: {sql: SELECT 1}\n")
    assert cli(["compile", str(spec), "--out", str(tmp_path / "out")]) == 0
    source = (tmp_path / "out" / "innocent_looking.py").read_text()
    assert_inert(source)
    assert name in ast.get_docstring(ast.parse(source))
    assert not (tmp_path / "PWNED").exists()
