"""Code packages (``artifacts.code_package``): what a package holds and refuses, that it is the
same bytes wherever it is built, its build cache, storing and fetching it on a disk and on the
S3, GCS and Azure emulators, ``aq-airflow package`` and what ``validate`` says of a package."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from aq_airflow.artifacts import code_cache, code_package
from aq_airflow.artifacts.code_package import PackageMismatch, PackageRefused
from aq_airflow.artifacts.store import filesystem
from aq_airflow.client import runs
from aq_airflow.plan import compile_spec
from aq_airflow.plan.model import RunPlan
from tests.helpers import write

CLI = [sys.executable, "-m", "aq_airflow.cli"]


@pytest.fixture(autouse=True)
def build_cache(tmp_path, monkeypatch):
    """A build cache of this test's own, on disk and in memory; nothing stored before."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    code_cache._MEMORY.clear()
    code_package._STORED.clear()
    return tmp_path / "xdg" / "aq-airflow" / "code"


def tree(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


def paths(package) -> list[str]:
    return [f.path for f in package.files]


def members(package) -> dict[str, bytes]:
    """What the stored archive holds: path -> bytes."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(package.data))) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


CODE = {"pkg/__init__.py": "", "pkg/model.py": "def train():\n    return 1\n", "run.sh": "#!/bin/sh\necho hi\n"}


# -- the same bytes wherever it is built -------------------------------------------------------------


def test_two_builds_of_the_same_files_are_the_same_bytes_whatever_their_times_owners_and_modes(tmp_path):
    first = tree(tmp_path / "a", CODE)
    old = os.umask(0o077)
    try:
        second = tree(tmp_path / "b", CODE)  # 0600 files
    finally:
        os.umask(old)
    (first / "run.sh").chmod(0o755)
    (second / "run.sh").chmod(0o700)  # executable either way; other mode bits are not kept
    for path in second.rglob("*"):
        os.utime(path, ns=(1_000_000_000, 2_000_000_000_123))
        if os.getuid() == 0:
            os.chown(path, 4321, 4321)
    one, two = code_package.build(str(first), cache=False), code_package.build(str(second), cache=False)
    assert one.digest == two.digest and one.data == two.data
    assert one.digest == code_package.DIGEST_PREFIX + hashlib.sha256(gzip.decompress(one.data)).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(one.data))) as archive:
        infos = {m.name: m for m in archive.getmembers()}
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in infos.values()} == {(0, 0, 0, "")}
    assert infos["run.sh"].mode == 0o755 and infos["pkg/model.py"].mode == 0o644


@pytest.mark.parametrize("change", ["content", "rename", "executable", "new file"])
def test_a_change_to_the_files_is_another_digest(tmp_path, change):
    folder = tree(tmp_path / "code", CODE)
    before = code_package.build(str(folder))
    if change == "content":
        (folder / "pkg/model.py").write_text("def train():\n    return 2\n")  # the same size
    elif change == "rename":
        (folder / "pkg/model.py").rename(folder / "pkg/models.py")
    elif change == "executable":
        (folder / "pkg/model.py").chmod(0o755)
    else:
        (folder / "pkg/extra.py").write_text("")
    assert code_package.build(str(folder)).digest != before.digest


# -- what a package holds --------------------------------------------------------------------------


def test_gitignore_files_root_and_nested_with_negation_and_folder_patterns(tmp_path):
    folder = tree(
        tmp_path / "code",
        {
            ".gitignore": "*.log\n!keep.log\nbuild/\n/top_only.txt\n",
            "a.log": "", "keep.log": "", "build/out.py": "", "top_only.txt": "", "sub/top_only.txt": "",
            "build.py": "",  # a file named like the ignored folder
            "sub/.gitignore": "*.csv\n!wanted.csv\n/local.py\n",
            "sub/data.csv": "", "sub/wanted.csv": "", "sub/local.py": "", "sub/deeper/local.py": "",
            "sub/deeper/x.csv": "", "sub/deeper/again.log": "",
            "other/data.csv": "",  # a nested file's patterns hold below it only
        },
    )  # fmt: skip
    assert paths(code_package.build(str(folder))) == [
        ".gitignore", "build.py", "keep.log", "other/data.csv", "sub/.gitignore", "sub/deeper/local.py",
        "sub/top_only.txt", "sub/wanted.csv",
    ]  # fmt: skip


def test_a_deeper_gitignore_wins_and_a_file_in_an_ignored_folder_stays_out(tmp_path):
    folder = tree(
        tmp_path / "code",
        {
            ".gitignore": "*.json\nvendor/\n",
            "sub/.gitignore": "!settings.json\n",
            "sub/settings.json": "{}", "top.json": "{}",
            "vendor/.gitignore": "!*\n", "vendor/lib.py": "",  # git never looks into an ignored folder
        },
    )  # fmt: skip
    assert paths(code_package.build(str(folder))) == [".gitignore", "sub/.gitignore", "sub/settings.json"]


def test_aqignore_leaves_files_out_and_may_take_back_what_git_ignores(tmp_path):
    folder = tree(
        tmp_path / "code",
        {
            ".gitignore": "generated/\n",
            ".aqignore": "notebooks/\n*.ipynb\n!generated/\n",
            "generated/schema.py": "", "notebooks/explore.py": "", "pkg/try.ipynb": "{}", "pkg/ok.py": "",
        },
    )  # fmt: skip
    assert paths(code_package.build(str(folder))) == [".aqignore", ".gitignore", "generated/schema.py", "pkg/ok.py"]


def test_hidden_folders_bytecode_and_caches_stay_out_and_hidden_files_go_in(tmp_path):
    folder = tree(
        tmp_path / "code",
        {
            ".git/config": "", ".venv/lib/x.py": "", "pkg/.ipynb_checkpoints/a.py": "",
            "pkg/__pycache__/m.cpython-312.pyc": b"\0", "pkg/m.pyc": b"\0", "pkg/m.pyo": b"\0",
            "pkg/m.py": "", ".airflowignore": "x\n", "pkg/.config.toml": "a = 1\n",
        },
    )  # fmt: skip
    assert paths(code_package.build(str(folder))) == [".airflowignore", "pkg/.config.toml", "pkg/m.py"]


# -- what refuses a package ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [".env", "pkg/.env.production", "tls/server.pem", "server.key", "id_rsa", "deploy/id_ed25519", "credentials.json",
     ".netrc", ".pgpass", "gcp-service-account.json", "client_secret_123.json", "keystore.p12"],
)  # fmt: skip
def test_a_file_named_like_a_credential_refuses_the_package(tmp_path, name):
    folder = tree(tmp_path / "code", {**CODE, name: "anything\n"})
    with pytest.raises(PackageRefused) as refused:
        code_package.build(str(folder))
    assert refused.value.path == name
    assert ".aqignore" in refused.value.why and "move it out" in refused.value.why


KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
SERVICE_ACCOUNT = json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n"})


@pytest.mark.parametrize(
    "content, kind, line",
    [
        (f"# deploy key\n{KEY}", "a private key", 2),
        ('AWS = "AKIAIOSFODNN7EXAMPLE"\n', "an AWS access key", 1),
        ('\n\nDSN = "postgresql://etl:hunter2@db.internal/prod"\n', "a URI with a password", 3),
        ('TOKEN = "ghp_' + "a" * 36 + '"\n', "a GitHub token", 1),
        (SERVICE_ACCOUNT, "a private key", 1),
    ],
)
def test_a_text_file_holding_a_credential_refuses_the_package_naming_the_file_and_line(tmp_path, content, kind, line):
    folder = tree(tmp_path / "code", {**CODE, "pkg/settings.py": content})
    with pytest.raises(PackageRefused) as refused:
        code_package.build(str(folder))
    assert refused.value.path == "pkg/settings.py"
    assert refused.value.why.startswith(f"line {line} looks like a credential ({kind})")
    assert "hunter2" not in str(refused.value) and "AKIA" not in str(refused.value)


def test_code_that_only_names_credentials_and_binary_files_are_packaged(tmp_path):
    folder = tree(
        tmp_path / "code",
        {
            "pkg/db.py": 'import os\nconnect(password=os.environ["PW"])\nURL = f"postgresql://{user}:{password}@h/d"\n',
            "pkg/model.bin": b"\0\1\2AKIAIOSFODNN7EXAMPLE\0",  # binary: not scanned
            ".env.example": "DB_PASSWORD=\n",
        },
    )  # fmt: skip
    assert paths(code_package.build(str(folder))) == [".env.example", "pkg/db.py", "pkg/model.bin"]


def test_ignored_credentials_are_left_out_silently_and_never_enter_the_package(tmp_path):
    folder = tree(
        tmp_path / "code",
        {**CODE, ".gitignore": ".env\nsecrets/\n", ".aqignore": "*.pem\nfixtures/dsn.txt\n", ".env": "A=1\n",
         "secrets/id_rsa": KEY, "ca.pem": KEY, "fixtures/dsn.txt": "postgresql://u:hunter2@h/d\n"},
    )  # fmt: skip
    package = code_package.build(str(folder))
    assert sorted(members(package)) == [".aqignore", ".gitignore", "pkg/__init__.py", "pkg/model.py", "run.sh"]
    assert b"hunter2" not in gzip.decompress(package.data) and b"PRIVATE KEY" not in gzip.decompress(package.data)


def test_a_symbolic_link_out_of_the_folder_is_refused_and_one_to_nothing_left_out(tmp_path):
    outside = tree(tmp_path / "elsewhere", {"shared.py": "X = 1\n"})
    folder = tree(tmp_path / "code", CODE)
    (folder / "pkg/shared.py").symlink_to(outside / "shared.py")
    with pytest.raises(PackageRefused, match="symbolic link out of the code folder") as refused:
        code_package.build(str(folder))
    assert refused.value.path == "pkg/shared.py"
    (folder / "pkg/shared.py").unlink()
    (folder / "lib").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PackageRefused, match="symbolic link out of the code folder"):
        code_package.build(str(folder))
    (folder / "lib").unlink()
    (folder / "lib").symlink_to(folder / "lib")  # a link to itself: to nothing
    (folder / "gone.py").symlink_to(folder / "nothing.py")  # to nothing: no code, left out
    assert paths(code_package.build(str(folder))) == sorted(CODE)
    (folder / "out.py").symlink_to(outside / "shared.py")
    (folder / ".aqignore").write_text("out.py\n")  # listed: left out, not refused
    assert "out.py" not in paths(code_package.build(str(folder)))


def test_links_inside_the_folder_a_file_as_its_contents_a_folder_not_followed_even_in_a_loop(tmp_path):
    folder = tree(tmp_path / "code", CODE)
    (folder / "model_link.py").symlink_to("pkg/model.py")
    (folder / "pkg/loop").symlink_to("..", target_is_directory=True)  # code/pkg/loop -> code
    (folder / "alias").symlink_to("pkg", target_is_directory=True)
    package = code_package.build(str(folder))
    assert paths(package) == ["model_link.py", "pkg/__init__.py", "pkg/model.py", "run.sh"]
    assert members(package)["model_link.py"] == (folder / "pkg/model.py").read_bytes()


@pytest.mark.parametrize(
    ("files", "link", "target", "why"),
    [
        # the review's case: an ignored .env reached through a link whose name is harmless
        ({".gitignore": ".env\n", ".env": "DB_PASSWORD=hunter2\n"}, "settings.cfg", ".env", "is ignored"),
        ({".gitignore": "private/\n", "private/dsn.txt": "DB_PASSWORD=hunter2\n"}, "pkg/dsn.txt",
         "private/dsn.txt", "is in the ignored folder private/"),
        ({"conf/.gitignore": "local.ini\n", "conf/local.ini": "DB_PASSWORD=hunter2\n"}, "local.cfg",
         "conf/local.ini", "is ignored"),
        ({".secrets/token": "DB_PASSWORD=hunter2\n"}, "token.txt", ".secrets/token",
         "is in the hidden or cache folder .secrets/"),
        ({"keys/prod.pem": "DB_PASSWORD=hunter2\n"}, "cert.txt", "keys/prod.pem",
         "looks like a credential file by its name"),
    ],
)  # fmt: skip
def test_a_link_to_a_file_the_package_leaves_out_or_refuses_is_refused_naming_link_and_target(
    tmp_path, files, link, target, why
):
    folder = tree(tmp_path / "code", {**CODE, **files})
    (folder / link).symlink_to(folder / target)
    with pytest.raises(PackageRefused) as refused:
        code_package.build(str(folder))
    assert refused.value.path == link
    assert f"is a symbolic link to {target}, which {why}" in refused.value.why
    # the link listed (and the .pem, which refuses the folder by itself): the target's contents stay out
    (folder / ".aqignore").write_text(f"{link}\n{target}\n")
    package = code_package.build(str(folder))
    assert link not in paths(package) and b"hunter2" not in gzip.decompress(package.data)


def test_a_run_reships_its_pinned_code_until_its_pin_is_deleted(tmp_path):
    """What Airflow's Clear does (the docs' "Running fixed code"): a cleared task of a run gets the
    run's pinned package, not the fixed folder; with the run's ``_code.json`` deleted first, the
    next task pins the folder as it is now."""
    from aq_airflow.runners.code import run_folder, ship
    from aq_airflow.runtime import contract

    dags = tmp_path / "dags"
    tree(dags / "src", CODE)
    spec = write(
        dags,
        "p.aq.yaml",
        f"pipeline: p\nartifacts: {tmp_path / 'store'}\ncode: src\nsteps:\n  a:\n    python: pkg.model:train\n",
    )
    (run,) = [t.body for t in compile_spec(str(spec), str(dags)).tasks if isinstance(t.body, RunPlan)]
    first = ship(run, str(dags), "manual__1")
    (dags / "src/pkg/model.py").write_text("def train():\n    return 2\n")  # the fix
    assert ship(run, str(dags), "manual__1") == first  # the task cleared: the run's pinned code
    fixed = code_package.build(str(dags / "src")).digest
    assert first[contract.CODE_DIGEST] != fixed
    assert ship(run, str(dags), "manual__2")[contract.CODE_DIGEST] == fixed  # a new run: the fix
    os.remove(os.path.join(run_folder(run, str(tmp_path / "store"), "manual__1"), "_code.json"))
    assert ship(run, str(dags), "manual__1")[contract.CODE_DIGEST] == fixed  # pin deleted, then cleared: the fix
    assert code_package.read_pin(run_folder(run, str(tmp_path / "store"), "manual__1")).digest == fixed


def test_the_package_requires_a_python_whose_tarfile_has_extraction_filters():
    """``fetch`` extracts with ``filter="data"`` (3.10.12, 3.11.4, 3.12.0 on): an older Python
    must not install aq-airflow, or every step's extraction fails."""
    import configparser

    from packaging.specifiers import SpecifierSet

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[1] / "setup.cfg")
    allowed = SpecifierSet(setup["options"]["python_requires"])
    assert [v for v in ("3.9.18", "3.10.11", "3.11.0", "3.11.3") if v in allowed] == []
    assert [v for v in ("3.10.12", "3.11.4", "3.11.7", "3.12.0", "3.13.1") if v in allowed] == [
        "3.10.12", "3.11.4", "3.11.7", "3.12.0", "3.13.1"
    ]  # fmt: skip
    assert hasattr(tarfile, "data_filter")  # this Python, which the tests run on


