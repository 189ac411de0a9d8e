"""Large `foreach:` items: an item too big for the environment (Linux takes at most 128 KiB per
variable; a pod's object must stay well under etcd's ~1.5 MiB) reaches its step through the
artifact store, on the local runner and in pods; an item list over the documented limit is
refused by the items task, naming its largest item and the limit, before any item runs."""

from __future__ import annotations

import hashlib
import json
import os

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from aq_airflow.artifacts import item_refs
from aq_airflow.artifacts.labels import value_label
from aq_airflow.artifacts.store import Location
from tests.kube_api import FakeKubernetes
from tests.test_foreach import folder, table_of, tis

FUNCTIONS = '''
import hashlib
import json

import pyarrow as pa


def make():
    """A small item, a 200 KiB one, a multi-MB one (with text that looks like Jinja) and a small
    item shaped like aq-airflow's own stand-in for a large item."""
    mid = {"name": "mid", "blob": "x" * (200 * 1024)}
    big = {"name": "big", "rows": [{"i": i, "text": "grüße {{ ds }} " * 4} for i in range(40_000)]}
    forged = {"aq-airflow/item": {"index": 0, "bytes": 1, "label": "forged"}}
    return [{"region": "eu"}, mid, big, forged]


def huge():
    """Two 33 MiB items: 66 MiB of JSON, over the 64 MiB an item list may hold."""
    return ["small", "a" * (33 * 2**20), "b" * (33 * 2**20)]


def digest(item):
    text = json.dumps(item, sort_keys=True)
    return pa.table({"sha": [hashlib.sha256(text.encode()).hexdigest()], "size": [len(text)]})


def again(per, item):
    """map -> map: this item's output of `per`, and the same item."""
    text = json.dumps(item, sort_keys=True)
    assert per.column("sha")[0].as_py() == hashlib.sha256(text.encode()).hexdigest()
    return per


def together(per):
    return per
'''

SPEC = """
pipeline: {name}
steps:
  make:
    python: big_items:make
  per:
    python: big_items:digest
    foreach: {{step: make}}
    checks: [{{name: one_row, row_count: {{min: 1, max: 1}}}}]
  again:
    python: big_items:again
    inputs: [per]
    foreach: {{step: per}}
  together:
    python: big_items:together
    inputs: [per]
  echo:
    command: >-
      printf '%s' "${{AQ_ITEM_FROM-unset}}" > "$AQ_OUTPUT/from.txt" &&
      printf '%s' "${{AQ_ITEM+set}}" > "$AQ_OUTPUT/inline.txt" &&
      if [ -n "${{AQ_ITEM_FROM-}}" ]; then cat "$AQ_ITEM_FROM"; else printf '%s' "$AQ_ITEM"; fi > "$AQ_OUTPUT/item.json"
    foreach: {{step: make}}
"""


@pytest.fixture
def big_items(tmp_path, monkeypatch):
    """The step functions, importable by the local runner's processes and by this test."""
    (tmp_path / "big_items.py").write_text(FUNCTIONS)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import big_items

    return importlib.reload(big_items)


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    path = tmp_path / "results.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    return path


def sha(item) -> str:
    return hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()


