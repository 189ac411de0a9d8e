"""Code packages and provenance against hostile input: odd files and names in a code folder, a
damaged or forged store, cache folders others may write, source the import walk cannot parse,
and the CLI over corrupt records. Each refusal is one clear message naming the file and the fix;
nothing hangs, nothing crashes, no code but the pinned package's is ever run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest

from aq_airflow.artifacts import code_package
from aq_airflow.artifacts.code_package import PackageMismatch, PackageRefused, PinnedCode
from aq_airflow.artifacts.store import MANIFEST
from aq_airflow.pipeline_spec import SpecFile
from aq_airflow.plan import compile_text
from aq_airflow.plan.model import RunPlan
from aq_airflow.runners.code import CodeUnavailable, ship
from aq_airflow.runtime.imports import missing_modules
from tests.test_show_diff import CLI, DAG, RUN_A, RUN_B, cli, shop  # noqa: F401  (shop: the fixture)


def tree(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def step_plan(root: Path) -> RunPlan:
    """A python step's run plan whose code folder is `code` beside the spec, storing in ``root``."""
    spec = f"pipeline: p\nartifacts: {root}\ncode: code\nsteps:\n  a:\n    python: m:f\n"
    plan = compile_text(SpecFile("p.aq.yaml", spec))
    return next(t.body for t in plan.tasks if isinstance(t.body, RunPlan))


# --- the code folder --------------------------------------------------------------------------


def test_pipes_sockets_and_devices_are_left_out_never_opened(tmp_path):
    """A FIFO opened for reading blocks until a writer comes: the build must never open one."""
    folder = tree(tmp_path / "code", {"m.py": "X = 1\n"})
    os.mkfifo(folder / "pipe")
    os.symlink("pipe", folder / "link_to_pipe")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "sock"))
    try:
        package = code_package.build(str(folder), cache=False)
    finally:
        listener.close()
    assert [f.path for f in package.files] == ["m.py"]


@pytest.mark.parametrize("change", ["grows", "shrinks"])
def test_a_file_that_changes_while_archived_is_refused_never_half_packaged(tmp_path, change):
    folder = tree(tmp_path / "code", {"m.py": "X = 1\n" * 100})
    files = code_package.scan(str(folder))
    (folder / "m.py").write_text("X = 1\n" * (200 if change == "grows" else 1))
    with pytest.raises(PackageRefused, match=r"m\.py in the code folder .*: changed while it was being packaged"):
        code_package.archive(str(folder), files)


def test_ignore_lines_git_cannot_parse_are_skipped_as_git_skips_them(tmp_path):
    folder = tree(tmp_path / "code", {"m.py": "X = 1\n", "notes.txt": "n", "data.csv": "d"})
    (folder / ".gitignore").write_text("\\\n!\na[b-a]\n*.csv\n")
    (folder / ".aqignore").write_text("[z-a]\nnotes.txt\n")
    assert [f.path for f in code_package.scan(str(folder))] == [".aqignore", ".gitignore", "m.py"]


def test_odd_names_survive_the_round_trip(tmp_path):
    """Names that are not UTF-8, hold a newline or a control character, or are 250 bytes long."""
    folder = tree(tmp_path / "code", {"m.py": "X = 1\n"})
    names = [b"bad\xff.py", b"new\nline.py", b"ctl\x01.py", b"l" * 250 + b".py"]
    for name in names:
        (Path(os.fsdecode(bytes(folder))) / os.fsdecode(name)).write_text("Y = 2\n")
    package = code_package.build(str(folder), cache=False)
    uri = code_package.upload(package, str(tmp_path / "store"))
    extracted = code_package.fetch(uri, package.digest, str(tmp_path / "cache"))
    assert sorted(os.listdir(os.fsencode(extracted))) == sorted([*names, b"m.py"])