def test_a_folder_over_the_size_limit_is_refused_naming_its_largest_files(tmp_path):
    folder = tree(tmp_path / "code", {**CODE, "data/big.csv": "x" * 3000, "data/mid.csv": "y" * 1500})
    with pytest.raises(PackageRefused) as refused:
        code_package.build(str(folder), 4000)
    assert refused.value.path is None
    assert "over the package limit" in refused.value.why and "data/big.csv" in refused.value.why
    assert "code_max_size" in refused.value.why
    assert code_package.build(str(folder), 5000).size == sum(f.size for f in code_package.scan(str(folder), 5000))


def test_the_specs_code_max_size_reaches_the_plan(tmp_path):
    spec = write(tmp_path, "sized.aq.yaml", "code_max_size: 200Mi\nsteps:\n  a:\n    python: pkg.model:train\n")
    (run,) = [t.body for t in compile_spec(str(spec), str(tmp_path)).tasks if isinstance(t.body, RunPlan)]
    assert run.code_max_size == 200 * 2**20
    unset = write(tmp_path, "unset.aq.yaml", "steps:\n  a:\n    python: pkg.model:train\n")
    (run,) = [t.body for t in compile_spec(str(unset), str(tmp_path)).tasks if isinstance(t.body, RunPlan)]
    assert run.code_max_size is None


