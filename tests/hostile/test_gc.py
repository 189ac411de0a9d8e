"""Hostile trial of `aq-airflow gc` (issue 18): it deletes only what aq-airflow wrote, in folders
named as Airflow names runs, and reports everything it leaves alone; a run being written keeps
its new files; `validate`, `aq-airflow run` and gc refuse an artifact root that is `/`, a home or
a system folder. On a local folder and on the S3, GCS and Azure emulators.

Object stores cannot back-date a file, so every test ages the store by running gc at a `now` three
days ahead (the TTL is one day): everything the test wrote is past the cutoff, whatever its
store.

Writing a run and deleting it is slow on Azurite (pyarrow's flat-namespace deletes wait on blob
leases: seconds per file), so the cases that only look at what one gc did share one store per
backend (:func:`swept`): every folder of the trial is written once, gc runs once as a dry run and
once for real, and each test reads what it printed and left. Only the races (a writer between
gc's listing and its deletes) build a run of their own."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import shutil
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from aq_airflow.artifacts import item_refs
from aq_airflow.artifacts.items import write_item_files, write_items
from aq_airflow.artifacts.store import ATTEMPT_FILE, Location
from aq_airflow.artifacts.values import write_output
from aq_airflow.cli.gc import NOT_A_RUN_ID, NOT_OURS, changed_since_listed, clean, collect, doomed, remove, survey
from aq_airflow.cli.main import main as cli
from aq_airflow.client import Store
from aq_airflow.client.runs import AIRFLOW_RUN_ID, RUN_TYPES, STEP_FOLDER, list_runs, write_record
from tests.conftest import EMULATORS
from tests.helpers import write

RUN = "manual__2026-01-01T00:00:00+00:00"
LATER_RUN = "scheduled__2026-01-02T00:00:00.123456+00:00"
SPEC = "pipeline: victim\nartifacts: {root}\nartifacts_ttl: 1d\nsteps:\n  a: {{sql: SELECT 1}}\n"
AHEAD = datetime.timedelta(days=3)
STORES = ["local", "s3", "gs", "abfs"]


def later() -> datetime.datetime:
    """gc's `now`: three days ahead, so everything written so far is past the one-day TTL."""
    return datetime.datetime.now(datetime.timezone.utc) + AHEAD


def open_store(request, backend: str, monkeypatch, tmp) -> str:
    """A store root: a local folder (a user's home, say) or a fresh prefix in an emulated bucket
    (GCS keeps objects between tests), the emulator's variables set through ``monkeypatch``."""
    if backend == "local":
        return str(tmp / "home")
    server, use = EMULATORS[backend]
    use(request.getfixturevalue(server), monkeypatch)("gc-hostile")
    return f"{backend}://gc-hostile/{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=STORES)
def store(request, tmp_path, monkeypatch) -> str:
    return open_store(request, request.param, monkeypatch, tmp_path)


def folder(root: str, *names: str) -> Location:
    """A folder under the root, joined name by name (a name is never parsed as part of a URI)."""
    location = Location.of(root)
    for name in names:
        location = location.child(name)
    return location


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
    location = folder(root, "victim", run_id, step, *([] if item is None else [str(item)]))
    attempt = location.begin()
    location.commit({**write_output(location, attempt, value), "step": step, "attempt": attempt, "uri": location.uri})


def killed_attempt(root: str, run_id: str, step: str, value) -> str:
    """An attempt that wrote its data and died before its manifest; the file's name."""
    location = folder(root, "victim", run_id, step)
    return write_output(location, location.begin(), value)["files"][0]


def mapped_step(root: str, run_id: str, step: str, items: list) -> None:
    """A `foreach:` step's items as its items task writes them (a large item also as its own file,
    `{step}/_items/{index}.json`), and each item's output."""
    location = folder(root, "victim", run_id, step)
    texts = [item_refs.encode(item) for item in items]
    write_item_files(location, {index: texts[index] for index in item_refs.by_reference(items, texts)})
    write_items(location, items)
    for index in range(len(items)):
        step_output(root, run_id, step, pa.table({"n": [index]}), item=index)