def items_xcom(dag_run, task_id: str):
    """The items task's XCom as Airflow stored it (what every item's task instance pulls)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key="return_value")
            .one()
        )
        return XComModel.deserialize_value(row)


def test_large_items_reach_python_and_command_steps_on_the_local_runner(run_dag, big_items, warehouse, tmp_path):
    items = big_items.make()
    sizes = [len(item_refs.encode(item)) for item in items]
    assert sizes[0] < 100 and sizes[1] > 200 * 1024 and sizes[2] > 3 * 2**20, sizes  # Linux: 128 KiB a variable
    _, dag_run, states = run_dag("big_local", SPEC.format(name="big_local"))
    assert dag_run.state == "success", states
    instances = tis(dag_run)
    base = folder(tmp_path, dag_run, "big_local", "per")
    # every item reached the python function intact, and the map -> map step got it too
    for index, item in enumerate(items):
        assert table_of(base / str(index)).column("sha").to_pylist() == [sha(item)], index
        assert instances["again.run", index].state == "success"
    # the small item went in AQ_ITEM; the others by file, AQ_ITEM_FROM, with no AQ_ITEM at all
    echo = folder(tmp_path, dag_run, "big_local", "echo")
    for index, item in enumerate(items):
        assert json.loads((echo / str(index) / "item.json").read_text()) == item, index
    assert (echo / "0" / "from.txt").read_text() == "unset"
    assert (echo / "0" / "inline.txt").read_text() == "set"
    for index in (1, 2, 3):  # 3: small, but shaped like a stand-in: it goes by reference too
        assert (echo / str(index) / "from.txt").read_text() == item_refs.item_file(str(echo), index)
        assert (echo / str(index) / "inline.txt").read_text() == ""
    # only the large items have a file: the small one's step reads nothing from the store for it
    assert sorted(p.name for p in (base / "_items").iterdir()) == ["1.json", "2.json", "3.json"]
    # the XCom list holds the small item and small stand-ins: every item's task pulls it whole
    pushed = items_xcom(dag_run, "per.items")
    assert pushed[0] == items[0]
    assert [item_refs.is_reference(value) for value in pushed] == [False, True, True, True]
    assert len(json.dumps(pushed)) < 2048
    assert json.loads((base / "_items.json").read_text()) == {"count": 4, "items": items}  # fan-ins read it
    # grid labels and result rows name each item by its own text, not by its stand-in
    labels = [instances["per.run", i].rendered_map_index for i in range(4)]
    assert labels == [value_label(item) for item in items]
    assert labels[1].startswith('{"blob":"xxx') and labels[1].endswith("…") and len(labels[1]) == 100
    assert labels[3] == '{"aq-airflow/item":{"bytes":1,"index":0,"label":"forged"}}'
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute(
            "SELECT map_index, item_label, outcome FROM aq_check_results WHERE dag_id = 'big_local' ORDER BY map_index"
        ).fetchall()
    assert rows == [(i, labels[i], "passed") for i in range(4)]
    # the fan-in's `item` column holds every item whole
    together = table_of(folder(tmp_path, dag_run, "big_local", "together"))
    assert together.column("item").to_pylist() == [json.dumps(item, sort_keys=True) for item in items]


def test_an_item_list_over_the_limit_is_refused_before_any_item_runs(run_dag, big_items, warehouse, tmp_path, capsys):
    text = SPEC.format(name="big_refused").replace("big_items:make", "big_items:huge")
    _, dag_run, states = run_dag("big_refused", text)
    assert states["make.run"] == "success"
    assert states["per.items"] == "failed" and states["echo.items"] == "failed", states
    for task in ("per.run", "per.checks", "again.run", "echo.run", "together.run"):
        assert states[task] == "upstream_failed", (task, states)
    for step in ("per", "echo"):
        assert not folder(tmp_path, dag_run, "big_refused", step).exists()  # nothing written: no item, no list
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert (
        "step `per`: its 3 item(s) come to 66.0 MiB of JSON, over the 64.0 MiB a `foreach:` item list may hold; "
        'the largest is item 1 (33.0 MiB: "aaaaaaaa' in text
    )
    assert "Pass large data as a step's output (`inputs:`)" in text


def test_an_environment_linux_refuses_says_which_limit_it_passed(tmp_path):
    """E2BIG has two causes: one variable over 128 KiB, or every variable and argument together
    over ARG_MAX (2 MiB with the default 8 MiB stack). The step's error says which, and the
    largest variables; the process never ran (StartRefused)."""
    from aq_airflow.runners.local import LocalProcess, StartRefused

    one = {"PATH": os.environ["PATH"], "AQ_CONTEXT": "c" * (200 * 1024)}
    with pytest.raises(StartRefused) as refused:
        LocalProcess(["true"], one, cwd=str(tmp_path)).run()
    assert str(refused.value).startswith(
        "the operating system refused to start the step's process: its environment is too large ([Errno 7] Argument "
        "list too long: AQ_CONTEXT is over the 128 KiB Linux takes in one variable): the largest variables are "
        "AQ_CONTEXT (200.0 KiB)"
    ), str(refused.value)
    assert "AQ_CONTEXT holds the run's params: pass large data as a step's output (`inputs:`)" in str(refused.value)
    limit = os.sysconf("SC_ARG_MAX")
    count = limit // (100 * 1024) + 2  # each under the one-variable limit, together over ARG_MAX
    many = {"PATH": os.environ["PATH"], **{f"SETTING_{i}": "s" * (100 * 1024) for i in range(count)}}
    with pytest.raises(StartRefused) as refused:
        LocalProcess(["true"], many, cwd=str(tmp_path)).run()
    message = str(refused.value)
    total = sum(len(k) + 1 + len(v) + 1 for k, v in many.items()) + len("true") + 1  # NAME=value and NULs, argv
    assert "(ARG_MAX, a quarter of the stack limit, `ulimit -s`)): the largest variables are SETTING_" in message
    assert f"Argument list too long: its variables and arguments together take {total / 2**20:.1f} MiB " in message
    assert f"of the {limit / 2**20:.1f} MiB Linux takes for both" in message
    assert "per variable" not in message


# ---- pods: the real KubernetesPodOperator, the loopback API server, an S3 store ---------------

POD_SPEC = """
pipeline: {name}
artifacts: s3://big-pods/artifacts
cluster: eks
defaults:
  image: ghcr.io/acme/steps:1
