"""Deployment stacks: the built wheel in a real Airflow (PostgreSQL metadata DB, separate
processes), once per executor. Needs PostgreSQL (and Redis for Celery): skipped where they do
not answer, failed instead under AQ_REQUIRE_SERVICES=1."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from pathlib import Path

import pytest

from tests.deployment.stack import Stack, create_database, drop_database, redis_command, with_database
from tests.ports import worker_name

SPECS = Path(__file__).parent / "specs"
EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
# the control-flow examples, deployed under these dag_ids: {example: dag_id}
DEPLOYED_EXAMPLES = {
    "churn_champion": "deploy_churn_champion",
    "region_training": "deploy_region_training",
    "churn_at_scale": "deploy_churn_at_scale",  # a spark step (PySpark local mode) and a ray step (a local Ray)
}
EXAMPLE_PACKAGES = ("churn", "regions")  # their step code, beside the loader in the dags folder
REDIS = os.environ.get("AQ_TEST_REDIS", "127.0.0.1:6379")
EXECUTORS = ["LocalExecutor", "CeleryExecutor"]
_WALL_TIMES: dict[str, float] = {}
FIGURES: dict[str, list[str]] = {}  # executor -> lines for the summary (timings are reported, never asserted)


def _missing(what: str, error: Exception):
    if os.environ.get("AQ_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is required here (AQ_REQUIRE_SERVICES=1) but did not answer: {error}")
    pytest.skip(f"no {what}: {error}")


@pytest.fixture(scope="session")
def redis_server() -> tuple[str, int]:
    host, _, port = REDIS.partition(":")
    address = (host, int(port or 6379))
    try:
        assert redis_command(*address, "PING") == "PONG"
    except (OSError, AssertionError) as error:
        _missing(f"Redis at {REDIS}", error)
    return address


def _seed_warehouse(path: Path) -> None:
    import duckdb

    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA raw")
        conn.execute(
            "CREATE TABLE raw.orders AS SELECT i AS id, round(5 + i * 2.5, 2) AS amount, "
            "DATE '2026-02-01' + (i % 20)::INTEGER AS placed_on FROM range(1, 21) t(i)"
        )


def _seed_examples_warehouse(path: Path) -> None:
    """The example project's tables (raw.customers, raw.orders), as the example tests seed them."""
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("seed_warehouse", EXAMPLES / "seed_warehouse.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    module.seed(str(path), customers=2000, order_events=20_000)


def deployable_examples(folder: Path) -> list[Path]:
    """The control-flow examples as a team without Kubernetes would deploy them: the same steps,
    on the `local` profile (processes on the worker, artifacts in its folder), unscheduled (runs
    only when a test triggers one), no retries, the warehouse connection `aq_examples` (their
    tables: raw.orders here is another table than deploy_quality's) and a `deploy_` dag_id."""
    import yaml

    written = []
    for name, dag_id in DEPLOYED_EXAMPLES.items():
        spec = yaml.safe_load((EXAMPLES / f"{name}.aq.yaml").read_text())
        spec.pop("artifacts", None)
        spec.update(pipeline=dag_id, schedule=None, cluster="local", warehouse="aq_examples")
        spec["tags"] = [*spec.get("tags", []), "deploy-test"]
        spec.setdefault("defaults", {})["retries"] = 0
        path = folder / f"{dag_id}.aq.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        written.append(path)
    return written


@pytest.fixture(scope="module", params=EXECUTORS)
def stack(request, postgres_dsn, production_venv, tmp_path_factory):
    """One running deployment per executor (the module's tests share it)."""
    executor = request.param
    redis = request.getfixturevalue("redis_server") if executor == "CeleryExecutor" else None
    started = time.monotonic()
    database = f"aq_deploy_{worker_name()}_{executor.removesuffix('Executor').lower()}_{secrets.token_hex(4)}"
    admin = with_database(postgres_dsn, "postgres")
    create_database(admin, database)
    root = tmp_path_factory.mktemp(f"deploy-{executor.lower()}")
    deployment = None
    try:
        deployment = Stack(production_venv.venv, executor, root, with_database(postgres_dsn, database), redis)
        _seed_warehouse(deployment.warehouse)
        _seed_examples_warehouse(deployment.examples_warehouse)
        examples = deployable_examples(root)
        packages = [EXAMPLES / name for name in EXAMPLE_PACKAGES]
        # team/: a spec in a subfolder of the dags folder with its step code beside it
        deployment.start([*SPECS.glob("*.aq.yaml"), SPECS / "deploy_steps.py", SPECS / "team", *examples, *packages])
        yield deployment
    finally:
        try:
            if deployment is not None:
                deployment.stop()
        finally:
            drop_database(admin, database)
            _WALL_TIMES[executor] = elapsed = time.monotonic() - started
            capture = request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                sys.__stderr__.write(f"\n[deployment] {executor}: stack up, tests and teardown took {elapsed:.0f}s\n")
                sys.__stderr__.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing deployment test carries the tails of the Airflow processes' logs."""
    outcome = yield
    report = outcome.get_result()
    deployment = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(deployment, Stack):
        report.sections.append(("Airflow process logs (tails)", deployment.tails(25)))


def pytest_terminal_summary(terminalreporter):
    if _WALL_TIMES:
        terminalreporter.write_sep("-", "deployment suites, wall time per executor")
        for executor, seconds in _WALL_TIMES.items():
            terminalreporter.write_line(f"{executor}: {seconds:.0f}s")
            for line in FIGURES.get(executor, []):
                terminalreporter.write_line(f"  {line}")