def real_run(root: str, run_id: str = RUN) -> None:
    """A run as aq-airflow leaves it: a table, an object, a mapped step with a large item, a killed
    attempt and a run record."""
    step_output(root, run_id, "orders", pa.table({"id": [1, 2, 3]}))
    step_output(root, run_id, "model", {"weights": [0.5]})
    mapped_step(root, run_id, "per_region", ["eu", {"rows": "x" * (item_refs.INLINE_ITEM_BYTES + 1)}])
    killed_attempt(root, run_id, "scores", pa.table({"x": [1.0]}))
    put(root, f"victim/{run_id}/scores/._manifest.json.0123abcd", "{}")  # a commit's temporary, its writer killed
    write_record(root, "victim", run_id, {"dag_id": "victim", "run_id": run_id, "state": "success"})


def small_run(root: str, run_id: str = RUN) -> None:
    """A run with one committed output, a killed attempt and a run record (the races need no more)."""
    step_output(root, run_id, "orders", pa.table({"id": [1, 2, 3]}))
    killed_attempt(root, run_id, "scores", pa.table({"x": [1.0]}))
    write_record(root, "victim", run_id, {"dag_id": "victim", "run_id": run_id, "state": "success"})


def sweep(dags, root: str, dry_run: bool = False) -> tuple[int, str, str]:
    """`aq-airflow gc` of the victim pipeline at `root`, three days ahead: (exit code, out, err)."""
    dags.mkdir(exist_ok=True)
    write(dags, "victim.aq.yaml", SPEC.format(root=root))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = collect(str(dags), dry_run=dry_run, now=later())
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return code, out.getvalue(), err.getvalue()


# --- one store per backend, swept once -------------------------------------------------------------

USERS_RUN = "manual__2026-01-03T00:00:00+00:00"  # a real run holding a user's files too
DEEP_RUN = "manual__2026-01-04T00:00:00+00:00"  # our manifest only deeper than a step's place
OURS = json.dumps({"kind": "none", "files": [], "writer": "aq-airflow"})
NOT_OURS_MANIFESTS = {
    "no-writer": {"kind": "table", "files": ["data.parquet"]},  # someone else's (or an older aq-airflow's)
    "other-writer": {"kind": "table", "files": ["data.parquet"], "writer": "another-tool"},
    "no-kind": {"writer": "aq-airflow", "files": ["data.parquet"]},
    "path-elsewhere": {"kind": "table", "files": ["../../thesis.tex"], "writer": "aq-airflow"},  # a path elsewhere
    "a-list": [1, 2],
    "not-json": "not json at all {",
}
# each in a folder named as Airflow names runs
NOT_OURS_RUNS = {case: f"scheduled__2026-02-{day:02}T00:00:00+00:00" for day, case in enumerate(NOT_OURS_MANIFESTS, 1)}


@dataclass(frozen=True)
class Swept:
    """One store after the whole trial was written and gc ran on it: a dry run, then for real."""

    root: str
    before: set[str]  # every file before gc
    dry: tuple[int, str, str]  # the dry run's exit code, out, err
    after_dry: set[str]
    run: tuple[int, str, str]  # gc's exit code, out, err
    after: set[str]  # every file after gc
    entries: set[str]  # every file and folder after gc
    listed: list[str]  # the run ids the client lists after gc


def write_trial(root: str) -> None:
    """Every folder of the trial, under one pipeline folder."""
    real_run(root)
    # the hostile trial: `artifacts:` a home, `pipeline: victim`, and `victim/projectX/` holding a
    # thesis and, deeper, manifests that look like ours
    put(root, "victim/projectX/thesis.tex")
    put(root, "victim/projectX/tests/fixtures/_manifest.json", OURS)
    put(root, f"victim/projectX/{RUN}/a/_manifest.json", OURS)
    # run-named folders whose manifests are not ours
    for case, manifest in NOT_OURS_MANIFESTS.items():
        run = f"victim/{NOT_OURS_RUNS[case]}"
        put(root, f"{run}/a/_manifest.json", manifest if isinstance(manifest, str) else json.dumps(manifest))
        put(root, f"{run}/a/data.parquet")
        put(root, f"{run}/thesis.tex")
    # run-named folders with our manifest out of place: deeper than a step's, or in an item folder
    # with no item list beside it
    put(root, f"victim/{DEEP_RUN}/a/b/_manifest.json", OURS)
    put(root, f"victim/{LATER_RUN}/a/0/_manifest.json", OURS)
    put(root, f"victim/{LATER_RUN}/notes.txt")
    # a user's files inside a real run folder
    real_run(root, USERS_RUN)
    put(root, f"victim/{USERS_RUN}/notes.txt")
    put(root, f"victim/{USERS_RUN}/orders/my-copy.csv")  # beside a committed output, named by no manifest
    put(root, f"victim/{USERS_RUN}/orders/part-1.parquet")  # looks like a part, is not an attempt's name
    put(root, f"victim/{USERS_RUN}/drafts/chapter1.tex")
    put(root, f"victim/{USERS_RUN}/per_region/7/_manifest.json", "{}")  # an item folder's manifest, not ours
    # a run triggered through the REST API with a run_id of its own
    small_run(root, "my_own_run")