steps:
  make:
    python: big_items:make
  per:
    python: big_items:digest
    foreach: {{step: make}}
    max_parallel: 2
"""


@pytest.fixture
def s3_cluster(tmp_path, s3_emulator, big_items, monkeypatch):
    """A Kubernetes API server on loopback whose kubelet runs each pod's command with only the
    pod's environment, the store's endpoint and credentials (what a pod's service account gives
    it) and the step code on PYTHONPATH (the image's)."""
    s3_emulator("big-pods")
    store = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
    with FakeKubernetes(extra_env={"PYTHONPATH": os.environ["PYTHONPATH"], **store}) as fake:
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": fake.kubeconfig(str(tmp_path))}}
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(connection))
        yield fake


def test_a_pod_gets_a_large_item_from_the_store_and_keeps_its_env_small(run_dag, big_items, s3_cluster):
    import kubernetes_validate

    items = big_items.make()
    _, dag_run, states = run_dag("big_pods", POD_SPEC.format(name="big_pods"), local=False)
    assert dag_run.state == "success", (states, s3_cluster.requests[-20:])
    base = Location.of(f"s3://big-pods/artifacts/big_pods/{dag_run.run_id}/per")
    for index, item in enumerate(items):  # what the pod-side runtime read from the store and hashed
        location = Location.of(f"{base.uri}/{index}")
        manifest = location.read_manifest("per")
        table = pq.read_table(location.join(manifest["files"][0]), filesystem=location.fs)
        assert table.column("sha").to_pylist() == [sha(item)], index
    listed = base.fs.get_file_info(pafs.FileSelector(base.join("_items")))
    assert sorted(info.base_name for info in listed) == ["1.json", "2.json", "3.json"]
    pods = [p for p in s3_cluster.created if p["metadata"]["labels"].get("aq-airflow/step") == "per"]
    assert len(pods) == 4
    by_index = {}
    for pod in pods:
        kubernetes_validate.validate(pod, kubernetes_validate.utils.latest_version(), strict=True)
        assert len(json.dumps(pod)) < 16 * 1024, len(json.dumps(pod))  # the whole pod object, far below etcd's limit
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        by_index[int(env["AQ_MAP_INDEX"])] = env
    assert json.loads(by_index[0]["AQ_ITEM"]) == items[0] and "AQ_ITEM_FROM" not in by_index[0]
    for index in (1, 2, 3):
        env = by_index[index]
        assert "AQ_ITEM" not in env
        assert env["AQ_ITEM_FROM"] == f"s3://big-pods/artifacts/big_pods/{dag_run.run_id}/per/_items/{index}.json"


# ---- the parts: which items go by reference, the runtime's reading, the count -----------------


def test_small_items_stay_inline_until_the_list_budget_then_the_largest_go_by_reference():
    small = [f"item-{i}" for i in range(1024)]  # a long list of small items: all inline
    assert item_refs.by_reference(small, [item_refs.encode(i) for i in small]) == []
    # 40 items of 30 KiB each (1.2 MiB) pass the 1 MiB inline budget: the largest go first
    items = ["x" * (30 * 1024 - 2 + (i % 3)) for i in range(40)]
    texts = [item_refs.encode(item) for item in items]
    far = item_refs.by_reference(items, texts)
    inline = [len(texts[i]) for i in range(40) if i not in far]
    assert sum(inline) <= item_refs.INLINE_LIST_BYTES < sum(inline) + min(len(texts[i]) for i in far)
    assert max(inline) <= min(len(texts[i]) for i in far)
    # one over 32 KiB goes by reference whatever the rest
    pair = ["a", "y" * item_refs.INLINE_ITEM_BYTES]
    assert item_refs.by_reference(pair, [item_refs.encode(item) for item in pair]) == [1]


