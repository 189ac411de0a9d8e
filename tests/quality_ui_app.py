"""The quality UI in the REAL Airflow API app, in this process (tests/test_ui_pages.py and
tests/test_ui_access.py): ``airflow.api_fastapi.app.create_app`` with our plugin found through the
installed package's ``airflow.plugins`` entry point, the test metadata DB with aq pipelines
serialized into it (a DagBag of a dags folder with the loader shard, then ``sync_bag_to_db``, as
the dag-processor does) and their runs, DuckDB warehouses holding results, SimpleAuthManager
users with JWTs from the auth manager, and a per-DAG denial (``DenyingAuthManager``: the simple
auth manager grants by role only).

The end-to-end suite (tests/ui/) does the same against a real ``airflow api-server`` process and
a browser; this one is fast enough to probe every route and edge in-process.
"""

from __future__ import annotations

import datetime
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

from aq_airflow.results import CHECKS_TABLE, METRICS_TABLE, ResultsStore
from aq_airflow.results.rows import COLUMNS, DEPLOYMENTS_TABLE
from aq_airflow.warehouse import DuckDB, Warehouse

ADMIN, ANALYST, OUTSIDER = "admin", "analyst", "outsider"
USERS = {ADMIN: "admin", ANALYST: "viewer", OUTSIDER: "viewer"}
DENIED = {(OUTSIDER, "ui_denied")}  # the outsider may read every DAG but this one
DOWN_PASSWORD = "s3cr3t-Pa55"  # the unreachable warehouse's password: never on a page
DATES = [datetime.datetime(2026, 3, 1) + datetime.timedelta(days=i) for i in range(10)]
XSS_NAME = "<script>alert(1)</script>"
XSS_TEXT = '"><img src=x onerror=alert(2)>'
XSS_COLUMN = '"><img src=x onerror=alert(3)>'
ITEMS = ["us", "eu"]  # ui_items' `foreach:` items

SPECS = {
    "ui_pipe": """
        pipeline: ui_pipe
        description: Orders, checked daily
        schedule: "@daily"
        start_date: 2026-03-01
        warehouse: ui_wh
        results_schema: aq
        steps:
          orders:
            table: raw.orders
            sensitive: [email]
            checks:
              - {name: ids, not_null: id}
            metrics:
              - {name: mean_amount, mean: amount, bounds: {min: 0, max: 100}}
          totals:
            sql: SELECT 1 AS n
            depends_on: [orders]
    """,
    "ui_denied": """
        pipeline: ui_denied
        schedule: "@daily"
        start_date: 2026-03-01
        warehouse: ui_wh
        results_schema: aq
        steps:
          orders:
            table: raw.orders
            checks: [{name: ids, not_null: id}]
    """,
    "ui_items": """
        pipeline: ui_items
        start_date: 2026-03-01
        warehouse: ui_wh
        results_schema: aq
        steps:
          regions:
            command: [python, -c, "print(1)"]
            image: python:3.12-slim
            foreach: [us, eu]
            checks: [{name: enough, row_count: {min: 1}}]
            metrics: [{name: rows, count: "*"}]
    """,
    "ui_down": """
        pipeline: ui_down
        start_date: 2026-03-01
        warehouse: ui_down_wh
        steps:
          orders:
            table: raw.orders
            checks: [{name: ids, not_null: id}]
    """,
    "ui_nofile": """
        pipeline: ui_nofile
        start_date: 2026-03-01
        warehouse: ui_nofile_wh
        steps:
          orders:
            table: raw.orders
            checks: [{name: ids, not_null: id}]
    """,
    "ui_empty": """
        pipeline: ui_empty
        start_date: 2026-03-01
        warehouse: ui_empty_wh
        steps:
          orders:
            table: raw.orders
            metrics: [{name: rows, count: "*"}]
    """,
}
PLAIN_DAG = """
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("ui_plain", schedule=None):
    EmptyOperator(task_id="nothing")
"""