# -- the build cache -------------------------------------------------------------------------------


def test_an_unchanged_folder_is_taken_from_the_cache_in_this_process_and_the_next(tmp_path, build_cache):
    folder = tree(tmp_path / "code", CODE)
    built = code_package.build(str(folder))
    assert code_package.build(str(folder)) == built
    entries = sorted(p.name for p in build_cache.iterdir())
    assert len(entries) == 2 and {e.rsplit(".", 1)[-1] for e in entries} == {"json", "gz"}
    assert {oct(p.stat().st_mode & 0o777) for p in build_cache.iterdir()} == {"0o600"}
    assert oct(build_cache.stat().st_mode & 0o777) == "0o700"
    code_cache._MEMORY.clear()  # as the next process finds it: the disk cache only
    assert code_package.build(str(folder)) == built
    (data,) = build_cache.glob("*.tar.gz")
    data.write_bytes(b"damaged")  # not the bytes the entry recorded: built again, not used
    code_cache._MEMORY.clear()
    assert code_package.build(str(folder)) == built


def test_the_cache_notices_a_changed_file(tmp_path):
    folder = tree(tmp_path / "code", CODE)
    first = code_package.build(str(folder))
    (folder / "pkg/model.py").write_text("def train():\n    return 3\n")
    changed = code_package.build(str(folder))
    assert changed.digest != first.digest and members(changed)["pkg/model.py"].endswith(b"return 3\n")
    (folder / "pkg/model.py").write_text(KEY)  # a credential added to a cached folder is still refused
    with pytest.raises(PackageRefused, match="private key"):
        code_package.build(str(folder))