@pytest.fixture(scope="module", params=STORES)
def swept(request, tmp_path_factory, airflow_db) -> Swept:
    tmp = tmp_path_factory.mktemp(f"swept-{request.param}")
    with pytest.MonkeyPatch.context() as monkeypatch:
        root = open_store(request, request.param, monkeypatch, tmp)
        write_trial(root)
        before = files(root)
        dry = sweep(tmp / "dags", root, dry_run=True)
        after_dry = files(root)
        run = sweep(tmp / "dags", root)
        listed = [run.run_id for run in list_runs(root, "victim")]
        return Swept(root, before, dry, after_dry, run, files(root), entries(root), listed)


def test_gc_exits_0_and_a_dry_run_deletes_nothing(swept):
    assert swept.dry[0] == 0 and swept.run[0] == 0, swept.dry + swept.run
    assert swept.after_dry == swept.before
    assert "2 run folder(s) would be deleted" in swept.dry[2] and "2 run folder(s) deleted" in swept.run[2]


def test_a_real_expired_run_is_deleted_whole(swept):
    """The normal case still works on every store: everything of an expired run goes (its large
    item's `_items/{index}.json` and the `_items/` folder too), the run folder too; a dry run only
    lists it."""
    root, run = swept.root, f"victim/{RUN}"
    attempts = [path for path in swept.before if path.startswith(f"{run}/scores/")]
    assert any(ATTEMPT_FILE.fullmatch(path.rsplit("/", 1)[1]) for path in attempts)
    assert f"{run}/per_region/_items/1.json" in swept.before
    assert f"would delete {root}/{run} (3 days old)" in swept.dry[1], swept.dry[1]
    assert f"deleted {root}/{run} (3 days old)" in swept.run[1], swept.run[1]
    assert f"left alone {root}/{run}" not in swept.run[1]
    assert not {path for path in swept.entries if path.startswith(run)}, swept.entries
    assert RUN not in swept.listed


def test_the_victims_project_folder_is_left_and_reported(swept):
    """The hostile trial: `artifacts:` a home, `pipeline: victim`, and `victim/projectX/` holding
    `tests/fixtures/_manifest.json` (even one that looks like ours) and a thesis. It was deleted as
    an expired run; now it is left, said so, and a real run beside it still goes."""
    root = swept.root
    assert f"left alone {root}/victim/projectX: {NOT_A_RUN_ID}" in swept.dry[1], swept.dry[1]
    assert f"left alone {root}/victim/projectX: {NOT_A_RUN_ID}" in swept.run[1], swept.run[1]
    assert {path for path in swept.after if path.startswith("victim/projectX/")} == {
        "victim/projectX/thesis.tex", "victim/projectX/tests/fixtures/_manifest.json",
        f"victim/projectX/{RUN}/a/_manifest.json",
    }  # fmt: skip


@pytest.mark.parametrize("case", NOT_OURS_MANIFESTS)
def test_a_run_named_folder_whose_manifests_are_not_ours_is_left(swept, case):
    run = f"victim/{NOT_OURS_RUNS[case]}"
    assert f"left alone {swept.root}/{run}: {NOT_OURS}" in swept.run[1], swept.run[1]
    assert {f"{run}/a/_manifest.json", f"{run}/a/data.parquet", f"{run}/thesis.tex"} <= swept.after