# An aq pipeline written by hand: its docs hold no spec, and its checks task's id is not
# `<step>.checks` (a task group of its own around it: `intake.orders.checks` is step `orders`).
# The pages know it only by its operators' facts (plan.model.FACT_FIELDS).
HANDMADE_DAG = """
from airflow.sdk import DAG, TaskGroup
from aq_airflow.operators import AqCheckOperator
from aq_airflow.plan.model import CheckPlan, QualityPlan, QualitySource, Severity, SourceKind

plan = QualityPlan(step="orders", warehouse="ui_wh", source=QualitySource(SourceKind.TABLE, table="raw.orders"),
                   artifacts=None, results_schema="aq", spec_hash="handmade", sensitive=("email",),
                   checks=(CheckPlan(name="ids", kind="not_null", severity=Severity.ERROR, columns=("id",)),))
with DAG("ui_handmade", schedule=None, tags=["aq"], doc_md="Written by hand: no spec in these docs."):
    with TaskGroup("intake"):
        AqCheckOperator(task_id="orders.checks", plan=plan, aq_step="orders", aq_role="checks",
                        sensitive_columns=["Email"], results_conn_id="ui_wh", results_schema="aq")
"""
HANDMADE_TASK = "intake.orders.checks"


class DenyingAuthManager(SimpleAuthManager):
    """SimpleAuthManager, except that the (user, dag_id) pairs of ``DENIED`` are refused every
    method on that DAG and left out of the user's readable DAGs, as per-DAG permissions would."""

    @staticmethod
    def _denied(user, dag_id) -> bool:
        return dag_id is not None and (user.get_name(), dag_id) in DENIED

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if details is not None and self._denied(user, details.id):
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)

    def get_authorized_dag_ids(self, *, user, method="GET", **kwargs) -> set[str]:
        allowed = super().get_authorized_dag_ids(user=user, method=method, **kwargs)
        return {dag_id for dag_id in allowed if not self._denied(user, dag_id)}

    def filter_authorized_dag_ids(self, *, dag_ids, user, method="GET", team_name=None) -> set[str]:
        allowed = super().filter_authorized_dag_ids(dag_ids=dag_ids, user=user, method=method, team_name=team_name)
        return {dag_id for dag_id in allowed if not self._denied(user, dag_id)}


def insert(store: ResultsStore, table: str, rows: list[dict]) -> None:
    names = [column for column, _ in COLUMNS[table]]
    insert = store.warehouse.render(store.statements.insert(table).expression)
    defaults = {"role": "check"} if table == CHECKS_TABLE else {}
    with store.warehouse.writing() as session:
        session.executemany(insert, [tuple({**defaults, **row}.get(n) for n in names) for row in rows])


def run_id(date: datetime.datetime) -> str:
    return f"scheduled__{date:%Y-%m-%d}T00:00:00+00:00"


def _attempt(day: int, version: str, previous: str | None, outcome: str, try_number: int = 1, **extra) -> dict:
    date = DATES[day]
    return {"dag_id": "ui_pipe", "run_id": run_id(date), "step": "orders", "endpoint": "amounts", "version": version,
            "previous_version": previous, "format": "sklearn", "target": "local", "outcome": outcome,
            "smoke_rows": 5, "map_index": -1, "try_number": try_number, "logical_date": date,
            "created_at": date + datetime.timedelta(hours=2, minutes=try_number), **extra}  # fmt: skip


# ui_pipe's promotions of step `orders` to endpoint `amounts` (none on day 5: its error check failed,
# so its serve task never ran): promoted, then a rolled-back try whose reason is markup, then promoted
DEPLOYMENTS = [
    _attempt(3, "v1111aaaa2222", None, "promoted", smoke_latency_ms=8.25),
    _attempt(5, "v3333bbbb4444", "v1111aaaa2222", "rolled_back", reason=XSS_TEXT),
    _attempt(9, "v5555cccc6666", "v1111aaaa2222", "promoted", smoke_latency_ms=11.5),
]


