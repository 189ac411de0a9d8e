"""Hostile trial of `aq-airflow gc` (issue 18): it deletes only what aq-airflow wrote, in folders
named as Airflow names runs, and reports everything it leaves alone; a run being written keeps
its new files; `validate`, `aq-airflow run` and gc refuse an artifact root that is `/`, a home or
a system folder. On a local folder and on the S3, GCS and Azure emulators.

Object stores cannot back-date a file, so every test ages the store by running gc at a `now` three
days ahead (the TTL is one day): everything the test wrote is past the cutoff, whatever its
store."""

from __future__ import annotations

import datetime
import json
import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from aq_airflow.cli.gc import NOT_A_RUN_ID, NOT_OURS, clean, collect, doomed, remove, survey
from aq_airflow.cli.main import main as cli
from aq_airflow.client.runs import AIRFLOW_RUN_ID, RUN_TYPES, STEP_FOLDER, list_runs, write_record
from aq_airflow.runtime.artifacts import ATTEMPT_FILE, Location
from aq_airflow.runtime.items import write_items
from aq_airflow.runtime.values import write_output
from tests.helpers import write

RUN = "manual__2026-01-01T00:00:00+00:00"
LATER_RUN = "scheduled__2026-01-02T00:00:00.123456+00:00"
SPEC = "pipeline: victim\nartifacts: {root}\nartifacts_ttl: 1d\nsteps:\n  a: {{sql: SELECT 1}}\n"
AHEAD = datetime.timedelta(days=3)


def later() -> datetime.datetime:
    """gc's `now`: three days ahead, so everything written so far is past the one-day TTL."""
    return datetime.datetime.now(datetime.timezone.utc) + AHEAD


@pytest.fixture(params=["local", "s3", "gs", "abfs"])
def store(request, tmp_path) -> str:
    """A store root: a local folder (a user's home, say) or a prefix in an emulated bucket."""
    if request.param == "local":
        return str(tmp_path / "home")
    fixture = {"s3": "s3_emulator", "gs": "gcs_emulator", "abfs": "azure_emulator"}[request.param]
    request.getfixturevalue(fixture)("gc-hostile")
    return f"{request.param}://gc-hostile/{uuid.uuid4().hex[:8]}"  # GCS keeps objects between tests


def put(root: str, path: str, data: bytes | str = b"years of work") -> None:
    location = Location.of(root)
    target = location.join(path)
    location.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
    with location.fs.open_output_stream(target) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def files(root: str) -> set[str]:
    """Every file under the root, relative to it."""
    location = Location.of(root)
    listed = location.fs.get_file_info(pafs.FileSelector(location.path, recursive=True, allow_not_found=True))
    return {i.path[len(location.path) :].strip("/") for i in listed if i.type == pafs.FileType.File}


def entries(root: str) -> set[str]:
    """Every file and folder under the root, relative to it."""
    location = Location.of(root)
    listed = location.fs.get_file_info(pafs.FileSelector(location.path, recursive=True, allow_not_found=True))
    return {i.path[len(location.path) :].strip("/") for i in listed}


def step_output(root: str, run_id: str, step: str, value, item: int | None = None) -> None:
    """A step's output as the runtime commits it (the same calls as `runtime.step.run_step`)."""
    folder = f"{root}/victim/{run_id}/{step}" + ("" if item is None else f"/{item}")
    location = Location.of(folder)
    attempt = location.begin()
    location.commit({**write_output(location, attempt, value), "step": step, "attempt": attempt, "uri": folder})


def killed_attempt(root: str, run_id: str, step: str, value) -> str:
    """An attempt that wrote its data and died before its manifest; the file's name."""
    location = Location.of(f"{root}/victim/{run_id}/{step}")
    return write_output(location, location.begin(), value)["files"][0]


def real_run(root: str, run_id: str = RUN) -> None:
    """A run as aq-airflow leaves it: a table, an object, a mapped step with its items, a killed
    attempt and a run record."""
    step_output(root, run_id, "orders", pa.table({"id": [1, 2, 3]}))
    step_output(root, run_id, "model", {"weights": [0.5]})
    write_items(Location.of(f"{root}/victim/{run_id}/per_region"), ["eu", "us"])
    for index in range(2):
        step_output(root, run_id, "per_region", pa.table({"n": [index]}), item=index)
    killed_attempt(root, run_id, "scores", pa.table({"x": [1.0]}))
    put(root, f"victim/{run_id}/scores/._manifest.json.0123abcd", "{}")  # a commit's temporary, its writer killed
    write_record(root, "victim", run_id, {"dag_id": "victim", "run_id": run_id, "state": "success"})


