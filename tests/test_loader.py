"""The dags-folder loader under Airflow's DagBag: good specs load, broken ones become visible
placeholders, and a worker's parsing context builds only its own DAG."""

from __future__ import annotations

import shutil

import pytest
from airflow.dag_processing.dagbag import DagBag

from aq_airflow.live_dags import INVALID_TAG, load_dags
from aq_airflow.operators.errors import InvalidSpec
from tests.conftest import EXAMPLES
from tests.helpers import write

GOOD = """
pipeline: {name}
steps:
  a:
    sql: SELECT 1 AS x
  b:
    python: pkg.mod:fn
    inputs: [a]
"""


def test_broken_specs_become_placeholders_and_do_not_hide_the_others(dags_folder):
    write(dags_folder, "good_one.aq.yaml", GOOD.format(name="good_one"))
    (dags_folder / "team").mkdir()
    write(dags_folder / "team", "good_two.aq.yml", GOOD.format(name="good_two"))
    write(dags_folder, "typo.aq.yaml", "pipeline: typo\nsteps:\n  a:\n    python: m:f\n    input: [x]\n")
    write(dags_folder, "syntax.aq.yaml", "steps: [a,\n")
    write(
        dags_folder,
        "cycle.aq.yaml",
        "steps:\n  a:\n    python: m:f\n    inputs: [b]\n  b:\n    python: m:f\n    inputs: [a]\n",
    )
    bag = DagBag(dag_folder=str(dags_folder))
    # each broken spec is an import error of its own file; the shard's DAGs all load
    assert set(bag.import_errors) == {str(dags_folder / f"{n}.aq.yaml") for n in ("typo", "syntax", "cycle")}
    assert set(bag.dags) == {"good_one", "good_two", "typo", "syntax", "cycle"}
    for dag_id in ("good_one", "good_two"):
        assert INVALID_TAG not in bag.dags[dag_id].tags
        assert bag.dags[dag_id].task_ids == ["a.run", "b.run"]
    typo = bag.dags["typo"]
    assert typo.tags == {INVALID_TAG}
    assert typo.task_ids == ["invalid_spec"]
    expected = f"{dags_folder}/typo.aq.yaml:5:5: unknown key `input`; did you mean `inputs`?"
    assert typo.description == f"INVALID SPEC: {expected}"
    assert expected in typo.doc_md
    assert "From the aq-airflow spec `typo.aq.yaml`:\n\n```yaml\npipeline: typo\n" in typo.doc_md  # the spec too
    assert bag.dags["syntax"].description.startswith(f"INVALID SPEC: {dags_folder}/syntax.aq.yaml:2:1: YAML syntax")
    assert "steps form a cycle" in bag.dags["cycle"].description


def test_placeholder_task_fails_with_the_errors(dags_folder):
    write(dags_folder, "typo.aq.yaml", "steps:\n  a:\n    python: m:f\n    retries: lots\n")
    (dag,) = load_dags({"__file__": str(dags_folder / "aq_dags.py")})
    with pytest.raises(InvalidSpec, match=r"typo.aq.yaml:4:14: steps.a.retries: expected a whole number, not the text"):
        dag.get_task("invalid_spec").execute({})


def test_invalid_profiles_file_marks_every_spec_of_the_folder(dags_folder):
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good"))
    write(dags_folder, "aq-profiles.yaml", "profiles:\n  mine:\n    extends: gke\n    namspace: x\n")
    (dag,) = load_dags({"__file__": str(dags_folder / "aq_dags.py")})
    assert dag.tags == {INVALID_TAG}
    assert "aq-profiles.yaml:4:5: unknown key `namspace`; did you mean `namespace`?" in dag.description


def test_duplicate_dag_ids_keep_the_first_spec_and_show_the_second_as_a_placeholder(dags_folder, caplog):
    write(dags_folder, "a.aq.yaml", GOOD.format(name="same"))
    write(dags_folder, "b.aq.yaml", GOOD.format(name="same"))
    first, second = load_dags({"__file__": str(dags_folder / "aq_dags.py")})
    assert first.dag_id == "same" and INVALID_TAG not in first.tags
    assert second.dag_id.startswith("same__duplicate_") and second.tags == {INVALID_TAG}
    assert f"b.aq.yaml:1:11: dag_id `same` is already the dag_id of {dags_folder}/a.aq.yaml" in second.description
    assert "already used by" in caplog.text