def seed_results(path: Path) -> None:
    """ui_pipe: 10 dates of its check `ids` (failing on day 5 with a sample), a hostile check
    (its name, message and sample are markup) and metric `mean_amount` (out of bounds on day 9);
    ui_denied: one date; ui_items: one date of each item's check and metric; ui_handmade: one
    failed check whose sample holds its sensitive column."""
    store = ResultsStore(Warehouse.for_dialect("duckdb", lambda: __import__("duckdb").connect(str(path))), "aq")
    store.ensure_tables()
    checks, metrics = [], []
    for i, date in enumerate(DATES):
        common = {"dag_id": "ui_pipe", "run_id": run_id(date), "step": "orders", "map_index": -1, "try_number": 1,
                  "logical_date": date, "created_at": date + datetime.timedelta(hours=1)}  # fmt: skip
        failed = i == 4
        sample = [{"id": None, "email": "alice@example.com", "amount": k} for k in range(3)] if failed else None
        checks.append({**common, "name": "ids", "kind": "not_null", "severity": "error",
                       "outcome": "failed" if failed else "passed", "failing_rows": 3 if failed else 0,
                       "total_rows": 50, "message": f"{3 if failed else 0} of 50 rows fail",
                       "sample": json.dumps(sample) if sample else None})  # fmt: skip
        checks.append({**common, "name": XSS_NAME, "kind": "expression", "severity": "warning", "outcome": "failed",
                       "failing_rows": 1, "total_rows": 50, "message": XSS_TEXT,
                       "sample": json.dumps([{XSS_COLUMN: XSS_TEXT, "email": "bob@example.com"}])})  # fmt: skip
        history = {"window": 7, "max_zscore": 3, "min_history": 3, "values": min(i, 7)}
        if i >= 3:
            history.update(mean=50.0, stddev=2.0)
        value = 120.0 if i == 8 else 50.0 + i / 10
        metrics.append({**common, "name": "mean_amount", "kind": "mean", "severity": "warning", "value": value,
                        "outcome": "failed" if i == 8 else "passed", "message": f"mean_amount = {value}",
                        "expected": json.dumps({"bounds": {"min": 0, "max": 100}, "history": history})})  # fmt: skip
    for k in range(25):  # one date of many metrics of step totals: a second page of charts
        metrics.append({"dag_id": "ui_pipe", "run_id": run_id(DATES[0]), "step": "totals", "map_index": -1,
                        "try_number": 1, "logical_date": DATES[0], "created_at": DATES[0], "name": f"m{k:02d}",
                        "kind": "count", "severity": "warning", "value": float(k), "outcome": "passed"})  # fmt: skip
    checks.append({"dag_id": "ui_denied", "run_id": run_id(DATES[0]), "step": "orders", "map_index": -1,
                   "name": "ids", "kind": "not_null", "severity": "error", "outcome": "passed", "message": "secret",
                   "logical_date": DATES[0], "created_at": DATES[0]})  # fmt: skip
    for index, label in enumerate(ITEMS):  # ui_items: a `foreach:` step's rows carry their item's label
        common = {"dag_id": "ui_items", "run_id": run_id(DATES[0]), "step": "regions", "map_index": index,
                  "item_label": label, "try_number": 1, "logical_date": DATES[0], "created_at": DATES[0]}  # fmt: skip
        checks.append({**common, "name": "enough", "kind": "row_count", "severity": "error", "outcome": "passed",
                       "message": f"{10 + index} rows"})  # fmt: skip
        metrics.append({**common, "name": "rows", "kind": "count", "severity": "warning", "outcome": "passed",
                        "value": 26500.0 + index})  # fmt: skip
    checks.append({"dag_id": "ui_handmade", "run_id": run_id(DATES[0]), "step": "orders", "map_index": -1,
                   "name": "ids", "kind": "not_null", "severity": "error", "outcome": "failed", "failing_rows": 1,
                   "total_rows": 9, "message": "1 of 9 rows fail", "logical_date": DATES[0], "created_at": DATES[0],
                   "sample": json.dumps([{"id": None, "email": "carol@example.com", "amount": 7}])})  # fmt: skip
    insert(store, CHECKS_TABLE, checks)
    insert(store, METRICS_TABLE, metrics)
    insert(store, DEPLOYMENTS_TABLE, DEPLOYMENTS)