def test_links_loops_hard_links_and_an_aqignore_folder(tmp_path):
    folder = tree(tmp_path / "code", {"m.py": "X = 1\n"})
    (folder / ".aqignore").mkdir()  # not a file of patterns: no patterns
    os.symlink("b", folder / "a")
    os.symlink("a", folder / "b")  # a loop: leads nowhere, left out
    os.symlink(".", folder / "self")  # a folder inside: not followed
    os.link(folder / "m.py", folder / "hard.py")
    assert [f.path for f in code_package.scan(str(folder))] == ["hard.py", "m.py"]
    os.symlink("/etc/passwd", folder / "pw")
    with pytest.raises(PackageRefused, match=r"pw in the code folder .*: is a symbolic link out of the code folder"):
        code_package.scan(str(folder))


def test_a_huge_sparse_file_is_refused_by_its_size_without_being_read(tmp_path):
    folder = tree(tmp_path / "code", {"m.py": "X = 1\n"})
    with open(folder / "big.bin", "wb") as handle:
        handle.truncate(2 * 2**30)
    tracemalloc.start()
    try:
        with pytest.raises(PackageRefused, match=r"2048.0 MiB, over the package limit .*big.bin"):
            code_package.build(str(folder), cache=False)
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()


# --- the store and the cache ------------------------------------------------------------------


@pytest.fixture
def stored(tmp_path):
    package = code_package.build(str(tree(tmp_path / "code", {"m.py": "X = 1\n"})), cache=False)
    return package, code_package.upload(package, str(tmp_path / "store"))


@pytest.mark.parametrize("digest", ["sha256:/usr/lib", "sha256:../../../../usr", "sha256:" + "A" * 64, "x"])
def test_a_digest_of_another_shape_never_names_a_folder(stored, tmp_path, digest):
    """The digest's hex is the cache folder's name: `sha256:/usr/lib` once returned /usr/lib."""
    with pytest.raises(PackageMismatch, match="is not a package digest"):
        code_package.fetch(stored[1], digest, str(tmp_path / "cache"))


@pytest.mark.parametrize("stray", ["file", "link"])
def test_a_file_or_link_where_the_digest_folder_belongs_is_replaced(stored, tmp_path, stray):
    package, uri = stored
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    planted = tmp_path / "planted"
    tree(planted, {"m.py": "import evil\n"})
    if stray == "file":
        (cache / package.hex).write_text("not a folder")
    else:
        os.symlink(planted, cache / package.hex)
    folder = code_package.fetch(uri, package.digest, str(cache))
    assert folder == str(cache / package.hex) and not os.path.islink(folder)
    assert (Path(folder) / "m.py").read_text() == "X = 1\n"


def test_a_cache_folder_others_may_write_is_not_used(stored, tmp_path, monkeypatch):
    package, uri = stored
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    shared = tmp_path / "shared"
    tree(shared / package.hex, {"m.py": "import evil\n"})  # planted by whoever may write here
    shared.chmod(0o777)
    folder = code_package.fetch(uri, package.digest, str(shared))
    assert not folder.startswith(str(shared)) and (Path(folder) / "m.py").read_text() == "X = 1\n"


def test_a_half_extracted_folder_a_killed_step_left_is_never_taken(stored, tmp_path):
    package, uri = stored
    cache = tmp_path / "cache"
    tree(cache / f".{package.hex}.killed", {"half.py": ""})  # what a killed step's staging looks like
    cache.chmod(0o700)
    folder = code_package.fetch(uri, package.digest, str(cache))
    assert sorted(os.listdir(folder)) == ["m.py"]