def test_parsing_context_builds_only_the_wanted_dag(dags_folder, monkeypatch):
    shutil.copytree(EXAMPLES, dags_folder, dirs_exist_ok=True)
    namespace = {"__file__": str(dags_folder / "aq_dags.py")}
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "fraud_training")
    dags = load_dags(namespace)
    assert [d.dag_id for d in dags] == ["fraud_training"]
    assert [k for k in namespace if k.startswith("aq_dag__")] == ["aq_dag__fraud_training"]


def test_unchanged_specs_are_planned_once(dags_folder, monkeypatch):
    from aq_airflow.plan import compile as plan_compile

    write(dags_folder, "good.aq.yaml", GOOD.format(name="cached"))
    calls = []
    real = plan_compile.parse_spec
    monkeypatch.setattr(plan_compile, "parse_spec", lambda f: calls.append(f.path) or real(f))
    namespace = {"__file__": str(dags_folder / "aq_dags.py")}
    load_dags(namespace)
    load_dags(namespace)
    assert len(calls) == 1
    write(dags_folder, "good.aq.yaml", GOOD.format(name="cached") + "description: changed\n")
    (dag,) = load_dags(namespace)
    assert len(calls) == 2 and dag.description == "changed"


def test_a_fresh_parser_process_reads_unchanged_plans_from_disk(dags_folder, tmp_path, monkeypatch):
    from aq_airflow.plan import compile as plan_compile

    write(dags_folder, "good.aq.yaml", GOOD.format(name="on_disk"))
    namespace = {"__file__": str(dags_folder / "aq_dags.py")}
    (first,) = load_dags(namespace, cache_folder=str(tmp_path / "cache"))
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    plan_compile._PLANS.clear()  # what a new DAG-processor process starts with
    monkeypatch.setattr(plan_compile, "parse_spec", lambda f: pytest.fail("re-parsed an unchanged spec"))
    (again,) = load_dags(namespace, cache_folder=str(tmp_path / "cache"))
    assert again.task_ids == first.task_ids


def test_a_changed_spec_is_replanned_alone(dags_folder, tmp_path, monkeypatch):
    from aq_airflow.plan import compile as plan_compile

    for name in ("one", "two", "three"):
        write(dags_folder, f"{name}.aq.yaml", GOOD.format(name=name))
    namespace = {"__file__": str(dags_folder / "aq_dags.py")}
    load_dags(namespace, cache_folder=str(tmp_path / "cache"))
    write(dags_folder, "two.aq.yaml", GOOD.format(name="two") + "description: changed\n")
    plan_compile._PLANS.clear()  # the next parse is a new process
    parsed = []
    real_parse = plan_compile.parse_spec
    monkeypatch.setattr(plan_compile, "parse_spec", lambda f: parsed.append(f.path) or real_parse(f))
    dags = {d.dag_id: d for d in load_dags(namespace, cache_folder=str(tmp_path / "cache"))}
    assert parsed == [str(dags_folder / "two.aq.yaml")]
    assert dags["two"].description == "changed" and set(dags) == {"one", "two", "three"}


def test_a_corrupt_cache_entry_is_a_miss(dags_folder, tmp_path):
    from aq_airflow.plan import compile as plan_compile

    write(dags_folder, "good.aq.yaml", GOOD.format(name="corrupt"))
    namespace = {"__file__": str(dags_folder / "aq_dags.py")}
    load_dags(namespace, cache_folder=str(tmp_path / "cache"))
    for entry in (tmp_path / "cache").glob("*.json"):
        entry.write_text('{"dag_id": 1')
    plan_compile._PLANS.clear()
    (dag,) = load_dags(namespace, cache_folder=str(tmp_path / "cache"))
    assert dag.dag_id == "corrupt" and INVALID_TAG not in dag.tags


@pytest.mark.parametrize("name", ["churn_scoring", "fraud_training", "churn_alerts", "image_embeddings"])
def test_stored_plans_round_trip(name):
    from aq_airflow.plan import compile_spec
    from aq_airflow.plan.store import plan_from_json, plan_to_json

    plan = compile_spec(EXAMPLES / f"{name}.aq.yaml")
    assert plan_from_json(plan_to_json(plan)) == plan