OUTPUT_IMAGE = f"ghcr.io/acme/{XSS_TEXT}:1.0"  # an image name holding markup: escaped on the task page
CODE_DIGEST = "sha256:" + "ab" * 32


def seed_outputs(root: Path) -> None:
    """ui_items' step `regions` in its run of DATES[0], in the store $AQ_ARTIFACTS names here:
    item 0 committed with its provenance, item 1 by a release before provenance (none)."""
    import pyarrow as pa

    from aq_airflow.artifacts.items import write_items
    from aq_airflow.artifacts.provenance import CodeVersion, GitState, ImageVersion, InputVersion, Provenance
    from aq_airflow.artifacts.store import Location, write_batches

    folder = Location.of(f"{root}/ui_items/{run_id(DATES[0])}/regions")
    write_items(folder, ITEMS)
    for index in range(len(ITEMS)):
        item = folder.child(str(index))
        attempt = item.begin()
        table = pa.table({"region": [ITEMS[index]] * 3, "amount": [1.5, 2.5, 3.5]})
        fields = write_batches(item, attempt, table.schema, iter(table.to_batches()))
        provenance = Provenance(
            code=CodeVersion(CODE_DIGEST, f"{root}/_code/{'ab' * 32}", GitState("c0ffee" * 6 + "abcd", True)),
            image=ImageVersion(OUTPUT_IMAGE, "sha256:" + "9f" * 32), spec_hash="sha256:" + "00" * 32,
            inputs={"orders": InputVersion("orders", f"{root}/ui_items/x/orders", "sha256:" + "12" * 32)},
            run_id=run_id(DATES[0]), try_number=2, started="2026-03-01T00:05:00+00:00",
            finished="2026-03-01T00:06:00+00:00",
        )  # fmt: skip
        extra = {"provenance": provenance.to_json()} if index == 0 else {}
        item.commit({**fields, "step": "regions", "attempt": attempt, "uri": item.uri, **extra})