def test_run_looking_names_and_manifests_out_of_place_are_left(swept):
    """A run id name with our manifest only deeper than a step's place, or in an item folder with
    no item list beside it, is no run; neither is a run folder's look-alike nested in a project."""
    for run in (DEEP_RUN, LATER_RUN):
        assert f"left alone {swept.root}/victim/{run}: not a run folder: no file aq-airflow writes" in swept.run[1]
    assert {f"victim/{DEEP_RUN}/a/b/_manifest.json", f"victim/{LATER_RUN}/a/0/_manifest.json",
            f"victim/{LATER_RUN}/notes.txt"} <= swept.after  # fmt: skip


def test_a_users_files_inside_a_real_run_folder_survive(swept):
    root, run = swept.root, f"victim/{USERS_RUN}"
    out = swept.run[1]
    assert f"deleted aq-airflow's files in {root}/{run} (3 days old)" in out, out
    assert f"left alone {root}/{run}/: 1 file(s) aq-airflow did not write (notes.txt)" in out
    assert f"left alone {root}/{run}/orders/: 2 file(s) aq-airflow did not write (my-copy.csv, part-1.parquet)" in out
    assert f"left alone {root}/{run}/drafts/: 1 file(s)" in out and f"left alone {root}/{run}/per_region/7/" in out
    assert {path for path in swept.after if path.startswith(f"{run}/")} == {
        f"{run}/notes.txt", f"{run}/orders/my-copy.csv", f"{run}/orders/part-1.parquet", f"{run}/drafts/chapter1.tex",
        f"{run}/per_region/7/_manifest.json",
    }  # fmt: skip
    assert not {e for e in swept.entries if e.startswith((f"{run}/model", f"{run}/scores", f"{run}/per_region/_items"))}


def test_a_run_with_a_run_id_of_its_own_is_left_and_listed(swept):
    """A run triggered through the REST API with its own run_id: its folder cannot be told from
    a user's by its name, so gc leaves it and says how to remove it; the client still lists it."""
    out = swept.run[1]
    assert f"left alone {swept.root}/victim/my_own_run: {NOT_A_RUN_ID}" in out, out
    assert "delete its folder by hand" in out
    assert {path for path in swept.before if path.startswith("victim/my_own_run/")} <= swept.after
    assert "my_own_run" in swept.listed


def test_nothing_but_the_two_real_runs_files_went(swept):
    """Across the whole trial, what gc deleted is exactly what aq-airflow wrote in the two run
    folders it reported deleting."""
    gone = swept.before - swept.after
    assert gone and all(path.startswith((f"victim/{RUN}/", f"victim/{USERS_RUN}/")) for path in gone), gone


# --- races: a writer between gc's listing and its deletes -----------------------------------------


def test_a_run_written_to_while_gc_runs_keeps_its_new_files(store, capsys):
    """gc lists the run, then a step writes there (a retry's attempt in one step, a new step's
    uncommitted output), then gc deletes: the run is kept whole and said to be written to."""
    small_run(store)
    cutoff = later() - datetime.timedelta(days=1)
    (expired,) = survey(store, "victim", cutoff).expired
    new_part = killed_attempt(store, RUN, "retrained", pa.table({"y": [1]}))
    put(store, f"victim/{RUN}/orders/report.csv", "a command step writing")
    before = files(store)
    capsys.readouterr()
    clean(expired, cutoff, later())
    assert f"kept    {store}/victim/{RUN} (written to since gc listed it" in capsys.readouterr().out
    assert files(store) == before and f"victim/{RUN}/retrained/{new_part}" in before


def test_deletion_takes_only_the_files_it_listed(store):
    """The deletion itself (listed, then a writer adds files, then deleted with no second look):
    every file not in the listing survives, with its folder; what was listed and ours goes."""
    small_run(store)
    cutoff = later() - datetime.timedelta(days=1)
    (expired,) = survey(store, "victim", cutoff).expired
    new_part = killed_attempt(store, RUN, "orders", pa.table({"id": [4]}))  # a retry of `orders`
    put(store, f"victim/{RUN}/late/part-0123456789ab.parquet", "a new step's attempt")
    assert remove(expired.run.location, doomed(expired, cutoff)) == []
    assert files(store) == {f"victim/{RUN}/orders/{new_part}", f"victim/{RUN}/late/part-0123456789ab.parquet"}