def test_a_step_whose_item_file_is_gone_fails_naming_the_step_and_the_file(tmp_path, monkeypatch):
    from aq_airflow.runtime.step import StepFailed, run_step

    (tmp_path / "item_fn.py").write_text("def f(item):\n    return item\n")
    missing = str(tmp_path / "per" / "_items" / "4.json")
    monkeypatch.syspath_prepend(str(tmp_path))  # the step's code, as an image has it installed
    env = {"AQ_STEP": "per", "AQ_OUTPUT": str(tmp_path / "per" / "4"), "AQ_ITEM_FROM": missing, "AQ_MAP_INDEX": "4"}
    with pytest.raises(StepFailed, match=rf"step `per`: no item of step `per` at {missing}"):
        run_step("item_fn:f", env)
    os.makedirs(os.path.dirname(missing))
    with open(missing, "w") as handle:
        handle.write('{"k": [1, 2]}')
    assert run_step("item_fn:f", env)["kind"] == "object"


# ---- a malformed item list: one reader (artifacts.items.ItemList), BadOutput naming the step -----

BAD_LISTS = [
    (b"[1]", "it is a list, not an object with `count` and `items`"),
    (b'{"items": "abc"}', "its `items` is text, not a list"),
    (b'{"count": 2, "items": ["a", "b"', "it is not valid JSON (Expecting ',' delimiter)"),
    (b'{"items": ["\xff"]}', "it is not valid JSON (UnicodeDecodeError)"),
    (b'{"count": 5, "items": ["a", "b"]}', "its `count` says 5, its `items` hold 2"),
    (b'{"count": true, "items": ["a"]}', "its `count` says true, its `items` hold 1"),
    (b'{"count": 1, "items": [NaN]}', "it holds NaN or Infinity, which an items task never writes"),
    (b'{"items": [1], "extra": 1}', "it holds `extra` besides `count` and `items`"),
    (b'{"count": 0}', "it has no `items`"),
    (b"[" * 100_000 + b"]" * 100_000, "it is not valid JSON (RecursionError)"),
]


def bad_list(step_folder, data: bytes) -> None:
    step_folder.mkdir(parents=True, exist_ok=True)
    (step_folder / "_items.json").write_bytes(data)


def refusal(folder_uri: str, step: str, why: str) -> str:
    return (
        f"the item list of step `{step}` at {folder_uri}/_items.json: {why}; it is not read. Run step `{step}` again "
        "(its items task writes the list)"
    )


@pytest.mark.parametrize(("data", "why"), BAD_LISTS)
def test_a_malformed_item_list_is_refused_by_every_reader(tmp_path, data, why):
    """`[1]` was a TypeError, `{"items": "abc"}` three items, bad JSON a ValueError, and a count
    that lied was believed by the checks task (which deletes the results of items past it)."""
    from aq_airflow.artifacts.items import count_items, read_items
    from aq_airflow.artifacts.store import BadOutput

    step = tmp_path / "per"
    bad_list(step, data)
    location = Location.of(str(step))
    for reader in (count_items, read_items):
        with pytest.raises(BadOutput) as refused:
            reader(location, "per")
        assert str(refused.value) == refusal(str(step), "per", why)


def test_the_item_count_is_the_lists_and_an_older_list_without_one_reads(tmp_path):
    from aq_airflow.artifacts.items import ITEMS_FILE, ItemList, count_items, read_items, write_items

    new = Location.of(str(tmp_path / "new"))
    write_items(new, ["z" * 1000] * 12)
    assert count_items(new, "s") == 12 and len(read_items(new, "s")) == 12
    assert ItemList.read(new, "s") == ItemList(["z" * 1000] * 12)
    old = tmp_path / "old"  # written before the count led the file
    old.mkdir()
    (old / ITEMS_FILE).write_text('{"items": [1, 2, 3]}')
    assert count_items(Location.of(str(old)), "s") == 3


GATHER = "def total(per):\n    return per\n"


