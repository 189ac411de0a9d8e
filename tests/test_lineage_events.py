"""OpenLineage events of a run, captured through the provider's own listener and its ``file``
transport while dag.test() runs the pipeline on the local runner, then checked against the
OpenLineage model.

What they are checked against: OpenLineage's JSON Schema files (``OpenLineage.json``,
``facets/*.json``) are in no package on PyPI or npm this project can install (openlineage-python
ships the classes generated from them, not the files; openlineage-integration-common ships only
dbt, BigQuery and data-quality facet schemas), so each event is rebuilt, field by field, with
openlineage-python's generated classes (the published spec, as OpenLineage generates it): a
missing required field, a property the spec does not have, a value of the wrong kind or one their
validators refuse (event time, run id) fails; every facet of a kind the client knows must name
that kind's published schema URL; the others (the Airflow provider's own) must carry
``_producer`` and ``_schemaURL``, as every facet must. The facets we emit (``schema``,
``sourceCodeLocation``, ``sql``) are also read for their values.

The provider's plugin decides at import whether OpenLineage is configured, which in a test
process may have happened before the transport was set: the fixture sets the transport, clears the
provider's cached configuration and registers a new listener of the provider's with the task
runner's listener manager (``airflow.sdk.listener``), which Airflow then calls as it would the
plugin's. The DAG run's own events (sent from a process pool when the run ends) are left out.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import types
import typing

import attr
import pytest

SPEC = """
pipeline: {name}
cluster: local
artifacts: {artifacts}
code: {code}
steps:
  numbers:
    sql: SELECT range AS n, 'x' AS label FROM range(5)
  scaled:
    python: lineage_steps:scale
    inputs: [numbers]
  report:
    command: [python, -c, "import os; open(os.path.join(os.environ['AQ_OUTPUT'], 'out.txt'), 'w').write('hi')"]
    inputs: [scaled]