def test_a_cache_folder_someone_else_may_write_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "aq-airflow" / "code").mkdir(parents=True)
    (shared / "aq-airflow" / "code").chmod(0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared))
    assert code_cache.default_folder() != str(shared / "aq-airflow" / "code")
    folder = tree(tmp_path / "code", CODE)
    code_package.build(str(folder))
    assert list((shared / "aq-airflow" / "code").iterdir()) == []


# -- storing and fetching --------------------------------------------------------------------------


def stored(root: str) -> list[str]:
    """The files under ``<root>/_code/``."""
    fs, path = filesystem(f"{root}/{code_package.CODE_FOLDER}")
    found = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return sorted(f.base_name for f in found if f.type == pafs.FileType.File)


def test_upload_is_idempotent_and_concurrent_uploads_leave_one_valid_package(tmp_path):
    package = code_package.build(str(tree(tmp_path / "code", CODE)))
    root = str(tmp_path / "store")
    barrier = threading.Barrier(8)
    uris, errors = [], []

    def upload():
        barrier.wait()
        try:
            uris.append(code_package.upload(package, root))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=upload) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and set(uris) == {code_package.location(root, package.digest)}
    assert stored(root) == [package.hex]  # no temporary file left beside it
    code_package._STORED.clear()
    assert code_package.upload(package, root) == uris[0]
    assert stored(root) == [package.hex]
    folder = code_package.fetch(uris[0], package.digest, str(tmp_path / "cache"))
    assert sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file()) == sorted(CODE)