def write_dags(folder: Path) -> None:
    from aq_airflow.devstack.loader_file import loader_files

    folder.mkdir(parents=True, exist_ok=True)
    for name, source in loader_files(1).items():
        (folder / name).write_text(source)
    for dag_id, text in SPECS.items():
        (folder / f"{dag_id}.aq.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    (folder / "ui_plain.py").write_text(PLAIN_DAG)
    (folder / "ui_handmade.py").write_text(HANDMADE_DAG)


def serialize(folder: Path) -> list[str]:
    """The DAGs of ``folder`` into the metadata DB as the dag-processor writes them, and runs of
    ui_pipe for its dates."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:
        for dag_id, date in [*(("ui_pipe", date) for date in DATES), ("ui_items", DATES[0]), ("ui_handmade", DATES[0])]:
            if session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id(date)).first():
                continue
            aware = date.replace(tzinfo=datetime.timezone.utc)
            session.add(DagRun(dag_id=dag_id, run_id=run_id(date), logical_date=aware, run_after=aware,
                               run_type=DagRunType.SCHEDULED, state=DagRunState.SUCCESS,
                               data_interval=(aware, aware + datetime.timedelta(days=1))))  # fmt: skip
    return sorted(bag.dags)


def overview(client) -> tuple[dict[str, dict], str]:
    """Every page of the overview as ``client``'s user sees it: the rows of this fixture's
    pipelines (``ui_*``) from the JSON, and the HTML pages joined. Other tests of the session
    serialize their DAGs into the same metadata DB, so ours may be on any page. Every page must
    answer 200, and ``ui_plain`` (a DAG, not an aq pipeline) is on none."""
    rows: dict[str, dict] = {}
    html: list[str] = []
    listed: set[str] = set()
    page = 1
    while True:
        data, text = (client.get(url, params={"page": page}) for url in ("/aq-quality/api/overview", "/aq-quality/"))
        assert (data.status_code, text.status_code) == (200, 200), (page, data.text[:300], text.text[:300])
        assert "<script" not in text.text.lower() and "Traceback" not in text.text
        items = data.json()["items"]
        listed |= {row["dag_id"] for row in items}
        rows.update({row["dag_id"]: row for row in items if row["dag_id"].startswith("ui_")})
        html.append(text.text)
        if not data.json()["has_more"]:
            break
        page += 1
    assert "ui_plain" not in listed, listed
    return rows, "".join(html)


_built: QualityApp | None = None


@dataclass
class QualityApp:
    """The API app and how to call it as a user."""

    app: object
    tokens: dict[str, str]
    warehouse: Path

    def client(self, user: str | None = None, token: str | None = None, cookie: bool = False):
        from fastapi.testclient import TestClient

        client = TestClient(self.app, raise_server_exceptions=False)
        token = token or (self.tokens[user] if user else None)
        if token and cookie:
            client.cookies.set("_token", token)
        elif token:
            client.headers["Authorization"] = f"Bearer {token}"
        return client


@pytest.fixture(scope="session")
def quality_app(airflow_db, tmp_path_factory) -> QualityApp:
    """The real API app (core) with the aq quality plugin, a per-DAG denying auth manager, users
    and their tokens; pipelines ui_pipe (results), ui_items (a `foreach:` step's), ui_denied
    (denied to the outsider), ui_down (an unreachable warehouse), ui_empty (no results tables),
    ui_handmade (written by hand: no spec in its docs), and ui_plain (not an aq pipeline).
    Built once a session: both test modules name this function as their fixture."""
    global _built
    if _built is not None:  # the other module's instance, alive (and its settings in force) until the end
        yield _built
        return
    root = tmp_path_factory.mktemp("quality-ui")
    warehouse, empty = root / "wh.duckdb", root / "empty.duckdb"
    seed_results(warehouse)
    seed_outputs(root / "artifacts")
    import duckdb

    duckdb.connect(str(empty)).close()
    settings = {
        "AIRFLOW__CORE__AUTH_MANAGER": f"{__name__}.DenyingAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "quality-ui-test-secret-0123456789abcdef",
        "AIRFLOW_CONN_UI_WH": DuckDB.connection_json(warehouse),
        "AQ_ARTIFACTS": str(root / "artifacts"),  # the specs name no store: the api-server's own
        "AIRFLOW_CONN_UI_EMPTY_WH": DuckDB.connection_json(empty),
        "AIRFLOW_CONN_UI_NOFILE_WH": DuckDB.connection_json(root / "nowhere.duckdb"),
        "AIRFLOW_CONN_UI_DOWN_WH": json.dumps(
            {"conn_type": "postgres", "host": "127.0.0.1", "port": 9, "login": "aq", "password": DOWN_PASSWORD}
        ),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        from airflow import plugins_manager
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        cached = ("_get_plugins", "get_fastapi_plugins", "_get_ui_plugins", "_get_extra_operators_links_plugins")
        for name in cached:  # plugins as this process's Airflow finds them now
            getattr(plugins_manager, name).cache_clear()
        names = [p.name for p in plugins_manager._get_plugins()[0]]
        assert "aq_quality" in names, f"the airflow.plugins entry point is not installed (make install): {names}"
        write_dags(root / "dags")
        serialize(root / "dags")
        app = create_app(apps="core")
        manager = get_auth_manager()
        assert isinstance(manager, DenyingAuthManager)
        tokens = {user: manager.generate_jwt(SimpleAuthManagerUser(username=user, role=role))
                  for user, role in USERS.items()}  # fmt: skip
        _built = QualityApp(app, tokens, warehouse)
        try:
            yield _built
        finally:
            _built = None