@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)
def test_a_listed_path_rewritten_after_the_second_listing_is_deleted(store):
    """What the README and `remove` say of the race left: gc deletes listed paths, not the versions
    it listed. A re-run of `orders` committing between gc's second listing and its deletes loses
    its rewritten `_manifest.json` (a listed path); its new part file (a new path) stays, an
    uncommitted attempt's file, which a later gc takes once it is past the cutoff."""
    small_run(store)
    cutoff = later() - datetime.timedelta(days=1)
    (expired,) = survey(store, "victim", cutoff).expired
    assert not changed_since_listed(expired.run)  # the second listing: nothing new yet
    step_output(store, RUN, "orders", pa.table({"id": [4]}))  # the re-run commits
    (new_part,) = folder(store, "victim", RUN, "orders").read_manifest()["files"]
    assert "orders/_manifest.json" in {expired.run.relative(f) for f in expired.found.outputs}
    assert remove(expired.run.location, doomed(expired, cutoff)) == []
    assert files(store) == {f"victim/{RUN}/orders/{new_part}"}


def test_a_stale_attempt_is_taken_only_past_the_cutoff(tmp_path):
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


# --- folder names a store URI would misread; symbolic links on a disk ------------------------------

PARTITIONED = "manual__2026-01-01T00:00:00+00:00__{}__abcdefgh"  # a partitioned timetable's run id
ODD_KEYS = ["x#y", "x?y", "x%zz", "x y", "x%41"]  # `#` cut the URI at `…__x`, `%41` read as `A`, the rest raised


@pytest.mark.parametrize("store", ["s3", "gs"], indirect=True)
def test_a_folder_name_a_uri_would_misread_is_left_and_touches_no_other_folder(store, airflow_db, tmp_path):
    """A folder named like a partitioned run whose key holds `#`, `?`, `%` or a space: gc read
    `s3://…/manual__<time>__x#y__abcdefgh` as the folder `manual__<time>__x` (another one, a
    user's) or crashed on the others. Now such a name is not a run id (Airflow's own run_id rule
    has none of those characters): each is left and said so, the user's folder is untouched, a
    partition key Airflow allows still makes a run gc deletes, and the client reads each odd
    folder's own output."""
    put(store, "victim/manual__2026-01-01T00:00:00+00:00__x/a/_manifest.json", OURS)
    put(store, "victim/manual__2026-01-01T00:00:00+00:00__x/thesis.tex")
    for index, key in enumerate(ODD_KEYS):
        step_output(store, PARTITIONED.format(key), "a", pa.table({"id": [index]}))
    valid = PARTITIONED.format("eu-west_1.a:b+c~d")
    assert AIRFLOW_RUN_ID.fullmatch(valid)
    step_output(store, valid, "a", pa.table({"id": [99]}))
    before = files(store)
    code, out, err = sweep(tmp_path / "dags", store)
    assert code == 0, out + err
    for key in ODD_KEYS:
        assert f"left alone {store}/victim/{PARTITIONED.format(key)}: {NOT_A_RUN_ID}" in out, out
    assert f"left alone {store}/victim/manual__2026-01-01T00:00:00+00:00__x: {NOT_A_RUN_ID}" in out
    assert f"deleted {store}/victim/{valid} (3 days old)" in out
    assert files(store) == {path for path in before if not path.startswith(f"victim/{valid}/")}
    pipeline = Store(store).pipeline("victim")
    for index, key in enumerate(ODD_KEYS):
        assert pipeline.run(PARTITIONED.format(key)).step("a").read().column("id").to_pylist() == [index], key


def tree(root) -> set[str]:
    """Every file, folder and link under a local folder, relative to it, no link followed."""
    found = set()
    for top, folders, names in os.walk(root):
        found |= {os.path.relpath(os.path.join(top, name), root) for name in folders + names}
    return found