def test_fetch_refuses_a_tampered_package_and_bytes_that_are_no_package(tmp_path):
    package = code_package.build(str(tree(tmp_path / "code", CODE)))
    uri = code_package.upload(package, str(tmp_path / "store"))
    other = code_package.build(str(tree(tmp_path / "other", {"evil.py": "import os\n"})))
    Path(uri).write_bytes(other.data)
    with pytest.raises(PackageMismatch, match="changed after it was stored"):
        code_package.fetch(uri, package.digest, str(tmp_path / "cache"))
    Path(uri).write_bytes(b"not gzip at all")
    with pytest.raises(PackageMismatch, match="not a gzip archive"):
        code_package.fetch(uri, package.digest, str(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()  # nothing extracted


def test_extraction_refuses_entries_out_of_the_folder(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in ("ok.py", "../escaped.py"):
            info = tarfile.TarInfo(name)
            info.size = 2
            archive.addfile(info, io.BytesIO(b"x\n"))
    tar = buffer.getvalue()
    digest = code_package.DIGEST_PREFIX + hashlib.sha256(tar).hexdigest()
    store = tmp_path / "store" / code_package.CODE_FOLDER
    store.mkdir(parents=True)
    (store / digest.removeprefix("sha256:")).write_bytes(gzip.compress(tar))
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(PackageMismatch, match="cannot be extracted"):
        code_package.fetch(str(store / digest.removeprefix("sha256:")), digest, str(cache))
    assert os.listdir(cache) == []  # neither the entry out of the folder nor the rest


FETCH = """
import sys, time
from aq_airflow.artifacts import code_package
start = float(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
print(code_package.fetch(sys.argv[1], sys.argv[2], sys.argv[3]))
"""


def test_two_processes_extracting_one_package_at_once_both_get_the_whole_folder(tmp_path):
    files = {f"pkg/m{i}.py": f"X = {i}\n" * 200 for i in range(300)}
    package = code_package.build(str(tree(tmp_path / "code", files)))
    uri = code_package.upload(package, str(tmp_path / "store"))
    start = str(time.time() + 2)
    cache = str(tmp_path / "cache")
    procs = [
        subprocess.Popen([sys.executable, "-c", FETCH, uri, package.digest, cache, start], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], results
    (folder,) = {out.strip() for out, _ in results}
    for name, content in files.items():
        assert (Path(folder) / name).read_text() == content
    assert os.listdir(cache) == [package.hex]  # no staging folder left


def test_upload_and_fetch_on_each_object_store(tmp_path, object_store):
    scheme, bucket = object_store
    bucket("code")
    tree(tmp_path / "code", CODE)
    (tmp_path / "code/run.sh").chmod(0o755)
    package = code_package.build(str(tmp_path / "code"))
    root = f"{scheme}://code/aq"
    uri = code_package.upload(package, root)
    assert uri == f"{root}/_code/{package.hex}"
    code_package._STORED.clear()
    assert code_package.upload(package, root) == uri  # there already: not written again
    assert stored(root) == [package.hex]
    folder = code_package.fetch(uri, package.digest, str(tmp_path / "cache"))
    assert (Path(folder) / "pkg/model.py").read_text() == CODE["pkg/model.py"]
    assert (Path(folder) / "run.sh").stat().st_mode & 0o111 and not (
        Path(folder) / "pkg/model.py"
    ).stat().st_mode & 0o111
    fs, path = filesystem(uri)
    with fs.open_output_stream(path) as handle:
        handle.write(gzip.compress(b"another tar"))
    with pytest.raises(PackageMismatch):
        code_package.fetch(uri, package.digest, str(tmp_path / "other-cache"))


# -- gc: a run's pin is aq-airflow's, the packages are kept -----------------------------------------


def test_gc_takes_a_runs_code_pin_with_it_and_keeps_the_packages(tmp_path, capsys):
    from aq_airflow.cli.gc import clean, survey

    assert runs.RUN_PIN == code_package.RUN_PIN
    root = str(tmp_path / "store")
    package = code_package.build(str(tree(tmp_path / "code", CODE)))
    uri = code_package.upload(package, root)
    run_id = "scheduled__2026-01-01T00:00:00+00:00"
    code_package.pin(f"{root}/churn/{run_id}", code_package.PinnedCode(package.digest, uri))
    past = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc).timestamp()
    os.utime(f"{root}/churn/{run_id}/_code.json", (past, past))
    now = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
    found = survey(root, "churn", now - datetime.timedelta(days=30))
    assert found.left == [] and [e.run.run_id for e in found.expired] == [run_id]  # only a pin: a run folder
    clean(found.expired[0], now - datetime.timedelta(days=30), now)
    assert not os.path.exists(f"{root}/churn/{run_id}")
    assert stored(root) == [package.hex]
    assert runs.pipeline_entries(root, code_package.CODE_FOLDER) == []  # never a pipeline's folder


def test_a_pipeline_may_not_be_named_like_the_packages_folder(tmp_path):
    spec = write(tmp_path, "x.aq.yaml", "pipeline: _code\nsteps:\n  a:\n    sql: SELECT 1\n")
    result = subprocess.run([*CLI, "validate", str(spec)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{spec}:1:11: `_code` is the name of the artifact store's folder of code")


# -- aq-airflow package and validate ---------------------------------------------------------------


def cli(*args, env=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)


SPEC = "artifacts: {store}\nsteps:\n  train:\n    python: pkg.model:train\n  ship:\n    command: ./run.sh\n"


def test_the_package_command_prints_the_files_the_size_and_the_digest(tmp_path):
    folder = tree(tmp_path / "dags", CODE)
    spec = write(folder, "train.aq.yaml", SPEC.format(store=tmp_path / "store"))
    expected = code_package.build(str(folder), cache=False)
    result = cli("package", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == expected.digest
    listed = [line.split() for line in lines[:-2]]
    assert [(path, int(size.replace(",", ""))) for size, path in listed] == [(f.path, f.size) for f in expected.files]
    assert "train.aq.yaml" in [f.path for f in expected.files]
    assert lines[-2].startswith(f"{len(expected.files)} file(s), {expected.size:,} bytes")
    document = json.loads(cli("package", str(spec), "--json").stdout)
    assert document["digest"] == expected.digest and document["uri"] is None
    assert document["files"] == [{"path": f.path, "size": f.size} for f in expected.files]


def test_the_package_command_uploads_ahead_of_time(tmp_path):
    folder = tree(tmp_path / "dags", CODE)
    spec = write(folder, "train.aq.yaml", SPEC.format(store=tmp_path / "store"))
    result = cli("package", str(spec), "--upload")
    assert result.returncode == 0, result.stdout + result.stderr
    digest, uri = result.stdout.splitlines()[-2:]
    assert uri == f"{tmp_path}/store/_code/{digest.removeprefix('sha256:')}"
    folder = code_package.fetch(uri, digest, str(tmp_path / "cache"))
    assert (Path(folder) / "pkg/model.py").read_text() == CODE["pkg/model.py"]


def test_the_package_command_on_the_s3_emulator(tmp_path, s3_emulator):
    s3_emulator("ci-code")
    folder = tree(tmp_path / "dags", CODE)
    spec = write(folder, "train.aq.yaml", SPEC.format(store="s3://ci-code/aq"))
    result = cli("package", str(spec), "--upload", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["uri"] == f"s3://ci-code/aq/_code/{document['digest'].removeprefix('sha256:')}"
    assert stored("s3://ci-code/aq") == [document["digest"].removeprefix("sha256:")]


def test_the_package_command_with_nothing_to_package(tmp_path):
    image = write(tmp_path, "image.aq.yaml", "code: image\nsteps:\n  a:\n    python: pkg.model:train\n")
    result = cli("package", str(image))
    assert result.returncode == 0 and result.stdout == ""
    assert "nothing to package: `code: image`" in result.stderr
    sql = write(tmp_path, "sql.aq.yaml", "steps:\n  a:\n    sql: SELECT 1\n")
    assert "nothing to package: it has no python or command step" in cli("package", str(sql)).stderr


@pytest.mark.parametrize(
    "head, where",
    [("", "1:1"), ("code: src\n", "1:7"), ("defaults:\n  code: src\n", "2:9")],
    ids=["default folder", "code", "defaults.code"],
)
def test_a_refused_package_is_a_located_error_in_package_and_validate(tmp_path, head, where):
    tree(tmp_path / "src", {**CODE, ".env": "A=1\n"})
    tree(tmp_path, {".env": "A=1\n"})
    spec = write(tmp_path, "p.aq.yaml", head + "steps:\n  a:\n    python: pkg.model:train\n")
    for command in (["package", str(spec)], ["validate", str(spec)]):
        result = cli(*command)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        (line,) = [line for line in result.stdout.splitlines() if "code package cannot be built" in line]
        folder = tmp_path / "src" if head else tmp_path
        assert line == (
            f"{spec}:{where}: the code package cannot be built: .env in the code folder {folder}: looks like a "
            "credential file by its name: list it in .aqignore, or move it out of the code folder (a step gets "
            "credentials as `{secret: name, key: k}` env values)"
        )


def test_validate_reports_a_package_over_the_specs_limit_and_a_link_out(tmp_path):
    tree(tmp_path, {**CODE, "data.csv": "x" * 2000})
    spec = write(tmp_path, "p.aq.yaml", "code_max_size: 1KB\nsteps:\n  a:\n    command: ./run.sh\n")
    result = cli("validate", str(spec))
    assert result.returncode == 1
    assert (
        f"{spec}:1:1: the code package cannot be built: the code folder {tmp_path}: its files come to" in result.stdout
    )
    assert "over the package limit of 1,000 bytes (largest: data.csv (2.0 KiB)" in result.stdout
    (tmp_path / "data.csv").unlink()
    (tmp_path / "passwd").symlink_to("/etc/passwd")
    result = cli("validate", str(spec))
    assert "passwd in the code folder" in result.stdout and "symbolic link out of the code folder" in result.stdout
    (tmp_path / "passwd").unlink()
    result = cli("validate", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_dagbag_reports_a_refused_package_as_a_step_code_problem(dags_folder):
    spec = write(dags_folder, "p.aq.yaml", "steps:\n  a:\n    command: [echo, hi]\n")
    tree(dags_folder, {"deploy/id_rsa": KEY})
    result = cli("dagbag", str(dags_folder))
    assert result.returncode == 1, result.stdout + result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines() if line.startswith("ok")] == [["ok", "p"]]
    assert (
        f"STEP CODE {spec}:1:1: the code package cannot be built: deploy/id_rsa in the code folder {dags_folder}: "
        "looks like a credential file by its name" in result.stdout
    )