def test_init_shards_split_the_folder_and_every_spec_loads_exactly_once(tmp_path):
    """The loader files `aq-airflow init` writes partition the specs: DagBag over the folder finds
    every pipeline once, each from the shard its path hashes into, and a new spec needs no step."""
    import subprocess
    import sys

    from aq_airflow.live_dags.loader import shard_of

    folder = tmp_path / "dags"
    subprocess.run([sys.executable, "-m", "aq_airflow.cli", "init", str(folder), "--shards", "4"], check=True)
    (folder / "team").mkdir()
    names = [f"p{i:02d}" for i in range(24)]
    for name in names[:20]:
        write(folder if name < "p10" else folder / "team", f"{name}.aq.yaml", GOOD.format(name=name))
    bag = DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}
    assert sorted(bag.dags) == names[:20]
    for dag_id, dag in bag.dags.items():
        relative = ("" if dag_id < "p10" else "team/") + f"{dag_id}.aq.yaml"
        assert dag.fileloc == str(folder / f"aq_dags_{shard_of(relative, 4)}.py")
    assert len({dag.fileloc for dag in bag.dags.values()}) > 1  # really spread over several files
    for name in names[20:]:  # added later: picked up at the next parse
        write(folder, f"{name}.aq.yaml", GOOD.format(name=name))
    assert sorted(DagBag(dag_folder=str(folder)).dags) == names


def test_the_dag_docs_show_the_spec_and_its_path(dags_folder):
    """The UI's Code tab shows the loader shard; the DAG's docs carry the YAML it came from."""
    (dags_folder / "team").mkdir()
    text = GOOD.format(name="documented").lstrip() + "# a note with ``` fences ```` inside\n"
    write(dags_folder / "team", "documented.aq.yaml", text)
    (dag,) = load_dags({"__file__": str(dags_folder / "aq_dags_0.py")})
    assert "From the aq-airflow spec `team/documented.aq.yaml`:" in dag.doc_md
    assert f"`````yaml\n{text.rstrip()}\n`````\n" in dag.doc_md  # a fence longer than any in the spec


def test_building_a_dag_leaves_the_run_time_libraries_unimported():
    """Every parse (the dag-processor's, each worker's start-up) pays for what building imports:
    pandas (pulled in by pyarrow.dataset), DuckDB and Great Expectations wait for execute()."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from aq_airflow.live_dags import build_dag\n"
        "from aq_airflow.plan import compile_spec\n"
        f"for name in ('churn_scoring', 'fraud_training', 'image_embeddings'):\n"
        f"    build_dag(compile_spec({str(EXAMPLES)!r} + '/' + name + '.aq.yaml'))\n"
        "print(sorted(m for m in ('pandas', 'duckdb', 'great_expectations', 'pyarrow.dataset') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


# -- broken specs keep their schedule and fail each run ----------------------------------------------------------------

SCHEDULED_TYPO = """
pipeline: nightly
schedule: "0 6 * * *"
start_date: 2026-01-01
catchup: true
on_failure: alerts_for_placeholders:notify
steps:
  a:
    python: m:f
    input: [x]