def test_symbolic_links_in_a_local_store_are_not_followed(tmp_path, airflow_db):
    """A run folder that is a link, a step folder that is a link and a file that is a link, all to
    a run's files and a thesis outside the store: pyarrow's listing went through them, so gc
    deleted manifests, the files they name and the run record in the links' targets. Now nothing
    there is touched, each link is reported, and the run holding links still loses its own files."""
    root, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    real_run(str(elsewhere))
    (elsewhere / "thesis.tex").write_text("years of work")
    outside = tree(elsewhere)
    (root / "victim").mkdir(parents=True)
    (root / "victim" / RUN).symlink_to(elsewhere / "victim" / RUN)
    real_run(str(root), LATER_RUN)
    run = root / "victim" / LATER_RUN
    (run / "linked").symlink_to(elsewhere / "victim" / RUN / "orders")
    (run / "model" / "thesis.tex").symlink_to(elsewhere / "thesis.tex")
    (run / "scores" / "_manifest.json").symlink_to(elsewhere / "victim" / RUN / "orders" / "_manifest.json")
    code, out, err = sweep(tmp_path / "dags", str(root))
    assert code == 0, out + err
    assert tree(elsewhere) == outside
    assert f"left alone {root}/victim/{RUN}: a symbolic link: gc follows no link" in out, out
    assert f"(it points to {elsewhere / 'victim' / RUN})" in out
    for link in ("linked", "model/thesis.tex", "scores/_manifest.json"):
        assert f"left alone {run}/{link}: a symbolic link" in out, out
    assert f"deleted aq-airflow's files in {run} (3 days old)" in out
    assert tree(run) == {"linked", "model", "model/thesis.tex", "scores", "scores/_manifest.json"}
    assert tree(root / "victim") == {RUN, LATER_RUN} | {f"{LATER_RUN}/{path}" for path in tree(run)}


def test_a_step_folder_swapped_for_a_link_after_listing_is_not_deleted_through(tmp_path):
    """Between gc's listing and its deletes a step folder becomes a link to a folder elsewhere
    holding the same names: the deletes stop at the link (reported as failures), nothing outside
    the store goes."""
    root, elsewhere = str(tmp_path / "home"), tmp_path / "elsewhere"
    small_run(root)
    cutoff = later() - datetime.timedelta(days=1)
    (expired,) = survey(root, "victim", cutoff).expired
    orders = tmp_path / "home" / "victim" / RUN / "orders"
    shutil.copytree(orders, elsewhere)
    shutil.rmtree(orders)
    orders.symlink_to(elsewhere)
    outside = tree(elsewhere)
    failed = remove(expired.run.location, doomed(expired, cutoff))
    assert tree(elsewhere) == outside
    assert failed and all("/orders/" in line for line in failed), failed
    assert os.path.islink(orders)


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
    for name in ("projectX", "manual__", "manual__2026-01-01", "manual__2026-01-01T00:00:00+00:00/x", "my_run",
                 *(PARTITIONED.format(key) for key in ODD_KEYS)):  # fmt: skip
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
        ("HOME", "is your home folder"),  # the home folder written out
        ("FILEHOME", "is your home folder"),  # ... as a file:// URI, one letter percent-encoded
        ("file:///%65tc", "is a system folder"),  # pyarrow decodes it: /etc
        ("file:///%74mp", "is a folder shared by the whole system"),
        ("file:///tmp/%2E%2E", "is the filesystem's root"),
        ("/tmp/zz://..", "is a folder shared by the whole system"),  # a path, not a URI, to pyarrow: /tmp
    ],
)
def test_validate_refuses_a_root_that_is_not_a_store_of_its_own(tmp_path, capsys, monkeypatch, artifacts, why):
    """Judged as the store reads it: a `file://` URI percent-decoded, a path with `://` in it as a path."""
    home = tmp_path / "me"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    written = {"HOME": str(home), "FILEHOME": f"file:///%{ord(str(home)[1]):02X}{str(home)[2:]}"}
    code, text = validate(tmp_path, capsys, written.get(artifacts, artifacts))
    assert code != 0
    assert "SPEC:2:12: artifacts: `" in text and f"{why}: steps would write run folders" in text, text
    assert "give the store a folder of its own, e.g. " in text


@pytest.mark.parametrize("artifacts", ["'~'", "'~/aq'", "$HOME", "/srv/$PATH/../../etc", "/var/lib/${X}/aq"])
def test_validate_refuses_a_root_with_variables_or_a_tilde(tmp_path, capsys, monkeypatch, artifacts):
    """The store expands neither (`/srv/$PATH/../../etc` passed validate and was /etc... to
    validate only); the root is refused, located, rather than judged as something it is not."""
    monkeypatch.setenv("HOME", str(tmp_path))
    code, text = validate(tmp_path, capsys, artifacts)
    assert code != 0
    assert "SPEC:2:12: artifacts: `" in text, text
    assert "the store does not expand variables or ~: write the path out" in text, text