def test_a_gzip_bomb_is_refused_without_filling_memory(stored, tmp_path, monkeypatch):
    """A few hundred KiB that decompress past the limit: refused after reading a chunk at a time."""
    package, uri = stored
    monkeypatch.setattr(code_package, "MAX_TAR", 64 * 2**20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(uri, "wb") as handle:
        for _ in range(100):
            handle.write(compressor.compress(bytes(2**20)))
        handle.write(compressor.flush())
    tracemalloc.start()
    try:
        with pytest.raises(PackageMismatch, match="holds over 67108864 bytes: it is not a package"):
            code_package.fetch(uri, package.digest, str(tmp_path / "cache"))
        from aq_airflow.client.provenance import MissingPackage, package_files

        with pytest.raises(MissingPackage, match="holds over 67108864 bytes"):
            package_files(PinnedCode(package.digest, uri))
        assert tracemalloc.get_traced_memory()[1] < 32 * 2**20
    finally:
        tracemalloc.stop()


def test_a_truncated_package_is_named_not_a_traceback(stored, tmp_path):
    package, uri = stored
    data = Path(uri).read_bytes()
    Path(uri).write_bytes(data[: len(data) // 2])
    with pytest.raises(PackageMismatch, match=f"the code package at {uri} is not a gzip archive"):
        code_package.fetch(uri, package.digest, str(tmp_path / "cache"))


@pytest.mark.parametrize(
    "record",
    [
        "{{{ not json",
        "[1, 2]",
        json.dumps({"digest": "sha256:" + "0" * 64, "uri": "/etc/passwd"}),
        json.dumps({"digest": "sha256:/usr/lib", "uri": "/x/_code//usr/lib"}),
        json.dumps({"digest": "sha256:" + "0" * 64, "uri": "s3://b/_code/" + "0" * 64, "x": "y" * 2**17}),
    ],
    ids=["garbage", "list", "local-path", "digest-path", "huge"],
)
def test_a_pin_that_is_not_one_fails_the_task_naming_it(tmp_path, record):
    """A `_code.json` aq-airflow never wrote: the run's code version is unknown, so the task
    refuses (before: each task silently used whatever the dags folder held by then)."""
    tree(tmp_path / "code", {"m.py": "def f():\n    return 1\n"})
    run = step_plan(tmp_path / "store")
    pin = tmp_path / "store" / "p" / "manual__1" / "_code.json"
    pin.parent.mkdir(parents=True)
    pin.write_text(record)
    with pytest.raises(CodeUnavailable, match=r"_code.json is not a code pin aq-airflow wrote .*start a new run"):
        ship(run, str(tmp_path), "manual__1")


def test_a_pin_naming_another_stores_package_is_not_followed(tmp_path):
    tree(tmp_path / "code", {"m.py": "def f():\n    return 1\n"})
    run = step_plan(tmp_path / "store")
    elsewhere = code_package.upload(code_package.build(str(tmp_path / "code"), cache=False), str(tmp_path / "other"))
    digest = "sha256:" + elsewhere.rsplit("/", 1)[1]
    code_package.pin(str(tmp_path / "store" / "p" / "manual__1"), PinnedCode(digest, elsewhere))
    with pytest.raises(CodeUnavailable, match=f"this run's code pin names {elsewhere}, not .*store/_code/"):
        ship(run, str(tmp_path), "manual__1")
    assert ship(run, str(tmp_path), "manual__2")["AQ_CODE_URI"].startswith(str(tmp_path / "store" / "_code"))


def test_first_tasks_pinning_at_once_all_get_the_one_pin_never_half_a_record(tmp_path):
    """Two first tasks of a run pin at once (threads on one disk, each with other code): every
    call returns the same pin, the record is whole at any moment, and no temporary file is left."""
    import threading

    folder = str(tmp_path / "store" / "p" / "manual__1")
    codes = [PinnedCode("sha256:" + f"{i:x}" * 64, f"{tmp_path}/store/_code/" + f"{i:x}" * 64) for i in range(1, 9)]
    seen, barrier = [], threading.Barrier(len(codes))

    def first_task(code):
        barrier.wait()
        seen.append(code_package.pin(folder, code))

    threads = [threading.Thread(target=first_task, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == len(codes) and len(set(seen)) == 1 and seen[0] in codes
    assert code_package.read_pin(folder, strict=True) == seen[0]
    assert sorted(p.name for p in (tmp_path / "store" / "p" / "manual__1").iterdir()) == ["_code.json"]


def test_a_pin_the_store_cannot_read_fails_the_task_and_is_never_replaced(tmp_path):
    """A later task whose read of the run's pin fails (a store's passing error: here, a folder
    where the record belongs) fails and retries; it never takes that for "no pin" and pins the
    code the dags folder holds by then."""
    tree(tmp_path / "code", {"m.py": "def f():\n    return 1\n"})
    run = step_plan(tmp_path / "store")
    (tmp_path / "store" / "p" / "manual__1" / "_code.json").mkdir(parents=True)  # reading it is an OSError
    with pytest.raises(CodeUnavailable, match=r"_code.json, this run's code pin, cannot be read .*tries again"):
        ship(run, str(tmp_path), "manual__1")
    assert (tmp_path / "store" / "p" / "manual__1" / "_code.json").is_dir()  # left as it was
    assert code_package.read_pin(str(tmp_path / "store" / "p" / "manual__1")) is None  # readers: no pin shown


# --- the runtime's import walk ----------------------------------------------------------------


def test_a_syntax_error_is_left_to_python_to_report_with_its_file_and_line(tmp_path):
    folder = tree(tmp_path, {"m.py": "import os\nimport broken\n", "broken.py": "def f(:\n"})
    assert missing_modules(str(folder), "m") == []
    result = subprocess.run([sys.executable, "-c", "import m"], cwd=folder, capture_output=True, text=True)
    assert 'broken.py", line 1' in result.stderr and "SyntaxError" in result.stderr


def test_source_too_deep_for_the_parser_does_not_crash_the_walk(tmp_path):
    """The parser's MemoryError/RecursionError on deep nesting once escaped the walk."""
    folder = tree(tmp_path, {"m.py": "import deep\n", "deep.py": "x = " + "-" * 200_000 + "1\n"})
    assert missing_modules(str(folder), "m") == []


def test_only_the_branch_this_python_takes_of_a_version_test_is_required(tmp_path):
    source = (
        "import sys, os\n"
        "if sys.version_info < (3, 11):\n    import tomli as tomllib\nelse:\n    import tomllib\n"
        "if sys.platform == 'win32' and os.name == 'nt':\n    import winreg_nosuch\n"
        "if not TYPE_CHECKING:\n    import nosuch_runtime\n"
        "if sys.version_info >= (3, 0):\n    import nosuch_taken\n"
    )
    folder = tree(tmp_path, {"m.py": source})
    assert [(m.name, m.line) for m in missing_modules(str(folder), "m")] == [
        ("nosuch_runtime", 9),
        ("nosuch_taken", 11),
    ]


def test_package_imports_cycles_shadowing_and_relative_imports(tmp_path):
    folder = tree(tmp_path, {
        "a/__init__.py": "from . import x\n",
        "a/x.py": "import a.b.c\nfrom ..beyond import q\n",  # beyond the top: Python's own error
        "a/b/c.py": "import a\nimport nosuch_c\n",  # a namespace package (no __init__) on the way
        "circ1.py": "import circ2\n",
        "circ2.py": "import circ1\nimport json\n",
        "json.py": "import nosuch_json\n",  # shadows the standard library's: the package's wins
        "m.py": "import a.x\nimport circ1\nfrom ... import far\n",
    })  # fmt: skip
    found = [(m.name, m.path, m.line) for m in missing_modules(str(folder), "m")]
    assert found == [("nosuch_c", "a/b/c.py", 2), ("nosuch_json", "json.py", 1)]


# --- the CLI over hostile records -------------------------------------------------------------


def test_package_of_a_folder_is_one_line(tmp_path):
    tree(tmp_path, {"p.aq.yaml": "pipeline: p\nsteps:\n  a:\n    python: m:f\n"})
    result = subprocess.run([*CLI, "package", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == f"{tmp_path}: is a folder; `aq-airflow package` takes one spec file (`*.aq.yaml`): name it"
    )


def test_a_pin_naming_a_pipe_does_not_hang_show_or_diff(shop, tmp_path):  # noqa: F811
    import shutil

    copy = tmp_path / "artifacts"
    shutil.copytree(shop / "artifacts", copy)
    os.mkfifo(tmp_path / "pipe")
    pin = copy / DAG / RUN_B / "_code.json"
    pin.write_text(json.dumps({**json.loads(pin.read_text()), "uri": str(tmp_path / "pipe")}))
    manifest = copy / DAG / RUN_B / "scores" / MANIFEST
    record = json.loads(manifest.read_text())
    record["provenance"]["code"]["uri"] = str(tmp_path / "pipe")
    manifest.write_text(json.dumps(record))
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AQ_ARTIFACTS"))}
    result = subprocess.run([*CLI, "diff", "shop", RUN_A, RUN_B, "--artifacts", str(copy)], cwd=shop,
                            capture_output=True, text=True, timeout=120, env=environment)  # fmt: skip
    assert "Traceback" not in result.stderr and "  changed  shop/steps.py" in result.stdout, result.stderr


@pytest.mark.parametrize(
    "change",
    [
        lambda m: {**m, "provenance": {**m["provenance"], "started": 5, "finished": [1], "logical_date": {}}},
        lambda m: {**m, "provenance": [1, 2]},
        lambda m: {**m, "provenance": {**m["provenance"], "code": {"digest": 5, "uri": {"a": 1}, "git": "yes"}}},
        lambda m: {**m, "rows": "many", "bytes": 10**30, "schema": {"a": 1}},
        lambda m: "[" * 100_000 + "]" * 100_000,
    ],
    ids=["times-of-other-types", "provenance-list", "code-of-other-types", "fields-of-other-types", "deep-json"],
)
def test_corrupt_manifests_and_provenance_are_shown_never_a_traceback(shop, tmp_path, change):  # noqa: F811
    import shutil

    copy = tmp_path / "artifacts"
    shutil.copytree(shop / "artifacts", copy)
    for step in ("scores", "evaluate/0"):
        path = copy / DAG / RUN_B / step / MANIFEST
        changed = change(json.loads(path.read_text()))
        path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    for args in (["show", "shop", RUN_B], ["show", "shop", RUN_B, "--json"], ["diff", "shop", RUN_A, RUN_B]):
        result = cli(*args, "--artifacts", str(copy), cwd=shop)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr


def test_schema_change_passes_over_corrupt_earlier_manifests(tmp_path):
    """The earlier output a `schema_change` check compares with: manifests that are garbage, too
    deep to parse, or carry a date of another type are passed over, never a crash of the check."""
    import datetime

    import pyarrow as pa

    from aq_airflow.artifacts.provenance import Provenance
    from aq_airflow.client.earlier import PROVENANCE, find_earlier
    from tests.test_show_diff import commit

    def provenance(run_id: str, logical_date) -> Provenance:
        return Provenance(None, None, None, {}, {}, {}, run_id, logical_date, 1, None, None)

    table = pa.table({"id": [1]})
    good = "manual__2026-03-01T00:00:00+00:00"
    commit(tmp_path, good, "orders", table, provenance(good, "2026-03-01T00:00:00+00:00"))
    for day, text in ((2, "{{{ garbage"), (3, "[" * 100_000 + "]" * 100_000), (4, None)):
        run_id = f"custom_{day}"  # an id that carries no time: only its provenance could date it
        commit(tmp_path, run_id, "orders", table, provenance(run_id, "2026-03-0{day}T00:00:00+00:00"))
        manifest = tmp_path / DAG / run_id / "orders" / MANIFEST
        if text is None:  # a date of another type
            record = json.loads(manifest.read_text())
            record["provenance"]["logical_date"] = 20260304
            text = json.dumps(record)
        manifest.write_text(text)
    when = datetime.datetime(2026, 3, 5, tzinfo=datetime.UTC)
    search = find_earlier(str(tmp_path), DAG, "orders", "manual__2026-03-05T00:00:00+00:00", when, when)
    assert search.found is not None and (search.found.run_id, search.found.dated_by) == (good, PROVENANCE)


@pytest.mark.parametrize("unreadable", ["sub", "sub/.gitignore", ".aqignore"])
def test_a_folder_or_ignore_file_that_cannot_be_read_is_refused_naming_it(tmp_path, monkeypatch, unreadable):
    """What this user may not read (the tests may run as root, who reads everything: the
    permission error is the operating system's, raised where it would be)."""
    import builtins

    folder = tree(tmp_path / "code", {"m.py": "X = 1\n", "sub/x.py": "Y = 1\n", "sub/.gitignore": "", ".aqignore": ""})
    denied = str(folder / unreadable)

    def denying(real):
        def call(path, *args, **kwargs):
            if os.fspath(path) == denied:
                raise PermissionError(13, "Permission denied", denied)
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "scandir", denying(os.scandir))
    monkeypatch.setattr(builtins, "open", denying(builtins.open))
    with pytest.raises(PackageRefused, match=rf"{unreadable.split('/')[0]} in the code folder .*: cannot be read"):
        code_package.scan(str(folder))