def gc(tmp_path, root: str, capsys, dry_run: bool = False) -> tuple[int, str, str]:
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    write(dags, "victim.aq.yaml", SPEC.format(root=root))
    capsys.readouterr()
    code = collect(str(dags), dry_run=dry_run, now=later())
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_a_real_expired_run_is_deleted_whole(store, tmp_path, airflow_db, capsys):
    """The normal case still works on every store: everything of an expired run goes, the run
    folder too; a dry run only lists it."""
    real_run(store)
    before = files(store)
    assert any(ATTEMPT_FILE.fullmatch(path.rsplit("/", 1)[1]) for path in before if "/scores/" in path)
    code, out, _ = gc(tmp_path, store, capsys, dry_run=True)
    assert code == 0 and f"would delete {store}/victim/{RUN} (3 days old)" in out, out
    assert files(store) == before

    code, out, err = gc(tmp_path, store, capsys)
    assert code == 0 and f"deleted {store}/victim/{RUN} (3 days old)" in out, out
    assert "left alone" not in out and "1 run folder(s) deleted" in err
    assert not {path for path in entries(store) if RUN in path}, entries(store)


def test_the_victims_project_folder_is_left_and_reported(store, tmp_path, airflow_db, capsys):
    """The hostile trial: `artifacts:` a home, `pipeline: victim`, and `victim/projectX/` holding
    `tests/fixtures/_manifest.json` (even one that looks like ours) and a thesis. It was deleted as
    an expired run; now it is left, said so, and a real run beside it still goes."""
    put(store, "victim/projectX/thesis.tex")
    put(store, "victim/projectX/tests/fixtures/_manifest.json", json.dumps({"kind": "none", "files": [],
                                                                           "writer": "aq-airflow"}))  # fmt: skip
    put(store, f"victim/projectX/{RUN}/a/_manifest.json", json.dumps({"kind": "none", "files": [],
                                                                     "writer": "aq-airflow"}))  # fmt: skip
    real_run(store)
    code, out, _ = gc(tmp_path, store, capsys, dry_run=True)
    assert f"left alone {store}/victim/projectX: {NOT_A_RUN_ID}" in out, out
    code, out, _ = gc(tmp_path, store, capsys)
    assert code == 0 and f"left alone {store}/victim/projectX: not a run folder" in out, out
    assert files(store) == {
        "victim/projectX/thesis.tex", "victim/projectX/tests/fixtures/_manifest.json",
        f"victim/projectX/{RUN}/a/_manifest.json",
    }  # fmt: skip


@pytest.mark.parametrize(
    "manifest",
    [
        {"kind": "table", "files": ["data.parquet"]},  # no writer: someone else's (or an older aq-airflow's)
        {"kind": "table", "files": ["data.parquet"], "writer": "another-tool"},
        {"writer": "aq-airflow", "files": ["data.parquet"]},  # no kind
        {"kind": "table", "files": ["../../thesis.tex"], "writer": "aq-airflow"},  # a path elsewhere
        [1, 2],
        "not json at all {",
    ],
    ids=["no-writer", "other-writer", "no-kind", "path-elsewhere", "a-list", "not-json"],
)
def test_a_run_named_folder_whose_manifests_are_not_ours_is_left(store, tmp_path, airflow_db, capsys, manifest):
    run = f"victim/{RUN}"
    put(store, f"{run}/a/_manifest.json", manifest if isinstance(manifest, str) else json.dumps(manifest))
    put(store, f"{run}/a/data.parquet")
    put(store, f"{run}/thesis.tex")
    before = files(store)
    code, out, _ = gc(tmp_path, store, capsys)
    assert code == 0 and f"left alone {store}/{run}: {NOT_OURS}" in out, out
    assert files(store) == before


def test_run_looking_names_and_manifests_out_of_place_are_left(store, tmp_path, airflow_db, capsys):
    """A run id name with our manifest only deeper than a step's place, or in an item folder with
    no item list beside it, is no run; neither is a run folder's look-alike nested in a project."""
    ours = json.dumps({"kind": "none", "files": [], "writer": "aq-airflow"})
    put(store, f"victim/{RUN}/a/b/_manifest.json", ours)
    put(store, f"victim/{LATER_RUN}/a/0/_manifest.json", ours)  # an item folder, no `a/_items.json`
    put(store, f"victim/{LATER_RUN}/notes.txt")
    put(store, f"victim/projectX/{RUN}/step/_manifest.json", ours)
    before = files(store)
    code, out, _ = gc(tmp_path, store, capsys)
    assert code == 0
    for folder in (f"victim/{RUN}", f"victim/{LATER_RUN}"):
        assert f"left alone {store}/{folder}: not a run folder: no file aq-airflow writes" in out, out
    assert f"left alone {store}/victim/projectX: not a run folder" in out
    assert files(store) == before


