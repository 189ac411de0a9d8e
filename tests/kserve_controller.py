"""A test-side KServe controller for ``tests.kube_api.FakeKubernetes``: what KServe v0.20.0 does with
an InferenceService whose predictor is one model, as far as the serve task can see it.

Modelled on (the mirror's tag v0.20.0):
- ``pkg/apis/serving/v1beta1/inference_service_status.go``: the conditions (``PredictorReady``,
  ``IngressReady``, and ``Ready`` over them), ``modelStatus`` (``transitionStatus`` UpToDate /
  InProgress / BlockedByFailedLoad, ``states.activeModelState`` / ``targetModelState`` Loading,
  Loaded, FailedToLoad, ``lastFailureInfo`` with reason ModelLoadFailed, the message, the exit
  code and the pod as location: ``UpdateModelRevisionStates``, ``PropagateModelStatus``), and
  ``observedGeneration``;
- ``pkg/controller/v1beta1/inferenceservice/reconcilers/ingress/ingress_reconciler.go``:
  ``status.url`` and ``status.address.url``;
- ``pkg/controller/v1beta1/inferenceservice/controller.go``: a reconcile on every change of the
  object (its watch), and deleting the object deletes the predictor's pods.

For each change (``FakeKubernetes.watchers``, reconciled one at a time per object, each on the
object as it is then): the predictor's ``storageUri`` is fetched as KServe's storage initializer
does (a local path, or ``s3://``, ``gs://``, ``abfs://`` through the store's own pyarrow
filesystems, so the emulators' settings reach it as they reach the operators), and the real model
server (``aq_airflow.serving.model_server.ModelServer``: MLServer on loopback) starts on the
version folder, named as the InferenceService. While it loads, the generation is reported
InProgress and Loading and the old server keeps answering; once it answers it replaces the old
one (stopped), and the generation is Ready, UpToDate, Loaded, at the new server's URL (both
``url`` and ``address.url``: there is no cluster DNS here). A server that cannot load the model
leaves the old one serving and reports the generation BlockedByFailedLoad, FailedToLoad, Ready
False, with ``lastFailureInfo``. A change that keeps the ``storageUri`` being served (a rollback
to it, a replica count) is Ready at once. Deleting the InferenceService stops its server.

In Knative mode a ``canaryTrafficPercent`` below 100 splits the traffic as KServe's ksvc
reconciler does (``reconcilers/knative/ksvc_reconciler.go``, ``PropagateStatus``'s
``latestRolledoutRevision``): the new model gets that share, the last model that had all the
traffic (rolled out) the rest, and keeps it through later promotions until the percent is raised
to 100 or removed; then that model is stopped. The split is a proxy in front of both servers
(``url``, ``address.url``), deterministic: of any ``100 / percent`` consecutive requests one goes
to the new model (``routed`` records each request's path, server and status). A first model,
with nothing rolled out before it, gets all the traffic.

What this does not show (a real KServe does): the storage initializer's credentials from the
service account's Secrets, the runtime's own image and ``ServingRuntime`` (any format is served
by our MLServer), Knative's own revisions, activator and autoscaling, and, in Standard mode, a
rolling update reporting Ready while the old pods still answer (the serve task smoke-tests the
new version by its versioned path for that).
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow.fs as pafs
from aiohttp import web

from aq_airflow.artifacts.store import filesystem
from aq_airflow.serving.model_server import ModelServer

STORAGE_INITIALIZER = "storage-initializer"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch(storage_uri: str, into: Path) -> Path:
    """Copy the version folder at ``storage_uri`` to ``into`` (KServe's /mnt/models)."""
    if "://" not in storage_uri or storage_uri.startswith("file://"):
        source_fs, path = pafs.LocalFileSystem(), storage_uri.removeprefix("file://")
    else:
        source_fs, path = filesystem(storage_uri)
    found = source_fs.get_file_info(path)
    if found.type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{storage_uri}: no such folder")
    base = path.rstrip("/")
    for entry in source_fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if entry.type != pafs.FileType.File:
            continue
        target = into / entry.path[len(base) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        with source_fs.open_input_stream(entry.path) as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink)
    return into


@dataclass
class Served:
    """One InferenceService's model server and what it serves."""

    uid: str
    server: ModelServer | None = None
    storage_uri: str | None = None
    folder: str | None = None
    failed: dict[str, Any] = field(default_factory=dict)  # storageUri -> its lastFailureInfo
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Knative with a canary: the model rolled out last (its server, storageUri, folder), serving
    # what the new one's `percent` leaves, through the proxy at `proxy_url`
    rest: tuple[ModelServer, str, str] | None = None
    percent: int = 100
    proxy: web.AppRunner | None = None
    proxy_url: str | None = None
    count: itertools.count = field(default_factory=lambda: itertools.count(1))


class KServe:
    """The controller: ``watchers={"inferenceservices": KServe()}`` on a FakeKubernetes; ``stop()``
    stops every model server it started."""

    def __init__(self) -> None:
        self.served: dict[tuple[str, str, str], Served] = {}
        self.started: list[str] = []  # the storageUris servers were started for, in order
        self.routed: list[tuple[str, str, int]] = []  # through a split: (path, the storageUri served, status)

    async def __call__(self, api: Any, event: str, key: tuple[str, str, str]) -> None:
        resource = api.objects.get(key)
        uid = resource["metadata"]["uid"] if resource is not None else None
        state = self.served.get(key)
        if state is None or (uid is not None and state.uid != uid):
            if state is not None:
                await self._stop(state)
            if uid is None:
                return
            state = self.served[key] = Served(uid)
        async with state.lock:
            await self._reconcile(api, key, state)

    async def _reconcile(self, api: Any, key: tuple[str, str, str], state: Served) -> None:
        resource = api.objects.get(key)
        if resource is None or resource["metadata"]["uid"] != state.uid:  # deleted: its pods go
            await self._stop(state)
            self.served.pop(key, None)
            return
        generation = resource["metadata"]["generation"]
        wanted = resource["spec"]["predictor"]["model"]["storageUri"]
        knative = (resource["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode") == "Knative"
        percent = resource["spec"]["predictor"].get("canaryTrafficPercent") if knative else None
        percent = 100 if percent is None else percent
        if wanted == state.storage_uri and state.server is not None:
            state.percent = percent
            if percent >= 100:  # rolled out: the rest's model goes
                await self._stop_rest(state)
            self._report(api, key, state, generation, "Loaded")
            return
        if wanted in state.failed:
            self._report(api, key, state, generation, "FailedToLoad", state.failed[wanted])
            return
        self._report(api, key, state, generation, "Loading")
        folder = tempfile.mkdtemp(prefix="kserve-models-")
        name = key[2]
        try:
            server = await asyncio.get_running_loop().run_in_executor(None, self._start, name, wanted, folder)
        except Exception as error:  # the storage initializer or the model server failed
            shutil.rmtree(folder, ignore_errors=True)
            pod = f"{name}-predictor-{uuid.uuid4().hex[:5]}"
            info = {"location": pod, "reason": "ModelLoadFailed", "message": str(error)[-2000:], "exitCode": 1,
                    "modelRevisionName": f"{name}-predictor-{generation:05d}", "time": _now()}  # fmt: skip
            state.failed[wanted] = info
            self._report(api, key, state, generation, "FailedToLoad", info)
            return
        self.started.append(wanted)
        old = (state.server, state.storage_uri, state.folder) if state.server is not None else None
        state.server, state.storage_uri, state.folder = server, wanted, folder
        state.percent = percent
        if percent < 100 and old is not None and state.rest is None:
            state.rest = old  # it had all the traffic: it serves the rest
            await self._start_proxy(api, state)
        elif old is not None:  # a canary replaced (the rest stays), or rolled out (no rest)
            await asyncio.get_running_loop().run_in_executor(None, old[0].stop)
            shutil.rmtree(old[2] or "", ignore_errors=True)
        if percent >= 100:
            await self._stop_rest(state)
        current = api.objects.get(key)
        if current is not None and current["metadata"]["uid"] == state.uid:
            self._report(api, key, state, generation, "Loaded")
        else:  # deleted while it loaded
            await self._stop(state)

    @staticmethod
    def _start(name: str, storage_uri: str, folder: str) -> ModelServer:
        fetch(storage_uri, Path(folder) / name)
        server = ModelServer({name: str(Path(folder) / name)})
        server.__enter__()
        return server

    async def _start_proxy(self, api: Any, state: Served) -> None:
        """The split's address: each request to the new model or to the rest's, by the percent."""
        if state.proxy is not None:
            return

        async def route(request: web.Request) -> web.Response:
            n = next(state.count)
            new = state.rest is None or (n * state.percent) // 100 > ((n - 1) * state.percent) // 100
            server, uri = (state.server, state.storage_uri) if new else (state.rest[0], state.rest[1])
            if server is None:
                return web.Response(status=503, text="no revision is ready")
            body = await request.read()
            async with aiohttp.ClientSession() as session, session.request(
                request.method, server.url + request.path_qs, data=body or None,
                headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
            ) as answer:  # fmt: skip
                text = await answer.read()
                self.routed.append((request.path, uri or "", answer.status))
                return web.Response(status=answer.status, body=text, content_type=answer.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", route)
        state.proxy = web.AppRunner(app)
        await state.proxy.setup()
        site = web.TCPSite(state.proxy, "127.0.0.1", 0)
        await site.start()
        state.proxy_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def _stop_rest(self, state: Served) -> None:
        rest, state.rest = state.rest, None
        if rest is not None:
            await asyncio.get_running_loop().run_in_executor(None, rest[0].stop)
            shutil.rmtree(rest[2], ignore_errors=True)

    async def _stop(self, state: Served) -> None:
        await self._stop_rest(state)
        if state.proxy is not None:
            await state.proxy.cleanup()
            state.proxy = state.proxy_url = None
        server, state.server = state.server, None
        if server is not None:
            await asyncio.get_running_loop().run_in_executor(None, server.stop)
        if state.folder:
            shutil.rmtree(state.folder, ignore_errors=True)
        state.storage_uri = state.folder = None

    def stop(self) -> None:
        for state in self.served.values():
            rest = [(state.rest[0], state.rest[2])] if state.rest is not None else []
            for server, folder in [(state.server, state.folder), *rest]:
                if server is not None:
                    server.stop()
                if folder:
                    shutil.rmtree(folder, ignore_errors=True)
        self.served.clear()

    @staticmethod
    def _report(api: Any, key: tuple[str, str, str], state: Served, generation: int, target: str,
                failure: dict[str, Any] | None = None) -> None:  # fmt: skip
        """The status KServe writes for ``generation`` with the target model ``target``."""
        resource = api.objects.get(key)
        if resource is None or resource["metadata"]["uid"] != state.uid:
            return
        status = resource.setdefault("status", {})
        model = status.setdefault("modelStatus", {})
        states = model.setdefault("states", {"activeModelState": "Pending"})
        states["targetModelState"] = target
        serving = state.server is not None
        if target == "Loaded":
            states["activeModelState"] = "Loaded"
            model["transitionStatus"] = "UpToDate"
        elif target == "FailedToLoad":
            model["transitionStatus"] = "BlockedByFailedLoad"
        else:
            model["transitionStatus"] = "InProgress"
        if failure is not None:
            model["lastFailureInfo"] = failure
        model["copies"] = {"failedCopies": 1 if target == "FailedToLoad" else 0, "totalCopies": 1 if serving else 0}
        now = _now()
        predictor_ready = target == "Loaded"
        reason = {"Loaded": "", "Loading": "RevisionMissing", "FailedToLoad": "RevisionFailed"}[target]
        message = (failure or {}).get("message", "")
        conditions = [
            {"type": "IngressReady", "status": "True" if serving else "False", "lastTransitionTime": now},
            {"type": "PredictorReady", "status": "True" if predictor_ready else ("False" if failure else "Unknown"),
             "reason": reason, "message": message, "lastTransitionTime": now},
        ]  # fmt: skip
        ready = dict(conditions[1], type="Ready")
        status["conditions"] = [{k: v for k, v in c.items() if v != ""} for c in (*conditions, ready)]
        status["observedGeneration"] = generation
        status["deploymentMode"] = (
            resource["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode", "Standard")
        )
        if serving:
            url = state.proxy_url if state.rest is not None else state.server.url
            status["url"] = url
            status["address"] = {"url": url}
            status["components"] = {"predictor": {"url": url, "restUrl": url}}