@pytest.mark.parametrize("artifacts", ["file:///tmp/a%zz", "FILE:///etc", "nosuch://bucket/aq"])
def test_validate_refuses_a_root_the_store_cannot_open(tmp_path, capsys, artifacts):
    code, text = validate(tmp_path, capsys, artifacts)
    assert code != 0
    assert f"SPEC:2:12: artifacts: `{artifacts}` is not a location the artifact store can open (" in text, text


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


@pytest.mark.parametrize("root", ["file:///%74mp", "file:///%65tc", "/tmp/zz://..", "~", "$HOME/aq"])
def test_run_refuses_a_root_as_the_store_would_read_it(tmp_path, capsys, monkeypatch, root):
    """`file:///%74mp` is /tmp to pyarrow, `/tmp/zz://..` a path (run wrote to /tmp/esc/...), and
    a quoted `~` made a literal ./~ folder: each refused with exit 2, nothing written."""
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    monkeypatch.chdir(tmp_path)
    spec = write(tmp_path, "victim.aq.yaml", "pipeline: victim\nsteps:\n  a: {sql: SELECT 1}\n")
    capsys.readouterr()
    assert cli(["run", str(spec), "--artifacts", root, "--workdir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    assert f"--artifacts {root}: `{root}" in err and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == ["victim.aq.yaml"]


@pytest.mark.parametrize("root", ["file:///%65tc", "FILEHOME", "$HOME"])
def test_gc_refuses_an_encoded_or_unexpanded_root_from_the_environment(tmp_path, capsys, monkeypatch, root):
    home = tmp_path / "me"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    root = f"file:///%{ord(str(home)[1]):02X}{str(home)[2:]}" if root == "FILEHOME" else root
    monkeypatch.setenv("AQ_ARTIFACTS", root)
    dags = tmp_path / "dags"
    dags.mkdir()
    write(dags, "etc.aq.yaml", "pipeline: etc\nartifacts_ttl: 1d\nsteps:\n  a: {sql: SELECT 1}\n")
    code = collect(str(dags), dry_run=True, now=later())
    out, err = capsys.readouterr()
    assert code == 2 and f"skipped {dags}/etc.aq.yaml: its artifact store `{root}" in err, err
    assert "would delete" not in out and "left alone" not in out


def test_a_pipeline_folder_that_is_a_link_is_left_alone(tmp_path, airflow_db):
    """`{root}/victim -> elsewhere` holding a copied run folder past the TTL: gc deleted the files
    in `elsewhere`. Now the link is reported and nothing behind it is touched."""
    root, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    real_run(str(elsewhere))
    outside = tree(elsewhere)
    root.mkdir()
    (root / "victim").symlink_to(elsewhere / "victim")
    code, out, err = sweep(tmp_path / "dags", str(root))
    assert code == 0, out + err
    assert tree(elsewhere) == outside
    assert f"left alone {root}/victim: a symbolic link: gc follows no link" in out, out
    assert f"(it points to {elsewhere / 'victim'})" in out
    assert "deleted" not in out


def test_a_store_root_that_is_a_link_is_the_store(tmp_path, airflow_db):
    """`/data -> /mnt/disk` is a store's root chosen by whoever set it: its runs are collected."""
    disk, root = tmp_path / "disk", tmp_path / "data"
    real_run(str(disk))
    root.symlink_to(disk)
    code, out, err = sweep(tmp_path / "dags", str(root))
    assert code == 0, out + err
    assert f"deleted {root}/victim/{RUN} (3 days old)" in out, out
    assert tree(disk) == {"victim"}


def test_a_pipeline_folder_swapped_for_a_link_after_listing_is_not_deleted_through(tmp_path):
    """Deletion starts at the pipeline's folder, opened without following a link: one swapped for
    a link to a copy between listing and deleting stops every delete."""
    root, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    small_run(str(root))
    cutoff = later() - datetime.timedelta(days=1)
    (expired,) = survey(str(root), "victim", cutoff).expired
    shutil.move(root / "victim", elsewhere)
    (root / "victim").symlink_to(elsewhere)
    outside = tree(elsewhere)
    failed = remove(expired.run.location, doomed(expired, cutoff))
    assert tree(elsewhere) == outside
    assert failed and len(failed) == len(doomed(expired, cutoff)), failed