def test_a_users_files_inside_a_real_run_folder_survive(store, tmp_path, airflow_db, capsys):
    real_run(store)
    run = f"victim/{RUN}"
    put(store, f"{run}/notes.txt")
    put(store, f"{run}/orders/my-copy.csv")  # beside a committed output, named by no manifest
    put(store, f"{run}/orders/part-1.parquet")  # looks like a part, is not an attempt's name
    put(store, f"{run}/drafts/chapter1.tex")
    put(store, f"{run}/per_region/7/_manifest.json", "{}")  # an item folder's manifest, not ours
    code, out, _ = gc(tmp_path, store, capsys)
    assert code == 0 and f"deleted aq-airflow's files in {store}/{run} (3 days old)" in out, out
    assert f"left alone {store}/{run}/: 1 file(s) aq-airflow did not write (notes.txt)" in out
    assert f"left alone {store}/{run}/orders/: 2 file(s) aq-airflow did not write (my-copy.csv, part-1.parquet)" in out
    assert f"left alone {store}/{run}/drafts/: 1 file(s)" in out and f"left alone {store}/{run}/per_region/7/" in out
    assert files(store) == {
        f"{run}/notes.txt", f"{run}/orders/my-copy.csv", f"{run}/orders/part-1.parquet", f"{run}/drafts/chapter1.tex",
        f"{run}/per_region/7/_manifest.json",
    }  # fmt: skip
    assert not {e for e in entries(store) if e.startswith((f"{run}/model", f"{run}/scores"))}, entries(store)


def test_a_run_written_to_while_gc_runs_keeps_its_new_files(store, tmp_path, capsys):
    """gc lists the run, then a step writes there (a retry's attempt in one step, a new step's
    uncommitted output), then gc deletes: the run is kept whole and said to be written to."""
    real_run(store)
    cutoff = later() - datetime.timedelta(days=1)
    (expired,) = survey(store, "victim", cutoff).expired
    new_part = killed_attempt(store, RUN, "retrained", pa.table({"y": [1]}))
    put(store, f"victim/{RUN}/orders/report.csv", "a command step writing")
    before = files(store)
    capsys.readouterr()
    clean(expired, cutoff, later())
    assert f"kept    {store}/victim/{RUN} (written to since gc listed it" in capsys.readouterr().out
    assert files(store) == before and f"victim/{RUN}/retrained/{new_part}" in before


def test_deletion_takes_only_the_files_it_listed(store, tmp_path):
    """The deletion itself (listed, then a writer adds files, then deleted with no second look):
    every file not in the listing survives, with its folder; what was listed and ours goes."""
    real_run(store)
    cutoff = later() - datetime.timedelta(days=1)
    (expired,) = survey(store, "victim", cutoff).expired
    new_part = killed_attempt(store, RUN, "orders", pa.table({"id": [4]}))  # a retry of `orders`
    put(store, f"victim/{RUN}/late/part-0123456789ab.parquet", "a new step's attempt")
    assert remove(expired.run.location, doomed(expired, cutoff)) == []
    assert files(store) == {f"victim/{RUN}/orders/{new_part}", f"victim/{RUN}/late/part-0123456789ab.parquet"}


def test_a_run_with_a_run_id_of_its_own_is_left_and_listed(store, tmp_path, airflow_db, capsys):
    """A run triggered through the REST API with its own run_id: its folder cannot be told from
    a user's by its name, so gc leaves it and says how to remove it; the client still lists it."""
    real_run(store, "my_own_run")
    before = files(store)
    code, out, _ = gc(tmp_path, store, capsys)
    assert code == 0 and f"left alone {store}/victim/my_own_run: {NOT_A_RUN_ID}" in out, out
    assert "delete its folder by hand" in out and files(store) == before
    assert [run.run_id for run in list_runs(store, "victim")] == ["my_own_run"]


def test_a_stale_attempt_is_taken_only_past_the_cutoff(tmp_path, capsys):
    """A killed attempt's file newer than the cutoff stays (a run's newest file decides its age;
    an attempt's own age decides whether its file goes)."""
    root = str(tmp_path / "store")
    real_run(root)
    cutoff = later() - datetime.timedelta(days=1)
    (expired,) = survey(root, "victim", cutoff).expired
    stale = [f for f in expired.found.attempts]
    assert {f.base_name for f in stale} >= {"._manifest.json.0123abcd"} and len(stale) == 2
    early = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    assert not [f for f in doomed(expired, early) if f in stale]  # past an earlier cutoff: kept
    assert set(stale) <= set(doomed(expired, cutoff))