"""


def test_a_broken_spec_keeps_the_schedule_it_declares_without_catchup(dags_folder, tmp_path):
    write(dags_folder, "nightly.aq.yaml", SCHEDULED_TYPO)
    (dag,) = load_dags({"__file__": str(dags_folder / "aq_dags.py")}, cache_folder=str(tmp_path / "cache"))
    assert dag.tags == {INVALID_TAG}
    assert dag.schedule == "0 6 * * *" and "0 6 * * *" in repr(dag.timetable)
    assert dag.start_date.isoformat() == "2026-01-01T00:00:00+00:00"
    assert dag.catchup is False  # one failing run per interval from now on, never a backfill of the missed ones
    assert dag.on_failure_callback.path == "alerts_for_placeholders:notify"


def test_a_field_it_cannot_read_comes_from_the_last_plan_of_that_spec(dags_folder, tmp_path):
    from aq_airflow.plan import compile as plan_compile

    cache = str(tmp_path / "cache")
    namespace = {"__file__": str(dags_folder / "aq_dags.py")}
    good = GOOD.format(name="hourly") + 'schedule: "@hourly"\nstart_date: 2026-02-01\n'
    write(dags_folder, "hourly.aq.yaml", good)
    (planned,) = load_dags(namespace, cache_folder=cache)
    assert planned.schedule == "@hourly" and INVALID_TAG not in planned.tags
    plan_compile._PLANS.clear()  # the next parse is a new process
    write(dags_folder, "hourly.aq.yaml", good + "steps: [a,\n")  # YAML that no longer parses at all
    (broken,) = load_dags(namespace, cache_folder=cache)
    assert broken.tags == {INVALID_TAG} and "YAML syntax" in broken.description
    assert broken.schedule == "@hourly"
    assert broken.start_date.isoformat() == "2026-02-01T00:00:00+00:00"
    write(dags_folder, "hourly.aq.yaml", good.replace('"@hourly"', '"@sometimes"') + "retries: x\n")
    (again,) = load_dags(namespace, cache_folder=cache)  # an invalid schedule: the last plan's, the start it states
    assert again.schedule == "@hourly" and again.start_date.isoformat() == "2026-02-01T00:00:00+00:00"


def test_a_broken_spec_with_no_schedule_known_runs_only_when_triggered(dags_folder, tmp_path):
    write(dags_folder, "never.aq.yaml", "steps: [a,\n")
    (dag,) = load_dags({"__file__": str(dags_folder / "aq_dags.py")}, cache_folder=str(tmp_path / "cache"))
    assert dag.tags == {INVALID_TAG} and dag.schedule is None


@pytest.fixture
def bundle_dags(airflow_db, request):
    """A folder with a one-shard loader inside the configured dags folder (dag.test() re-parses
    that bundle), removed after the test."""
    import os
    from pathlib import Path

    from aq_airflow.devstack.loader_file import loader_files

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"alert_{request.node.name[:40]}"
    folder.mkdir(parents=True)
    for name, source in loader_files(1).items():
        (folder / name).write_text(source)
    yield folder
    shutil.rmtree(folder)


def test_each_run_of_a_broken_spec_fails_with_the_located_error_and_alerts(
    bundle_dags, tmp_path, monkeypatch, capsys, caplog
):
    import pendulum
    from airflow.utils.session import create_session

    alerts = tmp_path / "alerts.txt"
    (tmp_path / "alerts_for_placeholders.py").write_text(
        f"def notify(context):\n    open({str(alerts)!r}, 'a').write(context['dag'].dag_id + '\\n')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    write(bundle_dags, "nightly.aq.yaml", SCHEDULED_TYPO)
    dag = DagBag(dag_folder=str(bundle_dags)).dags["nightly"]
    dag_run = dag.test(logical_date=pendulum.parse("2026-03-01T06:00:00Z"))
    assert dag_run.state == "failed"
    with create_session() as session:
        assert {ti.task_id: ti.state for ti in dag_run.get_task_instances(session=session)} == {
            "invalid_spec": "failed"
        }
    logged = capsys.readouterr()
    located = f"{bundle_dags}/nightly.aq.yaml:9:5: unknown key `input`; did you mean `inputs`?"
    assert located in logged.out + logged.err + caplog.text
    assert alerts.read_text() == "nightly\n"  # the spec's own on_failure callback was called


@pytest.mark.slow
def test_dagbag_preflight_prints_each_located_error_and_fails(dags_folder):
    import subprocess
    import sys

    write(dags_folder, "nightly.aq.yaml", SCHEDULED_TYPO)
    write(dags_folder, "good.aq.yaml", GOOD.format(name="good").replace("pkg.mod:fn", "steps_beside:fn"))
    write(dags_folder, "steps_beside.py", "def fn(a):\n    return a\n")
    result = subprocess.run(
        [sys.executable, "-m", "aq_airflow.cli", "dagbag", str(dags_folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    (row,) = [line for line in lines if line.startswith("INVALID")]
    assert row.split()[1] == "nightly" and row.endswith("keeps its schedule (0 6 * * *): each run fails")
    assert f"    {dags_folder}/nightly.aq.yaml:9:5: unknown key `input`; did you mean `inputs`?" in lines
    assert [line.split()[:2] for line in lines if line.startswith("ok")] == [["ok", "good"]]
    assert lines[-1] == "2 DAG(s), 1 invalid spec(s), 0 import error(s), 0 step(s) whose code is not beside its spec"
    write(dags_folder, "nightly.aq.yaml", SCHEDULED_TYPO.replace("input:", "inputs:").replace("[x]", "[]"))
    result = subprocess.run(
        [sys.executable, "-m", "aq_airflow.cli", "dagbag", str(dags_folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout  # valid now, but `m` is not beside it
    assert f"STEP CODE {dags_folder}/nightly.aq.yaml:8:13: module `m` of `m:f` is not beside this spec" in result.stdout


# -- step code resolves beside its spec, wherever the spec sits -------------------------------------------------------

TEAM_ORDERS = """
pipeline: {name}
cluster: {cluster}
{extra}
steps:
  numbers:
    sql: SELECT range AS n FROM range(5)
  orders:
    python: shop_beside.orders:build
    inputs: [numbers]
  report:
    command: [python, -m, shop_beside.report]
    inputs: [orders]