"""
DIGEST = "sha256:" + "ef" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _git(folder, *args: str) -> str:
    import subprocess

    identity = ["-c", "user.email=aq@example.com", "-c", "user.name=aq", "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", "-C", str(folder), *identity, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def lineage_events(tmp_path, monkeypatch):
    """The provider's listener, emitting through its file transport into a file; returns a
    function that reads the events written so far."""
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins import listener as ol_listener
    from airflow.sdk.listener import get_listener_manager  # the task runner's, which task events go through

    events = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    for name in dir(conf):  # the provider caches its configuration
        clear = getattr(getattr(conf, name), "cache_clear", None)
        if clear:
            clear()
    monkeypatch.setattr(ol_listener, "_openlineage_listener", None, raising=False)
    manager = get_listener_manager()
    # one listener, configured as above: the plugin's, if it was enabled when it was imported, is
    # set aside for the test (its client was made with whatever configuration there was then)
    before = [p for p in manager.pm.get_plugins() if isinstance(p, ol_listener.OpenLineageListener)]
    for plugin in before:
        manager.pm.unregister(plugin)
    listener = ol_listener.get_openlineage_listener()
    manager.add_listener(listener)

    def read() -> list[dict]:
        """The task events (the run's own, on the DAG run's completion, come from another process
        some time after and are not ours to check)."""
        lines = events.read_text().splitlines() if events.exists() else []
        return [e for e in map(json.loads, filter(None, lines)) if e["job"]["name"].count(".") == 2]

    try:
        yield read
    finally:
        manager.pm.unregister(listener)
        for plugin in before:
            manager.add_listener(plugin)
        for name in dir(conf):
            clear = getattr(getattr(conf, name), "cache_clear", None)
            if clear:
                clear()


def _generated() -> dict[str, type]:
    """Every class openlineage-python generated from the spec, by its schema URL."""
    import openlineage.client.generated as generated

    classes = {}
    for module in pkgutil.iter_modules(generated.__path__):
        for value in vars(importlib.import_module(f"{generated.__name__}.{module.name}")).values():
            if isinstance(value, type) and attr.has(value) and hasattr(value, "_get_schema"):
                classes[value._get_schema()] = value
    return classes


KNOWN = _generated()
FACET_BASES = {"run": "RunFacet", "job": "JobFacet", "dataset": "DatasetFacet"}


def _rebuild(kind: object, value: object, where: str) -> object:
    """``value`` (an event's JSON) as an instance of ``kind`` (a type of the generated classes),
    or an AssertionError naming where it does not fit."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if value is None:
            assert len(options) < len(typing.get_args(kind)), f"{where}: null is not allowed"
            return None
        return _rebuild(options[0], value, where)
    if origin is list:
        assert isinstance(value, list), f"{where}: not a list"
        return [_rebuild(typing.get_args(kind)[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        assert isinstance(value, dict), f"{where}: not an object"
        facet = typing.get_args(kind)[1]
        return {k: _facet(facet, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(kind, type) and attr.has(kind):
        assert isinstance(value, dict), f"{where}: not an object"
        return _object(kind, value, where)
    if isinstance(kind, type) and issubclass(kind, __import__("enum").Enum):
        return kind(value)
    if kind in (str, int, float, bool):
        assert isinstance(value, kind) and not (kind is int and isinstance(value, bool)), f"{where}: not a {kind}"
        return value
    return value  # Any


def _hint(kind: type, field: attr.Attribute) -> object:
    """A field's type, its annotation evaluated where the class that declares it was defined."""
    if not isinstance(field.type, str):
        return field.type
    for owner in kind.__mro__:
        if field.name in getattr(owner, "__annotations__", {}):
            return eval(field.type, {**vars(typing), **vars(importlib.import_module(owner.__module__))})
    raise AssertionError(f"{kind.__name__}.{field.name}: no annotation")


def _object(kind: type, value: dict, where: str) -> object:
    fields = {f.name: f for f in attr.fields(kind)}
    arguments = {}
    for key, item in value.items():
        name = key if key in fields else f"_{key.lstrip('_')}"
        field = fields.get(name)
        assert field is not None, f"{where}: `{key}` is not a property of {kind.__name__}"
        if not field.init:  # the facet's or event's own schema URL: it must be the published one
            continue
        arguments[field.alias] = _rebuild(_hint(kind, field), item, f"{where}.{key}")
    return kind(**arguments)  # required fields and the generated validators


def _facet(base: type, value: dict, where: str) -> object:
    """A facet: rebuilt as the generated class its ``_schemaURL`` names, which must be one of
    ``base``'s; a facet of a kind the client does not know (the Airflow provider's own) needs
    ``_producer`` and ``_schemaURL``, as every facet does."""
    assert isinstance(value, dict) and value.get("_producer") and value.get("_schemaURL"), where
    kind = KNOWN.get(value["_schemaURL"])
    if kind is None or kind.__module__.endswith(".base"):  # a producer's own facet (the base's schema)
        assert not value["_schemaURL"].startswith("https://openlineage.io/spec/facets/"), (
            f"{where}: {value['_schemaURL']} is no schema this client knows"
        )
        return value
    assert issubclass(kind, base), f"{where}: a {kind.__name__} where a {base.__name__} goes"
    return _object(kind, value, where)


def validated(event: dict) -> object:
    from openlineage.client.generated.base import RunEvent

    assert event["schemaURL"] == RunEvent._get_schema()
    return _object(RunEvent, event, f"{event.get('eventType')} {event.get('job', {}).get('name')}")


def test_run_events_carry_code_versions_and_output_schemas(
    run_dag, duckdb_warehouse, lineage_events, tmp_path, monkeypatch
):
    import os
    import shutil
    import uuid
    from pathlib import Path

    from aq_airflow.artifacts.code_package import read_pin

    # the step code in its own folder beside the spec, a clean git checkout: the run ships it as
    # its code package, and the version is the commit
    code = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "profiles" / f"ol_code_{uuid.uuid4().hex[:8]}"
    code.mkdir(parents=True)
    try:
        (code / "lineage_steps.py").write_text("def scale(numbers):\n    return numbers\n")
        _git(code, "init", "-q")
        _git(code, "add", ".")
        _git(code, "commit", "-qm", "v1")
        commit = _git(code, "rev-parse", "HEAD")
        spec = SPEC.format(name="ol_run", artifacts=tmp_path / "artifacts", code=code.name)
        _, dag_run, states = run_dag("ol_run", spec, local=False)
    finally:
        shutil.rmtree(code, ignore_errors=True)  # left beside the session's specs, it would go into their packages
    assert set(states.values()) == {"success"}, states
    pinned = read_pin(str(tmp_path / "artifacts" / "ol_run" / dag_run.run_id))
    assert pinned is not None and pinned.git == {"commit": commit, "dirty": False, "remote": None}
    events = lineage_events()
    assert sorted((e["job"]["name"], e["eventType"]) for e in events) == sorted(
        (f"ol_run.{step}.run", kind) for step in ("numbers", "scaled", "report") for kind in ("START", "COMPLETE")
    )
    for event in events:
        validated(event)
    complete = {e["job"]["name"].split(".")[1]: e for e in events if e["eventType"] == "COMPLETE"}
    folder = tmp_path / "artifacts" / "ol_run" / dag_run.run_id

    def dataset(step: str) -> dict:
        return {"namespace": "file", "name": str(folder / step)}

    numbers, scaled, report = (complete[s] for s in ("numbers", "scaled", "report"))
    # outputs: where each is in the artifact store, and a table's columns
    for event, step in ((numbers, "numbers"), (scaled, "scaled"), (report, "report")):
        (output,) = event["outputs"]
        assert {k: output[k] for k in ("namespace", "name")} == dataset(step)
    columns = [{"name": "n", "type": "int64"}, {"name": "label", "type": "string"}]
    for event in (numbers, scaled):
        fields = event["outputs"][0]["facets"]["schema"]["fields"]
        assert [{k: f[k] for k in ("name", "type")} for f in fields] == columns
    assert "schema" not in report["outputs"][0].get("facets", {})  # a folder of files has no columns
    # inputs: the producers' outputs
    assert [{k: i[k] for k in ("namespace", "name")} for i in scaled["inputs"]] == [dataset("numbers")]
    assert [{k: i[k] for k in ("namespace", "name")} for i in report["inputs"]] == [dataset("scaled")]
    # the code's location and version: a checkout without a remote is not reachable through git, so the
    # location is the package in the store; the version is the commit it was built from
    for event in (scaled, report):
        location = event["job"]["facets"]["sourceCodeLocation"]
        assert (location["type"], location["url"], location["version"]) == (
            "aq-code-package",
            f"file://{pinned.uri}",
            commit,
        )
    assert "sourceCodeLocation" not in numbers["job"]["facets"]  # a sql step runs no code package
    assert numbers["job"]["facets"]["sql"]["query"].startswith("SELECT")


def test_a_dirty_checkout_is_versioned_by_the_package_digest():
    """A code folder with changes not committed is not its commit: the version is the digest."""
    from aq_airflow.artifacts.provenance import CodeVersion, GitState
    from aq_airflow.operators.lineage import code_location, dataset_name

    facet = code_location(CodeVersion(DIGEST, "/store/_code/x", GitState(COMMIT, dirty=True)))
    assert (facet.type, facet.url, facet.version) == ("aq-code-package", "file:///store/_code/x", DIGEST)
    assert dataset_name("s3://bucket/pipe/run/step") == ("s3://bucket", "pipe/run/step")
    assert dataset_name("/data/pipe/run/step") == ("file", "/data/pipe/run/step")


def test_a_clean_checkout_with_a_remote_is_located_in_git():
    """The facet describes git only where git can find the code: the remote, at the commit."""
    from aq_airflow.artifacts.provenance import CodeVersion, GitState
    from aq_airflow.operators.lineage import code_location

    remote = "https://github.com/acme/steps.git"
    facet = code_location(CodeVersion(DIGEST, "s3://bucket/_code/x", GitState(COMMIT, dirty=False, remote=remote)))
    assert (facet.type, facet.url, facet.repoUrl, facet.version) == ("git", remote, remote, COMMIT)
    facet = code_location(CodeVersion(DIGEST, "s3://bucket/_code/x", GitState(COMMIT, dirty=False)))
    assert (facet.type, facet.url, facet.version) == ("aq-code-package", "s3://bucket/_code/x", COMMIT)
    facet = code_location(CodeVersion(DIGEST, "s3://bucket/_code/x", GitState(COMMIT, dirty=True, remote=remote)))
    assert (facet.type, facet.url, facet.version) == ("aq-code-package", "s3://bucket/_code/x", DIGEST)


def test_the_check_refuses_what_the_spec_does_not_allow():
    """The check above can fail: a facet without a required field, a property the spec does not
    have, a run id that is no UUID."""
    from openlineage.client.generated.schema_dataset import SchemaDatasetFacet

    good = {"eventType": "COMPLETE", "eventTime": "2026-03-01T00:00:00+00:00", "producer": "https://x",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": "01932f4e-8c5d-7e3a-9f1b-2c4d6e8f0a1b"}, "job": {"namespace": "n", "name": "j"},
            "outputs": [{"namespace": "file", "name": "/x", "facets": {"schema": {
                "_producer": "https://x", "_schemaURL": SchemaDatasetFacet._get_schema(),
                "fields": [{"name": "n", "type": "int64"}]}}}]}  # fmt: skip
    validated(good)
    for broken in (
        {**good, "run": {"runId": "not-a-uuid"}},
        {**good, "job": {"namespace": "n"}},
        {**good, "job": {"namespace": "n", "name": "j", "color": "red"}},
        {**good, "eventTime": "2026-03-01"},
    ):
        with pytest.raises((AssertionError, TypeError, ValueError)):
            validated(broken)
    schema = good["outputs"][0]["facets"]["schema"]
    with pytest.raises(AssertionError):
        validated({**good, "outputs": [{**good["outputs"][0], "facets": {"schema": {**schema, "fields": "n"}}}]})