def test_run_ids_are_airflows():
    """The run types and the step folder rule gc knows are Airflow's and the spec's."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType
    from pydantic import TypeAdapter, ValidationError

    from aq_airflow.pipeline_spec.types import StepName

    assert set(RUN_TYPES) == {t.value for t in DagRunType}
    when = datetime.datetime(2026, 1, 1, 12, 30, 15, 123456, tzinfo=datetime.timezone.utc)
    for run_type in DagRunType:
        for logical in (when, None):
            run_id = DagRun.generate_run_id(run_type=run_type, logical_date=logical, run_after=when)
            assert AIRFLOW_RUN_ID.fullmatch(run_id), run_id
    names = TypeAdapter(StepName)
    for name in ("a", "_a", "A1", "1a", "a-b", "a.b", "é", "a" * 63, "a" * 64, "", "manual__x"):
        try:
            names.validate_python(name)
            valid = True
        except ValidationError:
            valid = False
        assert bool(STEP_FOLDER.fullmatch(name)) == valid, name
    for name in ("projectX", "manual__", "manual__2026-01-01", "manual__2026-01-01T00:00:00+00:00/x", "my_run"):
        assert not AIRFLOW_RUN_ID.fullmatch(name), name


# --- artifact roots that are /, a home or a system folder ------------------------------------------


def validate(tmp_path, capsys, artifacts: str) -> tuple[int, str]:
    dags = tmp_path / "specs"
    dags.mkdir(exist_ok=True)
    spec = write(dags, "victim.aq.yaml", f"pipeline: victim\nartifacts: {artifacts}\nsteps:\n  a: {{sql: SELECT 1}}\n")
    capsys.readouterr()
    code = cli(["validate", str(dags)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, (out + err).replace(str(spec), "SPEC")


@pytest.mark.parametrize(
    ("artifacts", "why"),
    [
        ("/", "is the filesystem's root"),
        ("/etc", "is a system folder"),
        ("/usr/share/aq", "is a system folder"),
        ("/lib64", "is a system folder"),
        ("/tmp", "is a folder shared by the whole system"),
        ("/home/", "is a folder shared by the whole system"),
        ("file:///", "is the filesystem's root"),
        ("'~'", "is your home folder"),
        ("$HOME", "is your home folder"),
        ("HOME", "is your home folder"),  # the home folder written out
    ],
)
def test_validate_refuses_a_root_that_is_not_a_store_of_its_own(tmp_path, capsys, monkeypatch, artifacts, why):
    home = tmp_path / "me"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    code, text = validate(tmp_path, capsys, str(home) if artifacts == "HOME" else artifacts)
    assert code != 0
    assert "SPEC:2:12: artifacts: `" in text and f"{why}: steps would write run folders" in text, text
    assert "give the store a folder of its own, e.g. " in text


@pytest.mark.parametrize("artifacts", ["s3://bucket", "gs://bucket/aq", "abfs://container", "/tmp/aq", "/var/lib/aq"])
def test_validate_accepts_a_bucket_root_or_a_folder_of_its_own(tmp_path, capsys, artifacts):
    code, text = validate(tmp_path, capsys, artifacts)
    assert code == 0, text


@pytest.mark.parametrize("flag", ["--artifacts", "--workdir"])
def test_run_refuses_a_root_that_is_not_a_store_of_its_own(tmp_path, capsys, monkeypatch, flag):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = write(tmp_path, "victim.aq.yaml", "pipeline: victim\nsteps:\n  a: {sql: SELECT 1}\n")
    for root in ("/", "/etc", str(tmp_path)):
        capsys.readouterr()
        assert cli(["run", str(spec), flag, root]) == 2
        err = capsys.readouterr().err
        assert f"{flag} {root}: `{root}` is " in err and "Traceback" not in err, err
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "warehouse.duckdb").exists()


def test_gc_refuses_a_root_from_the_environment(tmp_path, capsys, monkeypatch):
    """A spec without `artifacts:` takes `$AQ_ARTIFACTS`: `/` there is refused too, and nothing in
    it is listed."""
    monkeypatch.setenv("AQ_ARTIFACTS", "/")
    dags = tmp_path / "dags"
    dags.mkdir()
    write(dags, "etc.aq.yaml", "pipeline: etc\nartifacts_ttl: 1d\nsteps:\n  a: {sql: SELECT 1}\n")
    code = collect(str(dags), dry_run=True, now=later())
    out, err = capsys.readouterr()
    assert code == 2 and "its artifact store `/` is the filesystem's root" in err, err
    assert "would delete" not in out and "left alone" not in out