"""
SHOP = {
    "__init__.py": "",
    "orders.py": "def build(numbers):\n    return numbers.append_column('m', numbers.column('n'))\n",
    "report.py": "import os, shop_beside\nopen(os.path.join(os.environ['AQ_OUTPUT'], 'where.txt'), 'w').write("
    "os.path.dirname(os.path.dirname(shop_beside.__file__)))\n",
}


def _team_spec(folder, name: str = "team_orders", cluster: str = "local", extra: str = "", shop: bool = True):
    team = folder / "team"
    team.mkdir(exist_ok=True)
    if shop:
        (team / "shop_beside").mkdir(exist_ok=True)
        for file, text in SHOP.items():
            (team / "shop_beside" / file).write_text(text)
    return write(team, f"{name}.aq.yaml", TEAM_ORDERS.format(name=name, cluster=cluster, extra=extra))


def test_a_spec_in_a_subfolder_imports_its_code_from_beside_it(bundle_dags, tmp_path, monkeypatch, duckdb_warehouse):
    import json
    import os

    import pendulum
    from airflow.utils.session import create_session

    from aq_airflow.artifacts import code_package

    monkeypatch.setenv("AQ_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("AQ_CODE_CACHE", raising=False)
    _team_spec(bundle_dags)
    dag = DagBag(dag_folder=str(bundle_dags)).dags["team_orders"]
    assert INVALID_TAG not in dag.tags, dag.description
    assert dag.get_task("orders.run").plan.code_folder == "team"
    dag_run = dag.test(logical_date=pendulum.parse("2026-03-01"))
    with create_session() as session:
        states = {ti.task_id: ti.state for ti in dag_run.get_task_instances(session=session)}
    assert dag_run.state == "success", states
    root = tmp_path / "artifacts" / "team_orders" / dag_run.run_id
    assert json.loads((root / "orders" / "_manifest.json").read_text())["rows"] == 5
    # the command step's `python -m` found the package beside the spec too: in the run's code package
    # of the spec's folder (extracted, then copied into its own working folder, first on PYTHONPATH)
    pinned = json.loads((root / "_code.json").read_text())
    extracted = os.path.join(code_package.default_cache(), pinned["digest"].removeprefix("sha256:"))
    where = (root / "report" / "where.txt").read_text()
    assert where != extracted and os.path.basename(where) == "code" and not os.path.exists(where)  # removed after
    assert os.path.isfile(os.path.join(extracted, "shop_beside", "orders.py"))


def _validate(*paths):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "aq_airflow.cli", "validate", *map(str, paths)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_validate_reports_step_code_that_is_not_beside_its_spec(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    spec = _team_spec(dags, shop=False)
    result = _validate(dags)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{spec}:8:13: module `shop_beside` of `shop_beside.orders:build` is not beside this spec: no "
        f"`shop_beside/` package or `shop_beside.py` in {dags}/team, and it is not installed here. The steps "
        "import their code from the spec's folder (or the folder `code:` names), shipped as its code package: put "
        "`shop_beside/` there, or fix the module path"
    ]
    assert _validate(spec).returncode == 1  # the spec alone: its own folder is where its code is looked for
    _team_spec(dags)  # the package beside it
    assert _validate(dags).returncode == 0
    assert _validate(spec).returncode == 0


def test_validate_leaves_the_code_of_steps_in_pods_to_their_image(tmp_path):
    extra = 'artifacts: s3://bucket/aq\ndefaults: {image: "ghcr.io/acme/shop:1"}'
    spec = _team_spec(tmp_path, name="in_pods", cluster="gke", extra=extra, shop=False)
    result = _validate(spec)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_spec_validated_alone_is_checked_as_its_dags_folder_loads_it(tmp_path):
    """A pre-commit hook validates the changed spec alone, inside a dags folder (a loader `init`
    wrote above it). Its steps run their code folder's package, which holds the spec's folder only:
    a package at the dags folder's root is not theirs (they would fail at run time), so validate
    refuses it as it refuses a package found nowhere."""
    from aq_airflow.devstack.loader_file import loader_files

    dags = tmp_path / "dags"
    dags.mkdir()
    spec = _team_spec(dags, shop=False)
    assert _validate(spec).returncode == 1  # no dags folder above it: its own folder only
    for name, source in loader_files(1).items():
        (dags / name).write_text(source)
    assert _validate(spec).returncode == 1  # the root has no such package either
    (dags / "shop_beside").mkdir()
    for file, text in SHOP.items():
        (dags / "shop_beside" / file).write_text(text)
    result = _validate(spec)
    assert result.returncode == 1 and "is not beside this spec" in result.stdout, result.stdout + result.stderr