@pytest.mark.parametrize(("data", "why"), BAD_LISTS[:5])
def test_a_fan_in_over_a_malformed_item_list_fails_its_step_naming_both(tmp_path, data, why, monkeypatch):
    """The runtime's fan-in (the step's process): a StepFailed naming the step, the input and the
    producer's item list, never a traceback."""
    from aq_airflow.runtime import contract
    from aq_airflow.runtime.step import StepFailed, run_step

    (tmp_path / "gather_fn.py").write_text(GATHER)
    per = tmp_path / "per"
    bad_list(per, data)
    inputs = contract.encode_inputs({"per": "per"}, True, ["per"])
    monkeypatch.syspath_prepend(str(tmp_path))  # the step's code, as an image has it installed
    env = {"AQ_STEP": "total", "AQ_OUTPUT": str(tmp_path / "total"), contract.INPUTS: inputs,
           "AQ_INPUT_PER": str(per)}  # fmt: skip
    with pytest.raises(StepFailed) as failed:
        run_step("gather_fn:total", env)
    assert str(failed.value) == f"step `total`, input `per`: {refusal(str(per), 'per', why)}"


@pytest.mark.parametrize(("data", "why"), BAD_LISTS[:5])
def test_the_client_refuses_a_malformed_item_list_naming_the_step(tmp_path, data, why):
    """A run folder made as a run makes it (the items' outputs committed), then its list spoiled:
    the client's reads raise MissingOutput naming the step, the run and the list."""
    from aq_airflow.artifacts.items import write_items
    from aq_airflow.artifacts.values import write_output
    from aq_airflow.client import MissingOutput, Store

    run_id = "manual__2026-03-01T00:00:00+00:00"
    per = tmp_path / "store" / "pipe" / run_id / "per"
    write_items(Location.of(str(per)), ["a", "b"])
    for index in (0, 1):
        item = Location.of(str(per / str(index)))
        item.commit(write_output(item, item.begin(), pa.table({"n": [index]})))
    run = Store(tmp_path / "store").pipeline("pipe").run(run_id)
    assert run.steps["per"].committed and run.step("per").read().column("n").to_pylist() == [0, 1]
    bad_list(per, data)
    run = Store(tmp_path / "store").pipeline("pipe").run(run_id)
    assert not run.steps["per"].committed  # not an item list: the step is not committed
    expected = f"step `per` of run `{run_id}` of pipeline `pipe`: {refusal(str(per), 'per', why)}"
    for read in (lambda s: s.items, lambda s: s.read()):
        with pytest.raises(MissingOutput) as refused:
            read(run.step("per"))
        assert str(refused.value) == expected


SPOILED = """
pipeline: spoiled_list
steps:
  per:
    python: big_items:spoil
    foreach: [a, b]
    retries: 0
    checks: [{name: one_row, row_count: {min: 1}}]
"""

SPOIL = '''

def spoil(item):
    """A confused step: it rewrites its own step's item list (a count that lies) as it runs."""
    import os

    path = os.path.join(os.path.dirname(os.environ["AQ_OUTPUT"]), "_items.json")
    with open(path, "w") as handle:
        handle.write('{"count": 5, "items": ["a", "b"]}')
    return pa.table({"item": [item]})
'''


def test_the_checks_task_fails_on_an_item_list_whose_count_lies(run_dag, big_items, warehouse, tmp_path, capsys):
    """The checks task deletes the results of items past the count: it holds the count to the
    list and fails naming the step and the list (an AirflowException, not a traceback from deep
    in the reader), recording nothing."""
    with open(tmp_path / "big_items.py", "a") as handle:  # the step processes import it afresh
        handle.write(SPOIL)
    _, dag_run, states = run_dag("spoiled_list", SPOILED)
    instances = tis(dag_run)
    assert [instances["per.run", i].state for i in (0, 1)] == ["success", "success"], states
    assert [instances["per.checks", i].state for i in (0, 1)] == ["failed", "failed"], states
    base = folder(tmp_path, dag_run, "spoiled_list", "per")
    logged = capsys.readouterr()
    assert (
        f"step `per`: the item list of step `per` at {base}/_items.json: its `count` says 5, its `items` hold 2; it "
        "is not read. Run step `per` again (its items task writes the list)"
    ) in logged.out + logged.err
    with duckdb.connect(str(warehouse), read_only=True) as conn:  # the table is made, no row replaced
        assert conn.execute("SELECT count(*) FROM aq_check_results WHERE dag_id = 'spoiled_list'").fetchone() == (0,)
